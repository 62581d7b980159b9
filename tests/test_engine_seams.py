"""The engine's public seams for wrappers: bus handlers and subscriptions, and which saga a task drives."""

from __future__ import annotations

from typing import Any

import pytest

from sagas.engine.buses import CommandBus, EventBus, QueryBus, Subscription
from sagas.engine.errors import HandlerNotFound
from sagas.engine.events import Event, SagaCompleted
from tests.scripted import Go, ScriptedSaga


class Ping(Event):
    pass


class Owner:
    """A subscriber object, as a manager or a read model is."""

    def __init__(self, seen: list[str], name: str) -> None:
        self.seen = seen
        self.name = name

    async def on(self, event: Event) -> None:
        self.seen.append(f"{self.name} {event.event_id}")


async def _publish(bus: EventBus, *ids: str) -> None:
    for event_id in ids:
        await bus.publish(Ping(event_id=event_id))


def _drive(coroutine: Any) -> None:
    """Run a coroutine that never suspends (the buses' own code awaits only its handlers)."""
    with pytest.raises(StopIteration):
        coroutine.send(None)


@pytest.mark.parametrize("bus_type", [CommandBus, QueryBus])
def test_a_single_handler_bus_shows_and_replaces_its_handler(bus_type: type[CommandBus] | type[QueryBus]) -> None:
    bus = bus_type()

    async def first(message: Any) -> str:
        return "first"

    async def second(message: Any) -> str:
        return "second"

    assert bus.handler_for(Ping) is None
    with pytest.raises(HandlerNotFound):
        bus.replace_handler(Ping, second)  # replacing is not registering
    bus.register_handler(Ping, first)
    assert bus.handler_for("Ping") is first
    assert bus.replace_handler(Ping, second) is first
    assert bus.handler_for(Ping) is second
    answers: list[str] = []

    async def ask() -> None:
        send = bus.send if isinstance(bus, CommandBus) else bus.query
        answers.append(await send(Ping(event_id="p1")))

    _drive(ask())
    assert answers == ["second"]


def test_subscriptions_name_their_owner_and_an_owner_can_be_dropped_whole() -> None:
    seen: list[str] = []
    bus = EventBus()
    a, b = Owner(seen, "a"), Owner(seen, "b")

    async def anonymous(event: Event) -> None:
        seen.append(f"anonymous {event.event_id}")

    bus.subscribe(Ping, a.on, owner=a)
    bus.subscribe(Ping, anonymous)
    bus.subscribe(Ping, b.on, owner=b)
    bus.subscribe(SagaCompleted, a.on, owner=a)
    assert bus.event_types() == ["Ping", "SagaCompleted"]
    assert bus.subscriptions(Ping) == (Subscription(a.on, a), Subscription(anonymous, None), Subscription(b.on, b))
    assert bus.unsubscribe_owner(a) == ["Ping", "SagaCompleted"]
    assert bus.unsubscribe_owner(a) == []  # nothing left of it
    assert bus.event_types() == ["Ping"]
    _drive(_publish(bus, "e1"))
    assert seen == ["anonymous e1", "b e1"]  # the others still run, in their order


def test_unsubscribe_drops_one_handler() -> None:
    seen: list[str] = []
    bus = EventBus()
    a = Owner(seen, "a")
    bus.subscribe(Ping, a.on)
    assert bus.unsubscribe(Ping, a.on) is True  # an equal bound method is the same subscription
    assert bus.unsubscribe(Ping, a.on) is False
    assert not bus.has_subscribers(Ping)


def test_a_bus_sharing_another_sees_and_changes_the_same_subscriptions() -> None:
    seen: list[str] = []
    inner = EventBus()
    a, b = Owner(seen, "a"), Owner(seen, "b")
    inner.subscribe(Ping, a.on, owner=a)
    outer = EventBus(sharing=inner)
    outer.subscribe(Ping, b.on, owner=b)  # e.g. a manager built on the wrapping bus
    assert inner.subscriptions(Ping) == outer.subscriptions(Ping) == (Subscription(a.on, a), Subscription(b.on, b))
    outer.unsubscribe_owner(a)
    _drive(_publish(inner, "e1"))
    assert seen == ["b e1"]


def test_the_manager_subscribes_as_the_owner_of_its_handlers(run):
    async def main(world):
        manager = world.manager
        manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve"]))
        bus = manager.event_bus
        return {name: [s.owner is manager for s in bus.subscriptions(name)] for name in bus.event_types()}

    owned, _ = run(main)
    assert owned == {"SagaCompleted": [True], "SagaCompensated": [True], "SagaFailed": [True], "Go": [True]}


def test_the_manager_tells_which_saga_a_task_drives_while_it_runs(run):
    async def main(world):
        manager = world.manager
        manager.register(Go, lambda: ScriptedSaga(world.note, steps=["reserve", "charge"]))
        [first] = await manager.handle_event(Go(event_id="e1"))
        [second] = await manager.handle_event(Go(event_id="e2"))
        one, two = manager.task_of(first), manager.task_of(second)
        while_running = (manager.saga_of(one), manager.saga_of(two))
        other = world.runtime.spawn(world.runtime.sleep(0), name=f"saga {first}")  # named alike, not its task
        await other.join()
        await manager.wait_idle()
        return while_running, manager.saga_of(other), (manager.saga_of(one), manager.saga_of(two)), first, second

    (while_running, other, after, first, second), _ = run(main)
    assert while_running == (first, second)
    assert other is None
    assert after == (None, None)  # ended: it drives nothing any more (and the manager keeps no tag)
