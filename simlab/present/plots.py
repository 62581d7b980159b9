"""Plots of a batch's or a sweep's tables; each function returns a matplotlib ``Figure``.

They draw what ``simlab.present.analysis`` computes, so a figure and the table beside it
always agree. Figures are built without pyplot (no global state; safe in worker
processes and in reports); in Jupyter a returned ``Figure`` displays itself.
Every figure's title says what was measured and over how many runs.

The violation figures (``violations_by_invariant``, ``violation_times``) live in
``simlab.present.violation_plots`` and are re-exported here.
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
from simlab.present.labels import PointLabel, ink_for, place_labels
from simlab.present.plot_groups import group_label, short, split_by
from simlab.present.timeline import replay_figure

# The report draws the violation figures as ``plots.<name>``, and ``from simlab.present import plots`` is the
# notebooks' documented entry to every batch figure: they stay reachable from here.
from simlab.present.violation_plots import violation_times as violation_times
from simlab.present.violation_plots import violations_by_invariant as violations_by_invariant

STATUS_COLOURS = {
    "completed": "#2e7d32",
    "aborted": "#81c784",
    "compensated": "#f9a825",
    "timed_out": "#ef6c00",
    "compensation_failed": "#c62828",
    "running": "#6d4c41",
}


def _config_labels(index: pd.Index, by: Sequence[str]) -> list[str]:
    # From the index itself: iterrows() would turn integer settings into floats ("max_attempts=2.0").
    if list(by) == ["saga_type"]:
        return [str(key) for key in index]
    return [group_label(by, key) for key in index]


def _of(saga_type: str | None) -> str:
    return saga_type or "all sagas"


def _sagas_of(results: Results, saga_type: str | None) -> pd.DataFrame:
    sagas = results.sagas
    return sagas if saga_type is None or sagas.empty else sagas[sagas["saga_type"] == saga_type]


# -- outcomes ----------------------------------------------------------------------------------


def outcome_breakdown(results: Results, *, by: Sequence[str] | None = None, saga_type: str | None = None) -> Figure:
    """Stacked bars: how sagas ended, per configuration (per saga type for a plain batch), with the clean
    share's 95 % Wilson interval."""
    keys = split_by(results, by)
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
    tilt = len(labels) > 4 or bars == ["saga_type"] or max(len(label) for label in labels) > 16
    ax.set_xticks(x, labels, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("share of sagas")
    ax.set_title(f"How {_of(saga_type)} ended ({len(results.runs)} runs)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return fig


def duration_cdf(results: Results, *, by: Sequence[str] | None = None, saga_type: str | None = None) -> Figure:
    """The empirical distribution of saga durations (finished sagas), split by saga type.

    For a plain batch, one curve per saga type; for a sweep, one curve per configuration and one
    panel per saga type (a single panel when ``saga_type`` picks one).
    """
    keys = split_by(results, by)
    sagas = _sagas_of(results, saga_type)
    panels, fig, axes = _type_panels(results, keys, saga_type, sagas)
    for ax, panel in zip(axes, panels, strict=True):
        for label, colour, group in _curves(results, keys, sagas, panel):
            values = np.sort(group["duration_s"].dropna().to_numpy(dtype=float))
            if values.size:
                share = np.arange(1, values.size + 1) / values.size
                ax.step(values, share, where="post", label=label, color=colour)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("duration (simulated seconds)")
        ax.set_ylabel("share of sagas finished within")
        ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"Duration of {_of(panel or saga_type)}", fontsize="medium")
    _legend(fig, axes)
    return fig


def _types(sagas: pd.DataFrame) -> list[str]:
    return sorted(sagas["saga_type"].astype(str).unique()) if not sagas.empty else []


def _type_panels(
    results: Results, keys: list[str], saga_type: str | None, sagas: pd.DataFrame
) -> tuple[list[str | None], Figure, list[Axes]]:
    """One panel per saga type for a sweep over several types; one panel otherwise (a batch splits by colour)."""
    types = _types(sagas)
    panels: list[str | None] = list(types) if keys and saga_type is None and len(types) > 1 else [None]
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(4.6 * columns + 2.6, 3.6 * rows + 0.6), layout="constrained")
    grid = fig.subplots(rows, columns, squeeze=False)
    axes = list(grid.flat)
    for spare in axes[len(panels) :]:
        spare.set_visible(False)
    return panels, fig, axes[: len(panels)]


