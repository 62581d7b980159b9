"""Engine edge cases found in review: children, deadlines, resumes, task handles, clocks.

Most scenarios run on both runtimes (the ``run`` fixture) with exact timestamps,
statuses and compensation order, so the two runtimes are held to the same
behaviour as well as to the expected one.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass
from typing import Any

import pytest

from sagas import (
    BaseSaga,
    DeadlineExceeded,
    Event,
    InvalidEvent,
    RetryConfig,
    SagaDefinitionError,
    SagaState,
    SagaStatus,
    SagaStep,
    retry_async,
)
from sagas.runtime import AsyncioRuntime
from sagas.testing import VirtualTimeLoop
from simlab.sim.runtime import SimRuntime
from simlab.sim.world import build_world, simulate
from tests.harness import World, run_asyncio, run_sim
from tests.scripted import Go, ScriptedSaga


class Noting(BaseSaga):
    """A saga whose steps note what they do in the world's log."""

    def __init__(self, note: Any) -> None:
        super().__init__()
        self.note = note


# -- child sagas -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Kid(Event):
    pass


class KidSaga(Noting):
    """One step that works for 100 s."""

    def define_steps(self) -> list[SagaStep]:
        return [SagaStep("work", self.work, None, timeout_seconds=1000)]

    async def work(self, **context: Any) -> None:
        await context["clock"].sleep(100)
        self.note("kid done")


class Parent(Noting):
    """One step that starts a child (idempotent event id) and waits 10 s for it."""

    def __init__(self, note: Any, retry_count: int) -> None:
        super().__init__(note)
        self.retry_count = retry_count

    def define_steps(self) -> list[SagaStep]:
        return [SagaStep("spawn_and_wait", self.go, None, timeout_seconds=50, retry_count=self.retry_count)]

    async def go(self, **context: Any) -> dict[str, Any]:
        ids = await context["sagas"].start(Kid(event_id=f"{context['saga_id']}:kid"))
        self.note(f"started {ids}")
        statuses = await context["sagas"].wait(ids, timeout_seconds=10)
        self.note(f"parent saw {statuses}")
        return {"kids": statuses}


def _register_family(manager: Any, world: World, retry_count: int) -> None:
    manager.register(Go, lambda: Parent(world.note, retry_count))
    manager.register(Kid, lambda: KidSaga(world.note))


def test_a_retried_parent_step_waits_again_for_the_same_child_and_times_out(run):
    async def main(world):
        _register_family(world.manager, world, retry_count=1)
        [parent] = await world.manager.handle_event(Go(event_id="p"))
        finals = {state.saga_type: state for state in await world.manager.wait_idle()}
        return parent, finals

    (parent, finals), world = run(main)
    kid = finals["KidSaga"].saga_id
    # The retry re-sends the child's event: it starts nothing new and names the same child. When the
    # parent compensates at 21 s, the child still working is stopped and compensated: it never finishes.
    assert world.log == [(0.0, f"started ['{kid}']"), (11.0, f"started ['{kid}']")]
    final = finals["Parent"]
    assert final.saga_id == parent
    assert final.status is SagaStatus.COMPENSATED
    assert final.updated_at == 21.0  # two 10 s waits, 1 s apart
    assert final.error_type == "ChildSagasTimeout"
    assert final.error == f"waiting for 1 of 1 child saga(s) of {parent} exceeded its deadline of 10 s"
    child = finals["KidSaga"]
    assert (child.status, child.parent_id, child.updated_at) == (SagaStatus.COMPENSATED, parent, 21.0)
    assert (child.error_type, child.error) == ("ParentCompensated", f"parent Parent {parent} is compensating")
    assert child.possibly_applied == ["work"] and final.children == [kid]
    kid_saga = [(r.t, r.outcome) for r in world.tracer.records if r.saga_id == kid and r.phase == "saga"]
    assert kid_saga == [
        (0.0, "started"),
        (11.0, "duplicate_trigger"),  # the retried parent step asked for it again
        (21.0, "parent_compensated"),
        (21.0, "compensating"),
        (21.0, "compensated"),
    ]
    duplicates = [(r.t, r.saga_id) for r in world.tracer.records if r.outcome == "duplicate_trigger"]
    assert duplicates == [(11.0, kid)]


