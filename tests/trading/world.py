"""Building simulated trading worlds for the saga tests, with scripted brokers and controlled lags."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from sagas.trading.config import SagaConfig
from simlab.sim.latency import Delay
from simlab.sim.projections import LagProfile
from simlab.sim.trading_world import TradingWorld, build_trading_world
from tests.trading.scripted_broker import ScriptedBroker

BROKERS = ("alpaca", "virtual")


def no_lag() -> dict[str, LagProfile]:
    return {"accounts": LagProfile(median_lag_s=0.0)}


def fixed_lag(seconds: float) -> dict[str, LagProfile]:
    return {"accounts": LagProfile(median_lag_s=seconds, lag_sigma=0.0)}


def run_trading(
    main: Callable[[TradingWorld], Coroutine[Any, Any, Any]],
    *,
    seed: int = 0,
    config: SagaConfig | None = None,
    lag: dict[str, LagProfile] | None = None,
    broker_latency_s: float = 0.0,
    command_delay: Delay | None = None,
    query_delay: Delay | None = None,
    broker_options: dict[str, Any] | None = None,
    extra_brokers: tuple[str, ...] = (),
) -> tuple[Any, TradingWorld]:
    """Run ``main(world)`` in a fresh trading world until nothing is left to do."""

    def brokers(sim: Any) -> dict[str, ScriptedBroker]:
        return {
            name: ScriptedBroker(sim.runtime, latency_s=broker_latency_s, **(broker_options or {}))
            for name in (*BROKERS, *extra_brokers)
        }

    world = build_trading_world(
        seed,
        brokers,
        config=config,
        lag=lag if lag is not None else no_lag(),
        command_delay=command_delay,
        query_delay=query_delay,
    )
    task = world.sim.runtime.spawn(main(world), name="main")
    world.sim.runtime.run()
    errors = world.sim.runtime.unobserved_errors()
    assert errors == [], errors
    return task.result(), world


def saga_records(world: TradingWorld, saga_type: str) -> list[Any]:
    return [r for r in world.sim.tracer.records if r.saga_type == saga_type]


def terminal(world: TradingWorld, saga_type: str) -> list[tuple[float, str, str | None]]:
    """(time, outcome, detail) of every terminal saga record of ``saga_type``."""
    ends = {"completed", "compensated", "compensation_failed", "aborted", "timed_out"}
    return [
        (r.t, r.outcome, r.detail) for r in saga_records(world, saga_type) if r.phase == "saga" and r.outcome in ends
    ]
