"""Sweeps: one scenario run at every point of a grid (or a seeded random sample) of its settings.

A grid file names settings of the scenario by their dotted path, exactly as they
are spelled in the scenario file, with the values to try::

    # Question: how long must the consistency poll run for the projection's lag?
    parameters:
      sagas.consistency_retry.max_attempts: [2, 3, 5, 8]
      projections.accounts.median_lag_s: [0.5, 2.0, 5.0]
    # mode: random        # instead of the full product: `samples` seeded draws
    # samples: 20         # lists are then drawn from; {low: 1, high: 8} draws a range
    # seed: 0
    conditions: [projections.accounts.median_lag_s]   # circumstances, not choices: recommend per value
    saga_type: BrokerDisconnectionSaga                 # the saga the decision is about
    objective: completed_rate                          # the target's rate (default clean_rate: compensated is ok)

Step settings are addressed through their ``SagaType.step`` key, for example
``sagas.steps.BrokerDisconnectionSaga.validate_accounts_deleted.timeout_s``.

Every point is validated as a whole scenario before any run starts, so a
parameter the scenario lacks, or a value of the wrong type, is one clear line
and nothing is written. So is a grid that does not fit its scenario: one whose
``saga_type``, or a saga type whose settings it varies, no run of the scenario
starts (``simlab.batch.fit``). Each point is an ordinary batch (its own folder, manifest,
shards, resumption); all points use the same run seeds (common random numbers),
so two points differ only by their settings and comparisons between them are
paired. ``simlab.batch.batches.load_results`` on a sweep folder returns the points'
tables concatenated, with a ``point`` column and one column per swept parameter.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from sagas.trading.wiring import saga_steps
from simlab.batch.batches import (
    SWEEP_MANIFEST,
    Batch,
    Notice,
    Progress,
    ShardRunner,
    config_hash,
    run_batches,
)
from simlab.batch.fit import saga_types_started, shipped_scenarios_starting
from simlab.batch.results import table_cell
from simlab.scenario.limits import MAX_POINTS, cut, shown
from simlab.scenario.loader import (
    SCENARIOS_DIR,
    describe_validation_error,
    read_yaml_mapping,
    resolve_named_file,
    validation_field,
)
from simlab.scenario.model import SAGA_TYPES, STEP_NAMES, Scenario

SWEEP_SHARD_SIZE = 50  # smaller than a plain batch's: points are many and small, and all share the workers
STEP_KEYS = frozenset(f"{saga}.{step}" for saga, steps in STEP_NAMES.items() for step in steps)


NOT_SWEPT = {
    "name": "it names the scenario",
    "runs": "use --runs-per-point",
    "seed": "use --seed (every point runs the same seeds, so that points differ only by their settings)",
}


class GridError(ValueError):
    """A grid file that cannot be used; ``str()`` is the one-line message for the user."""


class Range(BaseModel):
    """A range to draw from in random mode: uniform (or log-uniform), whole numbers if ``integer``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low})")
        return self

    def draw(self, rng: random.Random) -> float | int:
        """One draw."""
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        elif self.integer:
            return rng.randint(math.ceil(self.low), math.floor(self.high))
        else:
            value = rng.uniform(self.low, self.high)
        return round(value) if self.integer else value


