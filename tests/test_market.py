"""The simulated market: seeded random walks whose price at an instant never depends on who asked when."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from sagas.engine.randomness import RandomStreams
from simlab.sim.brokers import REAL, VirtualBroker
from simlab.sim.market import Market
from simlab.sim.world import simulate


def _market(seed: int = 7, volatility: float = 0.001) -> Market:
    streams = RandomStreams(seed)
    return Market(
        lambda symbol: streams.stream(f"market/b/{symbol}"), start_price=100.0, volatility_per_sqrt_s=volatility
    )


def test_the_price_at_an_instant_is_the_same_whatever_was_asked_before():
    forwards, backwards = _market(), _market()
    times = [0.0, 0.5, 5.0, 60.2, 3600.0]
    ahead = [forwards.price("AAPL", t) for t in times]
    behind = [backwards.price("AAPL", t) for t in reversed(times)][::-1]
    assert ahead == behind
    assert ahead[0] == ahead[1] == 100.0  # the first tick is the start price; a tick lasts 1 s
    assert len(set(ahead[2:])) == 3  # and it moves
    assert _market().price("MSFT", 60.2) != ahead[3]  # each symbol walks on its own stream


def test_without_volatility_the_price_stays_put():
    assert {_market(volatility=0.0).price("AAPL", t) for t in (0.0, 10.0, 1e6)} == {100.0}


def test_the_walk_moves_by_the_configured_volatility_per_square_root_second():
    market = _market(seed=3, volatility=0.002)
    prices = [market.price("AAPL", float(t)) for t in range(20_001)]
    steps = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    assert statistics.pstdev(steps) == pytest.approx(0.002, rel=0.03)
    assert abs(statistics.fmean(steps)) < 0.002 / math.sqrt(len(steps)) * 4


def test_a_virtual_broker_quotes_its_market_unless_a_price_was_set():
    async def main(world):
        market = Market(lambda s: world.streams.stream(f"market/b/{s}"), start_price=100.0, volatility_per_sqrt_s=0.001)
        broker = VirtualBroker(world.runtime, world.streams.stream("broker/b"), REAL, name="b", market=market)
        await world.runtime.sleep(30.0)
        quoted = broker.market_price("AAPL")
        at_30 = market.price("AAPL", 30.0)
        broker.set_price("AAPL", 123.0)  # a price set by hand wins over the market's
        return quoted, at_30, broker.market_price("AAPL"), broker.market_price("AAPL", 5.0)

    (quoted, at_30, fixed, fixed_earlier), _ = simulate(main)
    assert quoted == at_30 != 100.0
    assert fixed == fixed_earlier == 123.0
