"""Connection recovery saga: bring a failed connection back, or tell the user why it could not."""

from __future__ import annotations

from typing import Any

from sagas.engine.errors import SagaAborted
from sagas.engine.step import SagaStep
from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.broker_port import BrokerUnavailable, InvalidCredentials
from sagas.trading.deps import require_fields
from sagas.trading.sagas.base import TradingSaga

MAX_RETRIES = 3  # after the first attempt: attempts at t = 0, 2, 6, 14 s
BACKOFF_BASE_SECONDS = 2.0  # 2, 4, 8 s


class ConnectionRecoverySaga(TradingSaga):
    """BrokerConnectionFailed / BrokerStreamingDisconnected -> recoverable?, health check, reconnect, report."""

    def get_saga_type(self) -> str:
        return "ConnectionRecoverySaga"

    def define_steps(self) -> list[SagaStep]:
        return [
            SagaStep("verify_recoverable", self._verify_recoverable, self._alert_user, timeout_seconds=10),
            SagaStep(
                "restore_connection",
                self._restore_connection,
                self._nothing_to_undo,
                timeout_seconds=30,
                retry_count=MAX_RETRIES,
                retry_delay_base=BACKOFF_BASE_SECONDS,
            ),
            SagaStep("publish_recovery", self._publish_recovery, self._nothing_to_undo, timeout_seconds=10),
        ]

    async def _verify_recoverable(self, **context: Any) -> dict[str, Any]:
        """Step 1: a failure that needs the user (invalid credentials) ends the saga at once."""
        require_fields(context, "BrokerConnectionFailed", ("broker_connection_id", "broker_id"))
        if context.get("requires_user_action"):
            await self._publish_failed(context, "requires_user_action", requires_user_action=True)
            raise SagaAborted("requires_user_action")
        return {"recoverable": True}

    async def _restore_connection(self, **context: Any) -> dict[str, Any]:
        """Step 2 (retried 3 times, 2/4/8 s apart): health check; if unhealthy, reconnect and check again."""
        connection_id = context["broker_connection_id"]
        broker = self.deps.broker(context["broker_id"])
        try:
            if await broker.health_check(connection_id):
                return {"recovered_by": "health_check", "recovery_attempts": context["attempt"]}
            await broker.connect(connection_id, self.deps.credentials(connection_id))
            if not await broker.health_check(connection_id):
                raise BrokerUnavailable(f"connection {connection_id} still unhealthy after reconnecting")
        except InvalidCredentials:
            await self._publish_failed(context, "invalid_credentials", requires_user_action=True)
            raise SagaAborted("invalid_credentials") from None
        return {"recovered_by": "reconnect", "recovery_attempts": context["attempt"]}

    async def _publish_recovery(self, **context: Any) -> dict[str, Any]:
        """Step 3: mark the connection connected and announce the recovery."""
        connection_id = context["broker_connection_id"]
        await context["command_bus"].send(c.MarkConnectionRecovered(connection_id))
        await context["event_bus"].publish(
            e.BrokerConnectionRecovered(
                event_id=context["ids"].new_id("event"),
                causation_id=context["saga_id"],
                broker_connection_id=connection_id,
                attempts=context["recovery_attempts"],  # the restore attempt that succeeded
            )
        )
        return {"recovered": True}

    async def _alert_user(self, **context: Any) -> None:
        """Compensation of step 1: recovery failed after every attempt; alert the user."""
        await self._publish_failed(context, "max_attempts_exceeded", requires_user_action=False)

    async def _publish_failed(self, context: dict[str, Any], reason: str, *, requires_user_action: bool) -> None:
        await context["event_bus"].publish(
            e.BrokerConnectionRecoveryFailed(
                event_id=context["ids"].new_id("event"),
                causation_id=context["saga_id"],
                broker_connection_id=context["broker_connection_id"],
                reason=reason,
                requires_user_action=requires_user_action,
            )
        )
