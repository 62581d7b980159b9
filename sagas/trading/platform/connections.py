"""Handlers of users and broker connections: connect, disconnect (and redrive), fail, recover, purge."""

from __future__ import annotations

from typing import Any

from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.fencing import DomainError
from sagas.trading.model import AccountKind, BrokerConnection, ConnectionStatus, User
from sagas.trading.platform.aggregates import LIVE_STATUSES, PlatformAggregates, PurgeRecord


class ConnectionHandlers(PlatformAggregates):
    """Commands about users and their broker connections."""

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