def test_a_resumed_parent_waits_for_its_resumed_child_and_times_out(run):
    """Stopped at 5 s and resumed: the parent re-sends its child's event, learns the same
    child (the duplicate returns the first saga's id), and its 10 s wait expires at 15 s."""

    async def main(world):
        _register_family(world.manager, world, retry_count=0)
        [parent] = await world.manager.handle_event(Go(event_id="p"))
        await world.runtime.sleep(5)
        world.manager.stop()
        await world.runtime.sleep(0)
        manager = world.new_manager()
        _register_family(manager, world, retry_count=0)
        await manager.recover()
        finals = {state.saga_type: state for state in await manager.wait_idle()}
        again = await manager.handle_event(Kid(event_id=f"{parent}:kid"))
        return parent, finals, again

    (parent, finals, again), world = run(main)
    kid = finals["KidSaga"].saga_id
    assert again == [kid]
    assert world.log == [(0.0, f"started ['{kid}']"), (5.0, f"started ['{kid}']")]
    final = finals["Parent"]
    assert final.saga_id == parent
    assert final.status is SagaStatus.COMPENSATED
    assert final.updated_at == 15.0
    assert final.error_type == "ChildSagasTimeout"
    assert final.error == f"waiting for 1 of 1 child saga(s) of {parent} exceeded its deadline of 10 s"
    # Resumed too, the child is stopped when its parent compensates at 15 s (the manager runs both).
    child = finals["KidSaga"]
    assert (child.status, child.updated_at, child.error_type) == (SagaStatus.COMPENSATED, 15.0, "ParentCompensated")


# -- deadlines -------------------------------------------------------------


class SlowRetry(Noting):
    """Each attempt hangs past its 5 s deadline; the retry waits 100 s; the saga has 20 s."""

    def get_timeout(self) -> float:
        return 20.0

    def define_steps(self) -> list[SagaStep]:
        retry = RetryConfig(max_attempts=3, initial_delay_ms=100_000, max_delay_ms=100_000)
        return [SagaStep("s", self.act, self.undo, timeout_seconds=5, retry=retry)]

    async def act(self, **context: Any) -> None:
        self.note("attempt")
        await context["clock"].sleep(1000)

    async def undo(self, **context: Any) -> None:
        self.note("undo")


def test_the_saga_deadline_cuts_a_retry_delay_after_a_timed_out_attempt(run):
    async def main(world):
        world.manager.register(Go, lambda: SlowRetry(world.note))
        await world.manager.handle_event(Go(event_id="e"))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [(0.0, "attempt"), (20.0, "undo")]  # not a second attempt at 105 s
    assert final.status is SagaStatus.TIMED_OUT
    assert final.updated_at == 20.0
    assert final.error == "saga SlowRetry exceeded its timeout of 20 s"
    assert (final.possibly_applied, final.compensated_steps) == (["s"], ["s"])
    attempts = [(r.t, r.phase, r.outcome, r.retry_delay) for r in world.tracer.records if r.attempt == 1]
    assert attempts == [
        (0.0, "execute", "started", None),
        (5.0, "execute", "timed_out", None),
        (5.0, "retry", "scheduled", 100.0),
        (20.0, "compensate", "started", None),
        (20.0, "compensate", "compensated", None),
    ]


class FinallyAwaits(Noting):
    """The attempt's deadline (5 s) fires; its finally awaits 10 s; the saga deadline (8 s) cuts that."""

    def get_timeout(self) -> float:
        return 8.0

    def define_steps(self) -> list[SagaStep]:
        return [SagaStep("s", self.act, None, timeout_seconds=5, retry_count=0)]

    async def act(self, **context: Any) -> None:
        try:
            await context["clock"].sleep(1000)
        finally:
            self.note("finally start")
            await context["clock"].sleep(10)
            self.note("finally end")


def test_the_saga_deadline_fires_while_a_timed_out_attempts_finally_awaits(run):
    async def main(world):
        world.manager.register(Go, lambda: FinallyAwaits(world.note))
        await world.manager.handle_event(Go(event_id="e"))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [(5.0, "finally start")]  # cut at 8 s: "finally end" never comes
    assert final.status is SagaStatus.TIMED_OUT
    assert final.updated_at == 8.0
    assert final.error == "saga FinallyAwaits exceeded its timeout of 8 s"
    assert final.possibly_applied == ["s"]
    attempts = [(r.t, r.phase, r.outcome) for r in world.tracer.records if r.attempt == 1]
    assert attempts == [(0.0, "execute", "started"), (8.0, "execute", "cancelled")]


