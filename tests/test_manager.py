"""The saga manager: dedup, persistence and resume, lifecycle events, composition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sagas import (
    BaseSaga,
    Event,
    SagaCompensated,
    SagaCompleted,
    SagaFailed,
    SagaStarted,
    SagaStatus,
    SagaStep,
    SagaStepCompleted,
)
from tests.scripted import Go, ScriptedSaga


def test_a_duplicated_trigger_event_starts_one_saga(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve"]))
        first = await world.manager.handle_event(Go(event_id="e1"))
        again = await world.manager.handle_event(Go(event_id="e1"))
        other = await world.manager.handle_event(Go(event_id="e2"))
        await world.manager.wait_idle()
        return first, again, other

    (first, again, other), world = run(main)
    assert len(first) == 1 and again == first and len(other) == 1  # the duplicate names the first saga
    assert [what for _, what in world.log] == ["reserve #1", "reserve #1"]  # one per distinct event
    duplicates = [r for r in world.tracer.records if r.outcome == "duplicate_trigger"]
    assert [(r.saga_id, r.detail) for r in duplicates] == [(first[0], "Go e1")]


def test_a_restarted_manager_resumes_without_rerunning_completed_steps(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note))
        script = {"reserve": [("ok", 1.0)], "charge": [("ok", 2.0)], "ship": [("ok", 4.0)]}
        [saga_id] = await world.manager.handle_event(Go(event_id="e1", script=script))
        await world.runtime.sleep(5.0)  # reserve and charge done; ship in flight
        world.manager.stop()  # the process dies
        await world.runtime.sleep(0)
        stored = await world.store.load(saga_id)
        manager = world.new_manager()
        manager.register(Go, lambda: ScriptedSaga(world.note))
        resumed = await manager.recover()
        finals = await manager.wait_idle()
        return saga_id, stored, resumed, finals

    (saga_id, stored, resumed, [final]), world = run(main)
    assert stored.status is SagaStatus.RUNNING
    assert stored.completed_steps == ["reserve", "charge"]
    assert stored.current_step == "ship"
    assert resumed == [saga_id]
    assert world.log == [
        (0.0, "reserve #1"),
        (1.0, "charge #1"),
        (3.0, "ship #1"),  # interrupted at 5.0 by the crash
        (5.0, "ship #1"),  # re-run by the new manager (a fresh instance counts from 1 again)
        (9.0, "notify #1"),
    ]
    assert final.status is SagaStatus.COMPLETED
    assert final.results == {"reserve_done": True, "charge_done": True, "ship_done": True, "notify_done": True}
    assert [r.outcome for r in world.tracer.records if r.phase == "saga"] == ["started", "resumed", "completed"]


def test_a_restarted_manager_finishes_an_interrupted_compensation(run):
    async def main(world):
        world.manager.register(Go, lambda: ScriptedSaga(world.note, retry_count=0))
        script = {"notify": [("fail", 0.0)]}
        compensation = {"charge": [("ok", 3.0)]}
        await world.manager.handle_event(Go(event_id="e1", script=script, compensation_script=compensation))
        await world.runtime.sleep(1.0)  # undo ship done, undo charge in flight
        world.manager.stop()
        await world.runtime.sleep(0)
        manager = world.new_manager()
        manager.register(Go, lambda: ScriptedSaga(world.note, retry_count=0))
        await manager.recover()
        return await manager.wait_idle()

    [final], world = run(main)
    assert [what for _, what in world.log if what.startswith("undo")] == [
        "undo ship #1",
        "undo charge #1",
        "undo charge #1",  # compensations are idempotent, so the interrupted one runs again
        "undo reserve #1",
    ]
    assert final.status is SagaStatus.COMPENSATED
    assert final.compensated_steps == ["ship", "charge", "reserve"]


def test_lifecycle_events_are_published_in_order(run):
    async def main(world):
        seen: list[tuple[str, Any]] = []

        async def listen(event):
            seen.append((type(event).__name__, getattr(event, "step", None) or getattr(event, "status", None)))

        for kind in (SagaStarted, SagaStepCompleted, SagaCompleted, SagaCompensated, SagaFailed):
            world.manager.event_bus.subscribe(kind, listen)
        world.manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve", "charge"], retry_count=0))
        await world.manager.handle_event(Go(event_id="ok"))
        await world.manager.handle_event(Go(event_id="bad", script={"charge": [("fail", 0.0)]}))
        await world.manager.wait_idle()
        return seen

    seen, _ = run(main)
    assert seen == [
        ("SagaStarted", None),
        ("SagaStepCompleted", "reserve"),
        ("SagaStepCompleted", "charge"),
        ("SagaCompleted", "completed"),
        ("SagaStarted", None),
        ("SagaStepCompleted", "reserve"),
        ("SagaCompensated", "compensated"),
    ]


def test_a_step_returning_aborted_ends_the_saga_as_the_seed_purge_guard_does(run):
    class PurgeSaga(BaseSaga):
        def define_steps(self):
            return [SagaStep("check", self.check, self.undo), SagaStep("purge", self.purge, self.undo)]

        async def check(self, **context):
            return {"checked": True}

        async def purge(self, **context):
            return {"purged": False, "reason": "connection_reconnected", "aborted": True}

        async def undo(self, **context):
            raise AssertionError("an aborted saga compensates nothing")

    async def main(world):
        world.manager.register(Go, PurgeSaga)
        await world.manager.handle_event(Go(event_id="e1"))
        return await world.manager.wait_idle()

    [final], _ = run(main)
    assert final.status is SagaStatus.ABORTED
    assert final.error == "connection_reconnected"
    assert final.results["purged"] is False


# -- composition -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ParentStarted(Event):
    child_durations: tuple[float, ...] = ()
    wait_seconds: float = 10.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ChildStarted(Event):
    duration: float = 1.0


class ChildSaga(BaseSaga):
    def __init__(self, note):
        super().__init__()
        self._note = note

    def define_steps(self):
        return [SagaStep("work", self.work, self.undo, timeout_seconds=100)]

    async def work(self, **context):
        await context["clock"].sleep(context["duration"])
        self._note(f"child {context['duration']:g} done")

    async def undo(self, **context):
        self._note(f"undo child {context['duration']:g}")


class ParentSaga(BaseSaga):
    def __init__(self, note):
        super().__init__()
        self._note = note

    def define_steps(self):
        return [
            SagaStep("start_children", self.start_children, self.undo_start, timeout_seconds=5),
            SagaStep("wait_children", self.wait_children, self.undo_wait, timeout_seconds=60),
        ]

    async def start_children(self, **context):
        ids = []
        for index, duration in enumerate(context["child_durations"]):
            ids += await context["sagas"].start(ChildStarted(event_id=f"child-{index}", duration=duration))
        return {"child_ids": ids}

    async def wait_children(self, **context):
        statuses = await context["sagas"].wait(context["child_ids"], timeout_seconds=context["wait_seconds"])
        self._note(f"children finished: {sorted(statuses.values())}")
        return {"child_statuses": statuses}

    async def undo_start(self, **context):
        self._note("undo start_children")

    async def undo_wait(self, **context):
        self._note("undo wait_children")


def _compose(world):
    world.manager.register(ParentStarted, lambda: ParentSaga(world.note))
    world.manager.register(ChildStarted, lambda: ChildSaga(world.note))


def test_a_parent_finishes_when_its_childrens_completion_events_arrive(run):
    async def main(world):
        _compose(world)
        [parent] = await world.manager.handle_event(ParentStarted(event_id="p", child_durations=(3.0, 1.0, 2.0)))
        finals = await world.manager.wait_idle()
        return parent, finals

    (parent, finals), world = run(main)
    by_id = {s.saga_id: s for s in finals}
    assert by_id[parent].status is SagaStatus.COMPLETED
    assert world.log == [
        (1.0, "child 1 done"),
        (2.0, "child 2 done"),
        (3.0, "child 3 done"),
        (3.0, "children finished: ['completed', 'completed', 'completed']"),
    ]
    children = [s for s in finals if s.parent_id == parent]
    assert len(children) == 3 and all(s.status is SagaStatus.COMPLETED for s in children)
    parent_done = [r.t for r in world.tracer.records if r.saga_id == parent and r.outcome == "completed"]
    assert parent_done[-1] == 3.0  # no fixed sleep: it ends the instant the last child does
    waits = [(r.t, r.step, r.outcome, r.detail) for r in world.tracer.records if r.phase == "children"]
    assert waits == [
        (0.0, "wait_children", "waiting", "3 child saga(s), 10 s"),
        (3.0, "wait_children", "completed", "3 child saga(s) finished"),
    ]
    assert {r.saga_id for r in world.tracer.records if r.phase == "children"} == {parent}


def test_a_parent_compensates_when_children_miss_the_deadline_and_first_stops_the_child_still_running(run):
    async def main(world):
        _compose(world)
        [parent] = await world.manager.handle_event(
            ParentStarted(event_id="p", child_durations=(1.0, 20.0), wait_seconds=10.0)
        )
        finals = await world.manager.wait_idle()
        return parent, finals

    (parent, finals), world = run(main)
    by_id = {s.saga_id: s for s in finals}
    assert by_id[parent].status is SagaStatus.COMPENSATED
    assert by_id[parent].error_type == "ChildSagasTimeout"
    # The 20 s child is stopped mid-step and undone first, then the parent's own steps; the finished child stays.
    assert world.log == [(1.0, "child 1 done"), (10.0, "undo child 20"), (10.0, "undo start_children")]
    done, stopped = sorted((s for s in finals if s.parent_id == parent), key=lambda s: s.trigger_id)
    assert by_id[parent].children == [done.saga_id, stopped.saga_id]
    assert (done.status, done.error_type) == (SagaStatus.COMPLETED, None)
    assert (stopped.status, stopped.error_type, stopped.updated_at) == (
        SagaStatus.COMPENSATED,
        "ParentCompensated",
        10.0,
    )
    assert stopped.possibly_applied == ["work"] and stopped.compensated_steps == ["work"]
    failed = [r for r in world.tracer.records if r.saga_id == parent and r.outcome == "failed"]
    assert [(r.t, r.step, r.error_type) for r in failed] == [(10.0, "wait_children", "ChildSagasTimeout")]
    waits = [(r.t, r.outcome, r.error_type, r.detail) for r in world.tracer.records if r.phase == "children"]
    assert waits == [
        (0.0, "waiting", None, "2 child saga(s), 10 s"),
        (10.0, "timed_out", "ChildSagasTimeout", "1 of 2 unfinished"),
        (10.0, "waiting", None, "1 child saga(s), 60 s"),  # the parent waits for the stopped child to compensate
        (10.0, "completed", None, "1 child saga(s) finished"),
    ]


def test_a_long_running_manager_forgets_finished_sagas():
    from sagas import InMemorySagaStore, RandomStreams, SagaManager
    from simlab.sim.runtime import SimRuntime

    runtime = SimRuntime()
    store = InMemorySagaStore()
    manager = SagaManager(runtime=runtime, store=store, random_streams=RandomStreams(0), retain_finished=False)
    log: list = []
    manager.register(Go, lambda: ScriptedSaga(lambda what: log.append(what), steps=["reserve"]))

    async def main():
        ids = []
        for n in range(50):
            ids += await manager.handle_event(Go(event_id=f"e{n}", script={"reserve": [("ok", 1.0)]}))
        await runtime.sleep(5.0)
        return ids, await manager.join(ids[0])

    task = runtime.spawn(main())
    runtime.run()
    ids, first = task.result()
    assert len(ids) == 50
    assert len(log) == 50 and first.status is SagaStatus.COMPLETED
    assert manager.running == [] and manager._tasks == {} and manager._finished == {} and manager._children == {}
    assert len(store) == 50  # the store, not the manager, remembers them
