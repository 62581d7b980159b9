"""The ``projection_stalls`` family: asynchronous projections that stop for a while, then catch up.

``projection_stalls``
    Each asynchronous projection stalls at the instants of a Poisson process whose rate is
    ``probability`` per simulated second, each time for ``stall_s``
    (``LaggingProjectionWorker.stall``); it then catches up in order. Stalls end by the heal.

The instants are drawn at install from the stream ``faults/projection_stalls/<projection>``.
"""

from __future__ import annotations

from collections import Counter

from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.family import FaultFamily, WrappedPorts
from simlab.chaos.faults.windows import FaultWindow
from simlab.scenario.faults import ProjectionStalls
from simlab.scenario.model import PROJECTIONS
from simlab.sim.trading_world import TradingWorld


class ProjectionStallsFamily(FaultFamily):
    name = "projection_stalls"
    schema = ProjectionStalls
    streams = ("faults/projection_stalls/<projection>",)

    def schedule(self, world: TradingWorld, ctx: FaultContext, ports: WrappedPorts) -> list[FaultWindow]:
        drawn = _stall_schedule(ctx)
        numbers: Counter[str] = Counter()
        stalls = []
        for start, name, end in drawn:  # numbered per projection, in time order
            numbers[name] += 1
            label = f"{self.name}/{name}#{numbers[name]}"
            if ctx.allows(label):
                stalls.append((label, start, name, end))
        if stalls:
            world.sim.runtime.spawn(_stalls(world, ctx, stalls), name="fault: projection stalls")
        return [FaultWindow(self.name, start, end, f"{name} stalled") for _label, start, name, end in stalls]


def _stall_schedule(ctx: FaultContext) -> list[tuple[float, str, float]]:
    """``(start, projection, end)`` of every stall: a Poisson process per projection, stalls ending by the heal."""
    family = ctx.plan.faults.projection_stalls
    rate = family.probability * ctx.plan.scale("projection_stalls")
    stalls: list[tuple[float, str, float]] = []
    if rate <= 0:
        return stalls
    for name in PROJECTIONS:
        rng = ctx.stream("projection_stalls", name)
        t = ctx.start + rng.expovariate(rate)
        while t < ctx.heal:
            stalls.append((t, name, min(t + family.stall_s.draw(rng), ctx.heal)))
            t += rng.expovariate(rate)
    return sorted(stalls)


async def _stalls(world: TradingWorld, ctx: FaultContext, stalls: list[tuple[str, float, str, float]]) -> None:
    runtime = ctx.runtime
    for label, start, name, end in stalls:
        await runtime.sleep(start - runtime.now())
        world.projections.stall(name, end)
        ctx.struck("projection_stalls", label, f"until {end:g}")
