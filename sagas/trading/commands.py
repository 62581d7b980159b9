"""Commands (change the write model) and queries (read the read models) of the trading domain.

Commands a saga sends about a broker connection carry ``saga_id`` (who writes: the write model
records it with every write it accepts, and a linked account remembers the saga that linked it)
and ``fencing_token`` (the token of the connection's lock the saga holds, if it holds one: the
write model refuses a token older than the newest it has accepted for that connection).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CreateUser:
    """Register a user."""

    user_id: str


@dataclass(frozen=True, slots=True)
class ConnectBroker:
    """Connect ``user_id`` to ``broker_id``; reuses the user's unpurged connection to that broker."""

    user_id: str
    broker_id: str
    is_virtual: bool = False
    credentials: str = "valid"


@dataclass(frozen=True, slots=True)
class DisconnectBroker:
    """Disconnect a connection; emits the enriched ``BrokerDisconnected``."""

    broker_connection_id: str
    reason: str = "user_requested"
    causation_id: str | None = None


@dataclass(frozen=True, slots=True)
class DisconnectAllBrokers:
    """Disconnect every live connection of a user (each one triggers a disconnection saga)."""

    user_id: str
    reason: str = "user_deleted"
    causation_id: str | None = None


@dataclass(frozen=True, slots=True)
class MarkConnectionFailed:
    """Record that a connection's session failed (triggers recovery)."""

    broker_connection_id: str
    reason: str
    requires_user_action: bool = False


@dataclass(frozen=True, slots=True)
class MarkConnectionRecovered:
    """Record that a failed connection is connected again."""

    broker_connection_id: str


@dataclass(frozen=True, slots=True)
class LinkBrokerAccount:
    """Link a discovered account to a connection (idempotent per connection and external id).

    ``only_if_connected``: refuse (``ConnectionNotConnected``) unless the connection is connected
    right now, so a slow discovery cannot link accounts into a connection its user has since
    disconnected, behind the back of the enriched ``BrokerDisconnected`` already published.
    """

    broker_connection_id: str
    external_id: str
    kind: str = "linked"
    only_if_connected: bool = False
    saga_id: str | None = None
    fencing_token: int | None = None


@dataclass(frozen=True, slots=True)
class UnlinkBrokerAccount:
    """Delete the account a connection has for an external id, if any (idempotent).

    ``only_own``: only if ``saga_id`` linked it, so a compensation undoes its own links and never
    an account that an earlier connection saga linked (a later link of it was idempotent).
    """

    broker_connection_id: str
    external_id: str
    only_own: bool = False
    saga_id: str | None = None
    fencing_token: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteBrokerAccount:
    """Delete an account (idempotent: deleting a deleted account is a no-op).

    ``only_if_disconnected``: refuse while the account's connection is connected again.
    """

    account_id: str
    only_if_disconnected: bool = False
    saga_id: str | None = None
    fencing_token: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteVirtualBrokerData:
    """Delete a virtual broker's own records of some accounts (idempotent).

    ``broker_connection_id`` names the connection they belong to when the sender writes under
    that connection's lock (its ``fencing_token`` is checked against that connection).
    """

    account_ids: tuple[str, ...]
    broker_connection_id: str | None = None
    saga_id: str | None = None
    fencing_token: int | None = None


@dataclass(frozen=True, slots=True)
class RedriveDisconnection:
    """A disconnection saga that ends without its purge hands the cleanup to a fresh saga.

    If the connection is still disconnected, the write model publishes ``BrokerDisconnected``
    again, enriched with what the connection holds now, as the ``redrive``-th hand-over; otherwise
    (reconnected, or purged meanwhile) there is nothing left to hand over.
    """

    broker_connection_id: str
    reason: str
    redrive: int
    saga_id: str


@dataclass(frozen=True, slots=True)
class FenceConnection:
    """A saga that just took a connection's lock announces its fencing token to the write model.

    From then on every write about the connection that carries an older token is refused, so a
    holder whose TTL ran out while it was frozen can change nothing once the new holder acts. The
    new holder sends this before it reads anything, so what it reads is not changed under it.
    """

    broker_connection_id: str
    fencing_token: int
    saga_id: str


@dataclass(frozen=True, slots=True)
class CreateAutomation:
    """Create an automation over some accounts."""

    user_id: str
    account_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PurgeBrokerConnection:
    """Remove a connection for good.

    ``expected_status`` set: purge only if the connection is in that status at
    the moment the command runs (an atomic check on the write model), else
    refuse. None: purge unconditionally, as the seed's saga does after its
    query-based re-validation. ``require_no_accounts``: also refuse while the
    write model still has accounts on the connection (ones linked after the
    event that started the cleanup was enriched), which a lagging read model
    may not show yet.
    """

    broker_connection_id: str
    expected_status: str | None = None
    require_no_accounts: bool = False
    saga_id: str | None = None
    fencing_token: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteUser:
    """Delete a user's account; emits the enriched ``UserAccountDeleted``."""

    user_id: str


@dataclass(frozen=True, slots=True)
class HardDeleteUser:
    """Remove the user's record after the cascade."""

    user_id: str


# -- queries ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetBrokerConnectionDetailsQuery:
    """A connection's details as the (synchronous) connection read model sees them, or None."""

    broker_connection_id: str


@dataclass(frozen=True, slots=True)
class GetAccountsByConnectionQuery:
    """Account ids of a connection as the (asynchronous, possibly lagging) account read model sees them."""

    broker_connection_id: str


@dataclass(frozen=True, slots=True)
class GetWriteModelAccountsQuery:
    """Account ids of a connection as the write model holds them right now (authoritative, never lags).

    For safety checks before an irreversible step, when a lagging read model cannot decide.
    """

    broker_connection_id: str


# -- orders and positions ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Place an order on an account; emits ``OrderPlacedEvent``. Stop-loss/take-profit apply to the position."""

    user_id: str
    account_id: str
    symbol: str
    side: str
    quantity: float
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    causation_id: str | None = None


@dataclass(frozen=True, slots=True)
class RecordOrderSubmitted:
    """The broker accepted the order under ``broker_order_id``."""

    order_id: str
    broker_order_id: str


@dataclass(frozen=True, slots=True)
class RecordOrderAcknowledged:
    """The broker acknowledged the order."""

    order_id: str


@dataclass(frozen=True, slots=True)
class RecordFill:
    """A (partial) fill; idempotent per (order, sequence)."""

    order_id: str
    quantity: float
    price: float
    sequence: int


@dataclass(frozen=True, slots=True)
class CloseOrder:
    """End an order as cancelled or rejected (idempotent)."""

    order_id: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class ApplyFillsToPosition:
    """Apply an order's fills to the account's position in its symbol (idempotent per fill)."""

    order_id: str


@dataclass(frozen=True, slots=True)
class RevertFillsFromPosition:
    """Undo what ``ApplyFillsToPosition`` did for an order (the compensation)."""

    order_id: str


@dataclass(frozen=True, slots=True)
class SetPositionExits:
    """Set a position's stop-loss and take-profit prices."""

    position_id: str
    stop_loss: float | None
    take_profit: float | None


@dataclass(frozen=True, slots=True)
class GetPositionQuery:
    """A position as the write model holds it (positions are read synchronously)."""

    position_id: str
