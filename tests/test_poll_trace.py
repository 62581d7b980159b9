"""A ``retry_async`` poll inside a step writes its attempts and delays to that saga's trace, on both runtimes."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from sagas import BaseSaga, Event, RetryConfig, SagaStatus, SagaStep, retry_async
from simlab.sim.runtime import SimRuntime

POLICY = RetryConfig(max_attempts=3, initial_delay_ms=500, max_delay_ms=2000, backoff_factor=2.0, jitter="none")


class NotYet(RuntimeError):
    """The polled condition does not hold yet."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Check(Event):
    failures: int = 0  # how many polls fail before one succeeds
    poll_seconds: float = 0.25  # how long each poll takes
    lead_seconds: float = 0.0  # how long the step works before it polls


class PollingSaga(BaseSaga):
    """One step that works ``lead_seconds``, then polls seed-style (no clock passed) under ``POLICY``."""

    def define_steps(self) -> list[SagaStep]:
        return [SagaStep("wait_until_consistent", self._poll, None, timeout_seconds=60)]

    async def _poll(self, **context: Any) -> None:
        clock, calls = context["clock"], [0]
        await clock.sleep(context["lead_seconds"])

        async def check() -> bool:
            calls[0] += 1
            await clock.sleep(context["poll_seconds"])
            if calls[0] <= context["failures"]:
                raise NotYet(f"poll {calls[0]}")
            return True

        await retry_async(check, retry_config=POLICY)


def _polls(world: Any, saga_id: str | None = None) -> list[tuple[float, int | None, str, float | None]]:
    return [
        (r.t, r.attempt, r.outcome, r.retry_delay)
        for r in world.tracer.records
        if r.phase == "poll" and (saga_id is None or r.saga_id == saga_id)
    ]


def test_each_attempt_and_delay_of_a_poll_is_a_record_of_its_step_at_its_exact_time(run):
    async def main(world):
        world.manager.register(Check, PollingSaga)
        await world.manager.handle_event(Check(event_id="e1", failures=2))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert final.status is SagaStatus.COMPLETED
    assert _polls(world) == [
        (0.0, 1, "started", None),
        (0.25, 1, "failed", None),
        (0.25, 1, "scheduled", 0.5),
        (0.75, 2, "started", None),
        (1.0, 2, "failed", None),
        (1.0, 2, "scheduled", 1.0),
        (2.0, 3, "started", None),
        (2.25, 3, "completed", None),
    ]
    assert {r.step for r in world.tracer.records if r.phase == "poll"} == {"wait_until_consistent"}
    assert [r.error_type for r in world.tracer.records if r.outcome == "failed"] == ["NotYet", "NotYet"]


def test_a_poll_that_runs_out_of_attempts_records_that_it_gave_up(run):
    async def main(world):
        world.manager.register(Check, PollingSaga)
        await world.manager.handle_event(Check(event_id="e1", failures=5))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert final.status is SagaStatus.COMPENSATED and final.error_type == "RetryExhausted"
    assert _polls(world)[-2:] == [(2.25, 3, "failed", None), (2.25, 3, "gave_up", None)]


def test_interleaved_polls_of_two_sagas_each_land_in_their_own_saga(run):
    # The second saga's step starts (and leaves its own poll hook) while the first saga's step works,
    # before the first one's poll begins.
    async def main(world):
        world.manager.register(Check, PollingSaga)
        first = await world.manager.handle_event(Check(event_id="e1", failures=1, lead_seconds=0.5))
        await world.runtime.sleep(0.25)
        second = await world.manager.handle_event(Check(event_id="e2", lead_seconds=1.0))
        await world.manager.wait_idle()
        return first[0], second[0]

    (first, second), world = run(main)
    assert _polls(world, first) == [
        (0.5, 1, "started", None),
        (0.75, 1, "failed", None),
        (0.75, 1, "scheduled", 0.5),
        (1.25, 2, "started", None),
        (1.5, 2, "completed", None),
    ]
    assert _polls(world, second) == [(1.25, 1, "started", None), (1.5, 1, "completed", None)]


def test_a_context_variable_one_simulated_task_sets_is_not_seen_by_another():
    runtime = SimRuntime()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("probe", default="unset")
    seen: dict[str, str] = {}

    async def setter() -> None:
        var.set("setter's")
        await runtime.sleep(2)
        seen["setter, after others ran"] = var.get()

    async def reader(label: str) -> None:
        await runtime.sleep(1)  # after the setter set its value
        seen[label] = var.get()

    async def parent() -> None:
        var.set("parent's")
        await runtime.spawn(reader("child")).join()  # a task copies its spawner's context, as asyncio does

    runtime.spawn(setter())
    runtime.spawn(reader("sibling"))
    runtime.spawn(parent())
    runtime.run()
    assert var.get() == "unset"
    assert seen == {"sibling": "unset", "child": "parent's", "setter, after others ran": "setter's"}


def test_simlab_replay_shows_the_consistency_polls_in_its_timeline_text():
    from simlab.batch.runner import run_once, run_seed
    from simlab.present.summary import format_timeline
    from simlab.scenario import load_scenario

    scenario = load_scenario("broker_disconnection")
    text = format_timeline(run_once(scenario, run_seed(0, scenario.seed), keep_trace=True))
    polls = [line for line in text.splitlines() if " poll " in line]
    # The saga by its id, and the connection it locked (what violations name) by its id.
    saga = ["BrokerDisconnectionSaga", "eb15a1e8", "conn", "3ccefdaf"]
    assert [line.split(None, 5)[1:] for line in polls[:3]] == [
        [*saga, "validate_accounts_deleted #1 poll started"],
        [*saga, "validate_accounts_deleted #1 poll failed [AccountsStillInReadModel]"],
        [*saga, "validate_accounts_deleted #1 poll scheduled retry in 0.236s"],
    ]
