"""Plots a timeout or retry tuner reads: step durations against deadlines, retry cost, a labelled Pareto front.

Like ``simlab.present.plots``, each function returns a matplotlib ``Figure`` built without
pyplot, and draws what ``simlab.present.analysis`` and ``simlab.present.deadlines`` compute
from the loaded tables, so a figure and the table beside it agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from simlab.batch.batches import Results
from simlab.present import plots
from simlab.present.choice import display_names
from simlab.present.deadlines import deadline_cuts, step_attempts
from simlab.present.labels import PointLabel, place_labels
from simlab.scenario.model import Scenario

DEADLINE_COLOUR = "#c62828"
SHORTEST_SHOWN_S = 1e-4
"""Durations are drawn on a log scale; an attempt shorter than this (0 s: no simulated time passed) is drawn here."""


def step_durations(results: Results, scenario: Scenario, *, saga_types: list[str] | None = None) -> Figure:
    """One panel per saga type: each step's attempt durations (a box and every attempt as a dot), the step's
    deadline as a red dash, and above it how many attempts that deadline cut off.

    ``results`` is a batch of ``scenario`` (the deadlines are ``scenario``'s, see
    ``simlab.present.deadlines``); ``saga_types`` picks and orders the panels (default: every type that ran).
    """
    cuts = deadline_cuts(results, scenario)
    order = list(dict.fromkeys(cuts["saga_type"])) if saga_types is None else list(saga_types)
    attempts = step_attempts(results)
    fig = Figure(figsize=(10.0, 0.4 + 2.9 * max(1, len(order))), layout="constrained")
    axes = fig.subplots(max(1, len(order)), 1, squeeze=False)[:, 0]
    rng = np.random.default_rng(0)  # the dots' horizontal jitter only: the same figure every time
    for ax, saga_type in zip(axes, order, strict=False):
        steps = cuts[cuts["saga_type"] == saga_type].reset_index(drop=True)
        x = np.arange(len(steps))
        samples = _durations(attempts, saga_type, list(steps["step"]))
        for i, values in enumerate(samples):
            ax.scatter(i + rng.uniform(-0.25, 0.25, values.size), values, s=5, alpha=0.25, color="#546e7a",
                       linewidths=0, rasterized=True)  # fmt: skip
        if samples:
            ax.boxplot(samples, positions=x, widths=0.5, whis=(0, 100), showfliers=False, manage_ticks=False)
        _mark_deadlines(ax, steps, x)
        ax.set_yscale("log")
        if len(steps):
            ax.set_ylim(SHORTEST_SHOWN_S / 2, float(steps["deadline_s"].max()) * 8)  # room for the counts
        ax.set_xticks(x, list(steps["step"]), rotation=15, ha="right")
        ax.set_xlim(-0.6, max(len(steps), 1) - 0.4)
        ax.set_ylabel("attempt (simulated s)")
        ax.set_title(
            f"{saga_type}: {int(steps['attempts'].sum())} attempts, {int(steps['cut_off'].sum())} cut off by their "
            "step's deadline",
            fontsize="medium",
        )
    fig.suptitle(
        f"Step attempt durations against each step's deadline (red dashes), {len(results.runs)} runs\n"
        f"(log scale; an attempt that took no simulated time is drawn at {SHORTEST_SHOWN_S * 1000:g} ms)",
        fontsize="medium",
    )
    return fig


def _durations(attempts: pd.DataFrame, saga_type: str, steps: list[str]) -> list[np.ndarray]:
    """Each step's attempt durations, in the order of ``steps``, none drawn below ``SHORTEST_SHOWN_S``."""
    of_type = attempts[attempts["saga_type"] == saga_type]
    return [
        np.maximum(of_type.loc[of_type["step"] == step, "duration_s"].to_numpy(dtype=float), SHORTEST_SHOWN_S)
        for step in steps
    ]


def _mark_deadlines(ax: Axes, steps: pd.DataFrame, x: np.ndarray) -> None:
    """Each step's deadline as a red dash over its column, and above it how many attempts it cut off."""
    ax.hlines(steps["deadline_s"], x - 0.4, x + 0.4, colors=DEADLINE_COLOUR, linestyles="--", linewidth=2,
              label="the step's deadline", gid="deadlines")  # fmt: skip
    rows = zip(steps["cut_off"], steps["attempts"], steps["deadline_s"], strict=True)
    for position, (cut, tried, deadline) in enumerate(rows):  # on a white ground: cut-offs end at the mark
        ax.annotate(f"{cut} of {tried} cut off", (float(position), float(deadline)),
                    xytext=(0, 5), textcoords="offset points", ha="center", fontsize="x-small",
                    color=DEADLINE_COLOUR, gid="cut_off",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})  # fmt: skip


