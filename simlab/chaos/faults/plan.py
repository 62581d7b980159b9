"""A run's fault plan: which families are on, how hard they hit, and what they scheduled before the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simlab.scenario.faults import Faults


@dataclass(frozen=True)
class FaultPlan:
    """Which families are on for one run, each with the factor its rates are scaled by.

    ``schedules`` holds what a family drew before the run (crash instants, overlaps), by family name.
    """

    faults: Faults
    intensity: dict[str, float] = field(default_factory=dict)
    schedules: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def start_after_s(self) -> float:
        """When faults begin to strike (simulated seconds)."""
        return self.faults.start_after_s

    @property
    def heal_after_s(self) -> float:
        """When every fault heals (simulated seconds)."""
        return self.faults.heal_after_s

    def is_on(self, family: str) -> bool:
        """Whether ``family`` is switched on for this run."""
        return family in self.intensity

    def scale(self, family: str) -> float:
        """The factor ``family``'s rates are scaled by (0 when it is off)."""
        return self.intensity.get(family, 0.0)

    def count(self, family: str, configured: int) -> int:
        """How many times a counted ``family`` strikes: none when off; the ``configured`` count, or in
        swarm mode 1..configured by its intensity."""
        if not self.is_on(family):
            return 0
        if not self.faults.swarm or configured == 0:
            return configured
        return min(configured, 1 + int(self.scale(family) * configured))

    def schedule(self, family: str) -> tuple[Any, ...]:
        """What ``family`` drew before the run (empty when it drew nothing)."""
        return self.schedules.get(family, ())
