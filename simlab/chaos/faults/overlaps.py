"""The ``overlapping_managers`` family: a second manager recovers while the first still runs.

``overlapping_managers``
    ``overlaps`` times, at instants drawn uniformly between the start and the heal, a second manager
    starts on the same store, buses, Redis, trace and ids and calls ``recover()`` while the running
    one goes on: both then drive every saga the store holds as unfinished (a rolling deploy whose new
    instance recovers on start-up, or a recoverer started by hand). The newcomer is another node, so
    the engine's leases leave it only sagas whose lease ran out; without them the lab's
    ``no_step_applied_twice`` sees both managers run completed steps again. With ``pause_s`` above
    zero, the running manager cannot reach the saga store for that long from the overlap on (a long
    GC or VM pause as the store sees it, or a partition from the store): its lease renewals and state
    writes wait until it is over, while steps already under way go on (the harder case for the
    engine). The newcomer calls ``recover()`` again every third of a lease until then, so once the
    leases run out it takes the sagas over: split brain, which leases and fencing must make harmless
    (the paused manager's writes are refused when it thaws, and it stops).

The instants are drawn before the run from the stream ``faults/overlapping_managers``, the pauses from
``faults/overlapping_managers/pause`` (``FaultPlan.schedule``: ``(instant, pause)`` pairs). It wraps
no port: the newcomer uses the running manager's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sagas.engine.ports import SagaStore
from sagas.engine.randomness import RandomStreams
from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.family import FaultFamily, WrappedPorts
from simlab.chaos.faults.plan import FaultPlan
from simlab.chaos.faults.windows import FaultWindow
from simlab.scenario.distributions import Fixed
from simlab.scenario.faults import OverlappingManagers
from simlab.sim.runtime import SimRuntime
from simlab.sim.trading_world import TradingWorld


class OverlappingManagersFamily(FaultFamily):
    name = "overlapping_managers"
    schema = OverlappingManagers
    streams = ("faults/overlapping_managers", "faults/overlapping_managers/pause")

    def plan(self, plan: FaultPlan, streams: RandomStreams) -> tuple[tuple[float, float], ...]:
        """``(instant, pause)`` of each overlap: instants uniform in ``[start, heal)``, in order; how long
        the running manager then cannot reach the store (0: not at all)."""
        count = plan.count(self.name, plan.faults.overlapping_managers.overlaps)
        if not count:
            return ()  # most runs: no stream to derive
        rng = streams.stream("faults/overlapping_managers")
        instants = sorted(rng.uniform(plan.start_after_s, plan.heal_after_s) for _ in range(count))
        pause_s = plan.faults.overlapping_managers.pause_s
        if isinstance(pause_s, Fixed) and pause_s.value == 0:
            return tuple((at, 0.0) for at in instants)
        pauses = streams.stream("faults/overlapping_managers/pause")
        return tuple((at, pause_s.draw(pauses)) for at in instants)

    def schedule(self, world: TradingWorld, ctx: FaultContext, ports: WrappedPorts) -> list[FaultWindow]:
        drawn: Sequence[tuple[float, float]] = ctx.plan.schedule(self.name)
        schedule = [(f"{self.name}#{k}", at, pause) for k, (at, pause) in enumerate(drawn, 1)]
        schedule = [entry for entry in schedule if ctx.allows(entry[0])]
        if not schedule:
            return []
        world.sim.runtime.spawn(_overlaps(world, ctx, schedule), name="fault: overlapping managers")
        return [
            FaultWindow(
                self.name,
                at,
                ctx.heal,
                "a second manager recovers while the first runs"
                + (f"; the first cannot reach the store for {pause:g} s" if pause > 0 else ""),
            )
            for _label, at, pause in schedule
        ]


class _UnreachableStore:
    """One manager's connection to the saga store while it cannot reach it: every call waits for ``thaw``."""

    def __init__(self, inner: SagaStore, runtime: SimRuntime, thaw: float) -> None:
        self.inner = inner
        self._runtime = runtime
        self._thaw = thaw

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)

        async def waits(*args: Any, **kwargs: Any) -> Any:
            now = self._runtime.now()
            if now < self._thaw:
                await self._runtime.sleep(self._thaw - now)
            return await call(*args, **kwargs)

        return waits


async def _overlaps(world: TradingWorld, ctx: FaultContext, schedule: Sequence[tuple[str, float, float]]) -> None:
    runtime = ctx.runtime
    for label, at, pause in schedule:
        await runtime.sleep(max(0.0, at - runtime.now()))
        ctx.struck("overlapping_managers", label, f"store unreachable {pause:g} s" if pause > 0 else "")
        # The running manager is not stopped: both now drive whatever the store holds as unfinished
        # (a rolling deploy whose new instance recovers on start-up, or a recoverer started by hand).
        # The newcomer is registered for the trading sagas on the same bus, as another instance would be.
        running = world.manager
        other = world.add_manager(f"overlap-{len(world.sim.others) + 1}")
        if pause <= 0:
            await other.recover()
            continue
        thaw = at + pause
        reachable = running.store
        running.store = _UnreachableStore(reachable, runtime, thaw)
        await other.keep_recovering(other.lease_seconds / 3, until=thaw)
        running.store = reachable