class Grid(BaseModel):
    """A grid file (a list's values are checked as settings of the scenario, when its points are made)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mode: Literal["grid", "random"] = "grid"  # first: the check of ``parameters`` depends on it
    parameters: dict[str, list[Any] | Range] = Field(min_length=1)
    conditions: list[str] = Field(default_factory=list)  # swept settings that are circumstances, not choices
    saga_type: str | None = None  # the saga type the decision is about (summary, Pareto front, recommendation)
    objective: Literal["clean_rate", "completed_rate"] = "clean_rate"  # the rate the target applies to
    samples: int | None = Field(default=None, ge=1, le=MAX_POINTS)
    seed: int = Field(default=0, ge=0)

    @field_validator("parameters")
    @classmethod
    def _points(cls, value: dict[str, list[Any] | Range], info: ValidationInfo) -> dict[str, list[Any] | Range]:
        if info.data.get("mode", "grid") == "grid":
            # Counted from the lists' lengths, before any point is made: 40 values of 6 settings are
            # 4 billion points, which itertools.product would happily start to build.
            lists = [values for values in value.values() if isinstance(values, list)]
            points = math.prod(len(values) for values in lists)
            if points > MAX_POINTS:
                sizes = " x ".join(str(len(values)) for values in lists)
                raise ValueError(f"the grid has {sizes} = {points:,} points; the limit is {MAX_POINTS:,}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Grid:
        for path, values in self.parameters.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"parameter {shown(path)} has no values to try")
            if isinstance(values, Range) and self.mode == "grid":
                raise ValueError(f"parameter {shown(path)}: a range needs mode: random (a grid lists its values)")
        if self.saga_type is not None and self.saga_type not in SAGA_TYPES:
            raise ValueError(f"unknown saga type {shown(self.saga_type)}; expected one of {', '.join(SAGA_TYPES)}")
        for path in self.parameters:
            if path in NOT_SWEPT:
                raise ValueError(f"parameter {shown(path)} cannot be swept: {NOT_SWEPT[path]}")
        for condition in self.conditions:
            if condition not in self.parameters:
                raise ValueError(f"condition {shown(condition)} is not one of the parameters")
            if not isinstance(self.parameters[condition], list):
                raise ValueError(
                    f"condition {shown(condition)} must list its values (a range makes every point its own)"
                )
        if self.mode == "random" and self.samples is None:
            raise ValueError("mode: random needs samples: N")
        return self


@dataclass(frozen=True)
class Point:
    """One point of a sweep: the swept values and the scenario they make."""

    index: int
    values: dict[str, Any]
    scenario: Scenario

    @property
    def label(self) -> str:
        """``max_attempts=5, median_lag_s=2.0`` (the last part of each path)."""
        return ", ".join(f"{path.rsplit('.', 1)[-1]}={table_cell(v)}" for path, v in self.values.items())


GRIDS_DIR = SCENARIOS_DIR / "grids"


def resolve_grid_path(name_or_path: str) -> Path:
    """A grid file's path, or the name of one in ``scenarios/grids/``."""
    return resolve_named_file(name_or_path, GRIDS_DIR, "grid", GridError)


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid file; raise ``GridError`` with a one-line message on any problem."""
    path = Path(path)
    data = read_yaml_mapping(path, "a mapping with `parameters:`", GridError)
    try:
        return Grid.model_validate(data)
    except ValidationError as error:
        raise GridError(f"{path}: {describe_validation_error(error)}") from None


def grid_values(grid: Grid) -> list[dict[str, Any]]:
    """The swept values of every point, in a stable order (the grid's product, or seeded draws)."""
    paths = list(grid.parameters)
    if grid.mode == "grid":
        lists = [grid.parameters[p] for p in paths]
        return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*lists)]
    rng = random.Random(grid.seed)
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(grid.samples or 0):
        point = {}
        for p in paths:
            spec = grid.parameters[p]
            point[p] = spec.draw(rng) if isinstance(spec, Range) else spec[rng.randrange(len(spec))]
        key = json.dumps(point, sort_keys=True)
        if key not in seen:  # a repeated draw would run the same seeds again: copies, not evidence
            seen.add(key)
            points.append(point)
    return points


def make_points(scenario: Scenario, grid: Grid, grid_name: str = "grid", *, fit_check: bool = True) -> list[Point]:
    """Every point as a validated scenario; raise ``GridError`` naming the first bad parameter or value,
    or (unless not ``fit_check``) the saga type the grid is about that the scenario never starts (``check_fit``)."""
    points = [
        Point(index, values, with_settings(scenario, values, grid_name))
        for index, values in enumerate(grid_values(grid))
    ]
    if fit_check:
        check_fit(scenario, grid, points, grid_name)
    return points


