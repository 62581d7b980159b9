"""The broker API port: the seam a real broker adapter (or the lab's virtual broker) plugs into.

Errors say whether retrying can help: ``InvalidCredentials`` needs the user to
act and is never retried; ``RateLimited`` carries the broker's retry-after;
``BrokerTimeout`` means the call's outcome is unknown (it may have been applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from sagas.engine.errors import NonRetryableError, SagaError

OrderSide = Literal["buy", "sell"]
OrderUpdateKind = Literal["acknowledged", "fill", "rejected", "cancelled"]


class BrokerError(SagaError):
    """A broker call failed; ``retryable`` says whether trying again may succeed."""

    retryable = True


class BrokerUnavailable(BrokerError):
    """The broker refused or dropped the call (5xx, connection reset)."""


class BrokerTimeout(BrokerError):
    """No answer in time: the call may or may not have been applied."""


class RateLimited(BrokerError):
    """HTTP 429: too many calls; wait ``retry_after_seconds`` before the next."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message, retry_after_seconds)
        self.retry_after_seconds = retry_after_seconds

    def __str__(self) -> str:
        return f"{self.args[0]} (retry after {self.retry_after_seconds:g} s)"


class InvalidCredentials(BrokerError, NonRetryableError):
    """The broker rejected the credentials: only the user can fix this."""

    retryable = False


class NotConnected(BrokerUnavailable):
    """The connection has no open session at the broker (call ``connect`` first); retryable."""


class InvalidBrokerRequest(BrokerError, NonRetryableError):
    """The broker refused the request itself (unknown order, bad quantity, stream ended): never retried."""

    retryable = False


class StreamDisconnected(BrokerError):
    """The order/fill stream dropped; reconnect and resume from the last update."""


@dataclass(frozen=True, slots=True)
class DiscoveredAccount:
    """An account the broker reports for a connection."""

    external_id: str
    name: str
    kind: Literal["linked", "virtual"] = "linked"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order to place at the broker."""

    client_order_id: str
    account_external_id: str
    symbol: str
    side: OrderSide
    quantity: float
    limit_price: float | None = None


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One update on an order's stream: acknowledged, a (partial) fill, rejected or cancelled."""

    broker_order_id: str
    kind: OrderUpdateKind
    sequence: int
    fill_quantity: float = 0.0
    fill_price: float = 0.0
    reason: str | None = None


class BrokerApi(Protocol):
    """What sagas ask of a broker. Every call may raise a ``BrokerError``."""

    async def connect(self, connection_id: str, credentials: str) -> None:
        """Open a session for ``connection_id``."""
        ...

    async def health_check(self, connection_id: str) -> bool:
        """Whether the session for ``connection_id`` is healthy."""
        ...

    async def discover_accounts(self, connection_id: str) -> Sequence[DiscoveredAccount]:
        """The accounts the broker has for this connection."""
        ...

    async def place_order(self, connection_id: str, order: OrderRequest) -> str:
        """Submit ``order``; return the broker's order id (idempotent per ``client_order_id``)."""
        ...

    async def cancel_order(self, connection_id: str, broker_order_id: str) -> None:
        """Cancel an order (a no-op if it is already final)."""
        ...

    async def last_price(self, connection_id: str, symbol: str) -> float:
        """The symbol's last traded price (market data for stop-loss / take-profit)."""
        ...

    async def next_order_update(self, connection_id: str, broker_order_id: str, after_sequence: int) -> OrderUpdate:
        """Wait for the order's next update after ``after_sequence`` (the order/fill stream)."""
        ...

    async def disconnect(self, connection_id: str) -> None:
        """Close the session and release the adapter's resources."""
        ...
