"""Choosing a configuration from a sweep's summary: the Pareto front, the ranked recommendation, and its sentences.

Each function reads the table ``simlab.present.analysis.config_summary`` makes (one row per
configuration, rates with their intervals, p99 durations) and nothing else. A
configuration meets a target as measured, or confidently when its interval clears it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

OBJECTIVES = {"clean_rate": "ending clean", "completed_rate": "completing (no compensation)"}
"""The rates a target may apply to, and how a sentence names them."""


def pareto_front(
    summary: pd.DataFrame,
    *,
    rate: str = "success_rate",
    cost: str = "p99_s",
    given: Sequence[str] = (),
    max_violation_rate: float | None = None,
) -> pd.Series:
    """True for the configurations no other one beats on both ``rate`` (higher) and ``cost`` (lower).

    With ``given``, one front per value of those conditions (a setting is only compared with others
    under the same circumstances); with ``max_violation_rate``, only configurations within it count.
    """
    eligible = summary[rate].notna() & summary[cost].notna()
    if max_violation_rate is not None:
        eligible &= summary["violation_rate"] <= max_violation_rate
    flat = summary.reset_index()
    groups = [np.arange(len(flat))] if not given else [g.index.to_numpy() for _, g in flat.groupby(list(given))]
    front = np.zeros(len(summary), dtype=bool)
    values = summary[[rate, cost]].to_numpy(dtype=float)
    ok = eligible.to_numpy()
    for rows in groups:
        candidates = [i for i in rows if ok[i]]
        for i in candidates:
            r, c = values[i]
            front[i] = not any(
                values[j][0] >= r and values[j][1] <= c and (values[j][0] > r or values[j][1] < c)
                for j in candidates
                if j != i
            )
    return pd.Series(front, index=summary.index, name="pareto")


def recommend(
    summary: pd.DataFrame,
    *,
    target: float = 0.999,
    max_violation_rate: float = 0.0,
    given: Sequence[str] = (),
    objective: str = "clean_rate",
) -> pd.DataFrame:
    """The configurations that meet the target, fastest (lowest p99) first, with their uncertainty.

    ``objective`` is the rate the target applies to: ``clean_rate`` (completed or cleanly
    compensated, the default) or ``completed_rate`` (a compensation counts as a failure).
    A configuration **meets** the target when its objective rate is at least ``target`` and its
    violation rate at most ``max_violation_rate``, both as measured. It meets it **confidently**
    when the lower end of the objective rate's interval clears ``target`` too (and, for a tolerance
    above zero, the upper end of the violation-rate interval stays within it). (With a few hundred runs
    per point a 99.9 % target cannot be met confidently: the interval is wider than the
    margin, and the table shows it.) Rows that do not meet the target are left out.

    ``given`` names swept parameters that are conditions rather than choices (a projection
    lag, a broker's latency): the ranking is then done separately for each of their values,
    and ``rank`` restarts at 1 in each.
    """
    table = summary.copy()
    table["pareto"] = pareto_front(summary, rate=objective, given=given, max_violation_rate=max_violation_rate)
    low = objective.removesuffix("_rate") + "_low"
    table["meets"] = (table[objective] >= target) & (table["violation_rate"] <= max_violation_rate)
    # With a tolerance of zero violations, "none seen" is the most any number of runs can show (an interval's
    # upper end never reaches 0); with a tolerance above zero, the interval's upper end must respect it.
    violations_ok = table["violation_high"] <= max_violation_rate if max_violation_rate > 0 else table["meets"]
    table["confident"] = table["meets"] & (table[low] >= target) & violations_ok
    names = [n for n in summary.index.names if n is not None]
    chosen = table[table["meets"]].reset_index() if names else table[table["meets"]]
    chosen = chosen.sort_values([*given, "p99_s", objective], ascending=[True] * (len(given) + 1) + [False])
    chosen["rank"] = chosen.groupby(list(given)).cumcount() + 1 if given else range(1, len(chosen) + 1)
    return chosen.set_index(names) if names else chosen


def describe_choice(
    summary: pd.DataFrame,
    *,
    target: float = 0.999,
    max_violation_rate: float = 0.0,
    given: Sequence[str] = (),
    objective: str = "clean_rate",
) -> str:
    """Plain sentences naming the recommended configuration (per condition in ``given``) and its figures."""
    what = OBJECTIVES[objective]
    goal = f"at least {target:.1%} of sagas {what} and at most {max_violation_rate:.1%} of runs with violations"
    prefix = objective.removesuffix("_rate")
    lines = [f"Target: {goal}."]
    flat = summary.reset_index()
    conditions = [()] if not given else list(flat[list(given)].drop_duplicates().itertuples(index=False, name=None))
    for condition in conditions:
        part = flat
        for column, value in zip(given, condition, strict=True):
            part = part[part[column] == value]
        names = [n for n in summary.index.names if n is not None]
        sub = part.set_index(names) if names else part
        chosen = recommend(sub, target=target, max_violation_rate=max_violation_rate, objective=objective)
        where = (
            "When " + ", ".join(f"{c.rsplit('.', 1)[-1]}={v}" for c, v in zip(given, condition, strict=True)) + ": "
            if given
            else ""
        )
        if chosen.empty:
            best = sub.sort_values(["violation_rate", objective], ascending=[True, False]).iloc[0]
            lines.append(
                f"{where}no configuration meets the target; closest is {_name(sub, best.name, given)} with "
                f"{best[objective]:.2%} {what} and {best['violation_rate']:.2%} of runs violating."
            )
            continue
        top = chosen.iloc[0]
        sure = "confidently" if top["confident"] else "as measured (its interval still reaches past the target)"
        lines.append(
            f"{where}choose {_name(sub, top.name, given)}, which meets the target {sure}: "
            f"{top[objective]:.2%} {what} [{top[prefix + '_low']:.2%}, {top[prefix + '_high']:.2%}], "
            f"{top['violation_rate']:.2%} of runs violating [{top['violation_low']:.2%}, "
            f"{top['violation_high']:.2%}], p99 {top['p99_s']:.2f} s [{top['p99_low']:.2f}, {top['p99_high']:.2f}] "
            f"({len(chosen)} of {len(sub)} configurations meet it)."
        )
    return "\n".join(lines)


def _name(summary: pd.DataFrame, key: Any, skip: Sequence[str] = ()) -> str:
    names = [str(n) for n in summary.index.names if n is not None]
    if not names:
        return "the configuration"
    values = key if isinstance(key, tuple) else (key,)
    shown = [(n, v) for n, v in zip(names, values, strict=True) if n not in skip]
    return ", ".join(f"{n.rsplit('.', 1)[-1]}={v}" for n, v in shown) or "the configuration"
