"""The platform's aggregates (in production they live in a database) and what every handler uses:
publishing enriched events, looking a connection up, and the fence that refuses stale writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sagas.engine.buses import EventBus
from sagas.engine.errors import NonRetryableError
from sagas.engine.events import Event
from sagas.engine.randomness import IdSource
from sagas.trading import commands as c
from sagas.trading.fencing import ConnectionWrite, DomainError, WriteFence
from sagas.trading.model import (
    AppliedFill,
    Automation,
    BrokerAccount,
    BrokerConnection,
    ConnectionStatus,
    Order,
    Position,
    User,
)

LIVE_STATUSES = (ConnectionStatus.CONNECTING, ConnectionStatus.CONNECTED, ConnectionStatus.FAILED)


class ConnectionNotConnected(DomainError, NonRetryableError):
    """A guarded link into a connection that is not connected (its user disconnected it meanwhile)."""


@dataclass(frozen=True, slots=True)
class PurgeRecord:
    """A purge as it happened: when, which connection, and its status at that moment."""

    t: float
    broker_connection_id: str
    user_id: str
    status_at_purge: str


class PlatformAggregates:
    """The aggregates, and what every handler uses: publishing, lookups and the write fence.

    The handlers live in mixins over this class, one module per group of aggregates;
    ``TradingPlatform`` puts them together.
    """

    def __init__(self, event_bus: EventBus, ids: IdSource, clock: Callable[[], float]) -> None:
        self.event_bus = event_bus
        self.ids = ids
        self.clock = clock
        self.users: dict[str, User] = {}
        self.connections: dict[str, BrokerConnection] = {}
        self.accounts: dict[str, BrokerAccount] = {}
        self.automations: dict[str, Automation] = {}
        self.virtual_broker_records: dict[str, str] = {}  # account id -> connection id, in the VB's own store
        self.purges: list[PurgeRecord] = []
        self.fence = WriteFence(clock)
        self.orders: dict[str, Order] = {}
        self.positions: dict[str, Position] = {}
        # fill key (order id:sequence) -> the fill as its position took it, in the order they were applied
        self.applied_fills: dict[str, AppliedFill] = {}

    # -- helpers -----------------------------------------------------------

    async def _publish(self, event_type: type[Event], causation_id: str | None = None, **data: Any) -> None:
        await self.event_bus.publish(event_type(event_id=self.ids.new_id("event"), causation_id=causation_id, **data))

    def _connection(self, connection_id: str) -> BrokerConnection:
        connection = self.connections.get(connection_id)
        if connection is None:
            raise DomainError(f"unknown broker connection {connection_id!r}")
        return connection

    def accounts_of(self, connection_id: str) -> list[BrokerAccount]:
        """The accounts linked to a connection, in creation order."""
        return [a for a in self.accounts.values() if a.connection_id == connection_id]

    # -- fencing -----------------------------------------------------------

    def _check_token(self, connection_id: str, command: Any) -> None:
        """Refuse ``command`` if its fencing token is stale (``StaleFencingToken``), before it changes anything."""
        self.fence.check(connection_id, command)

    def _wrote(self, connection_id: str, command: Any) -> None:
        self.fence.record(connection_id, command)

    @property
    def writes(self) -> list[ConnectionWrite]:
        """Every write a saga made about a connection, in the order they took effect."""
        return self.fence.writes

    @property
    def stale_writes(self) -> list[ConnectionWrite]:
        """Every write refused for a stale fencing token."""
        return self.fence.stale_writes

    @property
    def fences(self) -> dict[str, int]:
        """The newest fencing token accepted per connection."""
        return self.fence.fences

    async def fence_connection(self, command: c.FenceConnection) -> int:
        """Accept a new lock holder's token for a connection; return it (``StaleFencingToken`` if older)."""
        self._connection(command.broker_connection_id)
        self._check_token(command.broker_connection_id, command)
        self._wrote(command.broker_connection_id, command)
        return command.fencing_token