class Swallower(Noting):
    """Step one swallows the saga deadline's cancellation and returns normally."""

    def get_timeout(self) -> float:
        return 10.0

    def define_steps(self) -> list[SagaStep]:
        return [
            SagaStep("one", self.one, self.undo, timeout_seconds=100),
            SagaStep("two", self.two, self.undo, timeout_seconds=5, retry_count=1),
        ]

    async def one(self, **context: Any) -> dict[str, Any]:
        try:
            await context["clock"].sleep(20)
        except asyncio.CancelledError:
            self.note("one swallowed a cancel")
        return {}

    async def two(self, **context: Any) -> None:
        self.note("two")
        await context["clock"].sleep(1000)

    async def undo(self, **context: Any) -> None:
        self.note("undo")


def test_a_swallowed_saga_deadline_still_ends_the_saga_timed_out(run):
    async def main(world):
        world.manager.register(Go, lambda: Swallower(world.note))
        await world.manager.handle_event(Go(event_id="e"))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [(10.0, "one swallowed a cancel"), (10.0, "undo")]  # step two never starts
    assert final.status is SagaStatus.TIMED_OUT
    assert final.updated_at == 10.0
    assert final.error == "saga Swallower exceeded its timeout of 10 s"
    assert final.completed_steps == ["one"]
    assert final.compensated_steps == ["one"]


class FinallyRaises(Noting):
    """Step b hits its deadline while waiting; its finally (a lock release) then raises."""

    def define_steps(self) -> list[SagaStep]:
        return [
            SagaStep("a", self.a, self.undo_a, timeout_seconds=5, retry_count=0),
            SagaStep("b", self.b, self.undo_b, timeout_seconds=5, retry_count=0),
        ]

    async def a(self, **context: Any) -> None:
        return None

    async def b(self, **context: Any) -> None:
        try:
            await context["clock"].sleep(100)
        finally:
            raise ConnectionError("lock release failed")

    async def undo_a(self, **context: Any) -> None:
        self.note("undo a")

    async def undo_b(self, **context: Any) -> None:
        self.note("undo b")


def test_an_attempt_cut_by_its_deadline_whose_finally_raises_is_possibly_applied(run):
    async def main(world):
        world.manager.register(Go, lambda: FinallyRaises(world.note))
        await world.manager.handle_event(Go(event_id="e"))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert world.log == [(5.0, "undo b"), (5.0, "undo a")]
    assert final.status is SagaStatus.COMPENSATED
    assert final.possibly_applied == ["b"]
    assert final.compensated_steps == ["b", "a"]
    assert (final.error_type, final.error) == ("DeadlineExceeded", "step b attempt 1 exceeded its deadline of 5 s")
    b_attempts = [(r.t, r.outcome, r.error_type) for r in world.tracer.records if r.step == "b" and r.attempt == 1]
    assert b_attempts[:2] == [(0.0, "started", None), (5.0, "timed_out", "DeadlineExceeded")]


