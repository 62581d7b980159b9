"""Order execution (partial fills, rejection, rollback) and position management (add-ons, exits)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from sagas.engine.buses import EventBus
from sagas.engine.randomness import IdSource, RandomStreams
from sagas.engine.retry import RetryConfig
from sagas.trading import commands as c
from sagas.trading.config import SagaConfig
from sagas.trading.model import OrderStatus, PositionStatus
from sagas.trading.platform import TradingPlatform
from tests.trading.world import run_trading, saga_records, terminal

QUIET_POSITIONS = SagaConfig(timeouts_seconds={**SagaConfig().timeouts_seconds, "PositionManagementSaga": 30.0})


async def _account(world):
    bus = world.manager.command_bus
    connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
    await world.manager.wait_idle()
    return world.platform.write.accounts_of(connection_id)[0].account_id


def test_an_order_is_submitted_acknowledged_and_filled_in_parts_into_a_position():
    async def main(world):
        account_id = await _account(world)
        order_id = await world.manager.command_bus.send(c.PlaceOrder("u1", account_id, "AAPL", "buy", 10))
        await world.manager.wait_idle()
        return order_id

    order_id, world = run_trading(
        main,
        config=QUIET_POSITIONS,
        broker_options={"ack_delay_s": 0.5, "fill_plan": [(1.0, 4, 100.0), (2.0, 6, 101.0)]},
    )
    order = world.platform.write.orders[order_id]
    assert order.status is OrderStatus.FILLED
    assert [(f.quantity, f.price, f.sequence) for f in order.fills] == [(4, 100.0, 2), (6, 101.0, 3)]
    [position] = world.platform.write.positions.values()
    assert position.quantity == 10 == sum(position.fill_quantities)
    assert position.average_price == pytest.approx(100.6)
    assert terminal(world, "OrderExecutionSaga") == [(3.5, "completed", None)]


def test_a_rejected_order_is_cancelled_and_touches_no_position():
    async def main(world):
        account_id = await _account(world)
        order_id = await world.manager.command_bus.send(c.PlaceOrder("u1", account_id, "AAPL", "buy", 10))
        await world.manager.wait_idle()
        return order_id

    order_id, world = run_trading(main, broker_options={"reject": True})
    order = world.platform.write.orders[order_id]
    assert order.status is OrderStatus.REJECTED
    assert world.brokers["alpaca"].cancelled == {f"broker-{order_id}"}  # compensation of submit_order
    assert world.platform.write.positions == {}
    [saga] = [r for r in saga_records(world, "OrderExecutionSaga") if r.outcome == "step_failed"]
    assert (saga.step, saga.error_type) == ("wait_for_acknowledgment", "OrderRejected")


def test_an_order_above_the_configured_limit_fails_validation_before_the_broker_sees_it():
    async def main(world):
        account_id = await _account(world)
        await world.manager.command_bus.send(c.PlaceOrder("u1", account_id, "AAPL", "buy", 50_000))
        return await world.manager.wait_idle()

    finals, world = run_trading(main)
    [order_saga] = [s for s in finals if s.saga_type == "OrderExecutionSaga"]
    assert order_saga.error == "quantity must be in (0, 10000], got 50000"
    assert [op for _, op, _ in world.brokers["alpaca"].calls if op == "place_order"] == []


def test_positions_follow_add_ons_and_close_at_take_profit():
    async def main(world):
        account_id = await _account(world)
        bus = world.manager.command_bus
        await bus.send(c.PlaceOrder("u1", account_id, "AAPL", "buy", 10, take_profit=105.0, stop_loss=90.0))
        await world.sim.runtime.sleep(6.0)
        await bus.send(c.PlaceOrder("u1", account_id, "AAPL", "buy", 10))  # pyramiding add-on
        await world.sim.runtime.sleep(6.0)
        world.brokers["alpaca"].prices["AAPL"] = 106.0  # t=12: above take-profit
        return await world.manager.wait_idle()

    finals, world = run_trading(
        main,
        broker_options={
            "fill_plan": [(1.0, 4, 100.0), (2.0, 6, 101.0)],
            "sell_fill_plan": [(1.0, 20, 106.0)],
        },
    )
    [position] = world.platform.write.positions.values()
    assert position.status is PositionStatus.CLOSED
    assert position.quantity == 0 == sum(position.fill_quantities)
    assert position.realized_pnl == pytest.approx((106.0 - 100.6) * 20)
    [managed] = [s for s in finals if s.saga_type == "PositionManagementSaga"]
    assert managed.status.value == "completed"
    assert managed.results["exit_reason"] == "take_profit"
    assert managed.results["add_ons"] == 1
    closing = [s for s in finals if s.parent_id == managed.saga_id]
    assert [s.saga_type for s in closing] == ["OrderExecutionSaga"]
    # polls every 5 s from t=3 (the opening fill): the first poll at or after t=12 is t=13, and
    # the closing sell fills 1 s later
    assert [t for t, o, _ in terminal(world, "PositionManagementSaga")] == [14.0]


def test_the_position_monitor_retries_a_failing_price_read_and_still_exits_at_take_profit():
    # The opening fill at t=3 starts the watch: reads at t=3, 8, 13... At t=6 the price jumps past
    # the take-profit and the broker answers the next two reads with a 503: the read at t=8 is
    # retried 1 s and 2 s later (no jitter here), and the third try, at t=11, sees the exit.
    steady = RetryConfig(max_attempts=5, initial_delay_ms=1000, max_delay_ms=8000, backoff_factor=2.0, jitter="none")
    config = dataclasses.replace(QUIET_POSITIONS, position_price_retry=steady)

    async def main(world):
        account_id = await _account(world)
        bus = world.manager.command_bus
        await bus.send(c.PlaceOrder("u1", account_id, "AAPL", "buy", 10, take_profit=105.0, stop_loss=90.0))
        await world.sim.runtime.sleep(6.0)
        broker = world.brokers["alpaca"]
        broker.prices["AAPL"], broker.failing_price_reads = 106.0, 2
        return await world.manager.wait_idle()

    finals, world = run_trading(
        main,
        config=config,
        broker_options={"fill_plan": [(1.0, 4, 100.0), (2.0, 6, 101.0)], "sell_fill_plan": [(1.0, 10, 106.0)]},
    )
    reads = [t for t, op, _ in world.brokers["alpaca"].calls if op == "last_price"]
    assert reads == [3.0, 8.0, 9.0, 11.0]
    [managed] = [s for s in finals if s.saga_type == "PositionManagementSaga"]
    assert (managed.status.value, managed.results["exit_reason"]) == ("completed", "take_profit")
    assert [t for t, o, _ in terminal(world, "PositionManagementSaga")] == [12.0]  # the closing sell fills 1 s later
    [position] = world.platform.write.positions.values()
    assert position.status is PositionStatus.CLOSED


# -- reverting an order's fills -----------------------------------------------------------------


async def _filled(platform: TradingPlatform, account_id: str, side: str, quantity: float, price: float) -> str:
    order_id = await platform.place_order(c.PlaceOrder("u1", account_id, "AAPL", side, quantity))
    await platform.record_fill(c.RecordFill(order_id, quantity, price, sequence=1))
    await platform.apply_fills_to_position(c.ApplyFillsToPosition(order_id))
    return order_id


def test_reverting_an_order_recomputes_its_position_from_the_fills_other_orders_left_since():
    async def main() -> tuple[TradingPlatform, list[str]]:
        platform = TradingPlatform(EventBus(), IdSource(RandomStreams(0)), lambda: 0.0)
        await platform.create_user(c.CreateUser("u1"))
        connection_id = await platform.connect_broker(c.ConnectBroker("u1", "alpaca"))
        account_id = await platform.link_broker_account(c.LinkBrokerAccount(connection_id, "ext-1"))
        orders = [
            await _filled(platform, account_id, "buy", 10, 100.0),
            await _filled(platform, account_id, "buy", 10, 120.0),  # average 110
            await _filled(platform, account_id, "sell", 5, 130.0),  # realizes (130 - 110) * 5 = 100
        ]
        return platform, orders

    platform, (first, second, sale) = asyncio.run(main())
    [position] = platform.positions.values()
    assert (position.quantity, position.average_price, position.realized_pnl) == (15, 110.0, 100.0)
    assert asyncio.run(platform.revert_fills_from_position(c.RevertFillsFromPosition(second))) == 1
    # What is left is the first buy and the sale: 10 at 100, then 5 sold at 130 (P&L 150), not the
    # average and P&L saved before the second buy (100 and 0), which would also undo the sale's P&L.
    assert (position.quantity, position.average_price, position.realized_pnl) == (5, 100.0, 150.0)
    assert position.fill_quantities == [10, -5] and position.status is PositionStatus.OPEN
    assert asyncio.run(platform.revert_fills_from_position(c.RevertFillsFromPosition(second))) == 0  # idempotent
    assert asyncio.run(platform.revert_fills_from_position(c.RevertFillsFromPosition(first))) == 1
    assert (position.quantity, position.fill_quantities) == (-5, [-5])
    assert asyncio.run(platform.revert_fills_from_position(c.RevertFillsFromPosition(sale))) == 1
    assert (position.quantity, position.realized_pnl, position.status) == (0, 0.0, PositionStatus.CLOSED)
