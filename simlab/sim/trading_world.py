"""A simulated trading platform: the real domain and sagas on the simulated clock, with lab parts around them.

The lab parts are the ones production has real counterparts for: fakeredis on
the simulated clock for the cache, the locks and the seed's ``safe_set``;
lagging asynchronous projections; latency on the command and query buses; and
the brokers (virtual brokers by default, or any ``BrokerApi`` a test passes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sagas.engine.manager import SagaManager
from sagas.infra.cache import CacheManager
from sagas.infra.locks import RedisLockManager
from sagas.trading.broker_port import BrokerApi
from sagas.trading.config import SagaConfig
from sagas.trading.deps import TradingDeps
from sagas.trading.wiring import Platform, install_platform, register_trading_sagas
from simlab.sim.clocked_redis import SimulatedRedis
from simlab.sim.latency import Delay, DelayedCommandBus, DelayedQueryBus, fixed_delay
from simlab.sim.projections import LaggingProjectionWorker, LagProfile
from simlab.sim.world import SimWorld, build_world

BrokerFactory = Callable[[SimWorld], Mapping[str, BrokerApi]]


@dataclass
class TradingWorld:
    """One simulated run of the trading platform."""

    sim: SimWorld
    platform: Platform
    projections: LaggingProjectionWorker
    brokers: Mapping[str, BrokerApi]
    redis: SimulatedRedis
    deps: TradingDeps

    @property
    def manager(self) -> SagaManager:
        """The saga manager running the trading sagas."""
        return self.sim.manager


def build_trading_world(
    seed: int,
    brokers: BrokerFactory,
    *,
    config: SagaConfig | None = None,
    lag: Mapping[str, LagProfile] | None = None,
    command_delay: Delay | None = None,
    query_delay: Delay | None = None,
) -> TradingWorld:
    """Assemble the platform, its read models and its sagas in a fresh seeded world."""
    sim = build_world(seed)
    runtime = sim.runtime
    manager = SagaManager(
        runtime=runtime,
        store=sim.store,
        random_streams=sim.streams,
        command_bus=DelayedCommandBus(runtime, command_delay or fixed_delay(0.0)),
        query_bus=DelayedQueryBus(runtime, query_delay or fixed_delay(0.0)),
        tracer=sim.tracer,
    )
    sim.manager = manager
    projections = LaggingProjectionWorker(runtime, sim.streams, profiles=lag or {})
    platform = install_platform(manager, projections)
    redis = SimulatedRedis(clock=runtime.now)
    locks = RedisLockManager(redis)
    manager.locks = locks
    broker_map = brokers(sim)

    def credentials(connection_id: str) -> str:
        return platform.write.connections[connection_id].credentials

    deps = TradingDeps(
        brokers=broker_map,
        cache=CacheManager(redis),
        redis=redis,
        locks=locks,
        credentials=credentials,
        config=config or SagaConfig(),
    )
    register_trading_sagas(manager, deps)
    return TradingWorld(sim, platform, projections, broker_map, redis, deps)
