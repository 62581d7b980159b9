"""The replay timeline: a run's trace as tidy spans, and as a figure with one lane per saga.

``timeline_spans`` and ``timeline_lanes`` turn trace records into tables and
nothing else (pure functions, testable with hand-made records).
``timeline_figure`` draws them: one horizontal lane per saga (children right
under their parent, indented and linked), step attempts as bars coloured by
outcome, retry waits as hatched bars, compensations as markers and bars in a
band of their own, the saga's terminal status at the end of its lane; when
given, a fault panel on top (one row per family, its windows also shaded
across the panels below), invariant violations as dashed lines, and panels
for lock holders and projection lag. It builds a ``matplotlib.figure.Figure`` without pyplot: no global state,
nothing shown; the caller saves or displays it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.textpath import TextToPath

from sagas.engine.trace import TraceRecord
from simlab.evidence.trace_tables import (
    COMPENSATION_RETRY_WAIT,
    RETRY_WAIT,
    Lane,
    Phase,
    Span,
    saga_lanes,
    trace_spans,
)

if TYPE_CHECKING:
    from simlab.batch.runner import RunResult

SPAN_COLUMNS: tuple[str, ...] = (
    "saga_id",
    "saga_type",
    "parent_id",
    "lane",
    "step",
    "attempt",
    "kind",
    "start",
    "end",
    "outcome",
    "error_type",
)
"""Columns of :func:`timeline_spans`."""

LANE_COLUMNS: tuple[str, ...] = (
    "lane",
    "saga_id",
    "saga_type",
    "parent_id",
    "depth",
    "start",
    "end",
    "status",
    "detail",
)
"""Columns of :func:`timeline_lanes`."""

EXECUTE = Phase.EXECUTE
COMPENSATE = Phase.COMPENSATE


class ViolationLike(Protocol):
    """What the figure needs of an invariant violation (``simlab.evidence.invariants.Violation`` fits)."""

    @property
    def invariant(self) -> str: ...

    @property
    def t(self) -> float: ...

    @property
    def saga_ids(self) -> tuple[str, ...]: ...


# -- tables -----------------------------------------------------------------


def timeline_lanes(trace: Iterable[TraceRecord]) -> pd.DataFrame:
    """One row per saga in lane order: its lane, type, parent, depth, first and last time, terminal status.

    Roots come in order of their start; each saga's children follow it directly
    (``depth`` one more than their parent's). ``status`` is ``running`` for a
    saga that never reached a terminal status; ``detail`` is the terminal
    record's detail (an abort's reason, a compensation's outcome).
    """
    rows = [asdict(lane) for lane in saga_lanes(list(trace))]
    return pd.DataFrame(rows, columns=list(LANE_COLUMNS))


def timeline_spans(trace: Iterable[TraceRecord]) -> pd.DataFrame:
    """One row per step attempt, compensation attempt and retry wait of a run, derived from its trace alone.

    ``kind`` is ``execute`` (a step attempt, from its ``started`` record to the
    record that ends it), ``compensate`` (a compensation attempt; a step with
    no compensation gives a zero-length ``skipped`` row), ``retry_wait`` or
    ``compensation_retry_wait`` (from a scheduled retry for its delay, cut
    short, with outcome ``interrupted``, if the saga records something else
    first). ``outcome`` is how the attempt ended (``completed``, ``failed``,
    ``timed_out``, ``cancelled``, ``aborted``, ``compensated``, and
    ``invalid_result`` or ``gave_up`` when a later record says so); an
    attempt a restarted manager left behind ends ``interrupted`` when the
    saga resumes or starts that attempt again, and one still open when the
    trace ends has ``end`` at the trace's last time and outcome ``running``.
    ``attempt`` is the step's attempt number (the failed attempt, for a retry
    wait). ``lane`` is the saga's row in :func:`timeline_lanes`. Rows are in
    order of ``start``, ties in the order of their records.
    """
    records = list(trace)
    rows = [asdict(span) for span in trace_spans(records, saga_lanes(records))]
    table = pd.DataFrame(rows, columns=list(SPAN_COLUMNS))
    table["attempt"] = table["attempt"].astype("Int64")
    return table


# -- the figure -------------------------------------------------------------

_OUTCOME_COLOURS = {
    "completed": "#2ca02c",
    "failed": "#d62728",
    "timed_out": "#ff7f0e",
    "cancelled": "#7f7f7f",
    "aborted": "#9467bd",
    "invalid_result": "#8c564b",
    "interrupted": "#bcbd22",
    "running": "#9ecae1",
}
_COMPENSATION_COLOURS = {
    "compensated": "#1f77b4",
    "failed": "#d62728",
    "timed_out": "#ff7f0e",
    "gave_up": "#67000d",
    "skipped": "#c6dbef",
    "interrupted": "#bcbd22",
    "running": "#9ecae1",
}
_STATUS_STYLE = {  # terminal status: marker and colour at the lane's end
    "completed": ("o", "#2ca02c"),
    "compensated": ("s", "#1f77b4"),
    "compensation_failed": ("X", "#67000d"),
    "aborted": ("D", "#9467bd"),
    "timed_out": ("X", "#ff7f0e"),
    "running": (">", "#7f7f7f"),
}
_FAULT_COLOURS = ("#ff9896", "#c5b0d5", "#ffbb78", "#98df8a", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")
_LAG_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_VIOLATION_COLOUR = "#b2182b"
_WIDTH_IN = 13.0  # figure width in inches
_ANNOTATED_LANES = 40  # more lanes than this leave no room to name failing steps


def _short(saga_id: str) -> str:
    return saga_id[:8]


def _lane_label(lane: Lane) -> str:
    indent = "    " * (lane.depth - 1) + "  └ " if lane.depth else ""
    return f"{indent}{lane.saga_type.removesuffix('Saga')} {_short(lane.saga_id)}"


def _status_text(lane: Lane, compensations: list[str]) -> str:
    parts = [lane.detail] if lane.detail and lane.detail != lane.status else []
    if compensations:
        n = len(compensations)
        failed = sum(outcome not in ("compensated", "skipped") for outcome in compensations)
        parts.append(f"{failed} of {n} compensations failed" if failed else f"{n} step{'s' if n > 1 else ''} undone")
    return lane.status + (f" ({'; '.join(parts)})" if parts else "")


def _compensations(spans: Iterable[Span]) -> dict[int, list[str]]:
    """Per lane, the outcome of each compensation attempt."""
    outcomes: dict[int, list[str]] = {}
    for span in spans:
        if span.kind == COMPENSATE:
            outcomes.setdefault(span.lane, []).append(span.outcome)
    return outcomes


def _text_width(text: str, font: FontProperties) -> float:
    """Width of ``text`` in points, without a renderer."""
    width: float = TextToPath().get_text_width_height_descent(text, font, ismath=False)[0]
    return width


def timeline_figure(
    trace: Sequence[TraceRecord],
    *,
    lags: Sequence[tuple[str, float, float]] | None = None,
    fault_windows: Sequence[tuple[Any, ...]] | None = None,
    lock_holders: Sequence[tuple[str, str, float, float]] | None = None,
    violations: Sequence[ViolationLike] | None = None,
    title: str | None = None,
    xlim: tuple[float, float] | None = None,
) -> Figure:
    """A run's timeline: one lane per saga, and panels for faults, lock holders and projection lag when given.

    ``trace`` is the run's trace records. ``lags`` are ``(projection,
    published_at, applied_at)`` per applied event (``RunResult.lags``), drawn
    as lag against publication time; ``fault_windows`` are ``(family, start,
    end, ...)`` (``simlab.chaos.faults.FaultWindow`` fits), drawn in a panel on top
    and shaded across the panels below; ``lock_holders`` are ``(key, owner,
    start, end)``, drawn one row per key with overlapping holds outlined in
    red; ``violations`` (e.g. ``RunResult.violations``) are drawn as dashed
    lines and their sagas' labels turn red. Times are simulated seconds; the
    axis spans the sagas' activity (and fault windows unless they last far
    longer), or ``xlim`` to zoom.
    Every bar collection carries the gid ``timeline:<kind>`` (``execute``,
    ``compensate``, ``retry_wait``, ``fault``), so tests and callers can find them.
    """
    records = list(trace)
    lanes = saga_lanes(records)
    spans = trace_spans(records, lanes)
    violations = violations or ()
    windows = [(str(w[0]), float(w[1]), float(w[2])) for w in fault_windows or ()]
    families = list(dict.fromkeys(family for family, _, _ in windows))
    n = max(len(lanes), 1)
    lock_keys = list(dict.fromkeys(key for key, _, _, _ in lock_holders or ()))
    lane_height = 0.36 if n <= _ANNOTATED_LANES else max(0.14, 14.4 / n)
    heights = [max(2.0, n * lane_height)]
    if families:
        heights.insert(0, 0.22 * len(families) + 0.3)
    if lock_holders:
        heights.append(max(0.9, 0.32 * len(lock_keys) + 0.4))
    if lags:
        heights.append(1.8)
    fig = Figure(figsize=(_WIDTH_IN, sum(heights) + 1.6), layout="constrained")
    axes = list(fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0])
    main = axes[1] if families else axes[0]

    activity_end = max(
        [lane.end for lane in lanes]
        + [applied for _, _, applied in lags or ()]
        + [end for _, _, _, end in lock_holders or ()]
        + [1e-3]
    )
    faults_end = max([end for _, _, end in windows], default=0.0)
    # A fault window lasting far beyond the sagas (faults heal late) would squeeze them into a corner:
    # the axis then ends with the activity, and the fault panel says how long each family lasted.
    t_max = max(activity_end, faults_end) if faults_end <= 2 * activity_end else activity_end
    if xlim is not None:
        t_max = xlim[1]
    span_min = t_max * 0.0025  # zero-length attempts still show as a sliver

    label_width = _draw_lanes(main, lanes, spans, span_min, violations)
    fig.suptitle(title or f"Replay timeline: {len(lanes)} saga(s)", fontsize=12)
    if families:
        _draw_faults(axes, families, windows, span_min, t_max)
    _mark_violations(axes, violations, t_max)
    index = axes.index(main) + 1
    if lock_holders:
        _draw_locks(axes[index], lock_keys, lock_holders, span_min)
        index += 1
    if lags:
        _draw_lags(axes[index], lags)
    axes[-1].set_xlabel("simulated time (s)")
    if xlim is None:  # room on the right for every lane's terminal status
        axes_width = _WIDTH_IN * 72 - (1.1 * label_width + 8) - 30
        font = FontProperties(size=7)
        compensations = _compensations(spans)
        reach = [
            (lane.end / t_max)
            / max(0.2, 1 - (_text_width(_status_text(lane, compensations.get(lane.lane, [])), font) + 16) / axes_width)
            for lane in lanes
        ]
        xlim = (-0.01 * t_max, t_max * min(2.0, max([1.05, *reach])))
    axes[-1].set_xlim(xlim)

    handles = _legend_handles(spans, lanes, violations)
    rows = -(-len(handles) // 7)
    fig.legend(handles=handles, loc="outside lower center", ncol=-(-len(handles) // rows), fontsize=8, frameon=False)
    return fig


def _bars(
    ax: Axes,
    spans: Iterable[Span],
    offset: float,
    height: float,
    colours: dict[str, str],
    span_min: float,
    **style: Any,
) -> None:
    """One bar per span, a collection per outcome, tagged ``timeline:<kind>``."""
    groups: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
    for span in spans:
        kind = RETRY_WAIT if span.kind == COMPENSATION_RETRY_WAIT else span.kind
        x0, x1 = span.start, span.start + max(span.end - span.start, span_min)
        y0, y1 = span.lane + offset - height / 2, span.lane + offset + height / 2
        groups.setdefault((kind, span.outcome), []).append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    for (kind, outcome), boxes in groups.items():
        collection = PolyCollection(boxes, facecolors=colours.get(outcome, "#cccccc"), zorder=2, **style)
        collection.set_gid(f"timeline:{kind}")
        ax.add_collection(collection, autolim=False)


def _draw_lanes(
    ax: Axes, lanes: list[Lane], spans: list[Span], span_min: float, violations: Sequence[ViolationLike]
) -> float:
    """Draw the lanes; returns the width of the widest lane label in points."""
    n = len(lanes)
    ax.set_ylim(n - 0.5, -0.8)  # first lane on top, with room above it for its annotations
    labels = [_lane_label(lane) for lane in lanes]
    ax.set_yticks(range(n), labels, fontsize=8, family="monospace")
    involved = {saga_id for v in violations for saga_id in v.saga_ids}
    for tick, lane in zip(ax.get_yticklabels(), lanes, strict=True):
        tick.set_horizontalalignment("left")
        if lane.saga_id in involved:
            tick.set_color(_VIOLATION_COLOUR)
            tick.set_fontweight("bold")
    font = FontProperties(family="monospace", size=8, weight="bold")
    width = max((_text_width(label, font) for label in labels), default=0.0)
    ax.tick_params(axis="y", length=0, pad=1.1 * width + 8)  # left-aligned labels, clear of the axes
    for lane_index in range(0, n, 2):
        ax.axhspan(lane_index - 0.5, lane_index + 0.5, color="#f4f4f4", zorder=0, linewidth=0)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)

    lane_of = {lane.saga_id: lane.lane for lane in lanes}
    for lane in lanes:
        ax.hlines(lane.lane, lane.start, lane.end, color="#999999", linewidth=0.8, zorder=1)
        if lane.parent_id is not None and lane.parent_id in lane_of:  # a child: linked to its parent's lane
            ax.plot(
                [lane.start, lane.start],
                [lane_of[lane.parent_id] + 0.25, lane.lane - 0.1],
                color="#555555",
                linestyle=":",
                linewidth=0.9,
                zorder=1,
            )
            ax.plot([lane.start], [lane.lane], marker=">", color="#555555", markersize=4, zorder=3)

    execute = [s for s in spans if s.kind == EXECUTE]
    compensate = [s for s in spans if s.kind == COMPENSATE]
    waits = [s for s in spans if s.kind == RETRY_WAIT]
    compensation_waits = [s for s in spans if s.kind == COMPENSATION_RETRY_WAIT]
    _bars(ax, execute, -0.08, 0.5, _OUTCOME_COLOURS, span_min, edgecolor="white", linewidth=0.4)
    hollow = {"scheduled": "none", "interrupted": "none"}
    _bars(ax, waits, -0.08, 0.3, hollow, span_min, edgecolor="#666666", hatch="////", linewidth=0.5)
    _bars(ax, compensation_waits, 0.3, 0.18, hollow, span_min, edgecolor="#666666", hatch="////", linewidth=0.5)
    _bars(ax, compensate, 0.3, 0.22, _COMPENSATION_COLOURS, span_min, edgecolor="black", linewidth=0.4)
    compensations = _compensations(spans)
    for span in compensate:  # compensations are often instantaneous: a marker shows every one
        ax.plot(
            [span.start],
            [span.lane + 0.3],
            marker="<",
            color=_COMPENSATION_COLOURS.get(span.outcome, "#cccccc"),
            markeredgecolor="black",
            markeredgewidth=0.5,
            markersize=6,
            zorder=3,
        )

    failures: dict[tuple[int, str | None], list[Span]] = {}
    for span in execute:
        if span.outcome in ("failed", "timed_out", "invalid_result"):
            failures.setdefault((span.lane, span.step), []).append(span)
    if n <= _ANNOTATED_LANES:  # name each failing step once per lane, with its errors; beyond that, colours only
        for (lane_index, step), failed in failures.items():
            errors = ", ".join(dict.fromkeys(s.error_type for s in failed if s.error_type))
            ax.annotate(
                f"{step}" + (f" [{errors}]" if errors else "") + (f" x{len(failed)}" if len(failed) > 1 else ""),
                xy=(failed[0].start, lane_index - 0.34),
                fontsize=6,
                color="#7f0000",
                va="bottom",
                ha="left",
                zorder=5,
            )

    for lane in lanes:
        marker, colour = _STATUS_STYLE.get(lane.status, ("o", "#333333"))
        ax.plot([lane.end], [lane.lane], marker=marker, color=colour, markersize=6, markeredgecolor="white", zorder=4)
        ax.annotate(
            _status_text(lane, compensations.get(lane.lane, [])),
            xy=(lane.end, lane.lane),
            xytext=(6, 0),
            textcoords="offset points",
            fontsize=7,
            color=colour,
            va="center",
            ha="left",
            zorder=5,
        )
    return width


def _mark_violations(axes: Sequence[Axes], violations: Sequence[ViolationLike], t_max: float) -> None:
    """A dashed line per violation across every panel, one label per cluster of close ones above the lanes;
    violations found after the drawn range (checked at the horizon) are listed in the top right corner."""
    clusters: list[tuple[float, str, int]] = []
    later: dict[tuple[str, float], int] = {}
    for violation in sorted(violations, key=lambda v: v.t):
        if violation.t > t_max:
            later[(violation.invariant, violation.t)] = later.get((violation.invariant, violation.t), 0) + 1
            continue
        for ax in axes:
            ax.axvline(violation.t, color=_VIOLATION_COLOUR, linestyle="--", linewidth=1.0, zorder=4)
        if clusters and clusters[-1][1] == violation.invariant and violation.t - clusters[-1][0] < 0.04 * t_max:
            first, name, count = clusters[-1]
            clusters[-1] = (first, name, count + 1)
        else:
            clusters.append((violation.t, violation.invariant, 1))
    style: dict[str, Any] = {"fontsize": 8, "fontweight": "bold", "color": _VIOLATION_COLOUR, "va": "bottom"}
    for t, name, count in clusters:
        axes[0].annotate(
            name if count == 1 else f"{name} (x{count})",
            xy=(t, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            **style,
        )
    if later:
        text = "; ".join(f"{name}{f' (x{n})' if n > 1 else ''} at t={t:g} s" for (name, t), n in later.items())
        axes[0].annotate(
            f"later: {text} →",
            xy=(1.0, 1.0),
            xycoords="axes fraction",
            xytext=(0, 3),
            textcoords="offset points",
            ha="right",
            **style,
        )


def _draw_faults(
    axes: Sequence[Axes],
    families: list[str],
    windows: Sequence[tuple[str, float, float]],
    span_min: float,
    t_max: float,
) -> None:
    """A panel on top with one row of windows per fault family; light shading of the same windows below it."""
    colours = {family: _FAULT_COLOURS[i % len(_FAULT_COLOURS)] for i, family in enumerate(families)}
    row = {family: i for i, family in enumerate(families)}
    strip, below = axes[0], axes[1:]
    boxes: dict[str, list[list[tuple[float, float]]]] = {}
    for family, start, end in windows:
        end = max(end, start + span_min)
        y0, y1 = row[family] - 0.35, row[family] + 0.35
        boxes.setdefault(family, []).append([(start, y0), (end, y0), (end, y1), (start, y1)])
        for ax in below:  # light: windows of several families overlap
            ax.axvspan(start, end, color=colours[family], alpha=0.12, zorder=0.5, linewidth=0)
    for family, family_boxes in boxes.items():
        collection = PolyCollection(family_boxes, facecolors=colours[family], edgecolors="none", zorder=2)
        collection.set_gid("timeline:fault")
        strip.add_collection(collection, autolim=False)
    last_end = {family: max(end for f, _, end in windows if f == family) for family in families}
    strip.set_ylim(len(families) - 0.5, -0.5)
    strip.set_yticks(
        range(len(families)),
        [f + (f" (until {last_end[f]:g} s)" if last_end[f] > 1.05 * t_max else "") for f in families],
        fontsize=7,
    )
    strip.tick_params(axis="y", length=0)
    strip.set_ylabel("faults", fontsize=8)
    strip.grid(axis="x", color="#dddddd", linewidth=0.6)


def _draw_locks(ax: Axes, keys: list[str], holders: Sequence[tuple[str, str, float, float]], span_min: float) -> None:
    row_of = {key: i for i, key in enumerate(keys)}
    by_key: dict[str, list[tuple[str, float, float]]] = {}
    for key, owner, start, end in holders:
        by_key.setdefault(key, []).append((owner, start, end))
    for key, holds in by_key.items():
        y = row_of[key]
        holds.sort(key=lambda h: h[1])
        for i, (owner, start, end) in enumerate(holds):
            offset = -0.15 if i % 2 == 0 else 0.15
            ax.broken_barh(
                [(start, max(end - start, span_min))],
                (y + offset - 0.14, 0.28),
                facecolors="#6baed6",
                edgecolor="#08519c",
                linewidth=0.5,
                zorder=2,
            )
            ax.annotate(
                _short(owner),
                xy=(start, y + offset),
                xytext=(2, 0),
                textcoords="offset points",
                fontsize=6,
                va="center",
                zorder=3,
            )
        held_until = float("-inf")
        for _, start, end in holds:  # in order of start: overlapping an earlier hold means two holders at once
            if start < held_until:
                ax.broken_barh(
                    [(start, min(held_until, end) - start)],
                    (y - 0.45, 0.9),
                    facecolors="none",
                    edgecolor=_VIOLATION_COLOUR,
                    linewidth=1.2,
                    zorder=4,
                )
            held_until = max(held_until, end)
    ax.set_ylim(len(keys) - 0.5, -0.5)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([key if len(key) <= 40 else "…" + key[-39:] for key in keys], fontsize=7, family="monospace")
    ax.set_ylabel("locks", fontsize=8)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)


def _draw_lags(ax: Axes, lags: Sequence[tuple[str, float, float]]) -> None:
    projections = list(dict.fromkeys(name for name, _, _ in lags))
    for i, name in enumerate(projections):
        points = [(published, applied - published) for n, published, applied in lags if n == name]
        ax.scatter(
            [p for p, _ in points],
            [lag for _, lag in points],
            s=10,
            color=_LAG_COLOURS[i % len(_LAG_COLOURS)],
            label=name,
            zorder=3,
        )
    ax.set_ylabel("projection lag (s)", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.grid(color="#dddddd", linewidth=0.6)
    ax.legend(title="projection", fontsize=7, title_fontsize=7, loc="upper right", frameon=False)


def _legend_handles(spans: list[Span], lanes: list[Lane], violations: Sequence[ViolationLike]) -> list[Any]:
    handles: list[Any] = []
    execute = {s.outcome for s in spans if s.kind == EXECUTE} | {"completed", "failed", "timed_out"}
    for outcome, colour in _OUTCOME_COLOURS.items():
        if outcome in execute:
            handles.append(Patch(facecolor=colour, label=f"attempt {outcome.replace('_', ' ')}"))
    handles.append(Patch(facecolor="none", edgecolor="#666666", hatch="////", label="retry wait"))
    compensate = {s.outcome for s in spans if s.kind == COMPENSATE} | {"compensated"}
    for outcome, colour in _COMPENSATION_COLOURS.items():
        if outcome in compensate:
            label = "compensation" if outcome == "compensated" else f"compensation {outcome.replace('_', ' ')}"
            handles.append(
                Line2D([], [], marker="<", color=colour, markeredgecolor="black", linestyle="none", label=label)
            )
    for status in dict.fromkeys(lane.status for lane in lanes):
        marker, colour = _STATUS_STYLE.get(status, ("o", "#333333"))
        handles.append(Line2D([], [], marker=marker, color=colour, linestyle="none", label=f"saga {status}"))
    if violations:
        handles.append(Line2D([], [], color=_VIOLATION_COLOUR, linestyle="--", label="invariant violated"))
    return handles


# -- saving a replay's figure ------------------------------------------------


def plot_path_problem(path: str) -> str | None:
    """Why the figure cannot be written to ``path`` (one line), or ``None``; checked before a run starts."""
    target = Path(path)
    suffix = target.suffix.lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if not target.parent.is_dir():
        return f"--plot {path}: directory {str(target.parent)!r} does not exist"
    if not os.access(target.parent, os.W_OK):
        return f"--plot {path}: directory {str(target.parent)!r} is not writable"
    if target.is_dir():
        return f"--plot {path}: is a directory, expected a file such as timeline.png"
    if suffix not in formats:
        return f"--plot {path}: unknown image format {suffix or '(none)'!r}; use one of {', '.join(sorted(formats))}"
    return None


def replay_figure(result: RunResult, *, title: str | None = None) -> Figure:
    """``result``'s timeline: its trace, projection lags, fault windows, lock holders and violations."""
    return timeline_figure(
        result.trace,
        lags=result.lags,
        fault_windows=getattr(result, "fault_windows", None),  # recorded by the runner where faults are injected
        violations=result.violations,
        lock_holders=result.lock_holds or None,
        title=title,
    )


def save_replay_figure(result: RunResult, path: str, *, title: str | None = None, dpi: int = 120) -> None:
    """Draw ``result``'s timeline into the image ``path``."""
    replay_figure(result, title=title).savefig(path, dpi=dpi)