def _curves(
    results: Results, keys: list[str], sagas: pd.DataFrame, panel: str | None
) -> list[tuple[str, str, pd.DataFrame]]:
    """(label, colour, sagas) per curve: saga types for a batch, configurations (of ``panel``'s type) for a sweep."""
    if panel is not None:
        sagas = sagas[sagas["saga_type"] == panel]
    if not keys:
        colours = _type_colours(results)
        return [(str(t), colours[str(t)], group) for t, group in sagas.groupby("saga_type", sort=True)]
    configs = [group_label(keys, key) for key, _ in results.runs.groupby(keys, sort=True)]
    colours = {label: _CYCLE[i % len(_CYCLE)] for i, label in enumerate(configs)}
    return [(group_label(keys, key), colours[group_label(keys, key)], g) for key, g in sagas.groupby(keys, sort=True)]


_CYCLE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]  # fmt: skip


def _type_colours(results: Results) -> dict[str, str]:
    """One colour per saga type of the batch, the same in every figure."""
    return {t: _CYCLE[i % len(_CYCLE)] for i, t in enumerate(_types(results.sagas))}


def _legend(fig: Figure, axes: Sequence[Axes], title: str | None = None) -> None:
    """One legend for all panels, right of them (inside a panel it would hide the curves it names)."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if len(entries) > 1 or title:
        fig.legend(list(entries.values()), list(entries), loc="outside right upper", fontsize="small", title=title,
                   title_fontsize="small")  # fmt: skip


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
        if not np.isnan(cell):  # black on light cells, white on dark ones
            colour = ink_for(image.cmap(image.norm(cell)))
            ax.text(j, i, fmt.format(cell), ha="center", va="center", fontsize="small", color=colour)
    fig.colorbar(image, ax=ax, label=value)
    ax.set_title(f"{value} by {short(x)} and {short(y)}")
    return fig


def retry_histogram(results: Results, *, by: Sequence[str] | None = None, saga_type: str | None = None) -> Figure:
    """How many sagas needed how many retries, split by saga type, on a log count axis (a few sagas still show).

    For a plain batch, grouped bars per saga type; for a sweep, per configuration, one panel per
    saga type (a single panel when ``saga_type`` picks one).
    """
    keys = split_by(results, by)
    sagas = _sagas_of(results, saga_type)
    panels, fig, axes = _type_panels(results, keys, saga_type, sagas)
    counts = analysis.retry_counts(results, by=[*keys, "saga_type"], saga_type=saga_type)
    most = int(counts["retries"].max()) if len(counts) else 0
    for ax, panel in zip(axes, panels, strict=True):
        curves = _curves(results, keys, counts, panel)
        width = 0.8 / max(len(curves), 1)
        for i, (label, colour, group) in enumerate(curves):
            per = group.groupby("retries")["sagas"].sum()
            ax.bar(per.index.to_numpy() + i * width - 0.4 + width / 2, per.to_numpy(), width=width, label=label,
                   color=colour)  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.6)  # a bar of one saga stands clear of the axis
        ax.set_xticks(range(most + 1))
        ax.set_xlabel("retries per saga")
        ax.set_ylabel("sagas (log scale)")
        ax.set_title(f"Retries of {_of(panel or saga_type)} ({len(results.runs)} runs)", fontsize="medium")
    _legend(fig, axes)
    return fig


def broker_load(
    results: Results, *, by: Sequence[str] | None = None, bin_s: float = 1.0, xlim: tuple[float, float] | None = None
) -> Figure:
    """Broker calls per second over simulated time (mean over runs, and the busiest run), with the fault windows.

    The time axis spans the active bins (first to last with a call, a small margin around), unless
    ``xlim`` is given. Each injected fault family gets a lane and a colour of its own above the load,
    showing its typical window (median start to median end over the runs that had it).
    """
    keys = split_by(results, by)
    load = analysis.broker_load(results, by=keys, bin_s=bin_s)
    families = _fault_windows(results.faults)
    fig = Figure(figsize=(10, 4.4 + (0.22 * len(families) + 0.5 if families else 0)), layout="constrained")
    if families:
        strip, ax = fig.subplots(2, 1, sharex=True, height_ratios=[0.22 * len(families) + 0.5, 4.0])
    else:
        strip, ax = None, fig.add_subplot()
    groups = [((), load)] if not keys else list(load.groupby(keys, sort=True))
    for key, group in groups:
        (line,) = ax.plot(group["t"], group["mean_calls_per_s"], drawstyle="steps-post", label=group_label(keys, key))
        ax.plot(
            group["t"], group["max_calls_per_s"], drawstyle="steps-post", color=line.get_color(), alpha=0.35, lw=0.8
        )
    span, tail = (xlim, None) if xlim else _active_span(load, bin_s)
    if span is not None:
        ax.set_xlim(*span)
    if strip is not None:
        _fault_lanes(strip, families, span)
    ax.set_xlabel("simulated time (s)" + (f"; {tail}" if tail else ""))
    ax.set_ylabel(f"broker calls per second ({bin_s:g} s bins)")
    fig.suptitle(f"Broker load: mean over {len(results.runs)} runs (bold), most in any one run (faint)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


BULK_OF_CALLS = 0.99
"""The share of all broker calls the load plot's time axis must show; a sparse tail past it is cut and said."""


