"""In-process async buses: commands and queries (one handler each), events (many subscribers).

Besides sending and publishing, each bus lets a wrapper (the lab's faults, a test) see and
rewire what is registered without reading its internals: ``handler_for``/``replace_handler``
on the command and query buses; ``subscriptions``/``unsubscribe``/``unsubscribe_owner`` on the
event bus, whose subscriptions may name an owner (the ``SagaManager`` names itself), and a bus
built with ``sharing=`` another works on the same subscriptions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from sagas.engine.errors import HandlerNotFound, SagaDefinitionError
from sagas.engine.events import Event

Handler = Callable[[Any], Awaitable[Any]]


def _type_name(message_type: type | str) -> str:
    return message_type if isinstance(message_type, str) else message_type.__name__


class _SingleHandlerBus:
    """Routes a message to exactly one handler registered for its type name."""

    _kind = "message"

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register_handler(self, message_type: type | str, handler: Handler) -> None:
        """Register ``handler`` for ``message_type``; a second handler is an error."""
        name = _type_name(message_type)
        if name in self._handlers:
            raise SagaDefinitionError(f"a {self._kind} handler for {name} is already registered")
        self._handlers[name] = handler

    def has_handler(self, message_type: type | str) -> bool:
        """Whether a handler is registered for ``message_type``."""
        return _type_name(message_type) in self._handlers

    def handler_for(self, message_type: type | str) -> Handler | None:
        """The handler registered for ``message_type``, or None."""
        return self._handlers.get(_type_name(message_type))

    def replace_handler(self, message_type: type | str, handler: Handler) -> Handler:
        """Put ``handler`` in place of the one registered for ``message_type``; return the one replaced.

        Raises ``HandlerNotFound`` if none is registered (registering is ``register_handler``'s job).
        """
        name = _type_name(message_type)
        replaced = self._handlers.get(name)
        if replaced is None:
            raise HandlerNotFound(f"no {self._kind} handler registered for {name}")
        self._handlers[name] = handler
        return replaced

    async def _dispatch(self, message: Any) -> Any:
        name = type(message).__name__
        handler = self._handlers.get(name)
        if handler is None:
            raise HandlerNotFound(f"no {self._kind} handler registered for {name}")
        return await handler(message)


class CommandBus(_SingleHandlerBus):
    """Sends a command to its one handler and returns the handler's result."""

    _kind = "command"

    async def send(self, command: Any) -> Any:
        """Run the handler registered for ``type(command)``."""
        return await self._dispatch(command)


class QueryBus(_SingleHandlerBus):
    """Asks a query of its one handler (read models) and returns the answer."""

    _kind = "query"

    async def query(self, query: Any) -> Any:
        """Run the handler registered for ``type(query)``."""
        return await self._dispatch(query)


class Subscription(NamedTuple):
    """One subscriber of an event type, and who subscribed it (None if nobody said)."""

    handler: Handler
    owner: object | None


class EventBus:
    """Publishes events to every subscriber of their type, in subscription order.

    ``EventBus(sharing=other)`` is a bus on ``other``'s subscriptions (subscribing on either
    subscribes on both): a wrapper that changes how events are delivered builds one.
    """

    def __init__(self, *, sharing: EventBus | None = None) -> None:
        self._subscribers: dict[str, list[Handler]] = sharing._subscribers if sharing is not None else {}
        # Owners by handler, only for handlers subscribed with one (keeps the common path a plain list).
        self._owners: dict[Handler, object] = sharing._owners if sharing is not None else {}

    def subscribe(self, event_type: type | str, handler: Handler, *, owner: object | None = None) -> None:
        """Call ``handler(event)`` for each published event of ``event_type``.

        ``owner`` says who subscribed it, so all of one owner's subscriptions can be found and
        dropped together (``subscriptions``, ``unsubscribe_owner``); a handler given an owner
        must be hashable (functions and bound methods are).
        """
        self._subscribers.setdefault(_type_name(event_type), []).append(handler)
        if owner is not None:
            self._owners[handler] = owner

    def has_subscribers(self, event_type: type | str) -> bool:
        """Whether anyone listens to ``event_type`` (lets publishers skip building events)."""
        return bool(self._subscribers.get(_type_name(event_type)))

    def event_types(self) -> list[str]:
        """The event type names with at least one subscriber, in the order first subscribed."""
        return [name for name, handlers in self._subscribers.items() if handlers]

    def subscriptions(self, event_type: type | str) -> tuple[Subscription, ...]:
        """The subscribers of ``event_type`` with their owners, in delivery order (a snapshot)."""
        owners = self._owners
        return tuple(
            Subscription(handler, owners.get(handler) if owners else None)
            for handler in self._subscribers.get(_type_name(event_type), ())
        )

    def unsubscribe(self, event_type: type | str, handler: Handler) -> bool:
        """Stop calling ``handler`` for ``event_type`` (its first subscription); whether it was subscribed."""
        handlers = self._subscribers.get(_type_name(event_type), [])
        if handler not in handlers:
            return False
        handlers.remove(handler)
        return True

    def unsubscribe_owner(self, owner: object) -> list[str]:
        """Drop every subscription ``owner`` made; return the event types it listened to, in order."""
        owners = self._owners
        if owner is None or not owners:
            return []
        dropped: list[str] = []
        for name, handlers in self._subscribers.items():
            kept = [h for h in handlers if owners.get(h) is not owner]
            if len(kept) < len(handlers):
                handlers[:] = kept  # in place: a bus sharing these subscriptions sees the change
                dropped.append(name)
        return dropped

    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to each subscriber in turn.

        Every subscriber runs even if an earlier one fails; the failures are then
        raised (one as itself, several as an ``ExceptionGroup``).
        """
        handlers = self._subscribers.get(type(event).__name__)
        if not handlers:
            return
        errors: list[Exception] = []
        for handler in tuple(handlers):
            try:
                await handler(event)
            except Exception as error:  # noqa: BLE001 - re-raised below
                errors.append(error)
        raise_failures(errors, type(event).__name__)


def raise_failures(errors: list[Exception], what: str) -> None:
    """Raise what subscribers raised while delivering ``what``: one error as itself, several as a group."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ExceptionGroup(f"{len(errors)} subscribers of {what} failed", errors)
