"""Broker disconnection saga: clean up everything a disconnected connection left, then purge it.

The eight steps of the seed guide, with its fragile choices behind
``SagaConfig.variants`` (see ``SagaVariants``): the lock that, when not
acquired, sleeps 3 s and proceeds; and the purge that re-validates with
queries and then purges unconditionally.

The safe variants make the write model the judge of the irreversible steps: the
deletions and the purge are conditional on the connection's state there; the
account read model's poll may delay the purge but never decides it (when its
budget runs out before the projection catches up, the write model is asked
instead); and every write under the lock carries the lock's fencing token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagas import probes
from sagas.engine.errors import NonRetryableError, RetryExhausted, SagaAborted
from sagas.engine.retry import RetryConfig, retry_async
from sagas.engine.step import SagaStep
from sagas.infra.cache import is_critical_disconnect_reason
from sagas.infra.safe_ops import safe_delete, safe_set
from sagas.trading import commands as c
from sagas.trading.deps import require_fields
from sagas.trading.sagas.base import PATIENT_RETRY, TradingSaga, connection_lock_key

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
MAX_REDRIVES = 3  # hand-overs of one unfinished cleanup to a fresh saga (safe purge variant)
READ_MODEL_SETTLE_SECONDS = 0.15


class AccountsStillInReadModel(RuntimeError):
    """The account read model still lists accounts the saga deleted (projection lag)."""


class AccountsRemain(NonRetryableError):
    """The write model still holds accounts of the connection after the deletions (safe variant)."""


class BrokerDisconnectionSaga(TradingSaga):
    """BrokerDisconnected -> lock and race check, caches, accounts, virtual data, consistency, adapter, purge."""

    def get_saga_type(self) -> str:
        return "BrokerDisconnectionSaga"

    def define_steps(self) -> list[SagaStep]:
        undo = self._nothing_to_undo
        safe_lock = self.deps.config.variants.disconnect_lock == "safe"
        # Safe purge: a disconnection must end in the purge, so the cleanup steps on flaky
        # infrastructure (Redis, the broker adapter) are retried through an outage, not abandoned.
        patient = PATIENT_RETRY if self.deps.config.variants.purge == "safe" else None
        return [
            SagaStep(
                "validate_disconnection",
                self._validate_disconnection,
                self._release_lock,
                timeout_seconds=self.lock_wait_seconds if safe_lock else 30,
                retry=PATIENT_RETRY if safe_lock else None,
            ),
            SagaStep(
                "clear_broker_cache", self._clear_broker_cache, undo, timeout_seconds=10, retry_count=2, retry=patient
            ),
            SagaStep("delete_broker_accounts", self._delete_broker_accounts, undo, timeout_seconds=30, retry_count=2),
            SagaStep("cleanup_virtual_broker", self._cleanup_virtual_broker, undo, timeout_seconds=30, retry_count=2),
            SagaStep("validate_accounts_deleted", self._validate_accounts_deleted, undo, timeout_seconds=60),
            SagaStep(
                "clear_adapter_resources",
                self._clear_adapter_resources,
                undo,
                timeout_seconds=30,
                retry_count=2,
                retry=patient,
            ),
            SagaStep(
                "final_cache_cleanup", self._final_cache_cleanup, undo, timeout_seconds=10, retry_count=2, retry=patient
            ),
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
            try:
                token = await self.acquire_connection_lock(context)
                await self._check_not_reconnected(context)
            except BaseException:
                await self.release_connection_lock(context)
                raise
            probes.always(
                "disconnection: the safe lock came with a fencing token",
                isinstance(token, int),
                variant="disconnect_lock:safe",
            )
            # Held for the whole saga: released after the purge, or by this step's compensation.
            return {"lock_acquired": True, "lock_owner": context["saga_id"], "fencing_token": token}
        lock_acquired = await safe_set(self.deps.redis, key, owner, ttl_seconds=ttl, nx=True)
        probes.sometimes(
            "disconnection: lock not acquired, carried on after 3 s", not lock_acquired, variant="disconnect_lock:seed"
        )
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
        """Compensation of step 1, the last to run when the saga fails or times out.

        The safe lock variant releases the lock it holds for the whole saga. With the safe purge the
        cleanup must still end in the purge: the saga hands it over to a fresh one (the write model
        re-publishes ``BrokerDisconnected`` if the connection is still disconnected), at most
        ``MAX_REDRIVES`` times in a row. A saga that froze past its own deadline, or spent it waiting
        for a lock a frozen holder kept until its TTL, no longer strands its connection.
        """
        if context.get("lock_owner"):
            await self.deps.locks.release(connection_lock_key(context["broker_connection_id"]), context["lock_owner"])
        redrive = context.get("redrive", 0) + 1
        if self.deps.config.variants.purge == "safe" and redrive <= MAX_REDRIVES:
            probes.reachable("disconnection: unfinished cleanup handed to a fresh saga", variant="purge:safe")
            await context["command_bus"].send(
                c.RedriveDisconnection(
                    context["broker_connection_id"], context["disconnect_reason"], redrive, context["saga_id"]
                )
            )

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
            await context["command_bus"].send(
                c.DeleteBrokerAccount(
                    account_id,
                    only_if_disconnected=guarded,
                    saga_id=context["saga_id"],
                    fencing_token=context.get("fencing_token"),
                )
            )
        return {"accounts_deleted": len(account_ids)}

    async def _cleanup_virtual_broker(self, **context: Any) -> dict[str, Any]:
        """Step 4: a virtual broker keeps its own records of its accounts; delete those too."""
        if not context["is_virtual"]:
            return {"virtual_records_deleted": 0}
        deleted = await context["command_bus"].send(
            c.DeleteVirtualBrokerData(
                tuple(context["virtual_account_ids"]),
                broker_connection_id=context["broker_connection_id"],
                saga_id=context["saga_id"],
                fencing_token=context.get("fencing_token"),
            )
        )
        return {"virtual_records_deleted": deleted}

    async def _validate_accounts_deleted(self, **context: Any) -> dict[str, Any]:
        """Step 5: poll the (lagging) account read model until it shows no accounts (the seed's settings).

        The safe purge variant polls with the same budget (readers of the read model see the
        deletions before the purge, when the projection keeps up), but when the budget runs out it
        asks the write model, which never lags: the poll can delay the purge, never strand it.
        """
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

        try:
            await retry_async(
                check_accounts_deleted, self.deps.config.consistency_retry, clock=clock, rng=context["rng"]
            )
        except RetryExhausted as lagging:
            probes.reachable("disconnection: account poll budget exhausted")
            if self.deps.config.variants.purge != "safe":
                raise
            return await self._confirm_in_write_model(context, lagging)
        return {"accounts_validated": True, "validated_by": "read_model"}

    async def _confirm_in_write_model(self, context: dict[str, Any], lagging: RetryExhausted) -> dict[str, Any]:
        """The read model still lags after the poll's budget: the write model says whether accounts remain."""
        connection_id = context["broker_connection_id"]
        remaining = await context["query_bus"].query(c.GetWriteModelAccountsQuery(connection_id))
        probes.sometimes(
            "disconnection: the write model overruled a lagging read model", not remaining, variant="purge:safe"
        )
        if not remaining:
            return {"accounts_validated": True, "validated_by": "write_model", "read_model_lag": str(lagging)}
        await self._check_not_reconnected(context)  # deletions refused because the user is back: stand down
        raise AccountsRemain(
            f"the write model still holds {len(remaining)} account(s) of disconnected connection {connection_id} "
            "that the disconnection event did not name"
        ) from lagging

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
        """Step 8: re-validate right before the irreversible purge, then purge.

        The seed re-validates with queries, then purges unconditionally. The safe variant asks the
        write model to purge only if the connection is still disconnected and holds no account,
        atomically; it skips the account read model's re-validation, whose lag could only make it
        abort a purge the write model would allow (and strand the connection).
        """
        connection_id = context["broker_connection_id"]
        query_bus = context["query_bus"]
        safe = self.deps.config.variants.purge == "safe"
        try:
            details = await query_bus.query(c.GetBrokerConnectionDetailsQuery(connection_id))
            if details is not None and details.status == "connected":
                probes.reachable("disconnection: re-validation found the connection reconnected before purge")
                return {"purged": False, "reason": "connection_reconnected", "aborted": True}
            if not safe:
                accounts = await query_bus.query(c.GetAccountsByConnectionQuery(connection_id))
                if accounts:
                    probes.reachable("disconnection: re-validation found accounts before purge", variant="purge:seed")
                    return {"purged": False, "reason": "accounts_exist_after_deletion", "aborted": True}
            purge = c.PurgeBrokerConnection(
                connection_id,
                expected_status="disconnected" if safe else None,
                require_no_accounts=safe,
                saga_id=context["saga_id"],
                fencing_token=context.get("fencing_token"),
            )
            result = await context["command_bus"].send(purge)
            if not result["purged"]:
                probes.reachable("disconnection: the write model refused the purge")
                return {"purged": False, "reason": result["reason"], "aborted": True}
            return {"purged": True}
        finally:
            if context.get("lock_owner"):
                await self.deps.locks.release(connection_lock_key(connection_id), context["lock_owner"])