def _active_span(load: pd.DataFrame, bin_s: float) -> tuple[tuple[float, float] | None, str | None]:
    """The time axis of the load plot, and what it leaves out (None: nothing).

    From the first bin with a call to the end of the bin by which ``BULK_OF_CALLS`` of all calls were
    made (a margin of 2 % around): a few stray late calls (a retry at 277 s after a burst in the first
    50 s) would otherwise spend most of the width on an empty tail. What is cut is said in the axis
    label: its share of the calls and the time of the last one.
    """
    active = load[(load["mean_calls_per_s"] > 0) | (load["max_calls_per_s"] > 0)]
    if active.empty:
        return None, None
    first, last = float(active["t"].min()), float(active["t"].max()) + bin_s
    calls = load.groupby("t", sort=True)["mean_calls_per_s"].sum()
    reached = (calls.cumsum() >= BULK_OF_CALLS * calls.sum()).to_numpy()
    bulk_end = float(calls.index[int(reached.argmax())]) + bin_s if reached.any() else last  # argmax: the first
    tail = None
    if bulk_end < 0.8 * last:  # the tail is worth cutting only when it is a good part of the axis
        share = float(calls[calls.index >= bulk_end].sum() / calls.sum())
        tail = f"{share:.1%} of the calls, the last at {last - bin_s:g} s, are past the right edge"
        last = bulk_end
    margin = 0.02 * (last - first)
    return (first - margin, last + margin), tail


def _fault_windows(faults: pd.DataFrame) -> list[tuple[str, float, float]]:
    """Each fault family's typical window: median start to median end over the runs that had it."""
    if faults.empty:
        return []
    grouped = faults.groupby("family", sort=True)
    return [(str(family), float(g["start"].median()), float(g["end"].median())) for family, g in grouped]


