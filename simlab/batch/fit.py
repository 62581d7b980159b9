"""Which saga types a scenario can start: found by dry runs in which every workload chance is made certain.

A sweep judges the outcomes of one saga type and varies settings of some; a scenario that never
starts that type gives a table of NaN after every run has been paid for. What a scenario starts
follows from its workload (who connects, disconnects, fails, orders, leaves), the trading wiring
(which event starts which saga) and what the sagas themselves publish, so it is read from the real
code rather than from a list kept beside it: ``saga_types_started`` runs the scenario with every
workload choice that has a chance of happening made certain (each ``*probability`` above 0 of the
workload raised to 1) and with no faults (no fault family starts a saga of its own).

Chances are not all there is: timing decides some things too (an order placed before its account is
linked starts nothing), and a dry run cannot force a timing. So one dry run can miss a type, and
``sweep.check_fit`` tries up to ``FIT_DRY_RUNS`` seeds before it refuses a grid, says so in the
refusal, and can be told to sweep anyway (``--no-fit-check``). Each dry run costs what one run of
the sweep costs.
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


def saga_types_started(scenario: Scenario, run: int = 0) -> frozenset[str]:
    """The saga types dry run ``run`` of ``possible_workload(scenario)`` started.

    One run can miss a type: a workload's timing decides some things (an order placed before its account
    is linked places nothing), so ``check_fit`` dry-runs several seeds before it concludes a type never runs.
    """
    dry = possible_workload(scenario)
    return frozenset(row.saga_type for row in run_once(dry, run_seed(run, dry.seed)).sagas)


@cache
def shipped_scenarios_starting() -> dict[str, tuple[str, ...]]:
    """For each saga type, the shipped scenarios (by name, sorted) that start it."""
    starting: dict[str, list[str]] = {}
    for name, _ in list_scenarios():
        for saga_type in saga_types_started(load_scenario(name)):
            starting.setdefault(saga_type, []).append(name)
    return {saga_type: tuple(names) for saga_type, names in starting.items()}
