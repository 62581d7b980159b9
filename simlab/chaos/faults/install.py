"""Planning a run's faults and installing them: two loops over the registry."""

from __future__ import annotations

import dataclasses

from sagas.engine.randomness import RandomStreams
from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.plan import FaultPlan
from simlab.chaos.faults.ports import wrap_ports
from simlab.chaos.faults.registry import BROKER_CALL_ORDER, BY_NAME, REGISTRY
from simlab.chaos.faults.windows import FaultWindows
from simlab.scenario.faults import FAMILIES
from simlab.scenario.model import Scenario
from simlab.sim.trading_world import TradingWorld


def plan_faults(scenario: Scenario, seed: int | RandomStreams) -> FaultPlan:
    """The families on for the run of ``scenario`` seeded ``seed``, their intensities and schedules.

    Pass the run's ``RandomStreams`` (the runner does), or a seed for a fresh set: the plan is the
    same either way, since it draws only from streams of its own (``faults/plan``, and those of the
    families that plan ahead), each first used here.
    """
    streams = RandomStreams.of(seed)
    faults = scenario.faults
    rng = streams.stream("faults/plan")
    intensity: dict[str, float] = {}
    for name in FAMILIES:
        coin, level = rng.random(), rng.random()  # drawn for every family: toggling one never shifts another
        if not getattr(faults, name).enabled:
            continue
        if not faults.swarm:
            intensity[name] = 1.0
        elif coin < 0.5:
            intensity[name] = level
    plan = FaultPlan(faults, intensity)
    live = [BY_NAME[name] for name in FAMILIES if BY_NAME[name].live(plan)]
    return dataclasses.replace(plan, schedules={family.name: family.plan(plan, streams) for family in live})


def install_faults(world: TradingWorld, plan: FaultPlan) -> FaultWindows:
    """Wrap ``world``'s ports with the families ``plan`` switched on; return the run's fault windows.

    Call it right after the world is built, before the workload starts. Nothing is wrapped when no
    family is on (or faults heal at 0 s), so such runs are exactly the runs without faults.
    """
    windows = FaultWindows()
    if not plan.intensity or plan.heal_after_s <= 0:
        return windows
    ctx = FaultContext(world.sim, plan, windows)
    live = [family for family in REGISTRY if family.live(plan)]
    chain = [family for family in BROKER_CALL_ORDER if family.live(plan)]
    ports = wrap_ports(world, ctx, {port for family in live for port in family.ports}, chain)
    for family in live:
        windows.extend(family.down_windows(ctx, ports))
    for family in live:
        window = family.on_window(ctx)
        if window is not None:
            windows.append(window)
    for family in live:
        windows.extend(family.schedule(world, ctx, ports))
    return windows
