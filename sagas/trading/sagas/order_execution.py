"""Order execution saga: validate, submit, acknowledge, fills (partial too), position, P&L."""

from __future__ import annotations

from typing import Any

from sagas.engine.errors import NonRetryableError
from sagas.engine.step import SagaStep
from sagas.trading import commands as c
from sagas.trading.broker_port import OrderRequest
from sagas.trading.deps import require_fields
from sagas.trading.sagas.base import TradingSaga

ORDER_FIELDS = (
    "order_id",
    "user_id",
    "account_id",
    "broker_connection_id",
    "broker_id",
    "account_external_id",
    "symbol",
    "side",
    "quantity",
)


def _order_request(context: dict[str, Any]) -> OrderRequest:
    """The broker request for the saga's order; its client order id makes a resubmission idempotent."""
    return OrderRequest(
        context["order_id"],
        context["account_external_id"],
        context["symbol"],
        context["side"],
        context["quantity"],
        context.get("limit_price"),
    )


class OrderRejected(NonRetryableError):
    """The broker rejected the order (or a check before it did): retrying cannot help."""


class OrderExecutionSaga(TradingSaga):
    """OrderPlacedEvent -> validate, submit, wait for the ack, record fills, update the position, P&L.

    On failure the order is cancelled at the broker, and fills already applied to
    the position are rolled back.
    """

    def get_saga_type(self) -> str:
        return "OrderExecutionSaga"

    def define_steps(self) -> list[SagaStep]:
        undo = self._nothing_to_undo
        return [
            SagaStep("validate_order", self._validate_order, undo, timeout_seconds=10),
            SagaStep(
                "submit_order",
                self._submit_order,
                self._cancel_order,
                timeout_seconds=30,
                retry_count=3,
                retry_delay_base=0.5,
            ),
            SagaStep("wait_for_acknowledgment", self._wait_for_ack, undo, timeout_seconds=60, retry_count=3),
            SagaStep("monitor_fills", self._monitor_fills, undo, timeout_seconds=240, retry_count=3),
            SagaStep("update_position", self._update_position, self._rollback_position, timeout_seconds=30),
            SagaStep("calculate_pnl", self._calculate_pnl, undo, timeout_seconds=10),
        ]

    async def _validate_order(self, **context: Any) -> dict[str, Any]:
        """Step 1: well-formed, within limits, on a connected connection."""
        require_fields(context, "OrderPlacedEvent", ORDER_FIELDS)
        if not 0 < context["quantity"] <= self.deps.config.max_order_quantity:
            raise OrderRejected(
                f"quantity must be in (0, {self.deps.config.max_order_quantity:g}], got {context['quantity']!r}"
            )
        details = await context["query_bus"].query(c.GetBrokerConnectionDetailsQuery(context["broker_connection_id"]))
        if details is None or details.status != "connected":
            raise OrderRejected(f"connection is {details.status if details else 'missing'}, not connected")
        return {"validated": True}

    async def _submit_order(self, **context: Any) -> dict[str, Any]:
        """Step 2: place at the broker; the client order id makes a retried submission idempotent."""
        request = _order_request(context)
        broker_order_id = await self.deps.broker(context["broker_id"]).place_order(
            context["broker_connection_id"], request
        )
        await context["command_bus"].send(c.RecordOrderSubmitted(context["order_id"], broker_order_id))
        return {"broker_order_id": broker_order_id}

    async def _cancel_order(self, **context: Any) -> None:
        """Compensation of step 2: cancel at the broker (asking for the id again if the submit timed out)."""
        broker = self.deps.broker(context["broker_id"])
        broker_order_id = context.get("broker_order_id")
        if broker_order_id is None:  # possibly placed: placing again with the same client id returns its id
            request = _order_request(context)
            broker_order_id = await broker.place_order(context["broker_connection_id"], request)
        await broker.cancel_order(context["broker_connection_id"], broker_order_id)
        await context["command_bus"].send(c.CloseOrder(context["order_id"], "cancelled", "saga compensation"))

    async def _wait_for_ack(self, **context: Any) -> dict[str, Any]:
        """Step 3: the first update on the order's stream must be the acknowledgement."""
        broker = self.deps.broker(context["broker_id"])
        update = await broker.next_order_update(context["broker_connection_id"], context["broker_order_id"], 0)
        if update.kind == "rejected":
            await context["command_bus"].send(c.CloseOrder(context["order_id"], "rejected", update.reason or ""))
            raise OrderRejected(f"broker rejected order {context['order_id']}: {update.reason}")
        await context["command_bus"].send(c.RecordOrderAcknowledged(context["order_id"]))
        return {"ack_sequence": update.sequence}

    async def _monitor_fills(self, **context: Any) -> dict[str, Any]:
        """Step 4: record fills until the order is filled (fills are idempotent per sequence)."""
        broker = self.deps.broker(context["broker_id"])
        sequence = context["ack_sequence"]
        filled = 0.0
        while filled < context["quantity"] - 1e-9:
            update = await broker.next_order_update(
                context["broker_connection_id"], context["broker_order_id"], sequence
            )
            sequence = update.sequence
            if update.kind == "cancelled":
                break
            if update.kind == "fill":
                await context["command_bus"].send(
                    c.RecordFill(context["order_id"], update.fill_quantity, update.fill_price, update.sequence)
                )
                filled += update.fill_quantity
        return {"filled_quantity": filled, "last_sequence": sequence}

    async def _update_position(self, **context: Any) -> dict[str, Any]:
        """Step 5: apply the fills to the position (average price, realized P&L)."""
        result = await context["command_bus"].send(c.ApplyFillsToPosition(context["order_id"]))
        return {"position_id": result["position_id"]}

    async def _rollback_position(self, **context: Any) -> None:
        """Compensation of step 5: undo the fills this order applied."""
        await context["command_bus"].send(c.RevertFillsFromPosition(context["order_id"]))

    async def _calculate_pnl(self, **context: Any) -> dict[str, Any]:
        """Step 6: the position's realized P&L after this order."""
        position = await context["query_bus"].query(c.GetPositionQuery(context["position_id"]))
        return {"realized_pnl": position.realized_pnl, "position_quantity": position.quantity}
