"""no_step_applied_twice: a completed step never starts again, except the one a dead manager was in.

Shown on hand-written traces (each rule, with its exact explanation), then on a whole shipped
run: clean as the engine is, and catching a planted bug (a store that forgets the completed
steps of the sagas it hands to recovery), the same way every time the seed is run.
"""

from __future__ import annotations

import pytest

import simlab.sim.world
from sagas.engine.state import SagaState
from sagas.engine.trace import TraceRecord
from sagas.stores.memory import InMemorySagaStore
from simlab.batch.runner import run_once, run_seed
from simlab.batch.sweep import with_settings
from simlab.evidence.checks.steps import step_rerun_violations
from simlab.scenario import load_scenario

SAFE = {f"sagas.variants.{switch}": "safe" for switch in ("disconnect_lock", "child_wait", "purge")}


def record(t: float, phase: str, outcome: str, step: str | None = None, attempt: int | None = 1) -> TraceRecord:
    return TraceRecord(t, "s-1", "OrderExecutionSaga", None, step, attempt if step else None, phase, outcome)


def explanations(trace: list[TraceRecord]) -> list[str]:
    return [v.explanation for v in step_rerun_violations(trace)]


START = [record(0, "saga", "started"), record(0, "execute", "started", "a"), record(1, "execute", "completed", "a")]


def test_steps_that_run_once_and_retries_of_an_unfinished_step_are_clean():
    trace = [
        *START,
        record(1, "execute", "started", "b"),
        record(2, "execute", "failed", "b"),
        record(2, "retry", "scheduled", "b"),
        record(3, "execute", "started", "b", attempt=2),
        record(4, "execute", "completed", "b", attempt=2),
        record(4, "saga", "completed"),
    ]
    assert step_rerun_violations(trace) == []


def test_a_completed_step_started_again_without_a_crash_is_caught():
    trace = [*START, record(1, "execute", "started", "b"), record(2, "execute", "completed", "b"),
             record(2, "execute", "started", "a")]  # fmt: skip
    [violation] = step_rerun_violations(trace)
    assert (violation.t, violation.saga_ids) == (2, ("s-1",))
    expected = "OrderExecutionSaga: step a started again at 2 s (attempt 1) after it completed at 1 s"
    assert violation.explanation == expected


def test_the_step_in_flight_at_a_crash_may_run_again_once_even_if_its_completion_was_traced():
    # The manager died after tracing b's completion and before the store recorded it: the resumed
    # saga runs b again. That is the documented re-run; b starting a third time is not.
    trace = [
        *START,
        record(1, "execute", "started", "b"),
        record(2, "execute", "completed", "b"),
        record(5, "saga", "resumed"),
        record(5, "execute", "started", "b"),
        record(6, "execute", "completed", "b"),
    ]
    assert step_rerun_violations(trace) == []
    assert explanations([*trace, record(7, "execute", "started", "b")]) == [
        "OrderExecutionSaga: step b started again at 7 s (attempt 1) after it completed at 6 s"
    ]


def test_a_resumed_saga_that_runs_an_earlier_step_again_is_caught():
    trace = [
        *START,
        record(1, "execute", "started", "b"),
        record(3, "execute", "cancelled", "b"),
        record(5, "saga", "resumed"),
        record(5, "execute", "started", "a"),
    ]
    assert explanations(trace) == [
        "OrderExecutionSaga: step a started again at 5 s (attempt 1) after it completed at 1 s; "
        "only b, in flight at the crash, may re-run"
    ]


def test_each_saga_is_judged_on_its_own_records():
    other = [r._replace(saga_id="s-2") for r in START]
    assert step_rerun_violations([START[0], other[0], START[1], other[1], START[2], other[2]]) == []


class StoreForgettingCompletedSteps(InMemorySagaStore):
    """The planted bug: unfinished states read back (by recovery) have lost their completed steps."""

    async def load(self, saga_id: str) -> SagaState | None:
        state = await super().load(saga_id)
        if state is not None and not state.status.is_terminal:
            state.completed_steps.clear()
        return state


def test_a_whole_run_is_clean_and_a_store_forgetting_completed_steps_is_caught_every_time(monkeypatch):
    scenario = with_settings(load_scenario("order_execution"), SAFE)
    seed = run_seed(0, scenario.seed)
    clean = run_once(scenario, seed, keep_trace=True)
    resumed = sorted({r.saga_id for r in clean.trace if r.outcome == "resumed"})
    assert resumed and clean.violations == []

    monkeypatch.setattr(simlab.sim.world, "InMemorySagaStore", StoreForgettingCompletedSteps)
    planted = run_once(scenario, seed, keep_trace=True)
    caught = [v for v in planted.violations if v.invariant == "no_step_applied_twice"]
    assert sorted(v.saga_ids[0] for v in caught) == sorted({r.saga_id for r in planted.trace if r.outcome == "resumed"})
    crash_resume = {r.t for r in planted.trace if r.outcome == "resumed"}
    assert len(crash_resume) == 1 and {v.t for v in caught} == crash_resume
    assert all(" step initialize_tracking started again " in v.explanation for v in caught)
    assert all(v.explanation.endswith("; only monitor_position, in flight at the crash, may re-run") for v in caught)
    assert run_once(scenario, seed).violations == planted.violations  # the seed replays the finding


@pytest.mark.parametrize("name", ["broker_connection", "order_execution", "chaos_swarm"])
def test_the_shipped_crash_scenarios_check_it(name):
    assert "no_step_applied_twice" in load_scenario(name).invariants
