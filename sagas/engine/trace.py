"""Structured trace records, their vocabulary, the recorder, and the canonical trace hash.

The trace of a run is its ground truth: tables, plots, invariants and hashes are
all derived from it. Records are appended in the order transitions happen.

The vocabulary is closed: every record's ``phase`` is a ``Phase`` and its
``outcome`` an ``Outcome``, and readers use these enums and the named groups
below (``ATTEMPT_PHASES``, ``TERMINAL_SAGA_OUTCOMES``...) instead of keeping
their own sets of strings. A record holds the plain string value, so a trace
compares, pickles, prints and hashes exactly as a trace of strings does (a
``StrEnum`` member also compares equal to its value).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Iterable
from typing import NamedTuple

from sagas.engine.state import SagaStatus


class Phase(enum.StrEnum):
    """What a trace record is about."""

    SAGA = "saga"
    """The saga instance itself (started, resumed, its terminal status...)."""
    EXECUTE = "execute"
    """One attempt of a step."""
    COMPENSATE = "compensate"
    """One attempt of a step's compensation."""
    RETRY = "retry"
    """A retry scheduled after a failed attempt (``detail`` is ``compensation`` for a compensation's)."""
    POLL = "poll"
    """An attempt or a scheduled delay of a ``retry_async`` poll inside a step (``attempt`` counts the poll's own)."""
    CHILDREN = "children"
    """The step waiting for its child sagas."""


class Outcome(enum.StrEnum):
    """What happened, per phase (the phases that write each are in brackets)."""

    STARTED = "started"  # saga, execute, compensate, poll
    RESUMED = "resumed"  # saga: a manager took it over (``detail`` is the stored status)
    COMPLETED = "completed"  # saga, execute, poll, children
    FAILED = "failed"  # execute, compensate, poll
    TIMED_OUT = "timed_out"  # saga (terminal), execute, compensate, children
    CANCELLED = "cancelled"  # execute, poll: cut from outside (saga deadline, shutdown)
    ABORTED = "aborted"  # saga (terminal), execute: the step asked to end the saga
    INVALID_RESULT = "invalid_result"  # execute: the step returned what the store cannot hold
    SCHEDULED = "scheduled"  # retry, poll: the wait before the next attempt (``retry_delay``)
    SKIPPED = "skipped"  # compensate: the step defines no compensation
    COMPENSATED = "compensated"  # saga (terminal), compensate
    GAVE_UP = "gave_up"  # compensate, poll: retries exhausted
    WAITING = "waiting"  # children
    DEADLINE_EXCEEDED = "deadline_exceeded"  # saga: the saga deadline cut it
    STEP_FAILED = "step_failed"  # saga: a step gave up, compensation follows
    PARENT_COMPENSATED = "parent_compensated"  # saga: its parent compensates and stopped it
    COMPENSATING = "compensating"  # saga
    COMPENSATION_FAILED = "compensation_failed"  # saga (terminal)
    LEASE_LOST = "lease_lost"  # saga: this manager stopped driving it
    SUBSCRIBER_FAILED = "subscriber_failed"  # saga: a lifecycle event subscriber raised
    DUPLICATE_TRIGGER = "duplicate_trigger"  # saga: a redelivered trigger started nothing new


ATTEMPT_PHASES: frozenset[Phase] = frozenset({Phase.EXECUTE, Phase.COMPENSATE})
"""Phases whose records are attempts of a step or of its compensation (``attempt`` numbers them)."""

TERMINAL_SAGA_OUTCOMES: frozenset[Outcome] = frozenset(Outcome(s.value) for s in SagaStatus if s.is_terminal)
"""Outcomes of ``saga`` records that end the saga: exactly the terminal ``SagaStatus`` values."""

ATTEMPT_END_OUTCOMES: frozenset[Outcome] = frozenset(
    {
        Outcome.COMPLETED,
        Outcome.FAILED,
        Outcome.TIMED_OUT,
        Outcome.CANCELLED,
        Outcome.ABORTED,
        Outcome.COMPENSATED,
    }
)
"""Outcomes that end an attempt begun by a ``started`` record (``skipped``, ``gave_up`` and
``invalid_result`` follow no attempt of their own: the last comes after the attempt's ``completed``)."""

POSSIBLY_APPLIED_OUTCOMES: frozenset[Outcome] = frozenset(
    {Outcome.COMPLETED, Outcome.TIMED_OUT, Outcome.CANCELLED, Outcome.INVALID_RESULT}
)
"""Outcomes of an ``execute`` attempt after which the step may have taken effect (it ran, or was cut)."""

COMPENSATION_RETRY = "compensation"
"""The ``detail`` of a ``retry``/``scheduled`` record that schedules a compensation's retry (not a step's)."""


class TraceRecord(NamedTuple):
    """One transition of one saga.

    ``phase`` is a ``Phase`` value (what the record is about) and ``outcome`` an
    ``Outcome`` value (what happened), held as plain strings.
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
        *,
        parent_id: str | None = None,
        step: str | None = None,
        attempt: int | None = None,
        phase: Phase,
        outcome: Outcome,
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
                phase._value_,  # NOTE: the member's own attribute; `.value` is a descriptor, 3x slower
                outcome._value_,
                error_type,
                retry_delay,
                detail,
            )
        )


# NOTE: one encoder, built once (json.dumps with non-default separators builds a new one per call).
# A trace holds no container that could hold itself (a record's fields are scalars), so the encoder
# skips the circular-reference bookkeeping it would do for every record: the bytes are the same.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False).encode


def canonical_trace(records: Iterable[TraceRecord]) -> bytes:
    """The trace as canonical JSON: one array holding each record as an array of its fields, in fixed order.

    Encoded in one call of the C encoder (a record is a tuple, so it encodes as an array): about
    half the cost of encoding record by record, which was several percent of a run.
    """
    listed = records if isinstance(records, list) else list(records)
    return _ENCODE(listed).encode() if listed else b""


def trace_hash(records: Iterable[TraceRecord]) -> str:
    """sha256 (hex) of the canonical trace: equal hashes mean identical behaviour."""
    return hashlib.sha256(canonical_trace(records)).hexdigest()
