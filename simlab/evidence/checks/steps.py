"""No step applied twice: an execute that completed never runs again, read from the trace.

Steps are written to be idempotent, so running one twice rarely leaves a mark on the world
the other checks read; that is exactly why the engine must not rely on it. The only
documented re-run is the step a manager was in when it died: its last attempt may or may
not have taken effect (the trace may even say it completed, if the process died before the
store recorded so), and the resumed saga runs it again. Any other completed step starting
again (after a resume, or in a saga that was never resumed) is a violation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sagas.engine.trace import TraceRecord
from simlab.evidence.checks.violation import Violation
from simlab.evidence.sources import Evidence
from simlab.evidence.trace_tables import (
    COMPLETED_OUTCOME,
    EXECUTE_PHASE,
    RESUMED_OUTCOME,
    SAGA_PHASE,
    STARTED_OUTCOME,
    records_by_saga,
)

NAME = "no_step_applied_twice"


def step_rerun_violations(records: Iterable[TraceRecord]) -> list[Violation]:
    """Every saga's first start of a step it had already completed, other than the in-flight re-run after a resume."""
    return _reruns(records_by_saga(records))


def _reruns(by_saga: Mapping[str, list[TraceRecord]]) -> list[Violation]:
    """``step_rerun_violations`` of a trace already grouped by saga (``records_by_saga``)."""
    found = []
    for saga_id, trace in by_saga.items():
        violation = _first_rerun(saga_id, trace)
        if violation is not None:
            found.append(violation)
    return found


def _first_rerun(saga_id: str, trace: list[TraceRecord]) -> Violation | None:
    """One saga's first start of a step it had already completed (but the documented re-run), or None."""
    completed: dict[str, float] = {}  # step -> when it last completed
    last_step: str | None = None  # the step of the latest execute record
    may_rerun: str | None = None  # the step that was in flight when the manager died
    for r in trace:
        phase = r.phase
        if phase == EXECUTE_PHASE:
            step = r.step
            if step is None:
                continue
            if r.outcome == STARTED_OUTCOME and step in completed and step != may_rerun:
                return Violation(
                    NAME,
                    r.t,
                    (saga_id,),
                    f"{r.saga_type}: step {step} started again at {r.t:g} s (attempt {r.attempt}) "
                    f"after it completed at {completed[step]:g} s"
                    + (f"; only {may_rerun}, in flight at the crash, may re-run" if may_rerun else ""),
                )
            if r.outcome == COMPLETED_OUTCOME:
                completed[step] = r.t
                if step == may_rerun:
                    may_rerun = None  # re-run once, as documented: from here it is done
            last_step = step
        elif phase == SAGA_PHASE and r.outcome == RESUMED_OUTCOME:
            may_rerun = last_step
    return None


def no_step_applied_twice(ev: Evidence) -> list[Violation]:
    """No completed step runs again, but the one a dead manager was in."""
    return _reruns(ev.by_saga())
