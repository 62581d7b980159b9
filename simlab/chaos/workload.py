"""A scenario's world and workload: users who connect, disconnect, reconnect, trade and leave.

``build_scenario_world`` assembles the trading platform on the simulated clock
from a validated ``Scenario`` (virtual brokers with the named profiles, lagging
projections, bus latency, saga configuration). ``drive`` is the workload: one
task per user, every gap drawn from the user's own seeded stream, so adding a
user never shifts another user's draws.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import simpy

from sagas.engine.errors import SagaError
from sagas.engine.randomness import RandomStreams
from sagas.trading import commands as c
from simlab.scenario.model import Orderings, Scenario
from simlab.sim.brokers import PROFILES, VirtualBroker
from simlab.sim.keyed import KeyedStreams, SagaEntities, acting_for
from simlab.sim.latency import lognormal_delay
from simlab.sim.market import Market
from simlab.sim.orderings import Fifo, OrderedEnvironment, parse_strategy, strategy_of
from simlab.sim.projections import LagProfile
from simlab.sim.runtime import SimTask
from simlab.sim.trading_world import TradingWorld, build_trading_world
from simlab.sim.world import SimWorld

REFERENCE_PRICE = 100.0


def build_scenario_world(
    scenario: Scenario, seed: int | RandomStreams, *, pct_steps: int | None = None, count_ties: bool = False
) -> TradingWorld:
    """The simulated platform a scenario describes, seeded with ``seed``: every draw of the run comes from
    this one ``RandomStreams`` (the world's ``sim.streams``), each component from streams named for it.

    Its clock orders equal-time events as ``scenario.orderings`` says (``ordered_environment``; ``pct_steps``
    is PCT's expected number of choice points when the strategy does not give it). ``count_ties`` runs FIFO
    on an environment that counts choice points (the same trace as plain FIFO).
    """
    streams = KeyedStreams.of(seed)
    if count_ties:
        env: simpy.Environment | None = OrderedEnvironment(Fifo(), scenario.orderings.quantum_ms / 1000)
    else:
        env = ordered_environment(scenario.orderings, streams, pct_steps)

    def brokers(sim: SimWorld) -> dict[str, VirtualBroker]:
        return {
            name: VirtualBroker(
                sim.runtime,
                sim.streams.stream(f"broker/{name}"),
                PROFILES[spec.profile],
                name=name,
                market=_market(sim, name, spec.volatility_per_sqrt_s),
            )
            for name, spec in scenario.brokers.items()
        }

    lag = {
        name: LagProfile(spec.median_lag_s, spec.lag_sigma, spec.stall_probability, spec.stall_s)
        for name, spec in scenario.projections.items()
    }
    latency = scenario.bus_latency
    world = build_trading_world(
        streams,
        brokers,
        config=scenario.sagas.to_config(),
        lag=lag,
        command_delay=lognormal_delay(streams.stream("bus/command"), latency.command_median_s, latency.sigma),
        query_delay=lognormal_delay(streams.stream("bus/query"), latency.query_median_s, latency.sigma),
        env=env,
    )
    world.sim.runtime.on_task_start = SagaEntities(partial(_user_of_saga, world.sim))  # resumed: still its user's
    return world


def _user_of_saga(sim: SimWorld, task: SimTask) -> str | None:
    """The user whose event triggered the saga ``task`` drives (every trading trigger names one), or None."""
    for manager in sim.made:
        saga_id = manager.saga_of(task)
        if saga_id is not None:
            execution = manager.execution_of(saga_id)
            user = None if execution is None else execution.state.trigger_data.get("user_id")
            return user if isinstance(user, str) else None
    return None


def ordered_environment(
    orderings: Orderings, streams: RandomStreams, pct_steps: int | None = None
) -> OrderedEnvironment | None:
    """The environment ``orderings`` asks for, or None for simpy's own (FIFO, no quantum, nothing recorded).

    A strategy draws from the run's stream ``orderings`` only, so choosing one moves no other draw.
    """
    spec = parse_strategy(orderings.strategy)
    quantum = orderings.quantum_ms / 1000
    if spec.kind == "fifo" and not orderings.choices and not quantum:
        return None
    if spec.kind == "pct" and spec.steps is None:
        spec = dataclasses.replace(spec, steps=pct_steps or 1)
    return OrderedEnvironment(strategy_of(spec, streams.stream("orderings"), dict(orderings.choices)), quantum)


def _market(sim: SimWorld, broker: str, volatility_per_sqrt_s: float) -> Market | None:
    """A moving market for ``broker`` (its own streams, one per symbol), or None for fixed prices."""
    if not volatility_per_sqrt_s:
        return None
    return Market(
        lambda symbol: sim.streams.stream(f"market/{broker}/{symbol}"),
        start_price=REFERENCE_PRICE,
        volatility_per_sqrt_s=volatility_per_sqrt_s,
    )


async def drive(world: TradingWorld, scenario: Scenario) -> None:
    """Start every user's life; each runs as its own task."""
    runtime = world.sim.runtime
    start_rng = world.sim.streams.stream("workload/starts")
    offset = 0.0
    tasks = []
    only = scenario.workload.only_users
    for index in range(scenario.workload.users):
        offset += scenario.workload.user_start_gap_s.draw(start_rng) if index else 0.0
        if only is not None and index not in only:
            continue  # its gap was drawn all the same: the users after it start when they would have
        tasks.append(runtime.spawn(_user_life(world, scenario, f"user-{index}", offset), name=f"user-{index}"))
    for task in tasks:
        await task.join()


async def _user_life(world: TradingWorld, scenario: Scenario, user_id: str, start_s: float) -> None:
    acting_for(user_id)  # every draw this user's work makes, down to its sagas' steps, comes from its own streams
    runtime = world.sim.runtime
    rng = world.sim.streams.stream(f"workload/{user_id}")
    bus = world.manager.command_bus
    workload = scenario.workload
    await runtime.sleep(start_s)
    await bus.send(c.CreateUser(user_id))

    async def connect_all() -> list[str]:
        return [
            await bus.send(c.ConnectBroker(user_id, broker, is_virtual=scenario.brokers[broker].virtual))
            for broker in workload.brokers
        ]

    connections = await connect_all()
    failures = workload.connection_failures
    if failures.probability:
        runtime.spawn(_fail_connections(world, scenario, user_id, connections), name=f"{user_id} failures")
    cycles = workload.cycles
    for cycle in range(cycles.count):
        await runtime.sleep(cycles.connect_to_disconnect_s.draw(rng))
        for connection_id in connections:
            await bus.send(c.DisconnectBroker(connection_id))
        if cycle == cycles.count - 1 and not cycles.end_connected:
            connections = []
            break
        await runtime.sleep(cycles.disconnect_to_reconnect_s.draw(rng))
        connections = await connect_all()
        await runtime.sleep(cycles.between_cycles_s.draw(rng))
    orders = workload.orders
    for _ in range(orders.per_user):
        await runtime.sleep(orders.gap_s.draw(rng))
        await _place_order(world, scenario, user_id, connections, rng)
    deletions = workload.user_deletions
    if deletions.probability and rng.random() < deletions.probability:
        await runtime.sleep(deletions.after_s.draw(rng))
        await bus.send(c.DeleteUser(user_id))


async def _fail_connections(world: TradingWorld, scenario: Scenario, user_id: str, connections: list[str]) -> None:
    """At a drawn instant, some of the user's connections lose their session (recovery sagas start)."""
    failures = scenario.workload.connection_failures
    rng = world.sim.streams.stream(f"workload/{user_id}/failures")
    await world.sim.runtime.sleep(failures.at_s.draw(rng))
    for connection_id in connections:
        if rng.random() < failures.probability:
            needs_user = rng.random() < failures.requires_user_action_probability
            await world.manager.command_bus.send(
                c.MarkConnectionFailed(connection_id, "session_lost", requires_user_action=needs_user)
            )


async def _place_order(world: TradingWorld, scenario: Scenario, user_id: str, connections: list[str], rng: Any) -> None:
    write = world.platform.write
    accounts = [a for cid in connections for a in write.accounts_of(cid)]
    if not accounts:
        return  # nothing linked yet: a user cannot trade on an account they do not have
    orders = scenario.workload.orders
    account = accounts[rng.randrange(len(accounts))]
    quantity = rng.randint(orders.quantity_min, orders.quantity_max)
    take = REFERENCE_PRICE * (1 + orders.take_profit_pct / 100) if orders.take_profit_pct else None
    stop = REFERENCE_PRICE * (1 - orders.stop_loss_pct / 100) if orders.stop_loss_pct else None
    try:
        await world.manager.command_bus.send(
            c.PlaceOrder(user_id, account.account_id, "AAPL", "buy", quantity, take_profit=take, stop_loss=stop)
        )
    except SagaError:
        return  # the account vanished meanwhile (a disconnection): the platform refused the order
