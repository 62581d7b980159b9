"""terminal_by_horizon judges each saga by its own deadline, with time for the compensations it starts."""

from __future__ import annotations

import asyncio
from typing import Any

from sagas.engine.execution import compensation_seconds_bound
from sagas.engine.state import SagaState
from sagas.engine.step import SagaStep
from sagas.trading.sagas.position_management import PositionManagementSaga
from simlab import lab
from simlab.batch.runner import run_once, run_seed

# order_execution's run 770 (root seed 14): the issue's report of a PositionManagementSaga "still
# running" at the 900 s horizon, with its default deadline a day away.
RUN_770 = run_seed(770, 14)


def _running_at_horizon(result: Any, saga_type: str) -> list[str]:
    ended = {r.saga_id for r in result.trace if r.phase == "saga" and r.outcome in ("completed", "timed_out")}
    ended |= {r.saga_id for r in result.trace if r.phase == "saga" and r.outcome in ("compensated", "aborted")}
    return sorted({r.saga_id for r in result.trace if r.saga_type == saga_type} - ended)


def test_a_saga_whose_deadline_lies_past_the_horizon_may_still_be_running():
    # Positions without exits, watched for the default day: nothing ends their watch before the horizon.
    settings = {"sagas.timeouts_s": {}, "workload.orders.take_profit_pct": None, "workload.orders.stop_loss_pct": None}
    day_long = lab.scenario("order_execution", settings)
    result = run_once(day_long, RUN_770, keep_trace=True)
    assert _running_at_horizon(result, "PositionManagementSaga")  # still watching its position...
    assert [v for v in result.violations if v.invariant == "terminal_by_horizon"] == []  # ...legitimately


def test_a_saga_stuck_past_its_deadline_is_a_violation(monkeypatch):
    # A planted bug: the monitor swallows the cancellation its deadline delivers, so the saga never ends.
    async def stuck(self: PositionManagementSaga, **context: Any) -> dict[str, Any]:
        while True:
            try:
                await context["clock"].sleep(1_000.0)
            except asyncio.CancelledError:  # the bug under test
                continue

    monkeypatch.setattr(PositionManagementSaga, "_monitor_position", stuck)
    # (No manager crash: a restarted manager would find the deadline past and compensate the saga.)
    settings = {"sagas.timeouts_s": {"PositionManagementSaga": 60}, "faults.manager_crashes.enabled": False}
    short = lab.scenario("order_execution", settings)
    result = run_once(short, RUN_770, keep_trace=True)
    stuck_ids = _running_at_horizon(result, "PositionManagementSaga")
    flagged = [v for v in result.violations if v.invariant == "terminal_by_horizon"]
    assert stuck_ids and sorted(v.saga_ids[0] for v in flagged) == stuck_ids
    # its deadline is 60 s after it started; compensating its first step may take 10 s more
    started = {r.saga_id: r.t for r in result.trace if r.phase == "saga" and r.outcome == "started"}
    for v in flagged:
        start = started[v.saga_ids[0]]
        assert f"due by {start + 60:g} s, {start + 70:g} s with its compensations" in v.explanation
        assert v.t == 900.0


async def _noop(**context: Any) -> None:
    return None


def test_the_compensation_allowance_is_the_longest_the_touched_steps_compensations_can_take():
    steps = (
        SagaStep("a", _noop, _noop, timeout_seconds=10, retry_count=2, retry_delay_base=1.0),  # 3 x 10 s + 1 + 2
        SagaStep("b", _noop, None, timeout_seconds=60),  # nothing to compensate
        SagaStep("c", _noop, _noop, timeout_seconds=5),  # one attempt of 5 s
        SagaStep("d", _noop, _noop, timeout_seconds=99),  # never reached
    )
    state = SagaState(saga_id="s", saga_type="T", trigger_type="E", trigger_id="e", trigger_data={})
    state.completed_steps = ["a", "b"]
    state.possibly_applied = ["c"]
    assert compensation_seconds_bound(steps, state) == 33.0 + 5.0
    state.compensated_steps = ["c"]  # already done: only a is left
    assert compensation_seconds_bound(steps, state) == 33.0
