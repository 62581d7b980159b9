"""Domain events of the trading platform, enriched with what the sagas they trigger need."""

from __future__ import annotations

from dataclasses import dataclass

from sagas.engine.events import Event


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConnectionEstablished(Event):
    """A connection is (again) connected; triggers the broker connection saga."""

    broker_connection_id: str
    user_id: str
    broker_id: str
    is_virtual: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerDisconnected(Event):
    """A connection was disconnected; enriched with everything the disconnection saga deletes."""

    broker_connection_id: str
    user_id: str
    broker_id: str
    is_virtual: bool
    disconnect_reason: str
    linked_account_ids: tuple[str, ...]
    virtual_account_ids: tuple[str, ...]
    automation_ids: tuple[str, ...]
    redrive: int = 0  # 0 for the user's disconnect; n for the n-th hand-over of an unfinished cleanup


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConnectionFailed(Event):
    """A connection's session failed; triggers the connection recovery saga."""

    broker_connection_id: str
    user_id: str
    broker_id: str
    reason: str
    requires_user_action: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerStreamingDisconnected(Event):
    """A connection's streaming session dropped; also triggers recovery."""

    broker_connection_id: str
    user_id: str
    broker_id: str
    reason: str = "stream_dropped"
    requires_user_action: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConnectionRecovered(Event):
    """The recovery saga brought a connection back."""

    broker_connection_id: str
    attempts: int


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConnectionRecoveryFailed(Event):
    """The recovery saga gave up; the user must be alerted."""

    broker_connection_id: str
    reason: str
    requires_user_action: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerAccountLinked(Event):
    """An account discovered through a connection was linked to it."""

    account_id: str
    broker_connection_id: str
    user_id: str
    broker_id: str
    external_id: str
    kind: str


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerAccountDeleted(Event):
    """An account was deleted."""

    account_id: str
    broker_connection_id: str
    user_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConnectionPurged(Event):
    """A disconnected connection was removed for good."""

    broker_connection_id: str
    user_id: str
    status_at_purge: str


@dataclass(frozen=True, kw_only=True, slots=True)
class UserAccountDeleted(Event):
    """A user deleted their account; enriched with every resource they own."""

    user_id: str
    connection_ids: tuple[str, ...]
    account_ids: tuple[str, ...]
    automation_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class UserHardDeleted(Event):
    """The user's record was removed after the cascade finished."""

    user_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderPlacedEvent(Event):
    """A user placed an order; enriched with the account's connection and broker."""

    order_id: str
    user_id: str
    account_id: str
    broker_connection_id: str
    broker_id: str
    account_external_id: str
    symbol: str
    side: str
    quantity: float
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderFilled(Event):
    """A (partial) fill was recorded on an order."""

    order_id: str
    quantity: float
    price: float
    filled_quantity: float
    order_quantity: float


@dataclass(frozen=True, kw_only=True, slots=True)
class PositionOpenedEvent(Event):
    """A fill opened a new position; triggers the position management saga."""

    position_id: str
    account_id: str
    broker_connection_id: str
    broker_id: str
    user_id: str
    symbol: str
    quantity: float
    average_price: float
    stop_loss: float | None = None
    take_profit: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PositionClosed(Event):
    """A position was closed."""

    position_id: str
    realized_pnl: float
