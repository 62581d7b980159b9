"""Handlers of broker accounts (link, delete, unlink, the virtual broker's records) and automations."""

from __future__ import annotations

from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.fencing import DomainError
from sagas.trading.model import AccountKind, Automation, BrokerAccount, ConnectionStatus
from sagas.trading.platform.aggregates import LIVE_STATUSES, ConnectionNotConnected, PlatformAggregates


class AccountHandlers(PlatformAggregates):
    """Commands about broker accounts and the automations over them."""

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
