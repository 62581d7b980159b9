"""The violation figures of a batch or a sweep: which invariants were violated, in how many runs, and when.

Like ``simlab.present.plots`` (which re-exports them for the report and the notebooks), each
function returns a matplotlib ``Figure`` built without pyplot and draws what
``simlab.present.analysis`` and the ``violations`` table hold. With no violation at all, a
figure says so instead of drawing empty axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from simlab.batch.batches import Results
from simlab.present import analysis
from simlab.present.plot_groups import group_label, split_by

VIOLATION_COLOUR = "#c62828"


def violations_by_invariant(results: Results, *, by: Sequence[str] | None = None) -> Figure:
    """The share of runs that violated each invariant, with its 95 % Wilson interval as error bars.

    One bar per violated invariant for a plain batch; for a sweep, one panel per invariant and
    one bar per configuration. With no violation at all, the figure says so.
    """
    keys = split_by(results, by)
    rates = analysis.violation_rates(results, by=keys)
    title = f"Runs violating each invariant ({len(results.runs)} runs)"
    if rates.empty:
        return _nothing(title, f"No invariant was violated in any of the {len(results.runs)} runs.")
    invariants = list(dict.fromkeys(rates["invariant"]))
    panels = [None] if not keys else invariants
    fig, axes = _row_panels(len(panels), rows=len(invariants) if not keys else len(rates) // len(invariants))
    for ax, panel in zip(axes, panels, strict=True):
        part = rates if panel is None else rates[rates["invariant"] == panel]
        # Column by column: a row of mixed settings as one array would turn 2 into 2.0.
        columns = [part[k].to_list() for k in keys]
        labels = (
            list(part["invariant"]) if panel is None else [group_label(keys, k) for k in zip(*columns, strict=True)]
        )
        rate, low, high = (part[c].to_numpy(dtype=float) for c in ("rate", "low", "high"))
        ypos = np.arange(len(part))
        ax.barh(ypos, rate, xerr=[rate - low, high - rate], color=VIOLATION_COLOUR, capsize=3, height=0.6,
                error_kw={"ecolor": "#37474f", "lw": 1.0})  # fmt: skip
        for y, r, n, h in zip(ypos, part["runs"], part["total"], high, strict=True):
            ax.annotate(f"{r} of {n}", (h, y), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize="x-small")  # fmt: skip
        ax.set_yticks(ypos, labels, fontsize="small")
        ax.set_ylim(len(part) - 0.5, -0.5)
        top = max(float(np.nanmax(high)), 0.01) * 1.3  # room for the counts right of the bars
        ax.set_xlim(0, top)
        ticks = MaxNLocator(4).tick_values(0, top) if top < 1 else np.linspace(0, 1, 5)  # none beyond 100 %
        ax.set_xticks([t for t in ticks if 0 <= t <= top])
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("share of runs (95% CI)")
        if panel is not None:
            ax.set_title(panel, fontsize="medium")
    fig.suptitle(title)
    return fig


def violation_times(results: Results, *, by: Sequence[str] | None = None) -> Figure:
    """When in the run each violation was found (simulated time): one dot per violation, a row per invariant.

    For a sweep, one panel per invariant and one row per configuration. An invariant checked
    at the end of a run is found at the horizon. With no violation at all, the figure says so.
    """
    keys = split_by(results, by)
    violations = results.violations
    title = f"When the violations were found ({len(violations)} in {len(results.runs)} runs)"
    if violations.empty:
        return _nothing(title, f"No invariant was violated in any of the {len(results.runs)} runs.")
    invariants = sorted(violations["invariant"].astype(str).unique())
    configs = [key for key, _ in results.runs.groupby(keys, sort=True)] if keys else [()]
    panels = [None] if not keys else invariants
    fig, axes = _row_panels(len(panels), rows=len(invariants) if not keys else len(configs))
    jitter = np.random.default_rng(0)  # spreads dots at one time apart; seeded, so the figure is reproducible
    t_max = float(violations["t"].max())
    for ax, panel in zip(axes, panels, strict=True):
        rows = [(inv, violations[violations["invariant"] == inv]) for inv in invariants] if panel is None else [
            (group_label(keys, key), _rows_of(violations[violations["invariant"] == panel], keys, key))
            for key in configs
        ]  # fmt: skip
        for i, (_, group) in enumerate(rows):
            times = group["t"].to_numpy(dtype=float)
            ax.scatter(times, i + jitter.uniform(-0.25, 0.25, times.size), s=12, color=VIOLATION_COLOUR, alpha=0.5,
                       linewidths=0)  # fmt: skip
        # Panels share their rows' labels (the settings), so a sweep's counts go in each panel's title.
        names = [f"{name} ({len(group)})" if panel is None else name for name, group in rows]
        ax.set_yticks(range(len(rows)), names, fontsize="small")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(-0.02 * t_max, 1.04 * t_max if t_max > 0 else 1.0)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel("simulated time (s)")
        ax.grid(axis="x", color="#e0e0e0", lw=0.6)
        if panel is not None:
            ax.set_title(f"{panel} ({sum(len(group) for _, group in rows)})", fontsize="medium")
    fig.suptitle(title)
    return fig


def _rows_of(frame: pd.DataFrame, keys: list[str], key: Any) -> pd.DataFrame:
    """The rows of ``frame`` of configuration ``key``."""
    values = key if isinstance(key, tuple) else (key,)
    mask = np.ones(len(frame), dtype=bool)
    for column, value in zip(keys, values, strict=True):
        mask &= (frame[column] == value).to_numpy()
    return frame[mask]


def _row_panels(panels: int, *, rows: int) -> tuple[Figure, list[Axes]]:
    """Side by side panels sharing their rows (settings), tall enough for ``rows`` labelled rows."""
    fig = Figure(figsize=(min(4.2 * panels + 3.2, 16), 0.32 * rows + 1.6), layout="constrained")
    axes = list(fig.subplots(1, panels, sharey=True, squeeze=False).flat)
    return fig, axes


def _nothing(title: str, message: str) -> Figure:
    """A small figure that says there is nothing to draw, and why."""
    fig = Figure(figsize=(7, 1.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    return fig
