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