def test_the_attempt_deadline_error_names_the_step_and_the_attempt(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve", "charge"], retry_count=2))
        await world.manager.handle_event(Go(event_id="e", script={"charge": [("hang", 0)] * 3}))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert final.status is SagaStatus.COMPENSATED
    assert final.error_type == "DeadlineExceeded"
    assert final.error == "step charge attempt 3 exceeded its deadline of 5 s"
    # attempts at 0, 6 (5 s + 1 s delay) and 13 (11 s + 2 s delay); compensation at 18
    assert [entry for entry in world.log if not entry[1].endswith("cancelled")] == [
        (0.0, "reserve #1"),
        (0.0, "charge #1"),
        (6.0, "charge #2"),
        (13.0, "charge #3"),
        (18.0, "undo charge #1"),
        (18.0, "undo reserve #1"),
    ]


def test_fractional_retry_delays_land_on_exact_timestamps(run):
    async def main(world):
        saga = lambda: ScriptedSaga(  # noqa: E731
            world.note, steps=["reserve"], retry_count=6, retry_delay_base=0.1, step_timeout=0.3
        )
        world.manager.register(Go, saga)
        script = {"reserve": [("fail", 0.1), ("hang", 0), ("fail", 0.7), ("fail", 0.3), ("fail", 0.1)]}
        await world.manager.handle_event(Go(event_id="e", script=script))
        return await world.manager.wait_idle()

    [final], world = run(main)
    assert final.status is SagaStatus.COMPLETED
    assert world.log == [
        (0.0, "reserve #1"),
        (0.2, "reserve #2"),
        (0.5, "reserve #2 cancelled"),
        (0.7, "reserve #3"),
        (1.4, "reserve #4"),
        (2.5, "reserve #5"),
        (4.2, "reserve #6"),
    ]
    ends = [
        (r.t, r.attempt, r.outcome) for r in world.tracer.records if r.phase == "execute" and r.outcome != "started"
    ]
    assert ends == [
        (0.1, 1, "failed"),
        (0.5, 2, "timed_out"),
        (1.0, 3, "timed_out"),
        (1.7, 4, "timed_out"),
        (2.6, 5, "failed"),
        (4.2, 6, "completed"),
    ]
    delays = [r.retry_delay for r in world.tracer.records if r.phase == "retry"]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6]


# -- resuming --------------------------------------------------------------


