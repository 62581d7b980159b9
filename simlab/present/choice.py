"""Choosing a configuration from a sweep's summary: the Pareto front, the ranked recommendation, and its sentences.

Each function reads the table ``simlab.present.analysis.config_summary`` makes (one row per
configuration, rates with their intervals, p99 durations) and nothing else. A
configuration meets a target as measured, or confidently when its interval clears it too.
A chosen value that is the smallest or largest tried (``grid_edge``) is said so: the best
may lie beyond the grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Real
from typing import Any, Literal

import numpy as np
import pandas as pd

from simlab.present.tables import interval, percent, seconds_interval

OBJECTIVES = {"clean_rate": "ending clean", "completed_rate": "completing (no compensation)"}
"""The rates a target may apply to, and how a sentence names them."""


Edge = Literal["smallest", "largest"]
"""Which end of the values tried a chosen value is at."""


def display_names(paths: Iterable[str]) -> dict[str, str]:
    """A short display name for each dotted path (swept settings): as many trailing parts as it takes to
    stay distinct from the others, so ``sagas.consistency_retry.max_attempts`` is ``max_attempts``."""
    names = list(dict.fromkeys(paths))
    short: dict[str, str] = {}
    for name in names:
        parts = name.split(".")
        for keep in range(1, len(parts) + 1):
            if sum(other.split(".")[-keep:] == parts[-keep:] for other in names) == 1:
                short[name] = ".".join(parts[-keep:])
                break
        else:  # the same path twice cannot happen (dict.fromkeys); kept whole all the same
            short[name] = name
    return short


EDGE_LINE = "  On the edge of the grid: "
"""How ``describe_choice`` starts the line that says a chosen value is the smallest or largest tried."""


def grid_edge(value: Any, tried: Iterable[Any]) -> Edge | None:
    """``"smallest"`` or ``"largest"`` when ``value`` is at that end of the numbers ``tried``, else None.

    None too when the setting is not a number (a profile, a jitter kind) or only one value was
    tried (nothing was swept): only then can the grid be extended in a direction.
    """
    numbers = {v for v in tried if _number(v)}
    if not _number(value) or len(numbers) < 2:
        return None
    if value <= min(numbers):
        return "smallest"
    if value >= max(numbers):
        return "largest"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and value == value  # NaN is no setting


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
    names = [str(n) for n in summary.index.names if n is not None]
    short = display_names(names)
    flat = summary.reset_index()
    conditions = [()] if not given else list(flat[list(given)].drop_duplicates().itertuples(index=False, name=None))
    for condition in conditions:
        part = flat
        for column, value in zip(given, condition, strict=True):
            part = part[part[column] == value]
        sub = part.set_index(names) if names else part
        chosen = recommend(sub, target=target, max_violation_rate=max_violation_rate, objective=objective)
        where = ", ".join(f"{short[c]}={v}" for c, v in zip(given, condition, strict=True))
        where = f"When {where}: " if given else ""
        if chosen.empty:
            best = sub.sort_values(["violation_rate", objective], ascending=[True, False]).iloc[0]
            lines.append(
                f"{where}no configuration meets the target; closest is {_name(sub, best.name, given, short)} with "
                f"{percent(best[objective], 2) or 'n/a'} {what} and "
                f"{percent(best['violation_rate'], 2) or 'n/a'} of runs violating."
            )
            lines.extend(_edges(part, names, best.name, given, short))
            continue
        top = chosen.iloc[0]
        sure = "confidently" if top["confident"] else "as measured (its interval still reaches past the target)"
        lines.append(
            f"{where}choose {_name(sub, top.name, given, short)}, which meets the target {sure}: "
            f"{interval(top[objective], top[prefix + '_low'], top[prefix + '_high'], 2)} {what}, "
            f"{interval(top['violation_rate'], top['violation_low'], top['violation_high'], 2)} of runs violating, "
            f"p99 {seconds_interval(top['p99_s'], top['p99_low'], top['p99_high'])} s; "
            f"{len(chosen)} of {len(sub)} configurations meet it."
        )
        lines.extend(_edges(part, names, top.name, given, short))
    return "\n".join(lines)


def _edges(
    part: pd.DataFrame, names: Sequence[str], key: Any, given: Sequence[str], short: dict[str, str]
) -> list[str]:
    """The line saying which chosen values are the smallest or largest tried under this condition ([] if none)."""
    values = key if isinstance(key, tuple) else (key,)
    found = [
        (short[n], v, edge)
        for n, v in zip(names, values, strict=True)
        if n not in given and (edge := grid_edge(v, part[n])) is not None
    ]
    if not found:
        return []
    said = "; ".join(f"{n}={v} is the {edge} value tried" for n, v, edge in found)
    ways = ", ".join(f"{n} {'below' if edge == 'smallest' else 'above'} {v}" for n, v, edge in found)
    return [f"{EDGE_LINE}{said}, so the best may lie beyond it: extend the grid to {ways}."]


def _name(summary: pd.DataFrame, key: Any, skip: Sequence[str], short: dict[str, str]) -> str:
    names = [str(n) for n in summary.index.names if n is not None]
    if not names:
        return "the configuration"
    values = key if isinstance(key, tuple) else (key,)
    shown = [(n, v) for n, v in zip(names, values, strict=True) if n not in skip]
    return ", ".join(f"{short[n]}={v}" for n, v in shown) or "the configuration"
