"""User deletion saga: cascade a deleted user's resources through child disconnection sagas."""

from __future__ import annotations

from typing import Any

from sagas import probes
from sagas.engine.errors import NonRetryableError
from sagas.engine.step import SagaStep
from sagas.trading import commands as c
from sagas.trading.deps import require_fields
from sagas.trading.sagas.base import TradingSaga

SEED_WAIT_CAP_SECONDS = 30.0
CHILD_POLL_SECONDS = 0.25


class CascadeIncomplete(NonRetryableError):
    """Some child disconnection sagas ended without cleaning up their connection."""


def seed_wait_seconds(disconnected_count: int) -> float:
    """The seed's fixed wait for child sagas: ``min(5 + 2n, 30)`` seconds."""
    return min(5.0 + 2.0 * disconnected_count, SEED_WAIT_CAP_SECONDS)


class UserDeletionSaga(TradingSaga):
    """UserAccountDeleted -> disconnect every broker (child sagas), wait for them, clean up, hard delete."""

    def get_saga_type(self) -> str:
        return "UserDeletionSaga"

    def define_steps(self) -> list[SagaStep]:
        wait_deadline = max(SEED_WAIT_CAP_SECONDS, self.deps.config.child_wait_timeout_seconds) + 10.0
        undo = self._nothing_to_undo
        return [
            SagaStep("extract_resources", self._extract_resources, undo, timeout_seconds=5),
            SagaStep("disconnect_all_brokers", self._disconnect_all_brokers, undo, timeout_seconds=30, retry_count=2),
            SagaStep("wait_for_cascade", self._wait_for_cascade, undo, timeout_seconds=wait_deadline),
            SagaStep("cleanup_user_data", self._cleanup_user_data, undo, timeout_seconds=30, retry_count=2),
            SagaStep("complete_deletion", self._complete_deletion, undo, timeout_seconds=30, retry_count=2),
        ]

    async def _extract_resources(self, **context: Any) -> dict[str, Any]:
        """Step 1: everything to delete comes from the enriched event (no queries)."""
        require_fields(context, "UserAccountDeleted", ("user_id", "connection_ids", "account_ids", "automation_ids"))
        return {"connection_count": len(context["connection_ids"]), "account_count": len(context["account_ids"])}

    async def _disconnect_all_brokers(self, **context: Any) -> dict[str, Any]:
        """Step 2: one command; each BrokerDisconnected it emits starts a child disconnection saga."""
        result = await context["command_bus"].send(
            c.DisconnectAllBrokers(context["user_id"], reason="user_deleted", causation_id=context["saga_id"])
        )
        return {"disconnected_count": result["disconnected_count"]}

    async def _wait_for_cascade(self, **context: Any) -> dict[str, Any]:
        """Step 3: the seed sleeps ``min(5 + 2n, 30)`` s; the safe variant waits for the children's completion."""
        if self.deps.config.variants.child_wait == "seed":
            waited = seed_wait_seconds(context["disconnected_count"])
            await context["clock"].sleep(waited)
            return {"cascade_wait": "fixed_sleep", "waited_seconds": waited}
        statuses = await context["clock"].run_with_deadline(
            self._wait_for_all_children(context), self.deps.config.child_wait_timeout_seconds
        )
        unfinished = {saga_id: status for saga_id, status in statuses.items() if status != "completed"}
        if unfinished:
            probes.reachable("user deletion: a child disconnection did not complete")
            # Declaring the user deleted now would be false: some connections were not cleaned up.
            raise CascadeIncomplete(f"{len(unfinished)} of {len(statuses)} child disconnection(s) did not complete")
        return {"cascade_wait": "completion_events", "child_statuses": statuses}

    async def _wait_for_all_children(self, context: dict[str, Any]) -> dict[str, str]:
        """Wait until every expected child exists (their trigger events may arrive late), then for them."""
        sagas = context["sagas"]
        while len(sagas.children()) < context["disconnected_count"]:
            await context["clock"].sleep(CHILD_POLL_SECONDS)
        statuses: dict[str, str] = await sagas.wait(timeout_seconds=self.deps.config.child_wait_timeout_seconds)
        return statuses

    async def _cleanup_user_data(self, **context: Any) -> dict[str, Any]:
        """Step 4: virtual broker records and every cache entry of the user (nuclear)."""
        deleted = await context["command_bus"].send(c.DeleteVirtualBrokerData(tuple(context["account_ids"])))
        cleared = await self.deps.cache.clear_all_user_broker_data(context["user_id"])
        return {"virtual_records_deleted": deleted, "cache_entries_cleared": cleared}

    async def _complete_deletion(self, **context: Any) -> dict[str, Any]:
        """Step 6 (the seed's step 5 publishes nothing: the event was already published): hard delete."""
        await context["command_bus"].send(c.HardDeleteUser(context["user_id"]))
        return {"hard_deleted": True}
