"""Plots of a batch's or a sweep's tables; each function returns a matplotlib ``Figure``.

They draw what ``simlab.present.analysis`` computes, so a figure and the table beside it
always agree. Figures are built without pyplot (no global state; safe in worker
processes and in reports); in Jupyter a returned ``Figure`` displays itself.
Every figure's title says what was measured and over how many runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from simlab.batch.batches import Results
from simlab.batch.runner import RunResult
from simlab.present import analysis
from simlab.present.timeline import replay_figure

STATUS_COLOURS = {
    "completed": "#2e7d32",
    "aborted": "#81c784",
    "compensated": "#f9a825",
    "timed_out": "#ef6c00",
    "compensation_failed": "#c62828",
    "running": "#6d4c41",
}
_FAULT_COLOUR = "#b0bec5"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _config_labels(index: pd.Index, by: Sequence[str]) -> list[str]:
    # From the index itself: iterrows() would turn integer settings into floats ("max_attempts=2.0").
    if list(by) == ["saga_type"]:
        return [str(key) for key in index]
    return [_label(by, key) for key in index]


def _by(results: Results, by: Sequence[str] | None) -> list[str]:
    return list(results.params if by is None else by)


def _of(saga_type: str | None) -> str:
    return saga_type or "all sagas"


# -- outcomes ----------------------------------------------------------------------------------


def outcome_breakdown(results: Results, *, by: Sequence[str] | None = None, saga_type: str | None = None) -> Figure:
    """Stacked bars: how sagas ended, per configuration (per saga type for a plain batch), with the clean
    share's 95 % Wilson interval."""
    keys = _by(results, by)
    rates = analysis.outcome_rates(results, by=keys, saga_type=saga_type)
    bars = keys or (["saga_type"] if saga_type is None else [])
    if bars:
        counts = rates.groupby([*bars, "status"], sort=True)["count"].sum().unstack("status", fill_value=0)
    else:
        counts = rates.groupby("status")["count"].sum().to_frame().T
    totals = counts.sum(axis=1).to_numpy(dtype=float)
    table = counts.div(totals, axis=0)
    statuses = [s for s in STATUS_COLOURS if s in table.columns] + [s for s in table.columns if s not in STATUS_COLOURS]
    labels = _config_labels(table.index, bars) if bars else [_of(saga_type)]
    fig = Figure(figsize=(max(6.0, 0.6 * len(labels) + 3), 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    bottom = np.zeros(len(labels))
    for status in statuses:
        values = table[status].to_numpy(dtype=float)
        ax.bar(x, values, bottom=bottom, color=STATUS_COLOURS.get(status, "#9e9e9e"), label=status, width=0.7)
        bottom += values
    clean_counts = counts[[c for c in counts.columns if c in analysis.CLEAN_STATUSES]].sum(axis=1).to_numpy()
    intervals = np.array([analysis.wilson_interval(int(k), int(n)) for k, n in zip(clean_counts, totals, strict=True)])
    clean = clean_counts / totals
    ax.errorbar(x, clean, yerr=[clean - intervals[:, 0], intervals[:, 1] - clean], fmt="_", color="black",
                capsize=4, label="clean, 95% CI")  # fmt: skip
    tilt = len(labels) > 4 or bars == ["saga_type"]
    ax.set_xticks(x, labels, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("share of sagas")
    ax.set_title(f"How {_of(saga_type)} ended ({len(results.runs)} runs)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return fig


def duration_cdf(results: Results, *, by: Sequence[str] | None = None, saga_type: str | None = None) -> Figure:
    """The empirical distribution of saga durations (finished sagas), one curve per configuration."""
    keys = _by(results, by)
    sagas = results.sagas if saga_type is None else results.sagas[results.sagas["saga_type"] == saga_type]
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    groups = [((), sagas)] if not keys else list(sagas.groupby(keys, sort=True))
    for key, group in groups:
        values = np.sort(group["duration_s"].dropna().to_numpy(dtype=float))
        if not values.size:
            continue
        label = _label(keys, key)
        ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=label)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("duration (simulated seconds)")
    ax.set_ylabel("share of sagas finished within")
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    ax.set_title(f"Duration of {_of(saga_type)}")
    if keys or len(groups) > 1:
        ax.legend(fontsize="small", loc="lower right")
    return fig


def _label(keys: Sequence[str], key: Any) -> str:
    if not keys:
        return "all runs"
    values = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{_short(k)}={v}" for k, v in zip(keys, values, strict=True))


def heatmap(summary: pd.DataFrame, x: str, y: str, value: str = "violation_rate", *, fmt: str = "{:.0%}") -> Figure:
    """A metric of ``config_summary`` over two swept parameters, each cell annotated."""
    flat = summary.reset_index()
    grid = flat.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
    fig = Figure(figsize=(1.1 * len(grid.columns) + 3, 0.6 * len(grid.index) + 2), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdYlGn_r" if "violation" in value else "viridis", aspect="auto")
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for (i, j), cell in np.ndenumerate(grid.to_numpy(dtype=float)):
        if not np.isnan(cell):
            ax.text(j, i, fmt.format(cell), ha="center", va="center", fontsize="small")
    fig.colorbar(image, ax=ax, label=value)
    ax.set_title(f"{value} by {_short(x)} and {_short(y)}")
    return fig


def retry_histogram(results: Results, *, by: Sequence[str] | None = None, saga_type: str | None = None) -> Figure:
    """How many sagas needed how many retries, per configuration (grouped bars, share of sagas)."""
    keys = _by(results, by)
    counts = analysis.retry_counts(results, by=keys, saga_type=saga_type)
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    groups = [((), counts)] if not keys else list(counts.groupby(keys, sort=True))
    width = 0.8 / max(len(groups), 1)
    for i, (key, group) in enumerate(groups):
        share = group["sagas"] / group["sagas"].sum()
        ax.bar(group["retries"].to_numpy() + i * width - 0.4 + width / 2, share, width=width, label=_label(keys, key))
    ax.set_xlabel("retries per saga")
    ax.set_ylabel("share of sagas")
    ax.set_title(f"Retries of {_of(saga_type)}")
    if keys:
        ax.legend(fontsize="small")
    return fig


def broker_load(
    results: Results, *, by: Sequence[str] | None = None, bin_s: float = 1.0, xlim: tuple[float, float] | None = None
) -> Figure:
    """Broker calls per second over simulated time (mean over runs, and the busiest run), fault windows shaded."""
    keys = _by(results, by)
    load = analysis.broker_load(results, by=keys, bin_s=bin_s)
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.add_subplot()
    _shade_faults(ax, results.faults)
    groups = [((), load)] if not keys else list(load.groupby(keys, sort=True))
    for key, group in groups:
        (line,) = ax.plot(group["t"], group["mean_calls_per_s"], drawstyle="steps-post", label=_label(keys, key))
        ax.plot(
            group["t"], group["max_calls_per_s"], drawstyle="steps-post", color=line.get_color(), alpha=0.35, lw=0.8
        )
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel(f"broker calls per second ({bin_s:g} s bins)")
    ax.set_title(f"Broker load: mean over {len(results.runs)} runs (bold), most in any one run (faint)")
    if xlim:
        ax.set_xlim(*xlim)
    ax.legend(fontsize="small", loc="upper right")
    return fig


def _shade_faults(ax: Axes, faults: pd.DataFrame) -> None:
    """Shade each fault family's typical window (median start to median end over the runs that had it)."""
    if faults.empty:
        return
    for family, group in faults.groupby("family", sort=True):
        start, end = float(group["start"].median()), float(group["end"].median())
        if end > start:
            ax.axvspan(start, end, color=_FAULT_COLOUR, alpha=0.35, lw=0)
            ax.text(start, 1.0, f" {family}", transform=ax.get_xaxis_transform(), va="top", fontsize="x-small")


def pareto(
    summary: pd.DataFrame,
    *,
    rate: str = "success_rate",
    cost: str = "p99_s",
    recommended: Any = None,
    max_violation_rate: float | None = None,
) -> Figure:
    """A rate against p99 duration per configuration, the Pareto front joined, the recommendation starred.

    ``recommended`` is an index label of ``summary`` (e.g. the first row of ``analysis.recommend``).
    With ``max_violation_rate``, only settings within it can be on the front (the others are drawn hollow).
    Give it the configurations of one circumstance at a time: a front across circumstances compares
    settings that were never alternatives.
    """
    front = analysis.pareto_front(summary, rate=rate, cost=cost, max_violation_rate=max_violation_rate)
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    prefix = rate.removesuffix("_rate")
    x, y = summary[cost].to_numpy(dtype=float), summary[rate].to_numpy(dtype=float)
    xerr = _err(summary, cost, "p99_low", "p99_high") if cost == "p99_s" else None
    yerr = _err(summary, rate, f"{prefix}_low", f"{prefix}_high")
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor="#cfd8dc")
    within = np.ones(len(summary), dtype=bool)
    if max_violation_rate is not None:
        within = (summary["violation_rate"] <= max_violation_rate).to_numpy()
    ax.plot(x[within], y[within], "o", color="#90a4ae", label="setting (95% CI)")
    if not within.all():
        ax.plot(x[~within], y[~within], "o", mfc="none", color="#c62828", label="setting with too many violations")
    on = summary[front.to_numpy()].sort_values(cost)
    ax.plot(on[cost], on[rate], "-o", color="#1565c0", label="Pareto front")
    names = [str(n) for n in summary.index.names if n is not None]
    for label in on.index:  # only the front is labelled: the others would pile up on one another
        ax.annotate(_label(names, label), (on.loc[label, cost], on.loc[label, rate]), fontsize="x-small",
                    xytext=(4, -10), textcoords="offset points")  # fmt: skip
    if recommended is not None and recommended in summary.index:
        row = summary.loc[recommended]
        ax.plot([row[cost]], [row[rate]], marker="*", markersize=18, color="#d81b60", ls="", label="recommended")
    ax.set_xlabel(f"{cost} (simulated seconds)")
    ax.set_ylabel(rate.replace("_", " "))
    ax.set_title("Success against p99 duration")
    ax.legend(fontsize="small", loc="lower right")
    return fig


def _err(summary: pd.DataFrame, value: str, low: str, high: str) -> np.ndarray | None:
    if low not in summary or high not in summary:
        return None
    v = summary[value].to_numpy(dtype=float)
    lower = np.clip(v - summary[low].to_numpy(dtype=float), 0, None)
    upper = np.clip(summary[high].to_numpy(dtype=float) - v, 0, None)
    return np.nan_to_num(np.vstack([lower, upper]))


def replay_timeline(result: RunResult, *, title: str | None = None) -> Figure:
    """One run's timeline (lanes per saga, attempts, compensations, faults, locks, lag): ``simlab replay --plot``."""
    return replay_figure(result, title=title)
