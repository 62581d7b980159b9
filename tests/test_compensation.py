"""Compensation: exact reverse order, timeouts, failing compensations, saga deadline, aborts."""

from __future__ import annotations

from typing import Any

from sagas import BaseSaga, SagaStatus, SagaStep
from tests.scripted import Go, ScriptedSaga

FAIL_ALWAYS = [("fail", 0.0)] * 10


def _labels(world, prefix=""):
    return [what for _, what in world.log if what.startswith(prefix)]


def test_completed_steps_are_compensated_in_exact_reverse_order(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, retry_count=0))
        script = {"reserve": [("ok", 1.0)], "charge": [("ok", 2.0)], "ship": [("ok", 0.5)], "notify": FAIL_ALWAYS}
        await world.manager.handle_event(Go(event_id="e1", script=script))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [
        (0.0, "reserve #1"),
        (1.0, "charge #1"),
        (3.0, "ship #1"),
        (3.5, "notify #1"),
        (3.5, "undo ship #1"),
        (3.5, "undo charge #1"),
        (3.5, "undo reserve #1"),
    ]
    assert final.status is SagaStatus.COMPENSATED
    assert final.compensated_steps == ["ship", "charge", "reserve"]
    assert final.completed_steps == ["reserve", "charge", "ship"]


def test_timed_out_attempt_is_cancelled_and_compensated(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve", "charge"], retry_count=0))
        await world.manager.handle_event(Go(event_id="e1", script={"charge": [("hang", 0)]}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [
        (0.0, "reserve #1"),
        (0.0, "charge #1"),
        (5.0, "charge #1 cancelled"),  # its finally: ran at the 5 s deadline
        (5.0, "undo charge #1"),  # possibly applied, so compensated first
        (5.0, "undo reserve #1"),
    ]
    assert final.status is SagaStatus.COMPENSATED
    assert final.possibly_applied == ["charge"]
    outcomes = [(r.step, r.phase, r.outcome) for r in world.tracer.records if r.step == "charge"]
    assert ("charge", "execute", "timed_out") in outcomes


def test_timed_out_attempt_is_retried_and_the_retry_can_succeed(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["charge"], retry_count=1))
        await world.manager.handle_event(Go(event_id="e1", script={"charge": [("hang", 0), ("ok", 1.0)]}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [(0.0, "charge #1"), (5.0, "charge #1 cancelled"), (6.0, "charge #2")]
    assert final.status is SagaStatus.COMPLETED
    assert final.possibly_applied == ["charge"]  # recorded, though nothing needed compensating


def test_a_failing_compensation_does_not_stop_the_others(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, retry_count=1, retry_delay_base=1.0))
        await world.manager.handle_event(
            Go(event_id="e1", script={"notify": FAIL_ALWAYS}, compensation_script={"charge": FAIL_ALWAYS})
        )
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert _labels(world, "undo") == ["undo ship #1", "undo charge #1", "undo charge #2", "undo reserve #1"]
    assert final.status is SagaStatus.COMPENSATION_FAILED
    assert final.compensated_steps == ["ship", "reserve"]
    assert final.failed_compensations == ["charge"]
    assert final.compensation_outcome == "compensation_failed"


def test_saga_deadline_cancels_the_running_step_and_compensates(run):
    async def main(world):
        world.manager.register(
            Go, lambda: ScriptedSaga(world.note, saga_timeout=7.0, step_timeout=100.0, retry_count=0)
        )
        await world.manager.handle_event(Go(event_id="e1", script={"reserve": [("ok", 4.0)], "charge": [("hang", 0)]}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [
        (0.0, "reserve #1"),
        (4.0, "charge #1"),
        (7.0, "charge #1 cancelled"),
        (7.0, "undo charge #1"),
        (7.0, "undo reserve #1"),
    ]
    assert final.status is SagaStatus.TIMED_OUT
    assert final.compensation_outcome == "compensated"
    assert final.error_type == "DeadlineExceeded"


def test_saga_deadline_during_retry_delay_compensates_only_completed_steps(run):
    async def main(world):
        world.manager.register(
            Go, lambda: ScriptedSaga(world.note, saga_timeout=3.0, retry_count=5, retry_delay_base=2.0)
        )
        await world.manager.handle_event(Go(event_id="e1", script={"charge": FAIL_ALWAYS}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [(0.0, "reserve #1"), (0.0, "charge #1"), (2.0, "charge #2"), (3.0, "undo reserve #1")]
    assert final.status is SagaStatus.TIMED_OUT
    assert final.compensated_steps == ["reserve"]


def test_a_step_may_abort_the_saga_without_compensation(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note))
        await world.manager.handle_event(Go(event_id="e1", script={"ship": [("abort", 0)]}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert _labels(world) == ["reserve #1", "charge #1", "ship #1"]
    assert final.status is SagaStatus.ABORTED
    assert final.error == "ship found nothing to do"
    assert final.compensated_steps == []


class _AttemptCounting(BaseSaga):
    """One step that fails twice, then a step that always fails; each notes ``context["attempt"]``."""

    def __init__(self, note: Any) -> None:
        super().__init__()
        self._note = note

    def get_saga_type(self) -> str:
        return "AttemptCounting"

    def get_timeout(self) -> float:
        return 100.0

    def define_steps(self) -> list[SagaStep]:
        return [
            SagaStep("flaky", self._flaky, self._undo_flaky, retry_count=3, retry_delay_base=1.0),
            SagaStep("broken", self._broken, None),
        ]

    async def _flaky(self, **context: Any) -> dict[str, Any]:
        self._note(f"flaky #{context['attempt']}")
        if context["attempt"] < 3:
            raise RuntimeError("not yet")
        return {"succeeded_on": context["attempt"]}

    async def _undo_flaky(self, **context: Any) -> None:
        self._note(f"undo flaky #{context['attempt']} (it succeeded on #{context['succeeded_on']})")
        if context["attempt"] < 2:
            raise RuntimeError("undo not yet")

    async def _broken(self, **context: Any) -> None:
        raise ValueError("always")


def test_a_step_and_its_compensation_see_which_attempt_is_running(run):
    async def main(world):
        world.manager.register(Go, lambda: _AttemptCounting(world.note))
        await world.manager.handle_event(Go(event_id="e1"))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [
        (0.0, "flaky #1"),
        (1.0, "flaky #2"),
        (3.0, "flaky #3"),
        (3.0, "undo flaky #1 (it succeeded on #3)"),
        (4.0, "undo flaky #2 (it succeeded on #3)"),
    ]
    assert final.status is SagaStatus.COMPENSATED
