"""A broker for saga tests: fixed latency and scripted answers, so timestamps are exact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sagas.engine.ports import Runtime
from sagas.trading.broker_port import (
    BrokerUnavailable,
    DiscoveredAccount,
    InvalidCredentials,
    OrderRequest,
    OrderUpdate,
)


@dataclass
class ScriptedBroker:
    """Answers after ``latency_s``; ``healthy``/``reconnect_works``/``bad_credentials`` script recovery."""

    runtime: Runtime
    latency_s: float = 0.0
    accounts: dict[str, list[DiscoveredAccount]] = field(default_factory=dict)
    default_accounts: int = 2
    healthy: bool = True
    reconnect_works: bool = True
    bad_credentials: bool = False
    calls: list[tuple[float, str, str]] = field(default_factory=list)
    prices: dict[str, float] = field(default_factory=dict)
    fill_plan: list[tuple[float, float, float]] = field(default_factory=list)  # (delay_s, quantity, price)
    sell_fill_plan: list[tuple[float, float, float]] | None = None
    sides: dict[str, str] = field(default_factory=dict)
    ack_delay_s: float = 0.0
    reject: bool = False
    cancelled: set[str] = field(default_factory=set)
    failing_price_reads: int = 0  # the next this many last_price calls fail with a 5xx

    async def _call(self, operation: str, connection_id: str) -> None:
        self.calls.append((self.runtime.now(), operation, connection_id))
        if self.latency_s:
            await self.runtime.sleep(self.latency_s)

    async def connect(self, connection_id: str, credentials: str) -> None:
        await self._call("connect", connection_id)
        if self.bad_credentials:
            raise InvalidCredentials("credentials rejected")
        if not self.reconnect_works:
            raise BrokerUnavailable("broker down")
        self.healthy = True

    async def health_check(self, connection_id: str) -> bool:
        await self._call("health_check", connection_id)
        if self.bad_credentials:
            raise InvalidCredentials("credentials rejected")
        return self.healthy

    async def discover_accounts(self, connection_id: str) -> Sequence[DiscoveredAccount]:
        await self._call("discover_accounts", connection_id)
        if connection_id not in self.accounts:
            self.accounts[connection_id] = [
                DiscoveredAccount(f"{connection_id[:8]}-acct-{i}", f"Account {i}") for i in range(self.default_accounts)
            ]
        return list(self.accounts[connection_id])

    async def place_order(self, connection_id: str, order: OrderRequest) -> str:
        await self._call("place_order", connection_id)
        broker_order_id = f"broker-{order.client_order_id}"
        self.sides[broker_order_id] = order.side
        return broker_order_id

    async def cancel_order(self, connection_id: str, broker_order_id: str) -> None:
        await self._call("cancel_order", connection_id)
        self.cancelled.add(broker_order_id)

    async def last_price(self, connection_id: str, symbol: str) -> float:
        await self._call("last_price", connection_id)
        if self.failing_price_reads:
            self.failing_price_reads -= 1
            raise BrokerUnavailable("503 while reading the price")
        return self.prices.get(symbol, 100.0)

    async def next_order_update(self, connection_id: str, broker_order_id: str, after_sequence: int) -> OrderUpdate:
        """Sequence 1 is the acknowledgement (or rejection) after ``ack_delay_s``; then ``fill_plan``."""
        await self._call("next_order_update", connection_id)
        if after_sequence == 0:
            await self.runtime.sleep(self.ack_delay_s)
            return OrderUpdate(broker_order_id, "rejected" if self.reject else "acknowledged", 1, reason="scripted")
        plan = self.fill_plan
        if self.sides.get(broker_order_id) == "sell" and self.sell_fill_plan is not None:
            plan = self.sell_fill_plan
        delay, quantity, price = plan[after_sequence - 1]
        await self.runtime.sleep(delay)
        return OrderUpdate(broker_order_id, "fill", after_sequence + 1, fill_quantity=quantity, fill_price=price)

    async def disconnect(self, connection_id: str) -> None:
        await self._call("disconnect", connection_id)