def _fault_lanes(ax: Axes, families: list[tuple[str, float, float]], span: tuple[float, float] | None) -> None:
    """One lane and one colour per fault family, named in a legend; a window past the axis says when it ends."""
    low, high = span if span is not None else (0.0, max(end for _, _, end in families))
    sliver = 0.004 * (high - low)  # an instant (a crash) still shows
    for i, (family, start, end) in enumerate(families):
        until = f" (until {end:g} s)" if end > high else ""
        colour = FAULT_COLOURS[i % len(FAULT_COLOURS)]
        ax.broken_barh([(start, max(end - start, sliver))], (i - 0.35, 0.7), color=colour, label=family + until)
    ax.set_ylim(len(families) - 0.5, -0.5)
    ax.set_yticks([])
    ax.set_ylabel("faults", fontsize="small")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small", title="fault family (median window)",
              title_fontsize="x-small", frameon=False)  # fmt: skip


FAULT_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#808000",
                 "#000075")  # fmt: skip
"""One colour per fault family, in the order the families are named (distinct hues, not shades of one)."""


def pareto(
    summary: pd.DataFrame,
    *,
    rate: str = "success_rate",
    cost: str = "p99_s",
    recommended: Any = None,
    max_violation_rate: float | None = None,
    when: str | None = None,
) -> Figure:
    """A rate against p99 duration per configuration, the Pareto front joined, the recommendation starred.

    ``recommended`` is an index label of ``summary`` (e.g. the first row of ``analysis.recommend``).
    With ``max_violation_rate``, only settings within it can be on the front (the others are drawn hollow);
    if none is, the front of all settings is drawn dashed instead, and says so.
    Give it the configurations of one circumstance at a time: a front across circumstances compares
    settings that were never alternatives. The title names that circumstance: ``when``, or else the
    settings that are the same in every row. Every point is labelled with the settings that vary
    (points at the same place share one label); labels are placed where they collide with nothing.
    """
    front = analysis.pareto_front(summary, rate=rate, cost=cost, max_violation_rate=max_violation_rate)
    loose = front.to_numpy().any() or max_violation_rate is None
    if not loose:
        front = analysis.pareto_front(summary, rate=rate, cost=cost)
    fixed, varying = _fixed_and_varying(summary)
    fig = Figure(figsize=(9.5, 5.2), layout="constrained")
    ax = fig.add_subplot()
    prefix = rate.removesuffix("_rate")
    x, y = summary[cost].to_numpy(dtype=float), summary[rate].to_numpy(dtype=float)
    _draw_settings(ax, summary, x, y, rate=rate, cost=cost, limit=max_violation_rate)
    on = summary[front.to_numpy()].sort_values(cost)
    style = "-" if loose else "--"
    name = "Pareto front" if loose else "Pareto front ignoring violations (no setting is within the limit)"
    ax.plot(on[cost], on[rate], style, color="#1565c0", lw=2.2, marker="o", ms=5, label=name, zorder=3)
    star = recommended if recommended is not None and recommended in summary.index else None
    if star is not None:
        row = summary.loc[star]
        ax.plot([row[cost]], [row[rate]], marker="*", markersize=18, color="#d81b60", ls="", label="recommended",
                zorder=4)  # fmt: skip
    _fit_limits(ax, x, y)
    what = f"{prefix.replace('_', ' ').capitalize()} rate against {cost.removesuffix('_s')} duration"
    ax.set_title(what + (f" when {when or _settings(fixed)}" if when or fixed else ""))
    ax.set_xlabel(f"{cost} (simulated seconds)")
    ax.set_ylabel(rate.replace("_", " "))
    fig.legend(fontsize="small", loc="outside lower center", ncols=2)  # not over the points and their labels
    place_labels(ax, _pareto_labels(summary, varying, front, star, cost, rate), markers=list(zip(x, y, strict=True)))
    return fig


def _draw_settings(
    ax: Axes, summary: pd.DataFrame, x: np.ndarray, y: np.ndarray, *, rate: str, cost: str, limit: float | None
) -> None:
    """Every setting as a point with its 95 % intervals; hollow and red when its violation rate is over ``limit``."""
    prefix = rate.removesuffix("_rate")
    xerr = _err(summary, cost, "p99_low", "p99_high") if cost == "p99_s" else None
    yerr = _err(summary, rate, f"{prefix}_low", f"{prefix}_high")
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor="#cfd8dc", zorder=1)
    within = np.ones(len(summary), dtype=bool)
    if limit is not None:
        within = (summary["violation_rate"] <= limit).to_numpy()
    if within.any():
        ax.plot(x[within], y[within], "o", color="#90a4ae", label="setting (95% CI)", zorder=2)
    if not within.all():
        ax.plot(x[~within], y[~within], "o", mfc="none", color="#c62828", label="setting with too many violations",
                zorder=2)  # fmt: skip


