"""Commands (change the write model) and queries (read the read models) of the trading domain."""

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
    """Link a discovered account to a connection (idempotent per connection and external id)."""

    broker_connection_id: str
    external_id: str
    kind: str = "linked"


@dataclass(frozen=True, slots=True)
class UnlinkBrokerAccount:
    """Delete the account a connection has for an external id, if any (idempotent)."""

    broker_connection_id: str
    external_id: str


@dataclass(frozen=True, slots=True)
class DeleteBrokerAccount:
    """Delete an account (idempotent: deleting a deleted account is a no-op)."""

    account_id: str


@dataclass(frozen=True, slots=True)
class DeleteVirtualBrokerData:
    """Delete a virtual broker's own records of some accounts (idempotent)."""

    account_ids: tuple[str, ...]


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
    query-based re-validation.
    """

    broker_connection_id: str
    expected_status: str | None = None


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
