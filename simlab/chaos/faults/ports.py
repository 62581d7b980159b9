"""Wrapping a world's ports for a run's live families: one wrapper per port, serving every family that needs it."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sagas.engine.buses import CommandBus, EventBus
from sagas.trading.broker_port import BrokerApi
from simlab.chaos.faults.brokers import BrokerFamily, FaultyBroker
from simlab.chaos.faults.compensations import FaultyCommandBus
from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.events import FaultyEventBus
from simlab.chaos.faults.family import Port, WrappedPorts
from simlab.chaos.faults.redis_client import FaultyRedis
from simlab.sim.trading_world import TradingWorld


def wrap_ports(
    world: TradingWorld, ctx: FaultContext, needed: Collection[Port], broker_chain: Sequence[BrokerFamily] = ()
) -> WrappedPorts:
    """Wrap each port in ``needed`` (brokers, Redis, command bus, event bus: in that order).

    Each broker runs its calls through the links of ``broker_chain`` (the live broker families, in call order).
    """
    wrapped = WrappedPorts()

    def broker(name: str, inner: BrokerApi) -> BrokerApi:
        return FaultyBroker(inner, name, ctx, broker_chain)

    def redis(inner: object) -> FaultyRedis:
        wrapped.redis = FaultyRedis(inner, ctx)
        return wrapped.redis

    def command_bus(inner: CommandBus) -> CommandBus:
        return FaultyCommandBus(inner, ctx)

    def event_bus(inner: EventBus) -> EventBus:
        wrapped.event_bus = FaultyEventBus(inner, ctx)
        return wrapped.event_bus

    world.wrap_ports(
        broker=broker if "brokers" in needed else None,
        redis=redis if "redis" in needed else None,
        command_bus=command_bus if "command_bus" in needed else None,
        event_bus=event_bus if "event_bus" in needed else None,
    )
    return wrapped
