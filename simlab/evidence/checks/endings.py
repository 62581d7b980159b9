"""How sagas ended: every saga by its own deadline, and compensations for exactly what it touched.

How this works: both checks walk each saga's trace records (``simlab.evidence.trace_tables``).
``terminal_by_horizon`` takes each unfinished saga's deadline from the saga store and the
longest its compensations may take from the sagas' step definitions; ``compensation_exact``
derives the steps a saga touched (completed, or possibly applied: cut short in flight, or in
flight when its manager died) and compares them, last first, with the compensations it began.
"""

from __future__ import annotations

from sagas.engine.execution import compensation_seconds_bound
from sagas.engine.state import SagaStatus
from sagas.engine.trace import Outcome, TraceRecord
from simlab.evidence.checks.violation import Violation
from simlab.evidence.sources import Evidence
from simlab.evidence.trace_tables import (
    COMPENSATE_PHASE,
    COMPENSATED_OUTCOME,
    COMPLETED_OUTCOME,
    EXECUTE_PHASE,
    RESUMED_OUTCOME,
    SAGA_PHASE,
    SKIPPED_OUTCOME,
    STARTED_OUTCOME,
    is_saga_start,
    last_saga_end,
    may_have_applied,
)

# Plain strings, read once (see the note in ``simlab.evidence.trace_tables``).
_RUNNING = SagaStatus.RUNNING.value
_DONE = (COMPENSATED_OUTCOME, SKIPPED_OUTCOME)  # a step's compensation done (``is_compensation_done``)
_BEGUN = (STARTED_OUTCOME, SKIPPED_OUTCOME)  # a step's compensation begun (``is_compensation_start``)


def terminal_by_horizon(ev: Evidence) -> list[Violation]:
    """Every saga ends by its own deadline, give or take the compensations that deadline starts.

    A saga still running at the horizon is a violation once the horizon lies past its deadline
    plus the longest its compensations may take (each compensation's attempts, cut at their
    deadline, with the longest delays its policy allows); a saga whose deadline, so extended, lies
    beyond the horizon may legitimately still be at work. The deadline is the saga's own, from the
    store; the compensations to allow for are those of the steps it has touched.
    """
    states, horizon_s = ev.states_by_id(), ev.horizon_s
    steps = ev.definitions().steps
    found = []
    for saga_id, records in ev.by_saga().items():
        if last_saga_end(records) is not None or not any(is_saga_start(r) for r in records):
            continue
        last = records[-1]
        state = states.get(saga_id)
        due = "no stored state"
        if state is not None:
            allowance = compensation_seconds_bound(steps.get(state.saga_type, ()), state)
            if horizon_s < state.deadline_at + allowance:
                continue  # within its own deadline (and the compensations it may still be running)
            due = f"due by {state.deadline_at:g} s, {state.deadline_at + allowance:g} s with its compensations"
        found.append(
            Violation(
                "terminal_by_horizon",
                horizon_s,
                (saga_id,),
                f"{last.saga_type} still running at the {horizon_s:g} s horizon, {due} "
                f"(last: {last.step} {last.outcome})",
            )
        )
    return found


def compensation_exact(ev: Evidence) -> list[Violation]:
    """Compensations ran for exactly the steps that completed or may have applied, last first, none twice

    (but for the documented re-run, after a resume, of the compensation in flight when its manager stopped).
    """
    found = []
    for saga_id, records in ev.by_saga().items():
        ended = last_saga_end(records)
        if ended is None:
            continue
        problem = _compensation_problem(records, ended.outcome)
        if problem is not None:
            found.append(Violation("compensation_exact", ended.t, (saga_id,), f"{records[0].saga_type}: {problem}"))
    return found


_COMPENSATING_ENDS = (Outcome.COMPENSATED, Outcome.COMPENSATION_FAILED, Outcome.TIMED_OUT)
"""Terminal statuses of a saga that compensated what it had touched."""


def _compensation_problem(records: list[TraceRecord], status: str) -> str | None:
    """What is wrong with one ended saga's compensations (its records, its terminal status), or None."""
    expected = list(reversed(_touched_steps(records))) if status in _COMPENSATING_ENDS else []
    compensated, first_starts = _compensations(records)
    twice = sorted({s for s in compensated if compensated.count(s) > 1 and s is not None})
    if twice:
        return f"compensated {twice} twice"
    if first_starts != expected:
        return f"compensated {first_starts}, expected {expected}"
    return None


def _touched_steps(records: list[TraceRecord]) -> list[str]:
    """The steps a saga completed or may have applied, in the order first touched."""
    touched: list[str] = []
    in_flight: str | None = None
    for r in records:
        if r.phase == EXECUTE_PHASE and r.step is not None:
            in_flight = None if r.outcome == COMPLETED_OUTCOME else r.step
        # A resumed saga counts the step it was in when the process died as possibly applied.
        resumed_in = (
            r.phase == SAGA_PHASE and r.outcome == RESUMED_OUTCOME and r.detail == _RUNNING and in_flight is not None
        )
        step = in_flight if resumed_in else (r.step if may_have_applied(r) else None)
        if step is not None and step not in touched:
            touched.append(step)
    return touched


def _compensations(records: list[TraceRecord]) -> tuple[list[str | None], list[str]]:
    """(each compensation done, once per time it was done; the steps whose compensation began, in order), in one pass.

    A compensation is counted done once per time, but for the documented re-run after a resume;
    each step's compensation began when its first attempt started (or it was skipped: it has none).
    """
    compensated: list[str | None] = []
    first_starts: list[str] = []
    last_compensating: str | None = None  # the compensation that ran last: in flight if the manager stops
    for r in records:
        phase = r.phase
        if phase == COMPENSATE_PHASE:
            last_compensating, outcome = r.step, r.outcome
            if outcome in _DONE:
                compensated.append(r.step)
            if outcome in _BEGUN and r.step not in first_starts:
                first_starts.append(str(r.step))
        elif phase == SAGA_PHASE and r.outcome == RESUMED_OUTCOME and last_compensating in compensated:
            # It ran, but its manager stopped before the store recorded it: the resumed saga runs it
            # once more, as documented (compensations are idempotent). Count it once.
            compensated.remove(last_compensating)
    return compensated, first_starts
