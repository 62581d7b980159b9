"""A simulated market: each symbol's price follows a seeded random walk in simulated time.

How this works: the price of a symbol moves once per ``tick_s`` by a lognormal step
(volatility ``volatility_per_sqrt_s`` per square-root second, no drift). Ticks are drawn in
order from the symbol's own stream, up to the tick a query falls in, so the price at a given
instant does not depend on when, or how often, anyone asked: two runs with the same seed see
the same prices whatever their sagas do. With zero volatility the price stays at the start.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable


class Market:
    """Prices of symbols that wander from ``start_price`` (a geometric random walk)."""

    def __init__(
        self,
        stream: Callable[[str], random.Random],
        *,
        start_price: float,
        volatility_per_sqrt_s: float,
        tick_s: float = 1.0,
    ) -> None:
        if not start_price > 0:
            raise ValueError(f"start_price must be > 0, got {start_price!r}")
        if not volatility_per_sqrt_s >= 0:
            raise ValueError(f"volatility_per_sqrt_s must be >= 0, got {volatility_per_sqrt_s!r}")
        if not tick_s > 0:
            raise ValueError(f"tick_s must be > 0, got {tick_s!r}")
        self._stream = stream
        self.start_price = start_price
        self.tick_s = tick_s
        self._sigma = volatility_per_sqrt_s * math.sqrt(tick_s)  # per tick
        self._walks: dict[str, tuple[random.Random, list[float]]] = {}

    def price(self, symbol: str, at_s: float) -> float:
        """The price of ``symbol`` at simulated time ``at_s`` (that of the tick it falls in)."""
        if self._sigma == 0:
            return self.start_price
        walk = self._walks.get(symbol)
        if walk is None:
            walk = self._walks[symbol] = (self._stream(symbol), [self.start_price])
        rng, prices = walk
        tick = max(0, int(at_s // self.tick_s))
        drift = -self._sigma * self._sigma / 2.0  # keeps the expected price where it started
        while len(prices) <= tick:
            prices.append(prices[-1] * math.exp(drift + self._sigma * rng.gauss(0.0, 1.0)))
        return prices[tick]
