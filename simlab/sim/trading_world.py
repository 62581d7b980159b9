"""A simulated trading platform: the real domain and sagas on the simulated clock, with lab parts around them.

The lab parts are the ones production has real counterparts for: fakeredis on
the simulated clock for the cache, the locks and the seed's ``safe_set``;
lagging asynchronous projections; latency on the command and query buses; and
the brokers (virtual brokers by default, or any ``BrokerApi`` a test passes).

Whoever wraps the world's ports (the lock ledger, the fault families) does so through
``TradingWorld.wrap_ports``, the one place that knows which parts hold each port; managers are
restarted or added beside the running one through ``restart_manager`` and ``add_manager``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import simpy

from sagas.engine.buses import CommandBus, EventBus
from sagas.engine.manager import SagaManager
from sagas.engine.randomness import RandomStreams
from sagas.infra.cache import CacheManager
from sagas.infra.locks import RedisLockManager
from sagas.trading.broker_port import BrokerApi
from sagas.trading.config import SagaConfig
from sagas.trading.deps import TradingDeps
from sagas.trading.wiring import Platform, install_platform, register_trading_sagas
from simlab.sim.clocked_redis import SimulatedRedis
from simlab.sim.latency import Delay, DelayedCommandBus, DelayedQueryBus, fixed_delay
from simlab.sim.projections import LaggingProjectionWorker, LagProfile
from simlab.sim.redis_spares import fresh_redis
from simlab.sim.world import SimWorld, build_world

BrokerFactory = Callable[[SimWorld], Mapping[str, BrokerApi]]


@dataclass
class TradingWorld:
    """One simulated run of the trading platform."""

    sim: SimWorld
    platform: Platform
    projections: LaggingProjectionWorker
    brokers: Mapping[str, BrokerApi]
    """The brokers as built (unwrapped: their lab controls and call logs)."""
    redis: SimulatedRedis
    """The Redis server as built (unwrapped)."""
    deps: TradingDeps

    @property
    def manager(self) -> SagaManager:
        """The saga manager running the trading sagas."""
        return self.sim.manager

    def wrap_ports(
        self,
        *,
        broker: Callable[[str, BrokerApi], BrokerApi] | None = None,
        redis: Callable[[Any], Any] | None = None,
        command_bus: Callable[[CommandBus], CommandBus] | None = None,
        event_bus: Callable[[EventBus], EventBus] | None = None,
    ) -> None:
        """Put wrappers around the ports the sagas use, in this order; each gets the current port.

        The Redis client is behind the locks and the cache too, which are rebuilt on the wrapped
        client; the event bus is the platform's as well as the manager's. The unwrapped brokers
        and Redis stay in ``brokers`` and ``redis``.
        """
        deps, manager = self.deps, self.manager
        if broker is not None:
            deps.brokers = {name: broker(name, inner) for name, inner in deps.brokers.items()}
        if redis is not None:
            client = redis(deps.redis)
            deps.redis, deps.cache, deps.locks = client, CacheManager(client), RedisLockManager(client)
            manager.locks = deps.locks
        if command_bus is not None:
            manager.command_bus = command_bus(manager.command_bus)
        if event_bus is not None:
            manager.event_bus = self.platform.write.event_bus = event_bus(manager.event_bus)

    def restart_manager(self, event_bus: EventBus | None = None) -> SagaManager:
        """The running manager's node restarted: its next incarnation, running the trading sagas."""
        manager = self.sim.restart_manager(event_bus)
        register_trading_sagas(manager, self.deps)
        return manager

    def add_manager(self, node: str) -> SagaManager:
        """Another manager process ``node`` beside the running one (kept in ``sim.others``), running the
        trading sagas: it shares the store, buses, locks and trace, and subscribes to the same event bus."""
        running = self.manager
        other = self.sim.manager_like(running, node=node, event_bus=running.event_bus)
        register_trading_sagas(other, self.deps)
        self.sim.others.append(other)
        return other


def build_trading_world(
    seed: int | RandomStreams,
    brokers: BrokerFactory,
    *,
    config: SagaConfig | None = None,
    lag: Mapping[str, LagProfile] | None = None,
    command_delay: Delay | None = None,
    query_delay: Delay | None = None,
    env: simpy.Environment | None = None,
) -> TradingWorld:
    """Assemble the platform, its read models and its sagas in a fresh world seeded with ``seed``
    (or drawing from the run's ``RandomStreams``), on ``env`` (default: a new plain simpy environment)."""
    sim = build_world(
        seed,
        env=env,
        command_bus=lambda runtime: DelayedCommandBus(runtime, command_delay or fixed_delay(0.0)),
        query_bus=lambda runtime: DelayedQueryBus(runtime, query_delay or fixed_delay(0.0)),
    )
    runtime, manager = sim.runtime, sim.manager
    projections = LaggingProjectionWorker(runtime, sim.streams, profiles=lag or {})
    platform = install_platform(manager, projections)
    redis = fresh_redis(runtime.now)  # a dead world's, reset as new, or a new one
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
