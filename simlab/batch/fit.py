"""Which saga types a scenario can start: found by one dry run in which everything that may happen, happens.

A sweep judges the outcomes of one saga type and varies settings of some; a scenario that never
starts that type gives a table of NaN after every run has been paid for. What a scenario starts
follows from its workload (who connects, disconnects, fails, orders, leaves), the trading wiring
(which event starts which saga) and what the sagas themselves publish, so it is read from the real
code rather than from a list kept beside it: ``saga_types_started`` runs the scenario once, with
every workload choice that has a chance of happening made certain (each ``*probability`` above 0
of the workload raised to 1) and with no faults. Faults only make calls fail, stall or repeat (no
fault family starts a saga of its own), so a run without them, in which every user does all the
scenario lets it do, starts every saga type any run of the scenario can start. One seeded run of
one of its points costs what one run of a sweep costs.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from simlab.batch.runner import run_once, run_seed
from simlab.scenario.loader import list_scenarios, load_scenario
from simlab.scenario.model import Scenario


def possible_workload(scenario: Scenario) -> Scenario:
    """``scenario`` without faults, invariants or expectations, each workload chance above 0 made certain."""
    data = scenario.model_dump(mode="json")
    data["workload"] = _certain(data["workload"])
    data["faults"] = {}
    data["invariants"] = []
    data["expect"] = {}
    data["reach"] = []
    return Scenario.model_validate(data)


def _certain(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: 1.0 if _chance(key, value) else _certain(value) for key, value in node.items()}
    return node


def _chance(key: str, value: Any) -> bool:
    return key.endswith("probability") and isinstance(value, int | float) and value > 0


def saga_types_started(scenario: Scenario) -> frozenset[str]:
    """The saga types a run of ``scenario`` can start (one dry run of ``possible_workload(scenario)``)."""
    dry = possible_workload(scenario)
    return frozenset(row.saga_type for row in run_once(dry, run_seed(0, dry.seed)).sagas)


@cache
def shipped_scenarios_starting() -> dict[str, tuple[str, ...]]:
    """For each saga type, the shipped scenarios (by name, sorted) that start it."""
    starting: dict[str, list[str]] = {}
    for name, _ in list_scenarios():
        for saga_type in saga_types_started(load_scenario(name)):
            starting.setdefault(saga_type, []).append(name)
    return {saga_type: tuple(names) for saga_type, names in starting.items()}
