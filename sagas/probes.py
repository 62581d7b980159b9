"""Probes: a saga author's marks on paths that must be exercised and facts that must always hold.

    from sagas import probes

    probes.sometimes("disconnection: lock not acquired", not acquired)
    probes.reachable("disconnection: purge skipped, connection changed")
    probes.always("disconnection: purge only while disconnected", status == "disconnected")
    probes.unreachable("order: filled twice")

Outside the lab every call is a no-op that costs one context-variable read: no sink is
installed, so nothing is recorded, nothing is raised, and behaviour never changes (a probe
only observes its ``condition``; it never decides anything). The lab installs a
``ProbeSink`` per run (``recording``) and reports, per scenario, in how many runs each
``sometimes``/``reachable`` probe was hit and whether an ``always``/``unreachable`` probe
ever failed. The lab finds probes by reading the source, so a probe that never fired is
still reported: **the name must be a string literal** (the lab's catalogue refuses any
other). ``needs`` names the fault family the path depends on (optional, also a literal);
when a run switched that family off, the probe is "not applicable" rather than "never
reached". ``variant`` (a literal ``"switch:value"``, such as ``"purge:safe"``) names the saga
variant in which the path exists at all: in a run of the other variant the probe is not
applicable either.

A ``ContextVar`` (not a module global) holds the sink so that a task sees the sink of the
run that spawned it, whatever else runs in the process.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

ProbeKind = Literal["sometimes", "always", "reachable", "unreachable"]
PROBE_KINDS: tuple[ProbeKind, ...] = ("sometimes", "always", "reachable", "unreachable")
"""Every kind of probe, in the order the lab reports them."""


class ProbeSink(Protocol):
    """What records probe calls in a run (the lab's recorder)."""

    def hit(self, kind: ProbeKind, name: str, ok: bool) -> None:
        """Probe ``name`` of ``kind`` was evaluated; ``ok`` is False for a failed ``always``/``unreachable``."""


_sink: contextvars.ContextVar[ProbeSink | None] = contextvars.ContextVar("sagas_probe_sink", default=None)


def sometimes(name: str, condition: bool, *, needs: str | None = None, variant: str | None = None) -> None:
    """Mark a path that must be taken in some runs: ``condition`` true counts as one hit of ``name``."""
    sink = _sink.get()
    if sink is not None and condition:
        sink.hit("sometimes", name, True)


def reachable(name: str, *, needs: str | None = None, variant: str | None = None) -> None:
    """Mark a line that must be reached in some runs: every call is a hit of ``name``."""
    sink = _sink.get()
    if sink is not None:
        sink.hit("reachable", name, True)


def always(name: str, condition: bool, *, needs: str | None = None, variant: str | None = None) -> None:
    """Mark a fact that must hold whenever this line runs: a false ``condition`` is a failure of ``name``."""
    sink = _sink.get()
    if sink is not None:
        sink.hit("always", name, bool(condition))


def unreachable(name: str, *, needs: str | None = None, variant: str | None = None) -> None:
    """Mark a line that must never run: every call is a failure of ``name``."""
    sink = _sink.get()
    if sink is not None:
        sink.hit("unreachable", name, False)


@contextmanager
def recording(sink: ProbeSink) -> Iterator[ProbeSink]:
    """Record every probe call made in this context (and in tasks spawned from it) into ``sink``.

    The previous sink (None outside the lab) is back when the block ends, so one run's recording
    never reaches the next run's.
    """
    token = _sink.set(sink)
    try:
        yield sink
    finally:
        _sink.reset(token)
