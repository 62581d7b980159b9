"""No step applied twice: an execute that completed never runs again, read from the trace.

Steps are written to be idempotent, so running one twice rarely leaves a mark on the world
the other checks read; that is exactly why the engine must not rely on it. The only
documented re-run is the step a manager was in when it died: its last attempt may or may
not have taken effect (the trace may even say it completed, if the process died before the
store recorded so), and the resumed saga runs it again. Any other completed step starting
again (after a resume, or in a saga that was never resumed) is a violation.
"""

from __future__ import annotations

from collections.abc import Iterable

from sagas.engine.trace import Outcome, Phase, TraceRecord
from simlab.evidence.checks.violation import Violation
from simlab.evidence.sources import Evidence
from simlab.evidence.trace_tables import is_attempt_start, is_resume, records_by_saga

NAME = "no_step_applied_twice"


def step_rerun_violations(records: Iterable[TraceRecord]) -> list[Violation]:
    """Every saga's first start of a step it had already completed, other than the in-flight re-run after a resume."""
    found = []
    for saga_id, trace in records_by_saga(records).items():
        completed: dict[str, float] = {}  # step -> when it last completed
        last_step: str | None = None  # the step of the latest execute record
        may_rerun: str | None = None  # the step that was in flight when the manager died
        for r in trace:
            if is_resume(r):
                may_rerun = last_step
            elif r.phase == Phase.EXECUTE and r.step is not None:
                if is_attempt_start(r) and r.step in completed and r.step != may_rerun:
                    found.append(
                        Violation(
                            NAME,
                            r.t,
                            (saga_id,),
                            f"{r.saga_type}: step {r.step} started again at {r.t:g} s (attempt {r.attempt}) "
                            f"after it completed at {completed[r.step]:g} s"
                            + (f"; only {may_rerun}, in flight at the crash, may re-run" if may_rerun else ""),
                        )
                    )
                    break
                if r.outcome == Outcome.COMPLETED:
                    completed[r.step] = r.t
                    if r.step == may_rerun:
                        may_rerun = None  # re-run once, as documented: from here it is done
                last_step = r.step
    return found


def no_step_applied_twice(ev: Evidence) -> list[Violation]:
    """No completed step runs again, but the one a dead manager was in."""
    return step_rerun_violations(ev.records)
