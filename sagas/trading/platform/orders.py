"""Handlers of orders (placed, submitted, acknowledged, filled, closed) and of the positions their fills move."""

from __future__ import annotations

from typing import Any

from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.fencing import DomainError
from sagas.trading.model import AppliedFill, Fill, Order, OrderStatus, Position, PositionStatus
from sagas.trading.platform.aggregates import PlatformAggregates


class OrderHandlers(PlatformAggregates):
    """Commands about orders and the positions they open, grow, shrink and close."""

    # -- orders ------------------------------------------------------------

    def _order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise DomainError(f"unknown order {order_id!r}")
        return order

    async def place_order(self, command: c.PlaceOrder) -> str:
        """Record an order on an existing account and publish ``OrderPlacedEvent``."""
        account = self.accounts.get(command.account_id)
        if account is None:
            raise DomainError(f"unknown account {command.account_id!r}")
        if command.side not in ("buy", "sell"):
            raise DomainError(f"order side must be 'buy' or 'sell', got {command.side!r}")
        if not command.quantity > 0:
            raise DomainError(f"order quantity must be > 0, got {command.quantity!r}")
        order = Order(
            self.ids.new_id("order"),
            command.user_id,
            account.account_id,
            account.connection_id,
            command.symbol,
            command.side,
            command.quantity,
            command.limit_price,
            command.stop_loss,
            command.take_profit,
        )
        self.orders[order.order_id] = order
        await self._publish(
            e.OrderPlacedEvent,
            causation_id=command.causation_id,
            order_id=order.order_id,
            user_id=order.user_id,
            account_id=account.account_id,
            broker_connection_id=account.connection_id,
            broker_id=account.broker_id,
            account_external_id=account.external_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            limit_price=order.limit_price,
            stop_loss=command.stop_loss,
            take_profit=command.take_profit,
        )
        return order.order_id

    async def record_order_submitted(self, command: c.RecordOrderSubmitted) -> None:
        """The broker took the order."""
        order = self._order(command.order_id)
        order.broker_order_id = command.broker_order_id
        if order.status is OrderStatus.PLACED:
            order.status = OrderStatus.SUBMITTED

    async def record_order_acknowledged(self, command: c.RecordOrderAcknowledged) -> None:
        """The broker acknowledged the order."""
        order = self._order(command.order_id)
        if order.status in (OrderStatus.PLACED, OrderStatus.SUBMITTED):
            order.status = OrderStatus.ACKNOWLEDGED

    async def record_fill(self, command: c.RecordFill) -> bool:
        """Record a fill once per sequence; publish ``OrderFilled``."""
        order = self._order(command.order_id)
        if any(f.sequence == command.sequence for f in order.fills):
            return False
        if order.filled_quantity + command.quantity > order.quantity + 1e-9:
            raise DomainError(f"fill of {command.quantity} would overfill order {order.order_id} ({order.quantity})")
        order.fills.append(Fill(command.quantity, command.price, command.sequence))
        filled = order.filled_quantity
        order.status = OrderStatus.FILLED if filled >= order.quantity - 1e-9 else OrderStatus.PARTIALLY_FILLED
        await self._publish(
            e.OrderFilled,
            order_id=order.order_id,
            quantity=command.quantity,
            price=command.price,
            filled_quantity=filled,
            order_quantity=order.quantity,
        )
        return True

    async def close_order(self, command: c.CloseOrder) -> None:
        """End an order as cancelled or rejected (a final status, filled included, stays as it is)."""
        order = self._order(command.order_id)
        if order.status not in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED):
            order.status = OrderStatus(command.status)

    # -- positions ---------------------------------------------------------

    def open_position(self, account_id: str, symbol: str) -> Position | None:
        """The open position of an account in a symbol, if any."""
        for position in self.positions.values():
            if (
                position.account_id == account_id
                and position.symbol == symbol
                and position.status is PositionStatus.OPEN
            ):
                return position
        return None

    async def apply_fills_to_position(self, command: c.ApplyFillsToPosition) -> dict[str, Any]:
        """Apply the order's fills (buys add at a new average price, sells realize P&L); idempotent per fill."""
        order = self._order(command.order_id)
        opened: Position | None = None
        position_id: str | None = None
        for fill in order.fills:
            key = f"{order.order_id}:{fill.sequence}"
            if key in self.applied_fills:
                position_id = self.applied_fills[key].position_id
                continue
            position = self.open_position(order.account_id, order.symbol)
            if position is None:
                if order.side == "sell":
                    raise DomainError(f"order {order.order_id} sells {order.symbol} with no open position")
                position = Position(self.ids.new_id("position"), order.account_id, order.symbol)
                self.positions[position.position_id] = position
                opened = opened or position
            signed = fill.quantity if order.side == "buy" else -fill.quantity
            self.applied_fills[key] = AppliedFill(position.position_id, signed, fill.price)
            _take_fill(position, signed, fill.price)
            position_id = position.position_id
            if position.status is PositionStatus.CLOSED:
                await self._publish(
                    e.PositionClosed, position_id=position.position_id, realized_pnl=position.realized_pnl
                )
        if opened is not None:
            account = self.accounts[order.account_id]
            await self._publish(
                e.PositionOpenedEvent,
                position_id=opened.position_id,
                account_id=opened.account_id,
                broker_connection_id=account.connection_id,
                broker_id=account.broker_id,
                user_id=order.user_id,
                symbol=opened.symbol,
                quantity=opened.quantity,
                average_price=opened.average_price,
                stop_loss=order.stop_loss,
                take_profit=order.take_profit,
            )
        return {"position_id": position_id}

    async def revert_fills_from_position(self, command: c.RevertFillsFromPosition) -> int:
        """Undo the order's applied fills; return how many were undone.

        Each position they touched is recomputed from the fills it keeps, in the order it took them:
        restoring the figures saved before the order's fills would also undo what other orders'
        fills, applied since, did to its average price and realized P&L.
        """
        order = self._order(command.order_id)
        touched: list[str] = []
        undone = 0
        for fill in order.fills:
            applied = self.applied_fills.pop(f"{order.order_id}:{fill.sequence}", None)
            if applied is None:
                continue
            undone += 1
            if applied.position_id not in touched:
                touched.append(applied.position_id)
        for position_id in touched:
            position = self.positions[position_id]
            position.quantity = position.average_price = position.realized_pnl = 0.0
            position.fill_quantities.clear()
            for kept in self.applied_fills.values():
                if kept.position_id == position_id:
                    _take_fill(position, kept.signed, kept.price)
            position.status = PositionStatus.OPEN if abs(position.quantity) > 1e-9 else PositionStatus.CLOSED
        return undone

    async def set_position_exits(self, command: c.SetPositionExits) -> None:
        """Set a position's stop-loss and take-profit."""
        position = self.positions.get(command.position_id)
        if position is None:
            raise DomainError(f"unknown position {command.position_id!r}")
        position.stop_loss, position.take_profit = command.stop_loss, command.take_profit


def _take_fill(position: Position, signed: float, price: float) -> None:
    """One fill into a position: a buy adds at a new average price, a sell realizes P&L at the average."""
    if signed > 0:
        total = position.quantity + signed
        position.average_price = (position.quantity * position.average_price + signed * price) / total if total else 0.0
    else:
        position.realized_pnl += (price - position.average_price) * -signed
    position.quantity += signed
    position.fill_quantities.append(signed)
    if abs(position.quantity) < 1e-9:
        position.quantity = 0.0
        position.status = PositionStatus.CLOSED
