"""In-process async buses: commands and queries (one handler each), events (many subscribers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

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


class EventBus:
    """Publishes events to every subscriber of their type, in subscription order."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Handler]] = {}

    def subscribe(self, event_type: type | str, handler: Handler) -> None:
        """Call ``handler(event)`` for each published event of ``event_type``."""
        self._subscribers.setdefault(_type_name(event_type), []).append(handler)

    def has_subscribers(self, event_type: type | str) -> bool:
        """Whether anyone listens to ``event_type`` (lets publishers skip building events)."""
        return bool(self._subscribers.get(_type_name(event_type)))

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
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup(f"{len(errors)} subscribers of {type(event).__name__} failed", errors)
