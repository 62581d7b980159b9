"""Fault families: wrappers around the ports of a simulated trading world, planned per run from its seed.

How this works: ``plan_faults(scenario, streams)`` decides which families are on for one run and how
hard they hit. Without swarm mode every enabled family is on at its configured intensity. In swarm
mode each enabled family is switched wholly on or off by a fair coin and, when on, its intensity is
scaled by a uniform draw in [0, 1), so it lies between 0 and the configured value: its probabilities
and rates; for ``redis`` its latencies and outage durations; for counted families (crashes, overlaps)
the count, drawn from 1 to the configured number. Shapes (multipliers, pause and delay lengths, the
after-success share) stay as configured. The coins and levels come from the stream ``faults/plan``,
two draws per family of the schema whether enabled or not, so switching one family never shifts
another's draws, and no other component's draws move at all. Families that strike at instants known
before the run (crashes, overlaps) draw them here too, each from a stream of its own.

``install_faults(world, plan)`` runs right after the world is built, before the workload starts, and
swaps wrappers in for the ports the sagas use (``TradingWorld.wrap_ports``). Engine and saga code
stay untouched: no ``if chaos:`` anywhere, only different objects behind the same ports. Every draw a
family makes comes from its own stream ``faults/<family>`` (``faults/<family>/<broker>`` per broker),
so families never shift one another. Faults strike from ``faults.start_after_s`` (0 unless set: a
scenario whose outage begins after its connections are made sets it). At ``faults.heal_after_s``
everything heals: from then on (and before the start) every wrapper passes calls straight through. A
per-call fault that struck before the heal plays out (a timeout being waited for, a delayed event, a
frozen task); windowed faults (Redis outages, manager downtime, projection stalls) end by the heal.

Each family is one module here, declaring its name, schema, the ports it wraps, its streams and how
it plans and installs (``family.FaultFamily``); ``registry`` lists them. What each one does is in its
module's docstring: ``brokers`` (``broker_errors``, ``latency_spikes``, ``broker_timeouts``),
``redis_client`` (``redis``, ``process_pauses``), ``events`` (``event_delivery``), ``compensations``
(``failing_compensations``), ``crashes`` (``manager_crashes``), ``overlaps``
(``overlapping_managers``) and ``stalls`` (``projection_stalls``). Their schemas are in
``simlab.scenario.faults``, a lower layer (that module says why).

``install_faults`` returns the run's fault windows (family, start, end, detail): one per Redis outage;
then an ``on`` window ``[start, heal)`` for each per-call family that is on (broker errors, latency
spikes, timeouts, event delivery, failing compensations, process pauses, and Redis latency when it is
not zero); then one per manager downtime, overlap and projection stall (all known at install); and
one per process pause, appended when it strikes. ``FaultWindows.injected`` counts the faults each
family injected.

Every fault that strikes goes through ``FaultContext.strike`` (drawn per call) or, for scheduled
faults, ``FaultContext.struck``, which numbers and records it (``FaultWindows.strikes``: the run's fault
schedule, the ``strikes`` table). A scenario's ``faults.strikes`` names the only faults that may strike:
a drawn fault it leaves out is still drawn (its own stream keeps its place) but passes the call through,
and a scheduled one it leaves out is taken out of the schedule before the run. With a run's own list the
run replays exactly; with a subset it is the same run up to the first fault left out, which is what
``simlab shrink`` searches over.

Limits: the wrappers assume the simulated runtime (``SimRuntime``): a saga's task is recognised by
``SimRuntime.current_task``, and a dead task's calls are cancelled by that identity.
"""

from __future__ import annotations

from simlab.chaos.faults.brokers import FaultyBroker
from simlab.chaos.faults.compensations import FaultyCommandBus, PlatformUnavailable
from simlab.chaos.faults.events import FaultyEventBus
from simlab.chaos.faults.install import install_faults, plan_faults
from simlab.chaos.faults.plan import FaultPlan
from simlab.chaos.faults.redis_client import FaultyRedis
from simlab.chaos.faults.windows import FaultWindow, FaultWindows
from simlab.scenario.faults import FAMILIES


def crash_schedule(plan: FaultPlan) -> list[tuple[float, float]]:
    """The run's ``(crash, restart)`` instants (``manager_crashes``), drawn when the plan was made."""
    return list(plan.schedule("manager_crashes"))


def overlap_schedule(plan: FaultPlan) -> list[float]:
    """The instants a second manager calls ``recover()`` (``overlapping_managers``), in order."""
    return [at for at, _pause in plan.schedule("overlapping_managers")]


def overlap_pauses(plan: FaultPlan) -> list[float]:
    """How long the running manager cannot reach the store at each overlap (0: not at all)."""
    return [pause for _at, pause in plan.schedule("overlapping_managers")]


__all__ = [
    "FAMILIES",
    "FaultPlan",
    "FaultWindow",
    "FaultWindows",
    "FaultyBroker",
    "FaultyCommandBus",
    "FaultyEventBus",
    "FaultyRedis",
    "PlatformUnavailable",
    "crash_schedule",
    "install_faults",
    "overlap_pauses",
    "overlap_schedule",
    "plan_faults",
]
