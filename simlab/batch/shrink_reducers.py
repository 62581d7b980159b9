"""The reducers of ``simlab shrink``: each proposes simpler scenarios and keeps those its test accepts.

A reducer is ``(scenario, test) -> scenario``: it builds candidates from the scenario it was given and
from each one it kept, calls ``test(candidate, what)`` (one run with the run's seed: true when the candidate
still shows the failure being shrunk), and returns the last candidate kept (or the scenario it was given).
``CONFIGURATION_REDUCERS`` lists them in the order the search runs them: the fault events first (ddmin over the enabled
families and the Redis outages, then the counted families' counts), then the fault window earlier and
shorter, then every numeric field of the enabled families toward zero, then the workload.

Candidates are built from the scenario's plain data and validated again (``Scenario.model_validate``), so a
value the schema refuses (a zero mean, a multiplier below 1) is simply not a candidate. A numeric field is
lowered by trying its floor first, then bisecting between what failed and what was kept: a handful of runs
per field, not a sweep.

Adding a reducer: a function of this shape and its line in ``simlab.batch.shrink.REDUCERS``, where its
place says when it runs (the reducers over a run's recorded faults and orderings are in ``shrink_schedule``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import ValidationError

from simlab.batch.ddmin import ddmin
from simlab.batch.runner import RunResult
from simlab.scenario.faults import FAMILIES
from simlab.scenario.model import Scenario

Test = Callable[[Scenario, str], bool]
"""Runs a candidate with the run's seed: true (and the candidate kept) when it still shows the failure."""
Reducer = Callable[[Scenario, Test, RunResult], Scenario]
"""Builds simpler candidates from a scenario (and the run it made: its recorded strikes and ordering
choices), keeps those the test accepts, returns the last one kept."""
Data = dict[str, Any]
Path = tuple[str | int, ...]

BISECT_STEPS = 8  # per field: the floor, then seven halvings of the gap (to a 128th of the value)
COUNTED = (("manager_crashes", "crashes"), ("overlapping_managers", "overlaps"))
WORKLOAD_FIELDS: tuple[tuple[Path, float], ...] = (  # (path, floor): what makes a workload smaller
    (("workload", "users"), 1),
    (("workload", "cycles", "count"), 0),
    (("workload", "orders", "per_user"), 0),
    (("workload", "user_deletions", "probability"), 0),
    (("workload", "connection_failures", "probability"), 0),
    (("workload", "connection_failures", "requires_user_action_probability"), 0),
)


def build(data: Data) -> Scenario | None:
    """The scenario ``data`` describes, or None when the schema refuses it."""
    try:
        return Scenario.model_validate(data)
    except ValidationError:
        return None


def _get(data: Any, path: Path) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: Data, path: Path, value: Any) -> Data:
    changed = copy.deepcopy(data)
    _get(changed, path[:-1])[path[-1]] = value
    return changed


def _dotted(path: Path) -> str:
    return ".".join(str(key) for key in path)


def _enabled(data: Data) -> list[str]:
    return [name for name in FAMILIES if data["faults"][name]["enabled"]]


# -- 1. fault events: which families, which outages, how many crashes and overlaps -------------------


def fault_events(scenario: Scenario, test: Test, _run: RunResult) -> Scenario:
    """Switch off every fault family (and drop every Redis outage) the failure does not need (ddmin)."""
    data = scenario.model_dump(mode="json")
    events: list[tuple[str, int]] = [(name, -1) for name in _enabled(data)]
    events += [("redis", i) for i in range(len(data["faults"]["redis"]["outages"])) if "redis" in _enabled(data)]
    if not events:
        return scenario
    kept: dict[tuple[tuple[str, int], ...], Scenario] = {}

    def with_only(subset: list[tuple[str, int]]) -> Scenario | None:
        changed = copy.deepcopy(data)
        for name in FAMILIES:
            changed["faults"][name]["enabled"] = changed["faults"][name]["enabled"] and (name, -1) in subset
        outages = data["faults"]["redis"]["outages"]
        changed["faults"]["redis"]["outages"] = [w for i, w in enumerate(outages) if ("redis", i) in subset]
        return build(changed)

    def fails(subset: list[tuple[str, int]]) -> bool:
        candidate = with_only(subset)
        what = "faults: " + (", ".join(_event_name(e) for e in subset) or "none")
        if candidate is not None and test(candidate, what):
            kept[tuple(subset)] = candidate
            return True
        return False

    if fails([]):  # the failure needs no fault at all
        return kept[()]
    smallest = tuple(ddmin(events, fails))
    return kept.get(smallest, scenario)


def _event_name(event: tuple[str, int]) -> str:
    name, index = event
    return name if index < 0 else f"{name} outage {index}"


def fault_counts(scenario: Scenario, test: Test, _run: RunResult) -> Scenario:
    """Fewer manager crashes and overlapping managers (each family's pre-drawn instants, counted)."""
    for family, count in COUNTED:
        if scenario.faults.model_dump()[family]["enabled"]:
            scenario = lower(scenario, test, ("faults", family, count), floor=1)
    return scenario


# -- 2. the fault window: earlier, then shorter ----------------------------------------------------


