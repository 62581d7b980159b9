"""The trading platform's write model and command handlers.

How this works: ``TradingPlatform`` holds the aggregates (in production they
live in a database) and registers one handler per command on a ``CommandBus``.
A handler checks and changes aggregates, then publishes enriched events on the
``EventBus``; synchronous projections see them before the command returns,
asynchronous ones later. It also keeps a history of purges and deletions that
invariant checks read. The handlers are grouped by aggregate in this package's
modules (``connections``, ``accounts``, ``orders``) over ``aggregates``, which holds
the state and what every handler uses.

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
from typing import Any

from sagas.engine.buses import CommandBus
from sagas.trading import commands as c
from sagas.trading.fencing import ConnectionWrite, DomainError, StaleFencingToken
from sagas.trading.platform.accounts import AccountHandlers
from sagas.trading.platform.aggregates import LIVE_STATUSES, ConnectionNotConnected, PurgeRecord
from sagas.trading.platform.connections import ConnectionHandlers
from sagas.trading.platform.orders import OrderHandlers


class TradingPlatform(ConnectionHandlers, AccountHandlers, OrderHandlers):
    """Aggregates plus the handlers that change them."""

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


__all__ = [
    "LIVE_STATUSES",
    "ConnectionNotConnected",
    "ConnectionWrite",
    "DomainError",
    "PurgeRecord",
    "StaleFencingToken",
    "TradingPlatform",
]
