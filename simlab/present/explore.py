"""What ``simlab explore`` found: the same seeds under each ordering strategy, side by side.

Each strategy's runs are an ordinary batch folder (``simlab replay FOLDER --run N`` replays any of them),
read through the one loader (``simlab.batch.results.read_table``). For a PCT strategy the table also gives
PCT's guarantee: a run hits a given bug of depth D with probability at least ``1 / (n * k**(D-1))``, with n
the processes and k PCT's K, the choice points its change points were drawn over (the FIFO run's count,
unless ``pct:D:K`` gave K; ``simlab.sim.orderings.pct_bound``): the guarantee is for a bug whose events
fall within the first K choice points. Over N runs at least one hits it with probability
``1 - prod(1 - p_i)``. A batch written before K was recorded (no ``pct_steps``) is bounded with the run's
own count.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from simlab.batch.results import read_table
from simlab.present.commands import simlab_command
from simlab.sim.orderings import parse_strategy, pct_bound

EXPLORE_COLUMNS: tuple[str, ...] = (
    "strategy", "runs", "violating_runs", "violations", "choice_points_p50", "processes_p50", "pct_bound_run",
    "pct_bound_all", "first_violating_run",
)  # fmt: skip
"""Columns of :func:`explore_table`, one row per strategy."""


def explore_table(folders: Mapping[str, Path]) -> pd.DataFrame:
    """One row per strategy (``{strategy: batch folder}``, in the order given): what its runs found."""
    rows = [_strategy_row(strategy, Path(folder)) for strategy, folder in folders.items()]
    return pd.DataFrame(rows, columns=list(EXPLORE_COLUMNS))


def _strategy_row(strategy: str, folder: Path) -> dict[str, object]:
    runs = read_table(folder, "runs", columns=["run", "violations", "choice_points", "tie_processes", "pct_steps"])
    violations = read_table(folder, "violations", columns=["run", "invariant"])
    counts = violations.groupby("invariant", observed=True)["run"].nunique().sort_index()
    violating = sorted(set(violations["run"].tolist()))
    spec = parse_strategy(strategy)
    per_run: float | None = None
    overall: float | None = None
    if spec.kind == "pct" and len(runs) and runs["choice_points"].notna().all():
        bounds = [
            pct_bound(spec.depth, int(n), int(k), None if pd.isna(steps) else int(steps))
            for n, k, steps in zip(runs["tie_processes"], runs["choice_points"], runs["pct_steps"], strict=True)
        ]
        per_run = float(pd.Series(bounds).median())
        overall = 1.0 - math.prod(1.0 - p for p in bounds)
    return {
        "strategy": strategy,
        "runs": len(runs),
        "violating_runs": len(violating),
        "violations": ", ".join(f"{name} in {count}" for name, count in counts.items()) or "none",
        "choice_points_p50": _median(runs["choice_points"]),
        "processes_p50": _median(runs["tie_processes"]),
        "pct_bound_run": per_run,
        "pct_bound_all": overall,
        "first_violating_run": violating[0] if violating else None,
    }


def _median(column: pd.Series) -> float | None:
    known = column.dropna()
    return float(known.median()) if len(known) else None


def format_explore(table: pd.DataFrame, folders: Mapping[str, Path]) -> str:
    """The explore table as the terminal shows it, with a replay command for each strategy's first violation."""
    rows = [{str(key): value for key, value in row.items()} for row in table.to_dict("records")]
    width = max([len("strategy"), *(len(row["strategy"]) for row in rows)])
    lines = [f"{'strategy':<{width}}  {'runs':>6}  {'violating':>9}  {'ties p50':>8}  {'procs p50':>9}  PCT bound"]
    for row in rows:
        bound = "-" if _missing(row["pct_bound_run"]) else (
            f"{row['pct_bound_run']:.2g} per run, {row['pct_bound_all']:.3g} over all runs"
        )  # fmt: skip
        lines.append(
            f"{row['strategy']:<{width}}  {row['runs']:>6}  {row['violating_runs']:>9}  "
            f"{_shown(row['choice_points_p50']):>8}  {_shown(row['processes_p50']):>9}  {bound}"
        )
    lines.append("")
    for row in rows:
        lines.append(f"{row['strategy']}: violations: {row['violations']}")
        if not _missing(row["first_violating_run"]):
            folder = shlex.quote(str(folders[row["strategy"]]))
            lines.append(
                f"  replay the first: {simlab_command()} replay {folder} --run {int(row['first_violating_run'])}"
            )
    return "\n".join(lines)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _shown(value: Any) -> str:
    return "-" if _missing(value) else f"{value:g}"