def fault_window(scenario: Scenario, test: Test, _run: RunResult) -> Scenario:
    """Move ``[start_after_s, heal_after_s)`` earlier (both by the same shift), then heal sooner."""
    faults = scenario.faults
    if faults.heal_after_s <= 0 or not _enabled(scenario.model_dump(mode="json")):
        return scenario
    start, heal = faults.start_after_s, faults.heal_after_s

    def shifted(data: Data, shift: float) -> Data:
        data = _set(data, ("faults", "start_after_s"), start - shift)
        return _set(data, ("faults", "heal_after_s"), heal - shift)

    if start > 0:
        scenario = bisect_down(scenario, test, "faults window earlier by", start, 0.0, shifted, invert=True)
    return lower(scenario, test, ("faults", "heal_after_s"), floor=scenario.faults.start_after_s)


# -- 3. fault intensities: every numeric field of an enabled family, toward zero ----------------------


def fault_intensities(scenario: Scenario, test: Test, _run: RunResult) -> Scenario:
    """Lower each probability, rate, duration and magnitude of the enabled families toward zero."""
    data = scenario.model_dump(mode="json")
    for family in _enabled(data):
        for path in list(_numbers(data["faults"][family], ("faults", family))):
            if path[-1] in {"crashes", "overlaps"}:  # counted: fault_counts lowers them to 1, not 0
                continue
            scenario = lower(scenario, test, path, floor=0.0)
    return scenario


def _numbers(value: Any, path: Path) -> Iterator[Path]:
    """The paths of every number (not bool) under ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, (*path, index))
    elif isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        yield path


# -- 4. the workload -----------------------------------------------------------------------------


def workload(scenario: Scenario, test: Test, _run: RunResult) -> Scenario:
    """Fewer users, brokers, cycles and orders; rarer deletions and failures; a shorter horizon."""
    brokers = list(scenario.workload.brokers)
    if len(brokers) > 1:
        scenario = _fewer_brokers(scenario, test, brokers)
    for path, floor in WORKLOAD_FIELDS:
        scenario = lower(scenario, test, path, floor=floor)
    scenario = _fewer_users(scenario, test)
    return lower(scenario, test, ("horizon_s",), floor=scenario.faults.heal_after_s)


def _fewer_users(scenario: Scenario, test: Test) -> Scenario:
    """The users the failure needs, whichever they are (ddmin over ``workload.only_users``)."""
    only = scenario.workload.only_users
    live = list(range(scenario.workload.users) if only is None else only)
    return fewest(scenario, test, ("workload", "only_users"), live) if len(live) > 1 else scenario


def _fewer_brokers(scenario: Scenario, test: Test, brokers: list[str]) -> Scenario:
    return fewest(scenario, test, ("workload", "brokers"), brokers)


def fewest(scenario: Scenario, test: Test, path: Path, items: list[Any]) -> Scenario:
    """``scenario`` with the list at ``path`` cut to the fewest of ``items`` that still fail (ddmin)."""
    data = scenario.model_dump(mode="json")
    kept: dict[tuple[Any, ...], Scenario] = {tuple(items): scenario}

    def fails(subset: list[Any]) -> bool:
        candidate = build(_set(data, path, subset))
        if candidate is not None and test(candidate, f"{_dotted(path)}: {', '.join(map(str, subset)) or 'none'}"):
            kept[tuple(subset)] = candidate
            return True
        return False

    return kept.get(tuple(ddmin(items, fails)), scenario)


# -- the numeric search --------------------------------------------------------------------------


def lower(scenario: Scenario, test: Test, path: Path, *, floor: float) -> Scenario:
    """``scenario`` with the number at ``path`` as low as the search finds it still failing (not below ``floor``)."""
    value = _get(scenario.model_dump(mode="json"), path)
    if value <= floor:
        return scenario
    return bisect_down(scenario, test, _dotted(path), value, floor, lambda data, v: _set(data, path, v))


def bisect_down(
    scenario: Scenario,
    test: Test,
    label: str,
    value: float,
    floor: float,
    apply: Callable[[Data, Any], Data],
    *,
    invert: bool = False,
) -> Scenario:
    """Try ``floor``, then halve the way to it while candidates are kept (ints: bisect to the lowest kept).

    A float stops at its first refusal: refining between a refused and a kept value would spend runs on
    digits that make a reproduction no smaller. ``invert`` searches a shift instead of a value: from 0
    (kept) toward ``value`` (the largest shift), halving the shift after a refusal.
    """
    data = scenario.model_dump(mode="json")
    integer = isinstance(value, int) and isinstance(floor, int)
    kept_at, refused_at = (0.0, value) if invert else (value, floor)
    trial = value if invert else floor
    for _ in range(BISECT_STEPS):
        candidate = build(apply(data, trial))
        if candidate is not None and test(candidate, f"{label} {trial:g}"):
            scenario, kept_at = candidate, trial
            if invert:
                break
        elif not integer and trial != (value if invert else floor):
            break
        else:
            refused_at = trial
        trial = (kept_at + refused_at) / 2
        trial = int(trial) if integer else float(f"{trial:.3g}")
        if trial in (kept_at, refused_at):
            break
    return scenario


CONFIGURATION_REDUCERS: list[tuple[str, Reducer]] = [
    ("fault events", fault_events),
    ("fault counts", fault_counts),
    ("fault window", fault_window),
    ("fault intensities", fault_intensities),
    ("workload", workload),
]
"""The reducers over the scenario's configuration, in their order (``simlab.batch.shrink.REDUCERS`` places
the reducers over a run's recorded schedule among them)."""