def retry_cost(summary: pd.DataFrame, *, rate: str = "completed_rate", calls: str = "calls_per_saga") -> Figure:
    """Broker calls per saga (every retry is another call) against ``rate``, one labelled point per setting.

    ``summary`` is ``analysis.config_summary`` of a sweep (one row per setting) or of a batch ``by=["saga_type"]``.
    The rate's 95 % interval is drawn as a vertical bar.
    """
    prefix = rate.removesuffix("_rate")
    x, y = summary[calls].to_numpy(dtype=float), summary[rate].to_numpy(dtype=float)
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    low, high = summary[f"{prefix}_low"].to_numpy(dtype=float), summary[f"{prefix}_high"].to_numpy(dtype=float)
    ax.errorbar(x, y, yerr=np.vstack([y - low, high - y]), fmt="o", color="#1565c0", ecolor="#90caf9",
                capsize=3, label=f"{rate.replace('_', ' ')} (95% CI)")  # fmt: skip
    ax.set_xlabel("broker calls per saga")
    ax.set_ylabel(rate.replace("_", " "))
    ax.set_title("Retry cost: broker calls per saga against what they buy")
    ax.legend(loc="lower right", fontsize="small")
    ax.margins(x=0.2)  # room for the labels of the outermost points
    _label_points(ax, x, y, _point_labels(summary.index, ax), bars=np.vstack([low, high]))
    return fig


def pareto_labelled(
    summary: pd.DataFrame, *, rate: str = "success_rate", recommended: Any = None, **options: Any
) -> Figure:
    """``plots.pareto`` with every point labelled by its setting (not only the front's), naming only the
    settings that vary between the points (a fixed condition would repeat on every label)."""
    fig = plots.pareto(summary, rate=rate, recommended=recommended, **options)
    ax = fig.axes[0]
    for text in list(ax.texts):  # the front's labels: every point gets one below
        text.remove()
    cost = options.get("cost", "p99_s")
    x, y = summary[cost].to_numpy(dtype=float), summary[rate].to_numpy(dtype=float)
    _label_points(ax, x, y, _point_labels(summary.index, ax))
    return fig


def _label_points(ax: Axes, x: np.ndarray, y: np.ndarray, labels: list[str], bars: np.ndarray | None = None) -> None:
    """Label every point (``labels.place_labels``: clear of the points, of the intervals ``bars`` (low and high
    ends) and of one another where there is room): settings close to one another (a 2 s and a 5 s deadline with
    the same p99) would otherwise print over each other."""
    points = list(zip(x.tolist(), y.tolist(), strict=True))
    intervals = [] if bars is None else list(zip(x.tolist(), bars[0].tolist(), bars[1].tolist(), strict=True))
    style = {"gid": "setting"}
    place_labels(ax, [PointLabel(xy, text, style=style) for xy, text in zip(points, labels, strict=True)],
                 markers=points, bars=intervals)  # fmt: skip


def _point_labels(index: pd.Index, ax: Any) -> list[str]:
    """``setting_labels``; when several settings vary, only their values, and the axes' title names them
    (three ``name=value`` pairs per point do not fit beside it)."""
    labels = setting_labels(index)
    if not labels or ", " not in labels[0]:
        return labels
    names = [part.partition("=")[0] for part in labels[0].split(", ")]
    ax.set_title(f"{ax.get_title()}\npoints labelled ({', '.join(names)})", fontsize="medium")
    return [", ".join(part.partition("=")[2] for part in label.split(", ")) for label in labels]


def setting_labels(index: pd.Index) -> list[str]:
    """``timeout_s=0.25`` for each row of a summary's index: its short setting names (``choice.display_names``),
    only those whose values differ between rows (all of them when none does)."""
    names = [str(n) for n in index.names if n is not None]
    if not names:
        return [str(key) for key in index]
    keys = [key if isinstance(key, tuple) else (key,) for key in index]
    varying = [i for i in range(len(names)) if len({k[i] for k in keys}) > 1] or list(range(len(names)))
    short = display_names(names)
    return [", ".join(f"{short[names[i]]}={key[i]}" for i in varying) for key in keys]
