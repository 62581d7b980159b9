"""The ``event_delivery`` family, and the event bus wrapper it shares with ``manager_crashes``.

``event_delivery``
    Each published event is, with ``duplicate_probability``, delivered twice in a row (same event id)
    and, with ``delay_probability``, delivered ``delay_s`` later from a task of its own (the publisher
    does not wait), so it arrives after events published after it: reordered.

For ``manager_crashes`` the same wrapper lets a manager's subscriptions die with it (``detach``):
events it listened to wait, as on a durable bus, until its successor takes over (``attach``).
"""

from __future__ import annotations

from sagas.engine.buses import EventBus, Handler, raise_failures
from sagas.engine.events import Event
from sagas.engine.manager import SagaManager
from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.family import FaultFamily
from simlab.scenario.faults import EventDelivery


class EventDeliveryFamily(FaultFamily):
    name = "event_delivery"
    schema = EventDelivery
    ports = ("event_bus",)
    streams = ("faults/event_delivery",)
    per_call = True


class FaultyEventBus(EventBus):
    """An event bus on the same subscriptions as the one it replaces: duplicated and delayed delivery,
    and a manager's subscriptions dying with it (events for it wait until a new manager attaches)."""

    def __init__(self, inner: EventBus, ctx: FaultContext) -> None:
        super().__init__(sharing=inner)  # the platform's, the read models', the manager's: all of them
        self.inner = inner
        self._ctx = ctx
        plan, delivery = ctx.plan, ctx.plan.faults.event_delivery
        self._duplicate_p = delivery.duplicate_probability * plan.scale("event_delivery")
        self._delay_p = delivery.delay_probability * plan.scale("event_delivery")
        self._delay_s = delivery.delay_s
        self._rng = ctx.stream("event_delivery")
        self._dead: list[object] = []
        self._down_types: set[str] = set()
        self._backlog: list[Event] = []
        self._live: SagaManager | None = None

    def subscribe(self, event_type: type | str, handler: Handler, *, owner: object | None = None) -> None:
        self.inner.subscribe(event_type, handler, owner=owner)

    def has_subscribers(self, event_type: type | str) -> bool:
        return self.inner.has_subscribers(event_type)

    async def publish(self, event: Event) -> None:
        ctx = self._ctx
        if not (self._duplicate_p or self._delay_p) or not ctx.active():
            await self._deliver(event)
            return
        duplicate = self._rng.random() < self._duplicate_p
        if self._rng.random() < self._delay_p:
            delay = self._delay_s.draw(self._rng)  # drawn even if left out: its stream keeps its place
            if ctx.strike("event_delivery", "delay", f"{event.event_type} by {delay:.3g} s"):
                name = f"delayed {event.event_type} {event.event_id}"
                ctx.runtime.spawn(self._later(event, delay, duplicate), name=name)
                return
        await self._deliver(event)
        if duplicate and ctx.strike("event_delivery", "duplicate", event.event_type):
            await self._deliver(event)

    async def _later(self, event: Event, delay: float, duplicate: bool) -> None:
        await self._ctx.runtime.sleep(delay)
        await self._deliver(event)
        if duplicate and self._ctx.strike("event_delivery", "duplicate", event.event_type):
            await self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        """``EventBus.publish``, except that a dead manager's handlers are skipped and the event kept for it."""
        name = type(event).__name__
        kept = name in self._down_types
        if kept:
            self._backlog.append(event)
        errors: list[Exception] = []
        for handler, owner in self.subscriptions(name):
            if owner is not None and any(owner is dead for dead in self._dead):
                # Subscribed when this delivery began; its manager died since.
                if not kept and self._live is None:
                    self._backlog.append(event)
                    kept = True
                elif not kept and self._live is not None:
                    errors.extend(await self._to_manager(self._live, event))
                    kept = True
                continue
            try:
                await handler(event)
            except Exception as error:  # noqa: BLE001 - re-raised below
                errors.append(error)
        raise_failures(errors, name)

    def detach(self, manager: SagaManager) -> None:
        """``manager`` died: drop its subscriptions; events it listened to wait for its successor."""
        self._dead.append(manager)
        self._live = None
        self._down_types.update(self.unsubscribe_owner(manager))

    async def attach(self, manager: SagaManager) -> int:
        """``manager`` took over: hand it the events that waited, in order; return how many."""
        self._live = manager
        self._down_types.clear()
        backlog, self._backlog = self._backlog, []
        errors: list[Exception] = []
        for event in backlog:
            errors.extend(await self._to_manager(manager, event))
        raise_failures(errors, "redelivered events")
        return len(backlog)

    async def _to_manager(self, manager: SagaManager, event: Event) -> list[Exception]:
        errors: list[Exception] = []
        for handler, owner in self.subscriptions(type(event)):
            if owner is manager:
                try:
                    await handler(event)
                except Exception as error:  # noqa: BLE001 - re-raised by the caller
                    errors.append(error)
        return errors
