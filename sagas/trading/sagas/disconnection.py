"""Broker disconnection saga: clean up everything a disconnected connection left, then purge it.

The eight steps of the seed guide, with its fragile choices behind
``SagaConfig.variants`` (see ``SagaVariants``): the lock that, when not
acquired, sleeps 3 s and proceeds; and the purge that re-validates with
queries and then purges unconditionally.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagas.engine.errors import SagaAborted
from sagas.engine.retry import RetryConfig, retry_async
from sagas.engine.step import SagaStep
from sagas.infra.cache import is_critical_disconnect_reason
from sagas.infra.safe_ops import safe_delete, safe_set
from sagas.trading import commands as c
from sagas.trading.deps import require_fields
from sagas.trading.sagas.base import TradingSaga, connection_lock_key

ENRICHED_FIELDS = (
    "broker_connection_id",
    "user_id",
    "broker_id",
    "is_virtual",
    "disconnect_reason",
    "linked_account_ids",
    "virtual_account_ids",
    "automation_ids",
)
LOCK_NOT_ACQUIRED_SLEEP_SECONDS = 3.0
READ_MODEL_SETTLE_SECONDS = 0.15


class AccountsStillInReadModel(RuntimeError):
    """The account read model still lists accounts the saga deleted (projection lag)."""


class BrokerDisconnectionSaga(TradingSaga):
    """BrokerDisconnected -> lock and race check, caches, accounts, virtual data, consistency, adapter, purge."""

    def get_saga_type(self) -> str:
        return "BrokerDisconnectionSaga"

    def define_steps(self) -> list[SagaStep]:
        undo = self._nothing_to_undo
        return [
            SagaStep(
                "validate_disconnection",
                self._validate_disconnection,
                self._release_lock,
                timeout_seconds=self.lock_wait_seconds if self.deps.config.variants.disconnect_lock == "safe" else 30,
            ),
            SagaStep("clear_broker_cache", self._clear_broker_cache, undo, timeout_seconds=10, retry_count=2),
            SagaStep("delete_broker_accounts", self._delete_broker_accounts, undo, timeout_seconds=30, retry_count=2),
            SagaStep("cleanup_virtual_broker", self._cleanup_virtual_broker, undo, timeout_seconds=30, retry_count=2),
            SagaStep("validate_accounts_deleted", self._validate_accounts_deleted, undo, timeout_seconds=60),
            SagaStep("clear_adapter_resources", self._clear_adapter_resources, undo, timeout_seconds=30, retry_count=2),
            SagaStep("final_cache_cleanup", self._final_cache_cleanup, undo, timeout_seconds=10, retry_count=2),
            SagaStep("purge_connection", self._purge_connection, undo, timeout_seconds=30),
        ]

    def poll_policies(self) -> Mapping[str, RetryConfig]:
        """Step 5 polls the account read model with the configured eventual-consistency policy."""
        return {"validate_accounts_deleted": self.deps.config.consistency_retry}

    # -- step 1 ------------------------------------------------------------

    async def _validate_disconnection(self, **context: Any) -> dict[str, Any]:
        """Step 1: take the disconnect lock and check the connection was not reconnected meanwhile."""
        require_fields(context, "BrokerDisconnected", ENRICHED_FIELDS)
        connection_id = context["broker_connection_id"]
        clock = context["clock"]
        key = connection_lock_key(connection_id)
        owner = f"{context['saga_id']}:{clock.now():.6f}"
        ttl = self.deps.config.lock_ttl_seconds
        if self.deps.config.variants.disconnect_lock == "safe":
            # Wait for the connection's lock (another disconnection, or a reconnect's discovery).
            await self.acquire_connection_lock(context)
            try:
                await self._check_not_reconnected(context)
            except BaseException:
                await self.release_connection_lock(context)
                raise
            # Held for the whole saga: released after the purge, or by this step's compensation.
            return {"lock_acquired": True, "lock_owner": context["saga_id"]}
        lock_acquired = await safe_set(self.deps.redis, key, owner, ttl_seconds=ttl, nx=True)
        if not lock_acquired:
            # The seed: another process may be disconnecting; wait and carry on regardless.
            await clock.sleep(LOCK_NOT_ACQUIRED_SLEEP_SECONDS)
        try:
            await self._check_not_reconnected(context)
            return {"lock_acquired": lock_acquired}
        finally:
            if lock_acquired:
                await safe_delete(self.deps.redis, key)

    async def _check_not_reconnected(self, context: dict[str, Any]) -> None:
        details = await context["query_bus"].query(c.GetBrokerConnectionDetailsQuery(context["broker_connection_id"]))
        if details is not None and details.status == "connected":
            raise SagaAborted("connection_reconnected")
        if details is not None and details.status == "purged":
            raise SagaAborted("already_purged")

    async def _release_lock(self, **context: Any) -> None:
        """Compensation of step 1: the safe variant releases the lock it holds for the whole saga."""
        if context.get("lock_owner"):
            await self.deps.locks.release(connection_lock_key(context["broker_connection_id"]), context["lock_owner"])

    # -- steps 2 to 7 ------------------------------------------------------

    async def _clear_broker_cache(self, **context: Any) -> dict[str, Any]:
        """Step 2: clear the connection's cache, or everything of the user's broker for critical reasons."""
        reason = context["disconnect_reason"]
        if is_critical_disconnect_reason(reason):
            cleared = await self.deps.cache.clear_all_user_broker_data(context["user_id"], context["broker_id"])
            return {"cache_cleared": True, "cleanup_type": "nuclear", "entries_cleared": cleared}
        cleared = await self.deps.cache.clear_connection_cache(context["broker_connection_id"])
        return {"cache_cleared": True, "cleanup_type": "standard", "entries_cleared": cleared}

    async def _delete_broker_accounts(self, **context: Any) -> dict[str, Any]:
        """Step 3: delete the accounts named by the enriched event (no queries: TRUE SAGA)."""
        account_ids = [*context["linked_account_ids"], *context["virtual_account_ids"]]
        # The safe variant deletes only while the connection is still disconnected (checked by the
        # write model): a delayed disconnection must not wipe a connection the user has reconnected.
        guarded = self.deps.config.variants.purge == "safe"
        for account_id in account_ids:
            await context["command_bus"].send(c.DeleteBrokerAccount(account_id, only_if_disconnected=guarded))
        return {"accounts_deleted": len(account_ids)}

    async def _cleanup_virtual_broker(self, **context: Any) -> dict[str, Any]:
        """Step 4: a virtual broker keeps its own records of its accounts; delete those too."""
        if not context["is_virtual"]:
            return {"virtual_records_deleted": 0}
        deleted = await context["command_bus"].send(c.DeleteVirtualBrokerData(tuple(context["virtual_account_ids"])))
        return {"virtual_records_deleted": deleted}

    async def _validate_accounts_deleted(self, **context: Any) -> dict[str, Any]:
        """Step 5: poll the (lagging) account read model until it shows no accounts (the seed's settings)."""
        connection_id = context["broker_connection_id"]
        clock = context["clock"]
        query_bus = context["query_bus"]

        async def check_accounts_deleted() -> bool:
            await clock.sleep(READ_MODEL_SETTLE_SECONDS)
            await self.deps.cache.clear_connection_cache(connection_id)
            accounts = await query_bus.query(c.GetAccountsByConnectionQuery(connection_id))
            if accounts:
                raise AccountsStillInReadModel(f"Accounts still in read model: {len(accounts)}")
            return True

        await retry_async(check_accounts_deleted, self.deps.config.consistency_retry, clock=clock, rng=context["rng"])
        return {"accounts_validated": True}

    async def _clear_adapter_resources(self, **context: Any) -> dict[str, Any]:
        """Step 6: close the broker adapter's session for this connection."""
        await self.deps.broker(context["broker_id"]).disconnect(context["broker_connection_id"])
        return {"adapter_cleared": True}

    async def _final_cache_cleanup(self, **context: Any) -> dict[str, Any]:
        """Step 7: clear what was cached while the saga ran."""
        cleared = await self.deps.cache.clear_connection_cache(context["broker_connection_id"])
        return {"final_entries_cleared": cleared}

    # -- step 8 ------------------------------------------------------------

    async def _purge_connection(self, **context: Any) -> dict[str, Any]:
        """Step 8: re-validate right before the irreversible purge, then purge."""
        connection_id = context["broker_connection_id"]
        query_bus = context["query_bus"]
        try:
            details = await query_bus.query(c.GetBrokerConnectionDetailsQuery(connection_id))
            if details is not None and details.status == "connected":
                return {"purged": False, "reason": "connection_reconnected", "aborted": True}
            accounts = await query_bus.query(c.GetAccountsByConnectionQuery(connection_id))
            if accounts:
                return {"purged": False, "reason": "accounts_exist_after_deletion", "aborted": True}
            safe = self.deps.config.variants.purge == "safe"
            purge = c.PurgeBrokerConnection(
                connection_id, expected_status="disconnected" if safe else None, require_no_accounts=safe
            )
            result = await context["command_bus"].send(purge)
            if not result["purged"]:
                return {"purged": False, "reason": result["reason"], "aborted": True}
            return {"purged": True}
        finally:
            if context.get("lock_owner"):
                await self.deps.locks.release(connection_lock_key(connection_id), context["lock_owner"])
