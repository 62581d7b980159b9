"""The trading platform on the lab's virtual brokers: runs clean and replays exactly from its seed."""

from __future__ import annotations

import random

from sagas import trace_hash
from sagas.trading import commands as c
from simlab.sim.brokers import PROFILES, VirtualBroker
from simlab.sim.latency import lognormal_delay
from simlab.sim.projections import LagProfile
from simlab.sim.trading_world import build_trading_world


def _run(seed: int):
    def brokers(sim):
        return {
            name: VirtualBroker(sim.runtime, sim.streams.stream(f"broker/{name}"), PROFILES[profile], name=name)
            for name, profile in (("alpaca", "real"), ("virtual", "virtual"))
        }

    world = build_trading_world(
        seed,
        brokers,
        lag={"accounts": LagProfile(median_lag_s=0.3)},
        query_delay=lognormal_delay(random.Random(seed), 0.005),
    )

    async def main(w):
        bus = w.manager.command_bus
        runtime = w.sim.runtime
        workload = w.sim.streams.stream("workload")
        for user in ("u1", "u2", "u3"):
            await bus.send(c.CreateUser(user))
            connection_id = await bus.send(c.ConnectBroker(user, "alpaca"))
            await runtime.sleep(workload.uniform(0.5, 3.0))
            await bus.send(c.DisconnectBroker(connection_id))
            await runtime.sleep(workload.uniform(0.0, 2.0))
            await bus.send(c.ConnectBroker(user, "alpaca"))
        await w.manager.wait_idle()

    task = world.sim.runtime.spawn(main(world), name="main")
    world.sim.runtime.run()
    assert world.sim.runtime.unobserved_errors() == []
    assert task.done()
    return world


def test_connect_disconnect_reconnect_cycles_on_virtual_brokers_finish_every_saga():
    world = _run(3)
    records = world.sim.tracer.records
    ends = [r for r in records if r.phase == "saga" and r.outcome in {"completed", "compensated", "aborted"}]
    started = [r for r in records if r.phase == "saga" and r.outcome == "started"]
    assert len(started) == 9 and len(ends) == 9  # 6 connection sagas, 3 disconnection sagas
    assert any(call.operation == "discover_accounts" for call in world.brokers["alpaca"].calls)


def test_the_same_seed_replays_the_same_trace():
    assert trace_hash(_run(11).sim.tracer.records) == trace_hash(_run(11).sim.tracer.records)
    assert trace_hash(_run(11).sim.tracer.records) != trace_hash(_run(12).sim.tracer.records)


def test_a_restarted_manager_is_its_node_s_next_incarnation_with_the_same_settings_and_sagas():
    world = build_trading_world(0, lambda sim: {})
    old = world.manager
    old.lease_seconds, old.retain_finished, old.children_grace_seconds = 12.0, False, 7.0
    new = world.restart_manager()
    assert world.manager is new and new is not old
    assert (new.node, new.lease_seconds, new.retain_finished, new.children_grace_seconds) == (
        "manager",
        12.0,
        False,
        7.0,
    )
    assert (new.command_bus, new.query_bus, new.locks, new.store) == (
        old.command_bus,
        old.query_bus,
        old.locks,
        old.store,
    )
    assert new.event_bus is not old.event_bus  # its subscriptions died with the old one
    assert new.event_bus.has_subscribers("BrokerConnectionEstablished") and not world.sim.others
    other = world.add_manager("overlap-1")
    assert world.sim.others == [other] and world.manager is new
    assert (other.node, other.event_bus, other.lease_seconds) == ("overlap-1", new.event_bus, 12.0)
