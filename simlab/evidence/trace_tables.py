"""One reading of a run's trace: its vocabulary, the predicates readers need, and the tables derived from it.

The engine's trace (``sagas.engine.trace.TraceRecord``) is the run's ground truth; every
reader of it (the runner's saga rows, the batch's attempts table, the replay timeline's
lanes and spans, the invariants, the reach counts) reads it through this module, so a
phase or an outcome is spelt in one place and means one thing. Everything here is a pure
function of the records (testable with hand-made ones):

- ``saga_rows``: one row per saga (status, start and end, attempts, retries);
- ``attempt_rows``: one row per attempt of a step, a compensation or a poll, start to end;
- ``saga_lanes`` and ``trace_spans``: the timeline's model, one lane per saga (children under
  their parent) and one span per attempt, compensation attempt and retry wait;
- ``records_by_saga``: each saga's records in order, for the checks that walk one saga at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from sagas.engine.state import SagaStatus
from sagas.engine.trace import (
    ATTEMPT_END_OUTCOMES,
    COMPENSATION_RETRY,
    POSSIBLY_APPLIED_OUTCOMES,
    TERMINAL_SAGA_OUTCOMES,
    Outcome,
    Phase,
    TraceRecord,
)

# -- vocabulary ---------------------------------------------------------------
ATTEMPT_ROW_PHASES: tuple[Phase, ...] = (Phase.EXECUTE, Phase.COMPENSATE, Phase.POLL)
"""Phases whose records open (``started``) and close attempts: the rows of ``attempt_rows`` (a poll's
own attempts included, unlike the engine's ``ATTEMPT_PHASES``)."""

# NOTE: the readers below (and the checks, which walk every record of every run) compare a record's
# fields with the members' plain value strings, read once here: reading ``Phase.SAGA`` goes through the
# enum class and costs several times the comparison itself, and a record holds the member's own value
# string, so the comparison is mostly an identity check. Same values, same answers.
SAGA_PHASE: Final[str] = Phase.SAGA.value
EXECUTE_PHASE: Final[str] = Phase.EXECUTE.value
COMPENSATE_PHASE: Final[str] = Phase.COMPENSATE.value
RETRY_PHASE: Final[str] = Phase.RETRY.value
POLL_PHASE: Final[str] = Phase.POLL.value
"""The phases as plain strings (see the note above)."""

STARTED_OUTCOME: Final[str] = Outcome.STARTED.value
RESUMED_OUTCOME: Final[str] = Outcome.RESUMED.value
SKIPPED_OUTCOME: Final[str] = Outcome.SKIPPED.value
COMPENSATED_OUTCOME: Final[str] = Outcome.COMPENSATED.value
COMPLETED_OUTCOME: Final[str] = Outcome.COMPLETED.value
SCHEDULED_OUTCOME: Final[str] = Outcome.SCHEDULED.value
FAILED_OUTCOME: Final[str] = Outcome.FAILED.value
TIMED_OUT_OUTCOME: Final[str] = Outcome.TIMED_OUT.value
INVALID_RESULT_OUTCOME: Final[str] = Outcome.INVALID_RESULT.value
"""The outcomes the readers and checks compare with, as plain strings (see the note above)."""
TERMINAL_OUTCOMES: Final[frozenset[str]] = frozenset(o.value for o in TERMINAL_SAGA_OUTCOMES)
"""``TERMINAL_SAGA_OUTCOMES`` as plain strings."""
_POSSIBLY_APPLIED: Final[frozenset[str]] = frozenset(o.value for o in POSSIBLY_APPLIED_OUTCOMES)


# -- predicates -----------------------------------------------------------------


def is_saga_start(r: TraceRecord) -> bool:
    """Whether ``r`` is a saga's start."""
    return r.phase == SAGA_PHASE and r.outcome == STARTED_OUTCOME


def is_saga_end(r: TraceRecord) -> bool:
    """Whether ``r`` ends its saga (a terminal status)."""
    return r.phase == SAGA_PHASE and r.outcome in TERMINAL_OUTCOMES


def is_resume(r: TraceRecord) -> bool:
    """Whether ``r`` is a saga resumed by a manager other than the one that was running it."""
    return r.phase == SAGA_PHASE and r.outcome == RESUMED_OUTCOME


def is_attempt_start(r: TraceRecord, phase: str = EXECUTE_PHASE) -> bool:
    """Whether ``r`` starts an attempt of ``phase`` (a step attempt by default)."""
    return r.phase == phase and r.outcome == STARTED_OUTCOME


def may_have_applied(r: TraceRecord) -> bool:
    """Whether ``r`` ends a step attempt that ran to its end or was cut short in flight (its effect may stand)."""
    return r.phase == EXECUTE_PHASE and r.outcome in _POSSIBLY_APPLIED


def is_compensation_start(r: TraceRecord) -> bool:
    """Whether ``r`` is where a step's compensation begins: an attempt's start, or the skip of a step without one."""
    return r.phase == COMPENSATE_PHASE and (r.outcome == STARTED_OUTCOME or r.outcome == SKIPPED_OUTCOME)


def is_compensation_done(r: TraceRecord) -> bool:
    """Whether ``r`` says a step's compensation is done: compensated, or skipped (the step has none)."""
    return r.phase == COMPENSATE_PHASE and (r.outcome == COMPENSATED_OUTCOME or r.outcome == SKIPPED_OUTCOME)


def last_saga_end(records: Sequence[TraceRecord]) -> TraceRecord | None:
    """The last record of ``records`` (one saga's) that ends the saga, or None if none does."""
    for r in reversed(records):  # NOTE: from the end: a saga's end is nearly always its last record
        if r.phase == SAGA_PHASE and r.outcome in TERMINAL_OUTCOMES:
            return r
    return None


def records_by_saga(records: Iterable[TraceRecord]) -> dict[str, list[TraceRecord]]:
    """Each saga id's records in trace order; sagas in the order of their first record."""
    by_saga: dict[str, list[TraceRecord]] = {}
    for record in records:
        group = by_saga.get(record.saga_id)
        if group is None:
            by_saga[record.saga_id] = [record]
        else:
            group.append(record)
    return by_saga


# -- sagas and attempts ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SagaRow:
    """One saga of one run."""

    saga_id: str
    saga_type: str
    status: str
    started_at: float
    ended_at: float | None
    attempts: int
    retries: int


@dataclass
class _Tally:
    saga_type: str
    started_at: float
    status: str = SagaStatus.RUNNING.value
    ended_at: float | None = None
    attempts: int = 0
    retries: int = 0


def saga_rows(records: Iterable[TraceRecord]) -> list[SagaRow]:
    """One row per saga, in order of its first record: its last terminal status (``running`` if none), when it
    started and ended, how many step attempts it started and how many retries it scheduled."""
    tallies: dict[str, _Tally] = {}
    for r in records:
        tally = tallies.get(r.saga_id)
        if tally is None:
            tally = tallies[r.saga_id] = _Tally(r.saga_type, r.t)
        phase = r.phase
        if phase == EXECUTE_PHASE:
            if r.outcome == STARTED_OUTCOME:
                tally.attempts += 1
        elif phase == RETRY_PHASE:
            tally.retries += 1
        elif phase == SAGA_PHASE and r.outcome in TERMINAL_OUTCOMES:
            tally.status, tally.ended_at = r.outcome, r.t
    return [
        SagaRow(sid, t.saga_type, t.status, t.started_at, t.ended_at, t.attempts, t.retries)
        for sid, t in tallies.items()
    ]


class AttemptRow(NamedTuple):
    """One attempt of a step, a compensation or a poll (``phase``), from its start to the record that ended it."""

    saga_id: str
    saga_type: str
    step: str | None
    attempt: int | None
    phase: str
    start: float
    end: float
    outcome: str
    error_type: str | None


def attempt_rows(records: Iterable[TraceRecord]) -> list[AttemptRow]:
    """Every attempt of ``ATTEMPT_ROW_PHASES`` that ended in the trace, in order of its end.

    An attempt is keyed by (saga, step, attempt number, phase): its ``started`` record opens it, the
    next record of the same key closes it; one still open at the trace's end has no row.
    """
    rows = []
    open_attempts: dict[tuple[str, str | None, int | None, str], float] = {}
    for r in records:
        if r.phase not in ATTEMPT_ROW_PHASES:
            continue
        key = (r.saga_id, r.step, r.attempt, r.phase)
        if r.outcome == Outcome.STARTED:
            open_attempts[key] = r.t
        elif key in open_attempts:
            start = open_attempts.pop(key)
            rows.append(
                AttemptRow(r.saga_id, r.saga_type, r.step, r.attempt, r.phase, start, r.t, r.outcome, r.error_type)
            )
    return rows


# -- the attempt each saga is in, as the trace grows ------------------------------------------


class CurrentAttempts:
    """Follows a trace while it grows, and tells which attempt a saga is in now (for a live reader).

    A ``retry``/``scheduled`` record ends a failed attempt as well as the attempt records do; saga
    records (which may come from other tasks, as duplicates) and poll and child-wait records
    (which happen inside an attempt) leave it as it is.
    """

    _MARKS = frozenset({Phase.EXECUTE, Phase.COMPENSATE, Phase.RETRY})

    def __init__(self, records: Sequence[TraceRecord]) -> None:
        self._records = records
        self._seen = 0
        self._latest: dict[str, TraceRecord] = {}

    def compensating(self, saga_id: str) -> tuple[str, int] | None:
        """(step, attempt) if ``saga_id`` is inside a compensation attempt now, else None."""
        records = self._records
        if len(records) > self._seen:
            for record in records[self._seen :]:
                if record.phase in self._MARKS:
                    self._latest[record.saga_id] = record
            self._seen = len(records)
        latest = self._latest.get(saga_id)
        if latest is None or latest.phase != Phase.COMPENSATE or latest.outcome != Outcome.STARTED:
            return None
        return str(latest.step), latest.attempt or 0


# -- lanes and spans: the replay timeline's model ------------------------------------

RETRY_WAIT: Final = "retry_wait"
"""Span kind of a step's retry wait (the other kinds are ``Phase.EXECUTE`` and ``Phase.COMPENSATE``)."""
COMPENSATION_RETRY_WAIT: Final = "compensation_retry_wait"
"""Span kind of a compensation's retry wait."""
INTERRUPTED: Final = "interrupted"
"""Span outcome of an attempt a restarted manager left behind, or of a retry wait cut short."""
RUNNING: Final = SagaStatus.RUNNING.value
"""Lane status of a saga that never ended, and span outcome of an attempt still open at the trace's end."""

_EPSILON = 1e-9


@dataclass
class Lane:
    """One saga's row of the timeline: its place, parent, depth under it, first and last time, terminal status."""

    lane: int
    saga_id: str
    saga_type: str
    parent_id: str | None
    depth: int
    start: float
    end: float
    status: str = RUNNING
    detail: str | None = None


@dataclass
class Span:
    """One step attempt, compensation attempt or retry wait (``kind``) of one saga, on its lane."""

    saga_id: str
    saga_type: str
    parent_id: str | None
    lane: int
    step: str | None
    attempt: int | None
    kind: str
    start: float
    end: float
    outcome: str
    error_type: str | None = None


def saga_lanes(records: Sequence[TraceRecord]) -> list[Lane]:
    """One lane per saga: roots by start time, each directly followed by its children (depth-first)."""
    sagas: dict[str, Lane] = {}
    for r in records:
        saga = sagas.get(r.saga_id)
        if saga is None:
            saga = sagas[r.saga_id] = Lane(-1, r.saga_id, r.saga_type, r.parent_id, 0, r.t, r.t)
        saga.end = max(saga.end, r.t)
        if saga.parent_id is None and r.parent_id is not None:
            saga.parent_id = r.parent_id
        if is_saga_end(r):
            saga.status, saga.detail = r.outcome, r.detail
    children: dict[str, list[Lane]] = {}
    roots: list[Lane] = []
    for saga in sagas.values():
        if saga.parent_id is not None and saga.parent_id in sagas and saga.parent_id != saga.saga_id:
            children.setdefault(saga.parent_id, []).append(saga)
        else:
            roots.append(saga)
    order: list[Lane] = []

    def visit(saga: Lane, depth: int) -> None:
        if saga.lane >= 0:
            return
        saga.lane, saga.depth = len(order), depth
        order.append(saga)
        for child in sorted(children.get(saga.saga_id, ()), key=lambda c: (c.start, c.saga_id)):
            visit(child, depth + 1)

    for root in sorted(roots, key=lambda s: (s.start, s.saga_id)):
        visit(root, 0)
    for saga in sagas.values():  # a cycle of parents (never in a sound trace) still gets its lanes
        visit(saga, 0)
    return order


class _SpanReader:
    """Reads records one at a time into spans (see ``trace_spans``)."""

    def __init__(self, lanes: Sequence[Lane]) -> None:
        self.lane_of = {lane.saga_id: lane.lane for lane in lanes}
        self.spans: list[Span] = []
        self.open: dict[tuple[str, str, str | None, int | None], Span] = {}
        self.last_execute: dict[tuple[str, str | None], Span] = {}
        self.last_compensate: dict[tuple[str, str | None, int | None], Span] = {}
        self.waiting: dict[str, Span] = {}  # a saga's retry wait not yet followed by another of its records

    def new(self, r: TraceRecord, kind: str, end: float, outcome: str) -> Span:
        lane = self.lane_of[r.saga_id]
        span = Span(r.saga_id, r.saga_type, r.parent_id, lane, r.step, r.attempt, kind, r.t, end, outcome)
        self.spans.append(span)
        return span

    def read(self, r: TraceRecord) -> None:
        wait = self.waiting.pop(r.saga_id, None)
        if wait is not None and r.t < wait.end - _EPSILON:
            wait.end, wait.outcome = r.t, INTERRUPTED
        if is_resume(r):
            for key in [k for k in self.open if k[0] == r.saga_id]:
                span = self.open.pop(key)
                span.end, span.outcome = r.t, INTERRUPTED
        elif r.phase in (Phase.EXECUTE, Phase.COMPENSATE):
            self.attempt(r)
        elif r.phase == Phase.RETRY and r.outcome == Outcome.SCHEDULED:
            kind = COMPENSATION_RETRY_WAIT if r.detail == COMPENSATION_RETRY else RETRY_WAIT
            self.waiting[r.saga_id] = self.new(r, kind, r.t + (r.retry_delay or 0.0), Outcome.SCHEDULED)

    def attempt(self, r: TraceRecord) -> None:
        key = (r.saga_id, r.phase, r.step, r.attempt)
        if r.outcome == Outcome.STARTED:
            stale = self.open.pop(key, None)
            if stale is not None:
                stale.end, stale.outcome = r.t, INTERRUPTED
            span = self.open[key] = self.new(r, r.phase, r.t, RUNNING)
            if r.phase == Phase.EXECUTE:
                self.last_execute[(r.saga_id, r.step)] = span
            else:
                self.last_compensate[(r.saga_id, r.step, r.attempt)] = span
        elif r.outcome in ATTEMPT_END_OUTCOMES and key in self.open:
            span = self.open.pop(key)
            span.end, span.outcome, span.error_type = r.t, r.outcome, r.error_type
        elif r.phase == Phase.EXECUTE:
            self.amend_execute(r)
        else:
            self.amend_compensate(r)

    def amend_execute(self, r: TraceRecord) -> None:
        """A later verdict on the step's last attempt: it ran to its end, but its result was invalid."""
        target = self.last_execute.get((r.saga_id, r.step))
        if r.outcome == Outcome.INVALID_RESULT and target is not None:
            target.outcome, target.error_type = r.outcome, r.error_type

    def amend_compensate(self, r: TraceRecord) -> None:
        """A compensation given up after its last attempt, or skipped (the step has none: a zero-length span)."""
        if r.outcome == Outcome.GAVE_UP:
            target = self.last_compensate.get((r.saga_id, r.step, r.attempt))
            if target is not None:
                target.outcome = r.outcome
                target.error_type = target.error_type or r.error_type
        elif r.outcome == Outcome.SKIPPED:
            self.new(r, Phase.COMPENSATE, r.t, Outcome.SKIPPED)


def trace_spans(records: Sequence[TraceRecord], lanes: Sequence[Lane]) -> list[Span]:
    """Every step attempt, compensation attempt and retry wait of ``records``, on ``lanes`` (``saga_lanes``).

    See ``simlab.present.timeline.timeline_spans`` for what each kind and outcome means. Attempts
    still open when the trace ends end at its last time, outcome ``running``; spans are in order of
    start, ties in the order of their records.
    """
    reader = _SpanReader(lanes)
    for r in records:
        reader.read(r)
    last_t = max((r.t for r in records), default=0.0)
    for span in reader.open.values():
        span.end = last_t
    return sorted(reader.spans, key=lambda s: s.start)  # stable: ties keep the order of their records
