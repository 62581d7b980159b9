"""The fault families' configuration: one schema class per family, and ``Faults``, which holds them all.

Why the schemas live here and not beside their families: a family's behaviour is in
``simlab.chaos.faults.<family>``, but ``chaos`` is a layer above ``scenario`` (it reads scenarios),
and the scenario schema must be able to validate a file without importing what runs it. So the
configuration a family accepts is declared here, one class per family, and the family module in
``simlab.chaos.faults`` names its class (``FaultFamily.schema``); the registry there checks that it
lists exactly the families of ``Faults`` (in an order of its own: the order of installation, while
the plan draws in the order of the fields here).

Adding a family: its schema class here and a field of ``Faults`` (at the end: the plan draws two
numbers per field in this order, so a field added elsewhere would shift other families' draws),
then a module in ``simlab.chaos.faults`` and a line in its registry.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from simlab.scenario.distributions import Distribution, Fixed, NonNegative, Positive
from simlab.scenario.limits import MAX_EVENTS, shown
from simlab.scenario.strict import Probability, Strict, known


class Window(Strict):
    """A time window of simulated seconds."""

    start_s: NonNegative
    duration_s: Positive


class Family(Strict):
    """A fault family; in swarm mode ``enabled`` is drawn per run and the intensity below is the maximum."""

    enabled: bool = False


class BrokerErrors(Family):
    """Extra broker errors (5xx) on every call."""

    error_rate: Probability = 0.05


class LatencySpikes(Family):
    """Some broker calls take ``multiplier`` times longer."""

    probability: Probability = 0.05
    multiplier: Annotated[float, Field(ge=1)] = 20.0


class BrokerTimeouts(Family):
    """Broker calls that time out, a share of them after the call took effect."""

    probability: Probability = 0.02
    after_success_share: Probability = 0.5


class RedisFaults(Family):
    """Redis latency and outage windows (commands fail during an outage)."""

    latency_s: Distribution = Fixed(dist="fixed", value=0.0)
    outages: tuple[Window, ...] = ()


class ProcessPauses(Family):
    """A saga step stalls (GC pause, VM freeze) for longer than its lock's TTL."""

    probability: Probability = 0.01
    pause_s: Distribution = Fixed(dist="fixed", value=400.0)


class ManagerCrashes(Family):
    """The saga manager dies at a random instant; a new one resumes from the store."""

    crashes: int = Field(default=1, ge=0, le=MAX_EVENTS)
    restart_after_s: Distribution = Fixed(dist="fixed", value=1.0)


class OverlappingManagers(Family):
    """A second manager calls ``recover()`` on the same store while the first still runs its sagas.

    With ``pause_s`` above zero, the first manager cannot reach the store for that long from the
    overlap on (split brain once it outlasts a lease).
    """

    overlaps: int = Field(default=1, ge=0, le=MAX_EVENTS)
    pause_s: Distribution = Fixed(dist="fixed", value=0.0)


class EventDelivery(Family):
    """Duplicated, delayed and reordered event delivery."""

    duplicate_probability: Probability = 0.02
    delay_probability: Probability = 0.05
    delay_s: Distribution = Fixed(dist="fixed", value=0.5)


class ProjectionStalls(Family):
    """Projection workers that stop for a while."""

    probability: Probability = 0.01
    stall_s: Distribution = Fixed(dist="fixed", value=10.0)


class FailingCompensations(Family):
    """Compensation attempts that fail."""

    probability: Probability = 0.1


class Faults(Strict):
    """Every fault family, the swarm switch and when all faults heal."""

    swarm: bool = False
    start_after_s: NonNegative = 0.0
    """When faults begin to strike: per-call faults, pauses, crashes and stalls fall in ``[start, heal)``."""
    heal_after_s: NonNegative = 60.0
    broker_errors: BrokerErrors = BrokerErrors()
    latency_spikes: LatencySpikes = LatencySpikes()
    broker_timeouts: BrokerTimeouts = BrokerTimeouts()
    redis: RedisFaults = RedisFaults()
    process_pauses: ProcessPauses = ProcessPauses()
    manager_crashes: ManagerCrashes = ManagerCrashes()
    event_delivery: EventDelivery = EventDelivery()
    projection_stalls: ProjectionStalls = ProjectionStalls()
    failing_compensations: FailingCompensations = FailingCompensations()
    overlapping_managers: OverlappingManagers = OverlappingManagers()
    strikes: tuple[str, ...] | None = None
    """Only these of the faults the run's streams draw strike, named as a run records them
    (``broker_errors/alpaca@user-2#3``: the third fault ``broker_errors`` drew for broker alpaca in user-2's
    calls); None: every one.
    A recorded run's own list replays it exactly; a shorter list is what ``simlab shrink`` tries."""

    @field_validator("strikes")
    @classmethod
    def _strikes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for label in value or ():
            match = STRIKE_LABEL.fullmatch(label)
            if match is None:
                example = "broker_errors/alpaca@user-2#3"
                raise ValueError(f"a strike is named FAMILY[/PART][@USER]#N, such as {example}, got {shown(label)}")
            known("fault family", match.group(1), FAMILIES)
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each strike is named once")
        return value

    @model_validator(mode="after")
    def _window(self) -> Faults:
        if self.start_after_s > 0 and self.start_after_s >= self.heal_after_s:
            raise ValueError(
                f"start_after_s ({self.start_after_s}) must be < heal_after_s ({self.heal_after_s}): "
                "faults strike from the start until the heal"
            )
        return self


FAMILIES: tuple[str, ...] = tuple(
    name
    for name, info in Faults.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, Family)
)
"""Every fault family of the schema, in its order (the order of the plan's draws)."""

STRIKE_LABEL = re.compile(r"([a-z_]+)(?:/[^#@\s]{1,200})?(?:@[^#@\s]{1,200})?#([1-9][0-9]{0,8})")
"""How a recorded strike is named: family, optional part (a broker, a kind), optional user whose call drew it
(``simlab.sim.keyed``), and its number among the family's (and part's, and user's) drawn faults."""