def _fixed_and_varying(summary: pd.DataFrame) -> tuple[list[tuple[str, Any]], list[str]]:
    """The index levels with one value in every row (the circumstance), and those that vary."""
    names = [str(n) for n in summary.index.names if n is not None]
    fixed: list[tuple[str, Any]] = []
    varying: list[str] = []
    for level, name in enumerate(names):
        values = summary.index.get_level_values(level).unique()
        if len(values) == 1 and len(summary) > 1:
            fixed.append((name, values[0]))
        else:
            varying.append(name)
    return fixed, varying


def _settings(pairs: Sequence[tuple[str, Any]]) -> str:
    return ", ".join(f"{short(name)}={value}" for name, value in pairs)


def _pareto_labels(
    summary: pd.DataFrame, varying: list[str], front: pd.Series, star: Any, cost: str, rate: str
) -> list[PointLabel]:
    """One label per place: the settings drawn there; the star's first and bold, then the front's, then the rest."""
    names = [str(n) for n in summary.index.names if n is not None]
    places: dict[tuple[float, float], list[Any]] = {}
    for index in summary.index:
        row = summary.loc[index]
        places.setdefault((float(row[cost]), float(row[rate])), []).append(index)
    on = set(summary.index[front.to_numpy()])
    labels = []
    for xy, indices in places.items():
        text = _joined([_values(names, index, varying) for index in indices], varying)
        if star is not None and star in indices:
            # The star names the recommended setting alone; others drawn at the same place are said as such.
            others = [index for index in indices if index != star]
            text = _joined([_values(names, star, varying)], varying) + (
                f" (same point: {_joined([_values(names, i, varying) for i in others], varying)})" if others else ""
            )
            labels.append((0, PointLabel(xy, f"★ {text}", style={"fontweight": "bold", "color": "#ad1457"})))
        else:
            labels.append((1 if on & set(indices) else 2, PointLabel(xy, text, required=bool(on & set(indices)))))
    return [label for _, label in sorted(labels, key=lambda pair: pair[0])]


def _values(names: list[str], index: Any, varying: list[str]) -> dict[str, Any]:
    values = index if isinstance(index, tuple) else (index,)
    return {name: value for name, value in zip(names, values, strict=True) if name in varying}


def _joined(settings: list[dict[str, Any]], varying: list[str]) -> str:
    """Settings drawn at one place: ``max_attempts=8`` or, for several, ``max_attempts=8, 12, 16``."""
    if len(varying) == 1:
        name = varying[0]
        return f"{short(name)}={', '.join(str(s[name]) for s in settings)}"
    return "\n".join(_settings(list(s.items())) for s in settings)


def _fit_limits(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
    """Axis limits around the points (not a fixed 0 to 1), with room for their labels.

    Durations stay at or just above 0, rates within a sliver of 0 and 1 (a rate of 1.0 sits
    below the frame, not on it, leaving room for a label above).
    """
    for values, setter, room, is_rate in ((x, ax.set_xlim, 0.12, False), (y, ax.set_ylim, 0.14, True)):
        finite = values[np.isfinite(values)]
        if not finite.size:
            continue
        low, high = float(finite.min()), float(finite.max())
        pad = room * (high - low) if high > low else max(abs(high) * 0.02, 0.01)
        low, high = low - pad, high + pad
        floor = -0.02 if is_rate else -0.02 * high
        ceiling = 1.0 + 0.15 * (min(high, 1.0) - low) if is_rate else high
        setter(max(low, floor), min(high, ceiling))


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
