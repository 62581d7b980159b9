"""Broker connection saga: after a connection is established, discover and link its accounts."""

from __future__ import annotations

from typing import Any

from sagas.engine.step import SagaStep
from sagas.trading import commands as c
from sagas.trading.deps import require_fields
from sagas.trading.sagas.base import PATIENT_RETRY, TradingSaga

DISCOVERY_TIMEOUT_SECONDS = 30.0
VIRTUAL_SPEEDUP = 10.0  # virtual brokers answer fast: their calls get a 10x shorter deadline


class BrokerConnectionSaga(TradingSaga):
    """BrokerConnectionEstablished -> verify connection, discover accounts (idempotent), link them, complete."""

    def get_saga_type(self) -> str:
        return "BrokerConnectionSaga"

    def define_steps(self) -> list[SagaStep]:
        safe = self.deps.config.variants.disconnect_lock == "safe"
        return [
            SagaStep(
                "verify_connection",
                self._verify_connection,
                self._release_lock if safe else self._nothing_to_undo,
                timeout_seconds=self.lock_wait_seconds if safe else 10,
                retry=PATIENT_RETRY if safe else None,
            ),
            SagaStep(
                "discover_accounts",
                self._discover_accounts,
                self._nothing_to_undo,
                # The step's own deadline bounds a real broker's session and discovery together
                # (two calls under one deadline, not two deadlines that add up to the step's).
                timeout_seconds=DISCOVERY_TIMEOUT_SECONDS,
                retry_count=3,
                retry_delay_base=1.0,
            ),
            SagaStep(
                "link_accounts",
                self._link_accounts,
                self._delete_linked_accounts,
                timeout_seconds=30,
                retry_count=2,
                retry_delay_base=0.5,
            ),
            SagaStep("publish_completion", self._publish_completion, self._nothing_to_undo, timeout_seconds=10),
        ]

    async def _verify_connection(self, **context: Any) -> dict[str, Any]:
        """Step 1: the connection exists and is connected (synchronous read model).

        The safe variant first waits for the connection lock, so a disconnection still
        cleaning up finishes before accounts are discovered again.
        """
        require_fields(context, "BrokerConnectionEstablished", ("broker_connection_id", "user_id", "broker_id"))
        safe = self.deps.config.variants.disconnect_lock == "safe"
        token = None
        try:
            if safe:
                token = await self.acquire_connection_lock(context)
            details = await context["query_bus"].query(
                c.GetBrokerConnectionDetailsQuery(context["broker_connection_id"])
            )
        except BaseException:
            if safe:  # a failed step is not compensated: let the next saga of this connection in now
                await self.release_connection_lock(context)
            raise
        if details is None or details.status != "connected":
            if safe:
                await self.release_connection_lock(context)
            status = details.status if details is not None else "missing"
            return {"aborted": True, "reason": f"connection_{status}"}
        return {"connection_verified": True, "fencing_token": token}

    async def _release_lock(self, **context: Any) -> None:
        """Compensation of step 1 (safe variant): let the next saga of this connection in."""
        await self.release_connection_lock(context)

    async def _discover_accounts(self, **context: Any) -> dict[str, Any]:
        """Step 2: ask the broker which accounts exist.

        A real broker has the step's deadline for both calls; a virtual broker answers fast, so
        each of its calls gets a 10x shorter deadline of its own (a slow one fails the attempt,
        which is retried, instead of holding the step until its deadline).
        """
        connection_id = context["broker_connection_id"]
        broker = self.deps.broker(context["broker_id"])
        clock = context["clock"]

        async def bounded(call: Any) -> Any:
            if context.get("is_virtual"):
                return await clock.run_with_deadline(call, DISCOVERY_TIMEOUT_SECONDS / VIRTUAL_SPEEDUP)
            return await call

        # The adapter's session for this connection (opening one is idempotent), then discovery.
        await bounded(broker.connect(connection_id, self.deps.credentials(connection_id)))
        discovered = await bounded(broker.discover_accounts(connection_id))
        return {"discovered": [[a.external_id, a.kind] for a in discovered]}

    async def _link_accounts(self, **context: Any) -> dict[str, Any]:
        """Step 3: link each discovered account (idempotent: a retry links nothing twice).

        With the safe purge variant the write model links only into a connection that is still
        connected: a discovery that outlasted its user's disconnect fails here (and compensates)
        instead of adding accounts the disconnection's enriched event does not name.
        """
        command_bus = context["command_bus"]
        guarded = self.deps.config.variants.purge == "safe"
        account_ids = [
            await command_bus.send(
                c.LinkBrokerAccount(
                    context["broker_connection_id"],
                    external_id,
                    kind,
                    only_if_connected=guarded,
                    saga_id=context["saga_id"],
                    fencing_token=context.get("fencing_token"),
                )
            )
            for external_id, kind in context["discovered"]
        ]
        return {"account_ids": account_ids}

    async def _delete_linked_accounts(self, **context: Any) -> None:
        """Compensation of step 3: delete the discovered accounts (by external id: the step may have
        timed out after linking some, before it could report their ids).

        The seed deletes every account of the connection with those external ids; with the safe
        purge variant only those this saga linked itself (an earlier saga's links stay).
        """
        own = self.deps.config.variants.purge == "safe"
        for external_id, _kind in context.get("discovered", ()):
            await context["command_bus"].send(
                c.UnlinkBrokerAccount(
                    context["broker_connection_id"],
                    external_id,
                    only_own=own,
                    saga_id=context["saga_id"],
                    fencing_token=context.get("fencing_token"),
                )
            )

    async def _publish_completion(self, **context: Any) -> dict[str, Any]:
        """Step 4: release the lock (safe variant); the manager publishes the completion event."""
        if self.deps.config.variants.disconnect_lock == "safe":
            await self.release_connection_lock(context)
        return {"accounts_linked": len(context.get("account_ids", ()))}
