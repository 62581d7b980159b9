"""What a fault family declares: its name, schema, the ports it wraps, its streams, and how it plans and installs.

A family is one module in this package with one ``FaultFamily`` subclass, listed once in
``registry``. Installing a run's faults goes through every family that is live in three passes,
so the windows come out in the same order for every run: first the windows in which a port is
down (``down_windows``: Redis outages), then the window in which a per-call family strikes
(``on_window``), then what a family schedules for the run (``schedule``: crashes, overlaps,
stalls, each started as a task of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from sagas.engine.manager import SagaManager
from sagas.engine.randomness import RandomStreams
from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.plan import FaultPlan
from simlab.chaos.faults.windows import FaultWindow
from simlab.scenario.faults import Family
from simlab.sim.trading_world import TradingWorld

Port = Literal["brokers", "redis", "command_bus", "event_bus"]
"""The world's ports a family may need wrapped (in the order they are wrapped)."""
PORTS: tuple[Port, ...] = ("brokers", "redis", "command_bus", "event_bus")


class OutageSchedule(Protocol):
    """What a family reads of the wrapped Redis client: the outage windows it drew."""

    @property
    def outages(self) -> list[tuple[float, float]]: ...


class ManagerHandover(Protocol):
    """What a family needs of the wrapped event bus: a dead manager's subscriptions dropped, and the
    events that waited for it handed to its successor."""

    def detach(self, manager: SagaManager) -> None: ...

    async def attach(self, manager: SagaManager) -> int: ...


@dataclass
class WrappedPorts:
    """The wrappers installed in one run that families act on later (None: that port was left alone).

    Typed by what the families use of them, so this declaration needs none of the wrapper modules
    (each of which declares its family on ``FaultFamily``).
    """

    redis: OutageSchedule | None = None
    event_bus: ManagerHandover | None = None


class FaultFamily:
    """One fault family. Subclasses set the class attributes and override the hooks they need."""

    name: ClassVar[str]
    """Its key in the scenario's ``faults`` (and in ``FaultPlan.intensity``)."""
    schema: ClassVar[type[Family]]
    """Its configuration, declared in ``simlab.scenario.faults`` (a lower layer: see there why)."""
    ports: ClassVar[tuple[Port, ...]] = ()
    """The ports that must be wrapped while it is live (a wrapper serves every family that needs it)."""
    streams: ClassVar[tuple[str, ...]] = ()
    """The random streams it draws from (``<part>`` stands for a broker's or a projection's name)."""
    per_call: ClassVar[bool] = False
    """Whether it strikes call by call from the start to the heal (its ``on_window``)."""

    def config(self, plan: FaultPlan) -> Any:
        """This family's validated configuration in ``plan``."""
        return getattr(plan.faults, self.name)

    def live(self, plan: FaultPlan) -> bool:
        """Whether it acts in this run at all (on, and for a counted family, at least once)."""
        return plan.is_on(self.name)

    def plan(self, plan: FaultPlan, streams: RandomStreams) -> tuple[Any, ...]:
        """What it draws before the run (``FaultPlan.schedule``); called only when live."""
        return ()

    def down_windows(self, ctx: FaultContext, ports: WrappedPorts) -> list[FaultWindow]:
        """Windows in which a port it wraps is down, known at install."""
        return []

    def on_window(self, ctx: FaultContext) -> FaultWindow | None:
        """The window in which it strikes call by call (per-call families: from the start to the heal)."""
        if not self.per_call:
            return None
        return FaultWindow(self.name, ctx.start, ctx.heal, f"on at intensity {ctx.plan.scale(self.name):.3g}")

    def schedule(self, world: TradingWorld, ctx: FaultContext, ports: WrappedPorts) -> list[FaultWindow]:
        """Start what it does at planned instants (as a task of its own); return those instants' windows."""
        return []
