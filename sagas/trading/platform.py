"""The trading platform's write model and command handlers.

How this works: ``TradingPlatform`` holds the aggregates (in production they
live in a database) and registers one handler per command on a ``CommandBus``.
A handler checks and changes aggregates, then publishes enriched events on the
``EventBus``; synchronous projections see them before the command returns,
asynchronous ones later. It also keeps a history of purges and deletions that
invariant checks read.

Fencing: commands a saga sends under a connection's lock carry the lock's
fencing token. The platform remembers the newest token it accepted per
connection and refuses an older one (``StaleFencingToken``) before changing
anything, so a holder that froze past its lock's TTL cannot write once the
next holder has. Every write a saga made (``saga_id`` set) is recorded in
``writes``, and every refused stale one in ``stale_writes``: with the lock
ledger, that is the ground truth of who changed a connection under which lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sagas.engine.buses import CommandBus, EventBus
from sagas.engine.errors import NonRetryableError
from sagas.engine.events import Event
from sagas.engine.randomness import IdSource
from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.fencing import ConnectionWrite, DomainError, StaleFencingToken, WriteFence
from sagas.trading.model import (
    AccountKind,
    AppliedFill,
    Automation,
    BrokerAccount,
    BrokerConnection,
    ConnectionStatus,
    Fill,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
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


class TradingPlatform:
    """Aggregates plus the handlers that change them."""

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

    def register(self, bus: CommandBus) -> None:
        """Register every command handler on ``bus``."""
        handlers: dict[type, Callable[[Any], Any]] = {
            c.CreateUser: self.create_user,
            c.ConnectBroker: self.connect_broker,
            c.DisconnectBroker: self.disconnect_broker,
            c.DisconnectAllBrokers: self.disconnect_all_brokers,
            c.MarkConnectionFailed: self.mark_connection_failed,
            c.MarkConnectionRecovered: self.mark_connection_recovered,
            c.LinkBrokerAccount: self.link_broker_account,
            c.DeleteBrokerAccount: self.delete_broker_account,
            c.UnlinkBrokerAccount: self.unlink_broker_account,
            c.DeleteVirtualBrokerData: self.delete_virtual_broker_data,
            c.CreateAutomation: self.create_automation,
            c.PlaceOrder: self.place_order,
            c.RecordOrderSubmitted: self.record_order_submitted,
            c.RecordOrderAcknowledged: self.record_order_acknowledged,
            c.RecordFill: self.record_fill,
            c.CloseOrder: self.close_order,
            c.ApplyFillsToPosition: self.apply_fills_to_position,
            c.RevertFillsFromPosition: self.revert_fills_from_position,
            c.SetPositionExits: self.set_position_exits,
            c.PurgeBrokerConnection: self.purge_broker_connection,
            c.FenceConnection: self.fence_connection,
            c.RedriveDisconnection: self.redrive_disconnection,
            c.DeleteUser: self.delete_user,
            c.HardDeleteUser: self.hard_delete_user,
        }
        for command_type, handler in handlers.items():
            bus.register_handler(command_type, handler)

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

    # -- users -------------------------------------------------------------

    async def create_user(self, command: c.CreateUser) -> str:
        """Register a user (idempotent)."""
        self.users.setdefault(command.user_id, User(command.user_id))
        return command.user_id

    async def delete_user(self, command: c.DeleteUser) -> dict[str, Any]:
        """Mark the user deleted and publish ``UserAccountDeleted`` with everything they own."""
        user = self.users.get(command.user_id)
        if user is None:
            raise DomainError(f"unknown user {command.user_id!r}")
        user.deleted = True
        connection_ids = tuple(
            cid
            for cid, conn in self.connections.items()
            if conn.user_id == user.user_id and conn.status is not ConnectionStatus.PURGED
        )
        account_ids = tuple(a.account_id for a in self.accounts.values() if a.user_id == user.user_id)
        automation_ids = tuple(a.automation_id for a in self.automations.values() if a.user_id == user.user_id)
        await self._publish(
            e.UserAccountDeleted,
            user_id=user.user_id,
            connection_ids=connection_ids,
            account_ids=account_ids,
            automation_ids=automation_ids,
        )
        return {"connection_ids": connection_ids, "account_ids": account_ids}

    async def hard_delete_user(self, command: c.HardDeleteUser) -> bool:
        """Remove the user record (idempotent)."""
        removed = self.users.pop(command.user_id, None) is not None
        if removed:
            await self._publish(e.UserHardDeleted, user_id=command.user_id)
        return removed

    # -- connections -------------------------------------------------------

    async def connect_broker(self, command: c.ConnectBroker) -> str:
        """Connect (or reconnect) the user's connection to a broker; publish ``BrokerConnectionEstablished``."""
        connection = next(
            (
                conn
                for conn in self.connections.values()
                if conn.user_id == command.user_id
                and conn.broker_id == command.broker_id
                and conn.status is not ConnectionStatus.PURGED
            ),
            None,
        )
        if connection is None:
            connection = BrokerConnection(
                self.ids.new_id("connection"),
                command.user_id,
                command.broker_id,
                command.is_virtual,
                command.credentials,
            )
            self.connections[connection.connection_id] = connection
        connection.status = ConnectionStatus.CONNECTED
        connection.credentials = command.credentials
        connection.version += 1
        connection.connected_at = self.clock()
        await self._publish(
            e.BrokerConnectionEstablished,
            broker_connection_id=connection.connection_id,
            user_id=connection.user_id,
            broker_id=connection.broker_id,
            is_virtual=connection.is_virtual,
        )
        return connection.connection_id

    async def disconnect_broker(self, command: c.DisconnectBroker) -> bool:
        """Disconnect a live connection and publish the enriched ``BrokerDisconnected`` (no-op otherwise)."""
        connection = self._connection(command.broker_connection_id)
        if connection.status not in LIVE_STATUSES:
            return False
        connection.status = ConnectionStatus.DISCONNECTED
        connection.version += 1
        await self._publish_disconnected(connection, command.reason, command.causation_id)
        return True

    async def _publish_disconnected(
        self, connection: BrokerConnection, reason: str, causation_id: str | None, redrive: int = 0
    ) -> None:
        """``BrokerDisconnected``, enriched with the accounts and automations the connection holds now."""
        accounts = self.accounts_of(connection.connection_id)
        account_ids = {a.account_id for a in accounts}
        await self._publish(
            e.BrokerDisconnected,
            causation_id=causation_id,
            broker_connection_id=connection.connection_id,
            user_id=connection.user_id,
            broker_id=connection.broker_id,
            is_virtual=connection.is_virtual,
            disconnect_reason=reason,
            linked_account_ids=tuple(a.account_id for a in accounts if a.kind is AccountKind.LINKED),
            virtual_account_ids=tuple(a.account_id for a in accounts if a.kind is AccountKind.VIRTUAL),
            automation_ids=tuple(
                a.automation_id for a in self.automations.values() if account_ids.intersection(a.account_ids)
            ),
            redrive=redrive,
        )

    async def redrive_disconnection(self, command: c.RedriveDisconnection) -> bool:
        """Publish ``BrokerDisconnected`` again for a connection still disconnected; False if it is not."""
        connection = self._connection(command.broker_connection_id)
        if connection.status is not ConnectionStatus.DISCONNECTED:
            return False
        await self._publish_disconnected(connection, command.reason, None, command.redrive)
        return True

    async def disconnect_all_brokers(self, command: c.DisconnectAllBrokers) -> dict[str, Any]:
        """Disconnect every live connection of a user; each emits its own ``BrokerDisconnected``."""
        live = [
            conn.connection_id
            for conn in self.connections.values()
            if conn.user_id == command.user_id and conn.status in LIVE_STATUSES
        ]
        for connection_id in live:
            await self.disconnect_broker(c.DisconnectBroker(connection_id, command.reason, command.causation_id))
        return {"disconnected_count": len(live), "connection_ids": live}

    async def mark_connection_failed(self, command: c.MarkConnectionFailed) -> None:
        """Record a failed session and publish ``BrokerConnectionFailed``."""
        connection = self._connection(command.broker_connection_id)
        connection.status = ConnectionStatus.FAILED
        connection.version += 1
        await self._publish(
            e.BrokerConnectionFailed,
            broker_connection_id=connection.connection_id,
            user_id=connection.user_id,
            broker_id=connection.broker_id,
            reason=command.reason,
            requires_user_action=command.requires_user_action,
        )

    async def mark_connection_recovered(self, command: c.MarkConnectionRecovered) -> bool:
        """Set a failed connection back to connected (no-op in any other status)."""
        connection = self._connection(command.broker_connection_id)
        if connection.status is not ConnectionStatus.FAILED:
            return False
        connection.status = ConnectionStatus.CONNECTED
        connection.version += 1
        return True

    async def purge_broker_connection(self, command: c.PurgeBrokerConnection) -> dict[str, Any]:
        """Purge a connection, unconditionally or only if it is in ``expected_status`` right now."""
        connection = self._connection(command.broker_connection_id)
        self._check_token(connection.connection_id, command)
        status = connection.status
        if status is ConnectionStatus.PURGED:
            return {"purged": False, "reason": "already_purged"}
        if command.expected_status is not None and status != command.expected_status:
            return {"purged": False, "reason": f"status_is_{status.value}"}
        if command.require_no_accounts and self.accounts_of(connection.connection_id):
            return {"purged": False, "reason": "accounts_exist_after_deletion"}
        connection.status = ConnectionStatus.PURGED
        connection.version += 1
        self._wrote(connection.connection_id, command)
        self.purges.append(PurgeRecord(self.clock(), connection.connection_id, connection.user_id, status.value))
        await self._publish(
            e.BrokerConnectionPurged,
            broker_connection_id=connection.connection_id,
            user_id=connection.user_id,
            status_at_purge=status.value,
        )
        return {"purged": True, "status_at_purge": status.value}

    # -- accounts and automations ------------------------------------------

    async def link_broker_account(self, command: c.LinkBrokerAccount) -> str:
        """Link an account (idempotent per connection and external id); publish ``BrokerAccountLinked``."""
        connection = self._connection(command.broker_connection_id)
        self._check_token(connection.connection_id, command)
        if connection.status is ConnectionStatus.PURGED:
            # As a foreign key would: a purged connection takes no accounts.
            raise DomainError(f"broker connection {connection.connection_id} is purged; cannot link accounts")
        if command.only_if_connected and connection.status is not ConnectionStatus.CONNECTED:
            raise ConnectionNotConnected(
                f"broker connection {connection.connection_id} is {connection.status.value}, not connected; "
                "linking now would add accounts its disconnection does not know about"
            )
        for account in self.accounts_of(connection.connection_id):
            if account.external_id == command.external_id:
                return account.account_id
        account = BrokerAccount(
            self.ids.new_id("account"),
            connection.connection_id,
            connection.user_id,
            connection.broker_id,
            command.external_id,
            AccountKind(command.kind),
            linked_by=command.saga_id,
        )
        self.accounts[account.account_id] = account
        self._wrote(connection.connection_id, command)
        if account.kind is AccountKind.VIRTUAL:
            self.virtual_broker_records[account.account_id] = connection.connection_id
        await self._publish(
            e.BrokerAccountLinked,
            account_id=account.account_id,
            broker_connection_id=connection.connection_id,
            user_id=connection.user_id,
            broker_id=connection.broker_id,
            external_id=account.external_id,
            kind=account.kind.value,
        )
        return account.account_id

    async def delete_broker_account(self, command: c.DeleteBrokerAccount) -> bool:
        """Delete an account (a no-op if it is already gone)."""
        account = self.accounts.get(command.account_id)
        if account is None:
            return False
        self._check_token(account.connection_id, command)
        connection = self.connections.get(account.connection_id)
        if command.only_if_disconnected and connection is not None and connection.status in LIVE_STATUSES:
            return False
        del self.accounts[command.account_id]
        self._wrote(account.connection_id, command)
        for automation in self.automations.values():
            if account.account_id in automation.account_ids:
                automation.account_ids.remove(account.account_id)
        await self._publish(
            e.BrokerAccountDeleted,
            account_id=account.account_id,
            broker_connection_id=account.connection_id,
            user_id=account.user_id,
        )
        return True

    async def unlink_broker_account(self, command: c.UnlinkBrokerAccount) -> bool:
        """Delete the connection's account for ``external_id`` (a no-op if there is none, or if it is
        another saga's and ``only_own`` is set)."""
        self._check_token(command.broker_connection_id, command)
        for account in self.accounts_of(command.broker_connection_id):
            if account.external_id == command.external_id:
                if command.only_own and account.linked_by != command.saga_id:
                    return False
                delete = c.DeleteBrokerAccount(
                    account.account_id, saga_id=command.saga_id, fencing_token=command.fencing_token
                )
                return await self.delete_broker_account(delete)
        return False

    async def delete_virtual_broker_data(self, command: c.DeleteVirtualBrokerData) -> int:
        """Delete the virtual broker's own records of these accounts; return how many existed."""
        if command.broker_connection_id is not None:
            self._check_token(command.broker_connection_id, command)
        deleted = sum(self.virtual_broker_records.pop(a, None) is not None for a in command.account_ids)
        if deleted and command.broker_connection_id is not None:
            self._wrote(command.broker_connection_id, command)
        return deleted

    async def create_automation(self, command: c.CreateAutomation) -> str:
        """Create an automation over some accounts."""
        automation = Automation(self.ids.new_id("automation"), command.user_id, list(command.account_ids))
        self.automations[automation.automation_id] = automation
        return automation.automation_id

    # -- orders ------------------------------------------------------------

    def _order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise DomainError(f"unknown order {order_id!r}")
        return order

    async def place_order(self, command: c.PlaceOrder) -> str:
        """Record an order on an existing account and publish ``OrderPlacedEvent``."""
        account = self.accounts.get(command.account_id)
        if account is None:
            raise DomainError(f"unknown account {command.account_id!r}")
        if command.side not in ("buy", "sell"):
            raise DomainError(f"order side must be 'buy' or 'sell', got {command.side!r}")
        if not command.quantity > 0:
            raise DomainError(f"order quantity must be > 0, got {command.quantity!r}")
        order = Order(
            self.ids.new_id("order"),
            command.user_id,
            account.account_id,
            account.connection_id,
            command.symbol,
            command.side,
            command.quantity,
            command.limit_price,
            command.stop_loss,
            command.take_profit,
        )
        self.orders[order.order_id] = order
        await self._publish(
            e.OrderPlacedEvent,
            causation_id=command.causation_id,
            order_id=order.order_id,
            user_id=order.user_id,
            account_id=account.account_id,
            broker_connection_id=account.connection_id,
            broker_id=account.broker_id,
            account_external_id=account.external_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            limit_price=order.limit_price,
            stop_loss=command.stop_loss,
            take_profit=command.take_profit,
        )
        return order.order_id

    async def record_order_submitted(self, command: c.RecordOrderSubmitted) -> None:
        """The broker took the order."""
        order = self._order(command.order_id)
        order.broker_order_id = command.broker_order_id
        if order.status is OrderStatus.PLACED:
            order.status = OrderStatus.SUBMITTED

    async def record_order_acknowledged(self, command: c.RecordOrderAcknowledged) -> None:
        """The broker acknowledged the order."""
        order = self._order(command.order_id)
        if order.status in (OrderStatus.PLACED, OrderStatus.SUBMITTED):
            order.status = OrderStatus.ACKNOWLEDGED

    async def record_fill(self, command: c.RecordFill) -> bool:
        """Record a fill once per sequence; publish ``OrderFilled``."""
        order = self._order(command.order_id)
        if any(f.sequence == command.sequence for f in order.fills):
            return False
        if order.filled_quantity + command.quantity > order.quantity + 1e-9:
            raise DomainError(f"fill of {command.quantity} would overfill order {order.order_id} ({order.quantity})")
        order.fills.append(Fill(command.quantity, command.price, command.sequence))
        filled = order.filled_quantity
        order.status = OrderStatus.FILLED if filled >= order.quantity - 1e-9 else OrderStatus.PARTIALLY_FILLED
        await self._publish(
            e.OrderFilled,
            order_id=order.order_id,
            quantity=command.quantity,
            price=command.price,
            filled_quantity=filled,
            order_quantity=order.quantity,
        )
        return True

    async def close_order(self, command: c.CloseOrder) -> None:
        """End an order as cancelled or rejected (a final status, filled included, stays as it is)."""
        order = self._order(command.order_id)
        if order.status not in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED):
            order.status = OrderStatus(command.status)

    # -- positions ---------------------------------------------------------

    def open_position(self, account_id: str, symbol: str) -> Position | None:
        """The open position of an account in a symbol, if any."""
        for position in self.positions.values():
            if (
                position.account_id == account_id
                and position.symbol == symbol
                and position.status is PositionStatus.OPEN
            ):
                return position
        return None

    async def apply_fills_to_position(self, command: c.ApplyFillsToPosition) -> dict[str, Any]:
        """Apply the order's fills (buys add at a new average price, sells realize P&L); idempotent per fill."""
        order = self._order(command.order_id)
        opened: Position | None = None
        position_id: str | None = None
        for fill in order.fills:
            key = f"{order.order_id}:{fill.sequence}"
            if key in self.applied_fills:
                position_id = self.applied_fills[key].position_id
                continue
            position = self.open_position(order.account_id, order.symbol)
            if position is None:
                if order.side == "sell":
                    raise DomainError(f"order {order.order_id} sells {order.symbol} with no open position")
                position = Position(self.ids.new_id("position"), order.account_id, order.symbol)
                self.positions[position.position_id] = position
                opened = opened or position
            signed = fill.quantity if order.side == "buy" else -fill.quantity
            self.applied_fills[key] = AppliedFill(position.position_id, signed, fill.price)
            _take_fill(position, signed, fill.price)
            position_id = position.position_id
            if position.status is PositionStatus.CLOSED:
                await self._publish(
                    e.PositionClosed, position_id=position.position_id, realized_pnl=position.realized_pnl
                )
        if opened is not None:
            account = self.accounts[order.account_id]
            await self._publish(
                e.PositionOpenedEvent,
                position_id=opened.position_id,
                account_id=opened.account_id,
                broker_connection_id=account.connection_id,
                broker_id=account.broker_id,
                user_id=order.user_id,
                symbol=opened.symbol,
                quantity=opened.quantity,
                average_price=opened.average_price,
                stop_loss=order.stop_loss,
                take_profit=order.take_profit,
            )
        return {"position_id": position_id}

    async def revert_fills_from_position(self, command: c.RevertFillsFromPosition) -> int:
        """Undo the order's applied fills; return how many were undone.

        Each position they touched is recomputed from the fills it keeps, in the order it took them:
        restoring the figures saved before the order's fills would also undo what other orders'
        fills, applied since, did to its average price and realized P&L.
        """
        order = self._order(command.order_id)
        touched: list[str] = []
        undone = 0
        for fill in order.fills:
            applied = self.applied_fills.pop(f"{order.order_id}:{fill.sequence}", None)
            if applied is None:
                continue
            undone += 1
            if applied.position_id not in touched:
                touched.append(applied.position_id)
        for position_id in touched:
            position = self.positions[position_id]
            position.quantity = position.average_price = position.realized_pnl = 0.0
            position.fill_quantities.clear()
            for kept in self.applied_fills.values():
                if kept.position_id == position_id:
                    _take_fill(position, kept.signed, kept.price)
            position.status = PositionStatus.OPEN if abs(position.quantity) > 1e-9 else PositionStatus.CLOSED
        return undone

    async def set_position_exits(self, command: c.SetPositionExits) -> None:
        """Set a position's stop-loss and take-profit."""
        position = self.positions.get(command.position_id)
        if position is None:
            raise DomainError(f"unknown position {command.position_id!r}")
        position.stop_loss, position.take_profit = command.stop_loss, command.take_profit


def _take_fill(position: Position, signed: float, price: float) -> None:
    """One fill into a position: a buy adds at a new average price, a sell realizes P&L at the average."""
    if signed > 0:
        total = position.quantity + signed
        position.average_price = (position.quantity * position.average_price + signed * price) / total if total else 0.0
    else:
        position.realized_pnl += (price - position.average_price) * -signed
    position.quantity += signed
    position.fill_quantities.append(signed)
    if abs(position.quantity) < 1e-9:
        position.quantity = 0.0
        position.status = PositionStatus.CLOSED


__all__ = [
    "ConnectionNotConnected",
    "ConnectionWrite",
    "DomainError",
    "PurgeRecord",
    "StaleFencingToken",
    "TradingPlatform",
]
