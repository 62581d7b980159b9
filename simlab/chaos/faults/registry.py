"""Every fault family, in the order they are installed; a new family is one module and one line here.

A family striking broker calls (a ``brokers.BrokerFamily``) takes a second line: its place in
``BROKER_CALL_ORDER``.

The order is the order of a run's windows and of the tasks the families start (see
``family``); the plan's draws follow the schema's order instead (``simlab.scenario.faults.FAMILIES``),
which this registry must cover exactly.
"""

from __future__ import annotations

from simlab.chaos.faults.brokers import BrokerErrorsFamily, BrokerFamily, BrokerTimeoutsFamily, LatencySpikesFamily
from simlab.chaos.faults.compensations import FailingCompensationsFamily
from simlab.chaos.faults.crashes import ManagerCrashesFamily
from simlab.chaos.faults.events import EventDeliveryFamily
from simlab.chaos.faults.family import FaultFamily
from simlab.chaos.faults.overlaps import OverlappingManagersFamily
from simlab.chaos.faults.redis_client import ProcessPausesFamily, RedisFamily
from simlab.chaos.faults.stalls import ProjectionStallsFamily
from simlab.scenario.faults import FAMILIES

BROKER_ERRORS, LATENCY_SPIKES, BROKER_TIMEOUTS = BrokerErrorsFamily(), LatencySpikesFamily(), BrokerTimeoutsFamily()

REGISTRY: tuple[FaultFamily, ...] = (
    BROKER_ERRORS,
    LATENCY_SPIKES,
    BROKER_TIMEOUTS,
    EventDeliveryFamily(),
    FailingCompensationsFamily(),
    ProcessPausesFamily(),
    RedisFamily(),
    ManagerCrashesFamily(),
    OverlappingManagersFamily(),
    ProjectionStallsFamily(),
)

BY_NAME: dict[str, FaultFamily] = {family.name: family for family in REGISTRY}

BROKER_CALL_ORDER: tuple[BrokerFamily, ...] = (BROKER_ERRORS, BROKER_TIMEOUTS, LATENCY_SPIKES)
"""The order in which the broker families' links see a call, outermost first (``brokers`` says why).

Not the registry's order: that one orders the windows, this one the draws of each call."""

if sorted(BY_NAME) != sorted(FAMILIES):  # pragma: no cover - caught by importing the package at all
    raise RuntimeError(f"the fault registry {sorted(BY_NAME)} does not match the schema's families {FAMILIES}")
if {f.name for f in REGISTRY if isinstance(f, BrokerFamily)} != {f.name for f in BROKER_CALL_ORDER}:  # pragma: no cover
    raise RuntimeError("every broker family in the registry needs its place in BROKER_CALL_ORDER, and only they")
