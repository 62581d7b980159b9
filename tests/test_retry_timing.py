"""Retries happen at exact times, on both runtimes."""

from __future__ import annotations

from sagas import RetryConfig, SagaStatus
from tests.scripted import Go, ScriptedSaga

ALWAYS_FAILS = [("fail", 0.0)] * 10


def test_seed_policy_retries_at_0_2_6_14_seconds(run):
    async def main(world):
        world.manager.register(
            Go, lambda: ScriptedSaga(world.note, steps=["reconnect"], retry_count=3, retry_delay_base=2.0)
        )
        await world.manager.handle_event(Go(event_id="e1", script={"reconnect": ALWAYS_FAILS}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    attempts = [(t, what) for t, what in world.log if what.startswith("reconnect")]
    assert attempts == [(0.0, "reconnect #1"), (2.0, "reconnect #2"), (6.0, "reconnect #3"), (14.0, "reconnect #4")]
    delays = [r.retry_delay for r in world.tracer.records if r.phase == "retry"]
    assert delays == [2.0, 4.0, 8.0]
    assert final.status is SagaStatus.COMPENSATED
    assert final.error_type == "ScriptedFailure"


def test_retry_config_with_cap_and_no_jitter_gives_exact_times(run):
    policy = RetryConfig(max_attempts=5, initial_delay_ms=500, max_delay_ms=2000, backoff_factor=2.0, jitter="none")

    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["poll"], retry=policy))
        await world.manager.handle_event(Go(event_id="e1", script={"poll": [("fail", 0.25)] * 4}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    starts = [t for t, what in world.log if what.startswith("poll #")]
    # each attempt takes 0.25 s, then waits 0.5, 1.0, 2.0 (capped), then succeeds
    assert starts == [0.0, 0.75, 2.0, 4.25, 6.5]
    assert final.status is SagaStatus.COMPLETED


def test_retry_budget_stops_retrying_early(run):
    policy = RetryConfig(max_attempts=10, initial_delay_ms=1000, max_delay_ms=1000, retry_budget_ms=2500)

    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["poll"], retry=policy))
        await world.manager.handle_event(Go(event_id="e1", script={"poll": ALWAYS_FAILS}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    starts = [t for t, what in world.log if what.startswith("poll #")]
    assert starts == [0.0, 1.0, 2.0]  # a third retry would start at 3.0 > 2.5 s budget
    assert final.status is SagaStatus.COMPENSATED


def test_non_retryable_error_is_not_retried(run):
    from tests.scripted import ScriptedFailure

    policy = RetryConfig(max_attempts=5, initial_delay_ms=100, non_retryable=(ScriptedFailure,))

    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["check"], retry=policy))
        await world.manager.handle_event(Go(event_id="e1", script={"check": ALWAYS_FAILS}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert [what for _, what in world.log if what.startswith("check")] == ["check #1"]
    assert final.status is SagaStatus.COMPENSATED
