"""Position management saga: track a position, follow add-ons, exit on stop-loss or take-profit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagas.engine.retry import RetryConfig, retry_async
from sagas.engine.step import SagaStep
from sagas.trading import commands as c
from sagas.trading.deps import require_fields
from sagas.trading.sagas.base import TradingSaga

POSITION_FIELDS = ("position_id", "account_id", "broker_connection_id", "broker_id", "user_id", "symbol")
MONITOR_RETRY = RetryConfig(
    max_attempts=3, initial_delay_ms=5000, max_delay_ms=30000, backoff_factor=2.0, jitter="equal"
)
"""A watch whose price reads keep failing (every retry of one read) starts over 5 and 10 s later, twice."""


class PositionManagementSaga(TradingSaga):
    """PositionOpenedEvent -> set exits, watch price and add-ons, close the position on an exit signal."""

    def get_saga_type(self) -> str:
        return "PositionManagementSaga"

    def define_steps(self) -> list[SagaStep]:
        watch_seconds = self.deps.config.get_timeout_for_saga(self.get_saga_type()).total_seconds()
        undo = self._nothing_to_undo
        return [
            SagaStep("initialize_tracking", self._initialize_tracking, undo, timeout_seconds=10),
            SagaStep(
                "monitor_position", self._monitor_position, undo, timeout_seconds=watch_seconds, retry=MONITOR_RETRY
            ),
            SagaStep("close_position", self._close_position, undo, timeout_seconds=300),
        ]

    def poll_policies(self) -> Mapping[str, RetryConfig]:
        """The monitor's price reads are ``retry_async`` polls with the configured read policy."""
        return {"monitor_position": self.deps.config.position_price_retry}

    async def _initialize_tracking(self, **context: Any) -> dict[str, Any]:
        """Step 1: record the exits the opening order asked for."""
        require_fields(context, "PositionOpenedEvent", POSITION_FIELDS)
        await context["command_bus"].send(
            c.SetPositionExits(context["position_id"], context.get("stop_loss"), context.get("take_profit"))
        )
        return {"tracking": True}

    async def _monitor_position(self, **context: Any) -> dict[str, Any]:
        """Steps 2-4 of the seed: follow add-on fills (average price) and the price until an exit signal.

        A loop of hundreds of price reads meets transient broker errors: each read is retried
        (``SagaConfig.position_price_retry``), and a read that still fails fails the attempt,
        which the step's own policy starts over.
        """
        broker = self.deps.broker(context["broker_id"])
        clock = context["clock"]
        interval = self.deps.config.position_poll_seconds

        async def read_price() -> float:
            return await broker.last_price(context["broker_connection_id"], context["symbol"])

        add_ons = 0
        seen_quantity = context.get("quantity", 0.0)
        while True:
            position = await context["query_bus"].query(c.GetPositionQuery(context["position_id"]))
            if position.status == "closed":
                return {"exit_reason": "closed_elsewhere", "add_ons": add_ons}
            if position.quantity > seen_quantity + 1e-9:
                add_ons += 1  # pyramiding: an add-on order raised the quantity (and moved the average price)
            seen_quantity = position.quantity
            price = await retry_async(
                read_price, self.deps.config.position_price_retry, clock=clock, rng=context["rng"]
            )
            if position.stop_loss is not None and price <= position.stop_loss:
                return {"exit_reason": "stop_loss", "exit_price": price, "add_ons": add_ons}
            if position.take_profit is not None and price >= position.take_profit:
                return {"exit_reason": "take_profit", "exit_price": price, "add_ons": add_ons}
            await clock.sleep(interval)

    async def _close_position(self, **context: Any) -> dict[str, Any]:
        """Step 5: sell what is held through a child order saga and wait for it."""
        if context["exit_reason"] == "closed_elsewhere":
            return {"closed": True}
        position = await context["query_bus"].query(c.GetPositionQuery(context["position_id"]))
        order_id = await context["command_bus"].send(
            c.PlaceOrder(
                context["user_id"],
                context["account_id"],
                context["symbol"],
                "sell",
                position.quantity,
                causation_id=context["saga_id"],
            )
        )
        statuses = await context["sagas"].wait(timeout_seconds=240)
        return {"closing_order_id": order_id, "closing_orders": statuses}
