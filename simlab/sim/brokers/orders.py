"""What a virtual broker records: the calls it received, and the orders it holds with their drawn schedules."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from sagas.trading.broker_port import OrderRequest, OrderUpdate


def split_quantity(quantity: float, fills: int, rng: random.Random) -> list[float]:
    """Split ``quantity`` into at most ``fills`` whole-number parts that add up to it exactly.

    A quantity that is not a whole number (or too small to split) fills in one piece.
    """
    if fills <= 1 or quantity != int(quantity) or quantity < 2:
        return [quantity]
    whole = int(quantity)
    cuts = sorted(rng.sample(range(1, whole), min(fills, whole) - 1))
    bounds = [0, *cuts, whole]
    return [float(b - a) for a, b in itertools.pairwise(bounds)]


@dataclass(frozen=True, slots=True)
class BrokerCall:
    """One call to a broker, for analysis: when it ran, what it was, how it ended (``ok`` or the error's type)."""

    broker: str
    started_at: float
    ended_at: float
    operation: str
    connection_id: str
    outcome: str


@dataclass(slots=True)
class BrokerOrder:
    """An order the broker holds: the request and its drawn schedule of ``(time, update)`` pairs."""

    broker_order_id: str
    connection_id: str
    request: OrderRequest
    placed_at: float
    scheduled: list[tuple[float, OrderUpdate]]
    cancel_requested_at: float | None = None

    def timeline(self) -> list[tuple[float, OrderUpdate]]:
        """The order's updates as they will happen, a pending cancel applied."""
        cancel_at = self.cancel_requested_at
        out: list[tuple[float, OrderUpdate]] = []
        for at, update in self.scheduled:
            if cancel_at is not None and at > cancel_at:
                out.append((at, OrderUpdate(self.broker_order_id, "cancelled", update.sequence, reason="cancelled")))
                break
            out.append((at, update))
        return out

    def final_at(self) -> float:
        """When the order's last update happens (given the cancel requested so far)."""
        return self.timeline()[-1][0]
