"""Read models of the trading platform, the projections that feed them, and the query handlers.

The connection read model is synchronous (applied while the command that
changed the connection publishes its event, as the seed's "SYNC projection
check" assumes); the account read model is asynchronous: a projection worker
applies its events later, so a query can see accounts that were already
deleted. That lag is what the seed's eventual-consistency poll exists for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sagas.engine.buses import EventBus, QueryBus
from sagas.engine.events import Event
from sagas.trading import commands as c
from sagas.trading import events as e


class Projection(Protocol):
    """Applies events of some types to a read model."""

    name: str
    event_types: tuple[type[Event], ...]

    async def apply(self, event: Event) -> None:
        """Apply one event."""
        ...


class ProjectionWorker(Protocol):
    """Applies a projection's events later, in order (the lab's lagging worker implements this)."""

    def enqueue(self, projection: Projection, event: Event) -> None:
        """Queue ``event`` for ``projection``."""
        ...


def subscribe_sync(bus: EventBus, projection: Projection) -> None:
    """Apply ``projection`` as part of publishing (before the command returns)."""
    for event_type in projection.event_types:
        bus.subscribe(event_type, projection.apply)


def subscribe_async(bus: EventBus, projection: Projection, worker: ProjectionWorker) -> None:
    """Hand ``projection``'s events to ``worker`` to be applied later."""

    def enqueuer() -> Callable[[Event], Awaitable[None]]:
        async def enqueue(event: Event) -> None:
            worker.enqueue(projection, event)

        return enqueue

    for event_type in projection.event_types:
        bus.subscribe(event_type, enqueuer())


@dataclass(frozen=True, slots=True)
class ConnectionDetails:
    """What the connection read model knows of a connection."""

    broker_connection_id: str
    user_id: str
    broker_id: str
    is_virtual: bool
    status: str


class ConnectionReadModel:
    """Connection details by id (synchronous projection)."""

    name = "connections"
    event_types: tuple[type[Event], ...] = (
        e.BrokerConnectionEstablished,
        e.BrokerDisconnected,
        e.BrokerConnectionFailed,
        e.BrokerConnectionRecovered,
        e.BrokerConnectionPurged,
    )

    def __init__(self) -> None:
        self.rows: dict[str, ConnectionDetails] = {}

    async def apply(self, event: Event) -> None:
        """Apply one connection event."""
        if isinstance(event, e.BrokerConnectionEstablished):
            self.rows[event.broker_connection_id] = ConnectionDetails(
                event.broker_connection_id, event.user_id, event.broker_id, event.is_virtual, "connected"
            )
            return
        row = self.rows.get(getattr(event, "broker_connection_id", ""))
        if row is None:
            return
        status = {
            e.BrokerDisconnected: "disconnected",
            e.BrokerConnectionFailed: "failed",
            e.BrokerConnectionRecovered: "connected",
            e.BrokerConnectionPurged: "purged",
        }[type(event)]
        self.rows[row.broker_connection_id] = ConnectionDetails(
            row.broker_connection_id, row.user_id, row.broker_id, row.is_virtual, status
        )

    async def details(self, query: c.GetBrokerConnectionDetailsQuery) -> ConnectionDetails | None:
        """Query handler for ``GetBrokerConnectionDetailsQuery``."""
        return self.rows.get(query.broker_connection_id)


class AccountReadModel:
    """Account ids by connection (asynchronous projection)."""

    name = "accounts"
    event_types: tuple[type[Event], ...] = (e.BrokerAccountLinked, e.BrokerAccountDeleted)

    def __init__(self) -> None:
        self.by_connection: dict[str, list[str]] = {}

    async def apply(self, event: Event) -> None:
        """Apply one account event."""
        if isinstance(event, e.BrokerAccountLinked):
            ids = self.by_connection.setdefault(event.broker_connection_id, [])
            if event.account_id not in ids:
                ids.append(event.account_id)
        elif isinstance(event, e.BrokerAccountDeleted):
            ids = self.by_connection.get(event.broker_connection_id, [])
            if event.account_id in ids:
                ids.remove(event.account_id)

    async def accounts(self, query: c.GetAccountsByConnectionQuery) -> list[str]:
        """Query handler for ``GetAccountsByConnectionQuery``."""
        return list(self.by_connection.get(query.broker_connection_id, ()))


class ImmediateProjectionWorker:
    """A worker that applies each event at once (no lag): production without a queue, and tests."""

    def __init__(self) -> None:
        self._pending: list[tuple[Projection, Event]] = []

    def enqueue(self, projection: Projection, event: Event) -> None:
        """Queue the event; ``drain()`` applies what is queued."""
        self._pending.append((projection, event))

    async def drain(self) -> None:
        """Apply every queued event in order."""
        while self._pending:
            projection, event = self._pending.pop(0)
            await projection.apply(event)


@dataclass
class ReadModels:
    """The platform's read models, wired to a bus."""

    connections: ConnectionReadModel
    accounts: AccountReadModel


def install_read_models(event_bus: EventBus, query_bus: QueryBus, worker: ProjectionWorker | None) -> ReadModels:
    """Subscribe the projections and register the query handlers.

    With ``worker`` None the account projection is applied synchronously too (no lag).
    """
    models = ReadModels(ConnectionReadModel(), AccountReadModel())
    subscribe_sync(event_bus, models.connections)
    if worker is None:
        subscribe_sync(event_bus, models.accounts)
    else:
        subscribe_async(event_bus, models.accounts, worker)
    handlers: dict[type, Callable[[Any], Awaitable[Any]]] = {
        c.GetBrokerConnectionDetailsQuery: models.connections.details,
        c.GetAccountsByConnectionQuery: models.accounts.accounts,
    }
    for query_type, handler in handlers.items():
        query_bus.register_handler(query_type, handler)
    return models
