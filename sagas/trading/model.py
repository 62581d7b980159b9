"""The trading domain's aggregates: users, broker connections and accounts, automations, orders, positions."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple


class ConnectionStatus(enum.StrEnum):
    """Lifecycle of a broker connection."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"
    DISCONNECTED = "disconnected"
    PURGED = "purged"
    FAILED = "failed"


class AccountKind(enum.StrEnum):
    """A linked account lives at the broker; a virtual one in the virtual broker's own database."""

    LINKED = "linked"
    VIRTUAL = "virtual"


class OrderStatus(enum.StrEnum):
    """Lifecycle of an order."""

    PLACED = "placed"
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class PositionStatus(enum.StrEnum):
    """Lifecycle of a position."""

    OPEN = "open"
    CLOSED = "closed"


@dataclass
class User:
    """A platform user; ``deleted`` once their account is deleted."""

    user_id: str
    deleted: bool = False


@dataclass
class BrokerConnection:
    """A user's connection to one broker. ``version`` grows with every change (optimistic concurrency);
    ``connected_at`` is when the user last connected it (a recovery from ``failed`` does not count)."""

    connection_id: str
    user_id: str
    broker_id: str
    is_virtual: bool
    credentials: str
    status: ConnectionStatus = ConnectionStatus.CONNECTING
    version: int = 0
    connected_at: float = 0.0


@dataclass
class BrokerAccount:
    """An account discovered through a connection."""

    account_id: str
    connection_id: str
    user_id: str
    broker_id: str
    external_id: str
    kind: AccountKind = AccountKind.LINKED
    linked_by: str | None = None  # the saga that linked it: only its own compensation may unlink it


@dataclass
class Automation:
    """A trading automation bound to some of a user's accounts."""

    automation_id: str
    user_id: str
    account_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fill:
    """A (partial) execution of an order."""

    quantity: float
    price: float
    sequence: int


@dataclass
class Order:
    """An order and its fills."""

    order_id: str
    user_id: str
    account_id: str
    connection_id: str
    symbol: str
    side: str
    quantity: float
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    status: OrderStatus = OrderStatus.PLACED
    broker_order_id: str | None = None
    fills: list[Fill] = field(default_factory=list)

    @property
    def filled_quantity(self) -> float:
        """Quantity filled so far."""
        return sum(f.quantity for f in self.fills)


class AppliedFill(NamedTuple):
    """One order fill as a position took it: the position, the signed quantity (sells negative), the price."""

    position_id: str
    signed: float
    price: float


@dataclass
class Position:
    """Net holding of one symbol in one account, with its average entry price and realized P&L."""

    position_id: str
    account_id: str
    symbol: str
    quantity: float = 0.0
    average_price: float = 0.0
    realized_pnl: float = 0.0
    status: PositionStatus = PositionStatus.OPEN
    stop_loss: float | None = None
    take_profit: float | None = None
    fill_quantities: list[float] = field(default_factory=list)
