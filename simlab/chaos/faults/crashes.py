"""The ``manager_crashes`` family: the running manager dies and its node restarts it.

``manager_crashes``
    ``crashes`` times, at instants drawn uniformly between the start and the heal, the running manager dies:
    ``manager.stop()`` cancels every saga task, and while those unwind every port call they make
    (Redis, broker, command bus) is cancelled before it reaches the port, because a dead process's
    ``finally:`` blocks never reach the outside world: its locks stay held until their TTL. The
    manager's event subscriptions die with it; events published while it is down wait for it, as on a
    durable bus, since the platform keeps running. After ``restart_after_s`` a new manager is built on
    the same store, buses, locks, tracer and ids, the trading sagas are registered on it again (the
    platform's command and query handlers stay where they are), it ``recover()`` s the unfinished
    sagas and then receives the events that waited; it then keeps recovering every third of a lease
    until two leases after the heal (``SagaManager.keep_recovering``).

The instants are drawn before the run, from the stream ``faults/manager_crashes`` (``FaultPlan.schedule``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sagas.engine.randomness import RandomStreams
from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.events import FaultyEventBus
from simlab.chaos.faults.family import FaultFamily, WrappedPorts
from simlab.chaos.faults.plan import FaultPlan
from simlab.chaos.faults.windows import FaultWindow
from simlab.scenario.faults import ManagerCrashes
from simlab.sim.runtime import SimTask
from simlab.sim.trading_world import TradingWorld


class ManagerCrashesFamily(FaultFamily):
    name = "manager_crashes"
    schema = ManagerCrashes
    ports = ("brokers", "redis", "command_bus", "event_bus")
    streams = ("faults/manager_crashes",)

    def count(self, plan: FaultPlan) -> int:
        """How many crashes this run has (a swarm run draws 1..configured)."""
        return plan.count(self.name, plan.faults.manager_crashes.crashes)

    def live(self, plan: FaultPlan) -> bool:
        return self.count(plan) > 0

    def plan(self, plan: FaultPlan, streams: RandomStreams) -> tuple[tuple[float, float], ...]:
        """The run's ``(crash, restart)`` instants: crashes uniform in ``[start, heal)``, one at a time,
        restarts by the heal."""
        rng = streams.stream("faults/manager_crashes")
        heal = plan.heal_after_s
        restart_after = plan.faults.manager_crashes.restart_after_s
        count = self.count(plan)
        draws = sorted((rng.uniform(plan.start_after_s, heal), restart_after.draw(rng)) for _ in range(count))
        schedule: list[tuple[float, float]] = []
        up_at = 0.0
        for at, down_s in draws:
            at = max(at, up_at)
            if at >= heal:
                break
            up_at = min(at + down_s, heal)
            schedule.append((at, up_at))
        return tuple(schedule)

    def schedule(self, world: TradingWorld, ctx: FaultContext, ports: WrappedPorts) -> list[FaultWindow]:
        schedule: Sequence[tuple[float, float]] = ctx.plan.schedule(self.name)
        bus = ports.event_bus
        if not isinstance(bus, FaultyEventBus):  # the event bus is wrapped whenever this family is live
            return []
        kept = [
            (f"{self.name}#{k}", at, up) for k, (at, up) in enumerate(schedule, 1) if ctx.allows(f"{self.name}#{k}")
        ]
        world.sim.runtime.spawn(_crashes(world, ctx, bus, kept), name="fault: manager crashes")
        return [FaultWindow(self.name, at, up, "manager down") for _label, at, up in kept]


async def _crashes(
    world: TradingWorld, ctx: FaultContext, bus: FaultyEventBus, schedule: Sequence[tuple[str, float, float]]
) -> None:
    for label, at, up in schedule:
        await _crash_and_restart(world, ctx, bus, label, at, up)


async def _crash_and_restart(
    world: TradingWorld, ctx: FaultContext, bus: FaultyEventBus, label: str, at: float, up: float
) -> None:
    runtime = ctx.runtime
    await runtime.sleep(at - runtime.now())
    ctx.struck("manager_crashes", label, f"down until {up:g}")
    old = world.manager
    # Its own tasks, not every task named after its sagas: another manager may drive one of the same id.
    tasks = [old.task_of(saga_id) for saga_id in old.running]
    ctx.dying.update(task for task in tasks if isinstance(task, SimTask) and not task.done())
    bus.detach(old)
    old.stop()
    await runtime.sleep(up - runtime.now())  # at least one scheduling turn: the dead sagas unwind first
    new = world.restart_manager(bus)  # the same node, restarted: it reclaims its leases
    await new.recover()
    await bus.attach(new)
    # As a deployment would, it keeps recovering: a saga the dead manager still managed to create
    # (a call under way when it died) is taken over too. Until every fault and lease is over.
    until = ctx.heal + 2 * new.lease_seconds
    runtime.spawn(new.keep_recovering(new.lease_seconds / 3, until=until), name="fault: recovery rounds")