def test_resuming_past_the_saga_deadline_compensates_the_step_that_was_in_flight(run):
    """reserve done; charge (50 s) in flight when the manager stops at 10 s; the next
    manager starts at 410 s, past the 300 s deadline: charge may have applied."""

    async def main(world):
        saga = lambda: ScriptedSaga(world.note, step_timeout=100, retry_count=0)  # noqa: E731
        world.manager.register(Go, saga)
        await world.manager.handle_event(Go(event_id="e", script={"charge": [("ok", 50.0)]}))
        await world.runtime.sleep(10)
        world.manager.stop()
        await world.runtime.sleep(400)
        manager = world.new_manager()
        manager.register(Go, saga)
        await manager.recover()
        return await manager.wait_idle()

    [final], world = run(main)
    assert world.log == [
        (0.0, "reserve #1"),
        (0.0, "charge #1"),
        (410.0, "undo charge #1"),
        (410.0, "undo reserve #1"),
    ]
    assert final.status is SagaStatus.TIMED_OUT
    assert final.error == "saga ScriptedSaga exceeded its timeout of 300 s"
    assert final.possibly_applied == ["charge"]
    assert final.compensated_steps == ["charge", "reserve"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Pair(Event):
    pair: tuple[int, int] = (1, 2)


class SeesTypes(Noting):
    def define_steps(self) -> list[SagaStep]:
        return [
            SagaStep("a", self.a, None, timeout_seconds=100),
            SagaStep("b", self.b, None, timeout_seconds=100),
        ]

    async def a(self, **context: Any) -> dict[str, Any]:
        self.note(f"a sees pair={context['pair']!r}")
        return {"r": (3, 4)}

    async def b(self, **context: Any) -> None:
        self.note(f"b sees pair={context['pair']!r} r={context['r']!r}")
        await context["clock"].sleep(10)


def test_a_resumed_step_sees_the_same_context_types_as_a_fresh_one(run):
    """Trigger data and results are JSON-shaped (tuples become lists) on a fresh run too."""

    async def main(world):
        world.manager.register(Pair, lambda: SeesTypes(world.note))
        await world.manager.handle_event(Pair(event_id="e"))
        await world.runtime.sleep(5)
        world.manager.stop()
        await world.runtime.sleep(0)
        manager = world.new_manager()
        manager.register(Pair, lambda: SeesTypes(world.note))
        await manager.recover()
        return await manager.wait_idle()

    [final], world = run(main)
    assert world.log == [
        (0.0, "a sees pair=[1, 2]"),
        (0.0, "b sees pair=[1, 2] r=[3, 4]"),
        (5.0, "b sees pair=[1, 2] r=[3, 4]"),
    ]
    assert final.status is SagaStatus.COMPLETED
    assert final.updated_at == 15.0


def test_a_saga_stopped_before_its_first_step_stays_running_and_resumes(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve"]))
        [saga_id] = await world.manager.handle_event(Go(event_id="e"))
        world.manager.stop()  # at the same instant as the trigger
        try:
            await world.manager.join(saga_id)
        except asyncio.CancelledError:
            world.note("join raised CancelledError")
        await world.runtime.sleep(1)
        stopped = await world.store.load(saga_id)
        manager = world.new_manager()
        manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve"]))
        await manager.recover()
        [final] = await manager.wait_idle()
        return stopped, final

    (stopped, final), world = run(main)
    assert (stopped.status, stopped.current_step, stopped.completed_steps) == (SagaStatus.RUNNING, "reserve", [])
    assert world.log == [(0.0, "join raised CancelledError"), (1.0, "reserve #1")]
    assert (final.status, final.completed_steps) == (SagaStatus.COMPLETED, ["reserve"])


# -- step results and trigger data ----------------------------------------


class SetResult(Noting):
    def define_steps(self) -> list[SagaStep]:
        return [SagaStep("a", self.a, self.undo_a), SagaStep("b", self.b, self.undo_b)]

    async def a(self, **context: Any) -> dict[str, Any]:
        return {"ok": True}

    async def b(self, **context: Any) -> dict[str, Any]:
        return {"at": {1, 2}}  # a set: the store cannot hold it

    async def undo_a(self, **context: Any) -> None:
        self.note("undo a")

    async def undo_b(self, **context: Any) -> None:
        self.note("undo b")


def test_a_step_returning_a_non_json_result_ends_the_saga_compensated(run):
    async def main(world):
        world.manager.register(Go, lambda: SetResult(world.note))
        [saga_id] = await world.manager.handle_event(Go(event_id="e"))
        [final] = await world.manager.wait_idle()
        return final, await world.store.load(saga_id)

    (final, stored), world = run(main)
    message = (
        "SetResult.b returned a result the saga store cannot hold: result.at is a set, which JSON cannot hold: {1, 2}"
    )
    assert world.log == [(0.0, "undo b"), (0.0, "undo a")]  # b ran to the end: its effects are real
    assert final.status is SagaStatus.COMPENSATED
    assert (final.error_type, final.error) == ("TypeError", message)
    assert final.possibly_applied == ["b"]
    assert final.compensated_steps == ["b", "a"]
    assert final.results == {"ok": True}
    assert (stored.status, stored.error) == (SagaStatus.COMPENSATED, message)
    invalid = [(r.step, r.detail) for r in world.tracer.records if r.outcome == "invalid_result"]
    assert invalid == [("b", message)]


@dataclass(frozen=True, kw_only=True, slots=True)
class Nested(Event):
    tags: tuple[str, ...] = ("a",)


class ChangesItsInputs(Noting):
    """Its first step changes the trigger data it was given, in place; its second reports what it sees."""

    def define_steps(self) -> list[SagaStep]:
        return [SagaStep("change", self.change, None), SagaStep("look", self.look, None, timeout_seconds=20)]

    async def change(self, **context: Any) -> None:
        context["tags"].append("changed by a step")

    async def look(self, **context: Any) -> None:
        await context["clock"].sleep(5)
        self.note(f"sees {context['tags']}")


def test_a_step_changing_its_trigger_data_in_place_changes_neither_the_state_nor_its_snapshots(run):
    async def main(world):
        world.manager.register(Nested, lambda: ChangesItsInputs(world.note))
        [saga_id] = await world.manager.handle_event(Nested(event_id="e"))
        [final] = await world.manager.wait_idle()
        return final, await world.store.load(saga_id)

    (final, stored), world = run(main)
    # The steps share one copy (the second sees the first's change); the saga's trigger data stay the event's.
    assert world.log == [(5.0, "sees ['a', 'changed by a step']")]
    assert final.status is SagaStatus.COMPLETED
    assert final.trigger_data["tags"] == ["a"]
    assert stored.trigger_data["tags"] == ["a"]


def test_snapshots_share_one_copy_of_the_trigger_data_and_a_new_dict_gets_its_own() -> None:
    state = SagaState("s", "T", "Go", "e", {"tags": ["a"]})
    first, second = state.to_dict(), state.to_dict()
    assert first["trigger_data"] == {"tags": ["a"]}
    assert first["trigger_data"] is second["trigger_data"]
    assert first["trigger_data"] is not state.trigger_data
    assert first["trigger_data"]["tags"] is not state.trigger_data["tags"]
    state.trigger_data = {"tags": ["b"]}
    assert state.to_dict()["trigger_data"] == {"tags": ["b"]}
    with pytest.raises(TypeError, match=r"trigger_data.when is a set"):
        SagaState("s", "T", "Go", "e", {"when": {1}}).to_dict()


@dataclass(frozen=True, kw_only=True, slots=True)
class About(Event):
    saga_id: str = "the-other-saga"


@dataclass(frozen=True, kw_only=True, slots=True)
class Scheduled(Event):
    clock: str = "09:00"
    sagas: str = "all"


@dataclass(frozen=True, kw_only=True, slots=True)
class Retried(Event):
    attempt: int = 2  # the engine's own context["attempt"] would hide it


class ReadsTrigger(Noting):
    def define_steps(self) -> list[SagaStep]:
        return [SagaStep("a", self.a, None)]

    async def a(self, **context: Any) -> None:
        self.note("ran")


@pytest.mark.parametrize(
    ("event", "fields"),
    [(About(event_id="e"), "saga_id"), (Scheduled(event_id="e"), "clock, sagas"), (Retried(event_id="e"), "attempt")],
    ids=["saga_id", "clock+sagas", "attempt"],
)
def test_a_trigger_field_named_like_a_context_service_is_rejected(run, event, fields):
    async def main(world):
        world.manager.register(type(event), lambda: ReadsTrigger(world.note))
        try:
            await world.manager.handle_event(event)
        except InvalidEvent as error:
            return str(error), world.manager.running, await world.store.unfinished()
        return "accepted", world.manager.running, await world.store.unfinished()

    (message, running, unfinished), world = run(main)
    assert message == (
        f"{event.event_type} e: field(s) {fields} would shadow the saga context's services of the same name; "
        "rename them"
    )
    assert (running, unfinished, world.log, world.tracer.records) == ([], [], [], [])


# -- task handles ----------------------------------------------------------


def test_a_join_that_times_out_does_not_cancel_the_joined_saga(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve"], step_timeout=100))
        [saga_id] = await world.manager.handle_event(Go(event_id="e", script={"reserve": [("ok", 20.0)]}))
        try:
            await world.runtime.run_with_deadline(world.manager.join(saga_id), 5)
        except DeadlineExceeded as error:
            world.note(f"join gave up: {error}")
        return await world.manager.join(saga_id)

    final, world = run(main)
    assert world.log == [(0.0, "reserve #1"), (5.0, "join gave up: operation exceeded its deadline of 5 s")]
    assert (final.status, final.updated_at) == (SagaStatus.COMPLETED, 20.0)


def test_joining_a_failed_task_twice_raises_twice(run):
    async def boom():
        raise RuntimeError("boom")

    async def main(world):
        task = world.runtime.spawn(boom(), name="boom")
        seen = []
        for _ in range(2):
            try:
                seen.append(await task.join())
            except RuntimeError as error:
                seen.append(repr(error))
        return seen

    seen, _ = run(main)
    assert seen == ["RuntimeError('boom')", "RuntimeError('boom')"]


def test_a_task_may_cancel_itself(run):
    """The cancellation lands at the task's next await, as on asyncio."""

    async def main(world):
        handle = {}

        async def cancels_itself():
            world.note("cancelling myself")
            handle["task"].cancel()
            world.note("running until my next await")
            await world.runtime.sleep(1)
            world.note("never")

        handle["task"] = world.runtime.spawn(cancels_itself(), name="self")
        try:
            await handle["task"].join()
        except asyncio.CancelledError:
            world.note("join raised CancelledError")
        return handle["task"].done()

    done, world = run(main)
    assert done is True
    assert world.log == [
        (0.0, "cancelling myself"),
        (0.0, "running until my next await"),
        (0.0, "join raised CancelledError"),
    ]


class StopsItsManager(Noting):
    def __init__(self, note: Any, manager: Any) -> None:
        super().__init__(note)
        self.manager = manager

    def define_steps(self) -> list[SagaStep]:
        return [SagaStep("s", self.s, None)]

    async def s(self, **context: Any) -> None:
        self.note("stopping my manager")  # e.g. a fatal condition triggers shutdown
        self.manager().stop()
        await context["clock"].sleep(1)
        self.note("never")


def test_a_step_may_stop_its_own_manager(run):
    async def main(world):
        world.manager.register(Go, lambda: StopsItsManager(world.note, lambda: world.manager))
        [saga_id] = await world.manager.handle_event(Go(event_id="e"))
        try:
            await world.manager.join(saga_id)
        except asyncio.CancelledError:
            world.note("join raised CancelledError")
        return await world.store.load(saga_id)

    stored, world = run(main)
    assert world.log == [(0.0, "stopping my manager"), (0.0, "join raised CancelledError")]
    assert (stored.status, stored.current_step) == (SagaStatus.RUNNING, "s")  # left for recovery
    attempts = [(r.t, r.outcome) for r in world.tracer.records if r.step == "s"]
    assert attempts == [(0.0, "started"), (0.0, "cancelled")]


# -- clocks and runtimes ---------------------------------------------------


def test_negative_sleeps_and_deadlines_are_no_waits(run):
    async def main(world):
        await world.runtime.sleep(-1)
        world.note("slept -1")

        async def returns_at_once():
            return "at once"

        async def awaits_once():
            await world.runtime.sleep(0)
            return "after a wait"

        outcomes = [await world.runtime.run_with_deadline(returns_at_once(), -1)]
        try:
            outcomes.append(await world.runtime.run_with_deadline(awaits_once(), -1))
        except DeadlineExceeded as error:
            outcomes.append(str(error))
        return outcomes

    outcomes, world = run(main)
    assert world.log == [(0.0, "slept -1")]
    assert outcomes == ["at once", "operation exceeded its deadline of -1 s"]


def test_same_instant_ordering_is_the_same_on_both_runtimes(run):
    """At t=1 the trigger for b and the end of a's step are due together: a finishes
    first (its timer was due first), then b starts, on both runtimes."""

    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve"], retry_count=0))
        [a] = await world.manager.handle_event(Go(event_id="a", script={"reserve": [("ok", 1.0)]}))
        await world.runtime.sleep(1.0)  # due at the same instant as saga a's step
        [b] = await world.manager.handle_event(Go(event_id="b"))
        await world.manager.wait_idle()
        return {a: "a", b: "b"}

    names, world = run(main)
    trace = [(r.t, names[r.saga_id], r.step, r.phase, r.outcome) for r in world.tracer.records]
    assert trace == [
        (0.0, "a", None, "saga", "started"),
        (0.0, "a", "reserve", "execute", "started"),
        (1.0, "a", "reserve", "execute", "completed"),
        (1.0, "a", None, "saga", "completed"),
        (1.0, "b", None, "saga", "started"),
        (1.0, "b", "reserve", "execute", "started"),
        (1.0, "b", "reserve", "execute", "completed"),
        (1.0, "b", None, "saga", "completed"),
    ]


def _wake_times_sim(schedules: list[list[float]]) -> list[tuple[int, float]]:
    runtime = SimRuntime()
    seen: list[tuple[int, float]] = []

    async def sleeper(index: int, delays: list[float]) -> None:
        for delay in delays:
            await runtime.sleep(delay)
            seen.append((index, runtime.now()))

    for index, delays in enumerate(schedules):
        runtime.spawn(sleeper(index, delays), name=f"sleeper {index}")
    runtime.run()
    return seen


def _wake_times_asyncio(schedules: list[list[float]]) -> list[tuple[int, float]]:
    loop = VirtualTimeLoop()
    runtime = AsyncioRuntime(clock=loop.time)
    seen: list[tuple[int, float]] = []

    async def sleeper(index: int, delays: list[float]) -> None:
        for delay in delays:
            await runtime.sleep(delay)
            seen.append((index, runtime.now()))

    async def main() -> None:
        tasks = [runtime.spawn(sleeper(i, delays), name=f"sleeper {i}") for i, delays in enumerate(schedules)]
        for task in tasks:
            await task.join()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return seen


def test_the_virtual_loop_lands_exactly_on_the_scheduled_time():
    # Advancing by each select timeout gave 0.67 + 1.28 = 1.9499999999999997.
    assert _wake_times_asyncio([[0.67], [1.95]]) == [(0, 0.67), (1, 1.95)]


def test_concurrent_sleeps_wake_at_identical_times_on_both_runtimes():
    rng = random.Random(1)
    for _ in range(300):
        schedules = [[round(rng.uniform(0, 3), 2)] for _ in range(rng.randint(2, 4))]
        assert _wake_times_asyncio(schedules) == _wake_times_sim(schedules), schedules


# 1.29 + 2.53 == 3.82, but 1.31 + 2.35 + 0.16 == 3.8200000000000003: one ulp later.
_NEAR_TIE = [[1.29, 2.53], [1.31, 2.35, 0.16]]
_NEAR_TIE_WAKES = [(0, 1.29), (1, 1.31), (1, 3.66), (0, 3.82), (1, 3.8200000000000003)]


def test_timers_a_rounding_error_apart_each_wake_at_their_own_time_on_the_simulated_clock():
    assert _wake_times_sim(_NEAR_TIE) == _NEAR_TIE_WAKES


def test_timers_a_rounding_error_apart_each_wake_at_their_own_time_on_asyncio():
    assert _wake_times_asyncio(_NEAR_TIE) == _NEAR_TIE_WAKES


@pytest.mark.parametrize(
    ("runner", "reserve_seconds"),
    [
        pytest.param(run_sim, 0.0, id="sim-reserve-0s"),
        pytest.param(run_sim, 0.5, id="sim-reserve-0.5s"),
        pytest.param(run_asyncio, 0.0, id="asyncio-reserve-0s"),
        pytest.param(run_asyncio, 0.5, id="asyncio-reserve-0.5s"),
    ],
)
def test_work_ending_exactly_at_its_attempt_deadline_times_out_whatever_came_before(runner, reserve_seconds):
    async def main(world):
        saga = lambda: ScriptedSaga(world.note, steps=["reserve", "charge"], retry_count=0, step_timeout=2.5)  # noqa: E731
        world.manager.register(Go, saga)
        script = {"reserve": [("ok", reserve_seconds)], "charge": [("ok", 2.5)]}
        await world.manager.handle_event(Go(event_id="e", script=script))
        return await world.manager.wait_idle()

    [final], world = runner(main)
    due = reserve_seconds + 2.5
    assert world.log == [
        (0.0, "reserve #1"),
        (reserve_seconds, "charge #1"),
        (due, "undo charge #1"),
        (due, "undo reserve #1"),
    ]
    assert (final.status, final.error) == (
        SagaStatus.COMPENSATED,
        "step charge attempt 1 exceeded its deadline of 2.5 s",
    )


# -- retry_async and retry policies ---------------------------------------


class Polls(Noting):
    """Polls with the seed-style ``retry_async`` call, which passes no clock."""

    def define_steps(self) -> list[SagaStep]:
        return [SagaStep("poll", self.poll, None, timeout_seconds=100)]

    async def poll(self, **context: Any) -> None:
        calls = 0

        async def probe() -> int:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise RuntimeError("not yet")
            return calls

        await retry_async(probe, RetryConfig(max_attempts=5, initial_delay_ms=1000))
        self.note(f"polled after {calls} calls")


def test_retry_async_without_a_clock_uses_the_running_worlds_clock():
    first = build_world(1)
    second = build_world(2)  # built after the first (say, prepared by a runner) but never run
    log: list[tuple[float, str]] = []

    async def main(world):
        world.manager.register(Go, lambda: Polls(lambda what: log.append((world.runtime.now(), what))))
        await world.manager.handle_event(Go(event_id="e"))
        return await world.manager.wait_idle()

    [final], _ = simulate(main, world=first)
    assert log == [(3.0, "polled after 3 calls")]  # waits of 1 s and 2 s on the first world's clock
    assert (final.status, final.updated_at) == (SagaStatus.COMPLETED, 3.0)
    assert second.runtime.now() == 0.0


def test_from_seed_validation_does_not_depend_on_call_history():
    message = re.escape("retry_count must be an integer >= 0, got 7.0")
    with pytest.raises(SagaDefinitionError, match=message):
        RetryConfig.from_seed(7.0, 1.0)
    assert RetryConfig.from_seed(7, 1.0).max_attempts == 8
    with pytest.raises(SagaDefinitionError, match=message):
        RetryConfig.from_seed(7.0, 1.0)  # 7.0 == 7, but it must not be served the cached policy for 7