def grid_targets(grid: Grid) -> dict[str, str]:
    """The saga types a grid is about, each with where the grid names it: its ``saga_type`` (whose outcomes
    it judges) and every saga type a swept setting belongs to (``sagas.steps.Saga.step...``,
    ``sagas.timeouts_s.Saga``)."""
    targets = {grid.saga_type: "saga_type"} if grid.saga_type is not None else {}
    for path in grid.parameters:
        for part in path.split("."):
            if part in SAGA_TYPES:
                targets.setdefault(part, f"parameters.{cut(path)}")
    return targets


FIT_DRY_RUNS = 32
"""Dry runs (over the points in turn, each with the next seed) before a saga type counts as never run: a type
that a run of the possible workload starts 15% of the time or more is then found with 99.5% probability."""


def check_fit(scenario: Scenario, grid: Grid, points: Sequence[Point], grid_name: str = "grid") -> None:
    """Raise ``GridError`` (one line) if no point of the sweep starts a saga type the grid is about.

    The points are dry-run in turn, each time with the next seed (``simlab.batch.fit.saga_types_started``),
    until every target has been seen: usually one run when the grid fits; ``FIT_DRY_RUNS`` (at least one
    per point) before a refusal (and, for its message, one per shipped scenario). A dry run makes every
    workload chance certain but cannot make every timing happen, so a refusal says how many runs it
    tried, and ``simlab sweep --no-fit-check`` sweeps anyway.
    """
    missing = grid_targets(grid)
    started: set[str] = set()
    tries = max(FIT_DRY_RUNS, len(points))
    for attempt in range(tries):
        if not missing.keys() - started:
            return
        started |= saga_types_started(points[attempt % len(points)].scenario, attempt // len(points))
    absent = [saga_type for saga_type in missing if saga_type not in started]
    if not absent:
        return
    saga_type = absent[0]
    where = missing[saga_type]
    what = "" if where == "saga_type" else ", so this setting changes nothing"
    others = shipped_scenarios_starting().get(saga_type, ())
    fits = f"scenarios that run it: {', '.join(others)}" if others else "no shipped scenario runs it"
    runs = ", ".join(sorted(started)) or "no saga"
    raise GridError(
        f"{grid_name}: {where}: {saga_type} never ran in {tries} dry runs of scenario {scenario.name!r} (it runs "
        f"{runs}){what}; {fits} (--no-fit-check sweeps anyway)"
    )


def with_settings(scenario: Scenario, values: Mapping[str, Any], source: str = "settings") -> Scenario:
    """``scenario`` with the settings at the given dotted paths replaced, validated as a whole.

    Raises ``GridError`` naming the first setting the scenario lacks or value it refuses
    (``source`` names where the settings came from, for the message).
    """
    data = scenario.model_dump(mode="json")
    for path, value in values.items():
        _set_path(data, path, value, source, scenario.name)
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        problem = describe_validation_error(error)
        where = validation_field(error)
        swept = next((p for p in values if where == p or where.startswith(p + ".")), None)
        if swept is None:
            swept = next((p for p in values if p.startswith(where)), None)
        if swept is None:
            raise GridError(f"{source}: {shown(dict(values))}: {problem}") from None
        raise GridError(
            f"{source}: parameters.{cut(swept)} = {shown(values[swept])}: not accepted by scenario "
            f"{scenario.name!r}: {problem}"
        ) from None


def _set_path(data: dict[str, Any], path: str, value: Any, grid_name: str, scenario_name: str) -> None:
    """Set ``value`` at a dotted path of a scenario's data (a step key ``Saga.step`` counts as one part)."""
    parts = path.split(".")
    node: Any = data
    i = 0
    while i < len(parts):
        if not isinstance(node, dict):
            raise GridError(
                f"{grid_name}: parameters.{cut(path)}: {cut('.'.join(parts[:i]))} is a single value in scenario "
                f"{scenario_name!r}, not a section with settings"
            )
        key, i = _next_key(node, parts, i)
        if i == len(parts):
            node[key] = value
            return
        if key not in node or node[key] is None:
            # A step's retry policy that the scenario leaves to the step starts from the step's own policy,
            # so sweeping one of its fields changes that field only.
            step_key = ".".join(parts[i - 3 : i - 1])  # "Saga.step", just before "retry"
            node[key] = _builtin_retry(step_key) if key == "retry" and step_key in STEP_KEYS else {}
        node = node[key]


def _builtin_retry(step_key: str) -> dict[str, Any]:
    """The retry policy a step is defined with, in the scenario file's terms."""
    saga_type, _, name = step_key.partition(".")
    step = next(s for s in saga_steps()[saga_type] if s.name == name)
    policy = step.policy
    return {
        "max_attempts": policy.max_attempts,
        "initial_delay_ms": policy.initial_delay_ms,
        "max_delay_ms": policy.max_delay_ms,
        "backoff_factor": policy.backoff_factor,
        "jitter": policy.jitter,
        "retry_budget_ms": policy.retry_budget_ms,
    }


def _next_key(node: Mapping[str, Any], parts: Sequence[str], i: int) -> tuple[str, int]:
    # Keys of a scenario's maps may contain dots (step keys are "Saga.step"): prefer an existing key,
    # then a known step key, and otherwise one part.
    for j in range(len(parts), i + 1, -1):
        if ".".join(parts[i:j]) in node:
            return ".".join(parts[i:j]), j
    if ".".join(parts[i : i + 2]) in STEP_KEYS:
        return ".".join(parts[i : i + 2]), i + 2
    return parts[i], i + 1


def _manifest(
    scenario: Scenario, grid: Grid, runs_per_point: int, root_seed: int, points: Sequence[Point]
) -> dict[str, Any]:
    """What ``sweep.json`` holds: the sweep, and each point's folder, values, label and config hash."""
    return {
        "scenario": scenario.name,
        "base_config_hash": config_hash(scenario),
        "grid": grid.model_dump(mode="json"),
        "runs_per_point": runs_per_point,
        "root_seed": root_seed,
        "parameters": list(grid.parameters),
        "points": [
            {
                "index": p.index,
                "folder": f"point-{p.index:03d}",
                "values": {k: table_cell(v) for k, v in p.values.items()},
                "label": p.label,
                "config_hash": config_hash(p.scenario),
            }
            for p in points
        ],
    }


def run_sweep(
    scenario: Scenario,
    grid: Grid,
    runs_per_point: int,
    root_seed: int,
    out: Path,
    *,
    grid_name: str = "grid",
    workers: int | None = None,
    progress: Progress | None = None,
    notice: Notice | None = None,
    fit_check: bool = True,
    runner: ShardRunner | None = None,
) -> tuple[int, int]:
    """Run every point's missing runs into ``out/point-NNN``; return (runs run now, violations found now).

    With ``runner`` (a Dask cluster) the points' shards run there, checked before the sweep writes anything.
    """
    points = make_points(scenario, grid, grid_name, fit_check=fit_check)
    if runner is not None:
        runner.check([out])
    manifest = _manifest(scenario, grid, runs_per_point, root_seed, points)
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    path = out / SWEEP_MANIFEST
    if path.exists() and path.read_text() != text:
        raise ValueError(f"{out} holds a different sweep; use another --out or delete it")
    if out.exists() and not path.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and holds no sweep; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    batches = [
        Batch(p.scenario, runs_per_point, root_seed, out / f"point-{p.index:03d}", SWEEP_SHARD_SIZE) for p in points
    ]
    return run_batches(batches, workers=workers, progress=progress, notice=notice, runner=runner)
