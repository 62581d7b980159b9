"""Structured trace records, the recorder, and the canonical trace hash.

The trace of a run is its ground truth: tables, plots, invariants and hashes are
all derived from it. Records are appended in the order transitions happen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import NamedTuple


class TraceRecord(NamedTuple):
    """One transition of one saga.

    ``phase`` is ``saga`` (the instance), ``execute`` (a step attempt),
    ``compensate`` (a compensation attempt), ``retry`` (a scheduled retry),
    ``poll`` (an attempt or a scheduled delay of a ``retry_async`` poll inside
    the step, ``attempt`` counting the poll's own attempts) or ``children`` (the
    step waiting for its child sagas); ``outcome`` says what happened
    (``started``, ``completed``, ``failed``, ``timed_out``, ``cancelled``,
    ``scheduled``, ``compensated``, ``waiting``...).
    An immutable named tuple rather than a frozen dataclass: a run writes
    several per step, and a tuple is several times cheaper to build.
    """

    t: float
    saga_id: str
    saga_type: str
    parent_id: str | None
    step: str | None
    attempt: int | None
    phase: str
    outcome: str
    error_type: str | None = None
    retry_delay: float | None = None
    detail: str | None = None


TRACE_FIELDS: tuple[str, ...] = TraceRecord._fields


class Tracer:
    """Collects trace records, stamping each with the clock's current time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.records: list[TraceRecord] = []

    def record(
        self,
        saga_id: str,
        saga_type: str,
        parent_id: str | None,
        step: str | None,
        attempt: int | None,
        phase: str,
        outcome: str,
        error_type: str | None = None,
        retry_delay: float | None = None,
        detail: str | None = None,
    ) -> None:
        """Append one record at the current time."""
        self.records.append(
            TraceRecord(
                self._clock(),
                saga_id,
                saga_type,
                parent_id,
                step,
                attempt,
                phase,
                outcome,
                error_type,
                retry_delay,
                detail,
            )
        )


# NOTE: one encoder for every record; json.dumps with non-default separators builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def canonical_trace(records: Iterable[TraceRecord]) -> bytes:
    """The trace as canonical JSON lines: one array per record, fields in fixed order."""
    encode = _ENCODE
    lines = [encode(tuple(r)) for r in records]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def trace_hash(records: Iterable[TraceRecord]) -> str:
    """sha256 (hex) of the canonical trace: equal hashes mean identical behaviour."""
    return hashlib.sha256(canonical_trace(records)).hexdigest()
