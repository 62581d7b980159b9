"""The timeline figure: its panels laid out, the time axis chosen, each panel drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from sagas.engine.trace import TraceRecord
from simlab.evidence.trace_tables import Lane, Span, saga_lanes, trace_spans
from simlab.present.labels import spread
from simlab.present.timeline.axis import BREAK_SHARE, TimeAxis
from simlab.present.timeline.lanes import draw_lanes
from simlab.present.timeline.panels import draw_faults, draw_lags, draw_locks, legend_handles, mark_violations
from simlab.present.timeline.style import (
    ANNOTATED_LANES,
    WIDTH_IN,
    ViolationLike,
    compensations_by_lane,
    status_text,
    text_width,
)

Window = tuple[str, float, float]
Hold = tuple[str, str, float, float]
Lag = tuple[str, float, float]


def timeline_figure(
    trace: Sequence[TraceRecord],
    *,
    lags: Sequence[Lag] | None = None,
    fault_windows: Sequence[tuple[Any, ...]] | None = None,
    lock_holders: Sequence[Hold] | None = None,
    violations: Sequence[ViolationLike] | None = None,
    title: str | None = None,
    xlim: tuple[float, float] | None = None,
    connections: Mapping[str, str] | None = None,
) -> Figure:
    """A run's timeline: one lane per saga, and panels for faults, lock holders and projection lag when given.

    ``trace`` is the run's trace records. ``lags`` are ``(projection, published_at, applied_at)`` per applied
    event (``RunResult.lags``), drawn as lag against publication time; ``fault_windows`` are ``(family, start,
    end, ...)`` (``simlab.chaos.faults.FaultWindow`` fits), drawn in a panel on top and shaded across the panels
    below; ``lock_holders`` are ``(key, owner, start, end)``, drawn one row per key with overlapping holds
    outlined in red; ``violations`` (e.g. ``RunResult.violations``) are drawn as dashed lines and their sagas'
    labels turn red; ``connections`` (saga id -> broker connection id) adds each saga's connection to its
    label, as the text replay shows it. Times are simulated seconds; the axis spans the sagas' activity (and
    fault windows unless they last far longer), or ``xlim`` to zoom. Every bar collection carries the gid
    ``timeline:<kind>`` (``execute``, ``compensate``, ``retry_wait``, ``fault``), so tests and callers find them.
    """
    records = list(trace)
    lanes = saga_lanes(records)
    spans = trace_spans(records, lanes)
    violations = violations or ()
    windows = [(str(w[0]), float(w[1]), float(w[2])) for w in fault_windows or ()]
    layout = _Layout.of(lanes, windows, lock_holders, lags)
    t_max = _time_range(lanes, windows, lags, lock_holders) if xlim is None else xlim[1]
    span_min = t_max * 0.0025  # zero-length attempts still show as a sliver
    axes, main = layout.axes, layout.main
    label_width = draw_lanes(main, lanes, spans, span_min, violations, connections)
    layout.figure.suptitle(title or f"Replay timeline: {len(lanes)} saga(s)", fontsize=12)
    if layout.families:
        draw_faults(axes, layout.families, windows, span_min, t_max)
    below = iter(axes[axes.index(main) + 1 :])
    holders = draw_locks(next(below), layout.lock_keys, lock_holders, span_min) if lock_holders else []
    if lags:
        draw_lags(next(below), lags)
    axes[-1].set_xlabel("simulated time (s)")
    axis = _time_axis(xlim, lanes, spans, t_max, label_width, violations)
    axis.apply(axes)
    _add_legend(layout.figure, spans, lanes, violations)
    spread(holders, [(2, 0), (2, 6), (2, -6)])  # holds close in time: their holders' names must not overlap
    mark_violations(axes, violations, axis.stop)  # last: its labels are placed in the settled layout
    return layout.figure


def _time_axis(
    xlim: tuple[float, float] | None,
    lanes: list[Lane],
    spans: list[Span],
    t_max: float,
    label_width: float,
    violations: Sequence[ViolationLike],
) -> TimeAxis:
    """``xlim`` if the caller zoomed; otherwise the sagas' activity with room for their statuses, and the
    violating moments too (they stay on the chart, after a break if they come long after the sagas)."""
    if xlim is not None:
        return TimeAxis(*xlim)
    share = BREAK_SHARE if any(v.t > 2.5 * t_max for v in violations) else 1.0  # after any room: a break
    return TimeAxis.of(_room_for_statuses(lanes, spans, t_max, label_width, share), [v.t for v in violations])


def _add_legend(fig: Figure, spans: list[Span], lanes: list[Lane], violations: Sequence[ViolationLike]) -> None:
    """The legend below the panels, in rows of at most seven entries."""
    handles = legend_handles(spans, lanes, violations)
    rows = -(-len(handles) // 7)
    fig.legend(handles=handles, loc="outside lower center", ncol=-(-len(handles) // rows), fontsize=8, frameon=False)


@dataclass(frozen=True)
class _Layout:
    """The figure and its panels: faults on top (if any), the lanes, then locks and lags (if any)."""

    figure: Figure
    axes: list[Axes]
    main: Axes
    families: list[str]
    lock_keys: list[str]

    @classmethod
    def of(
        cls, lanes: list[Lane], windows: list[Window], holders: Sequence[Hold] | None, lags: Sequence[Lag] | None
    ) -> _Layout:
        families = list(dict.fromkeys(family for family, _, _ in windows))
        n = max(len(lanes), 1)
        lock_keys = list(dict.fromkeys(key for key, _, _, _ in holders or ()))
        lane_height = 0.36 if n <= ANNOTATED_LANES else max(0.14, 14.4 / n)
        heights = [max(2.0, n * lane_height)]
        if families:
            heights.insert(0, 0.22 * len(families) + 0.3)
        if holders:
            heights.append(max(0.9, 0.32 * len(lock_keys) + 0.4))
        if lags:
            heights.append(1.8)
        fig = Figure(figsize=(WIDTH_IN, sum(heights) + 1.6), layout="constrained")
        grid = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights}, squeeze=False)
        axes = list(grid[:, 0])
        return cls(fig, axes, axes[1] if families else axes[0], families, lock_keys)


def _time_range(
    lanes: list[Lane], windows: list[Window], lags: Sequence[Lag] | None, holders: Sequence[Hold] | None
) -> float:
    """Where the time axis ends: with the activity, and the fault windows unless they last far longer."""
    activity_end = max(
        [lane.end for lane in lanes]
        + [applied for _, _, applied in lags or ()]
        + [end for _, _, _, end in holders or ()]
        + [1e-3]
    )
    faults_end = max([end for _, _, end in windows], default=0.0)
    # A fault window lasting far beyond the sagas (faults heal late) would squeeze them into a corner:
    # the axis then ends with the activity, and the fault panel says how long each family lasted.
    return max(activity_end, faults_end) if faults_end <= 2 * activity_end else activity_end


def _room_for_statuses(
    lanes: list[Lane], spans: list[Span], t_max: float, label_width: float, share: float = 1.0
) -> tuple[float, float]:
    """The x range that leaves room on the right for every lane's terminal status (in the ``share`` of the
    axes' width that the activity gets: less when late violations follow a break)."""
    axes_width = (WIDTH_IN * 72 - (1.1 * label_width + 8) - 30) * share
    font = FontProperties(size=7)
    compensations = compensations_by_lane(spans)
    reach = [
        (lane.end / t_max)
        / max(0.2, 1 - (text_width(status_text(lane, compensations.get(lane.lane, [])), font) + 16) / axes_width)
        for lane in lanes
    ]
    return (-0.01 * t_max, t_max * min(2.0, max([1.05, *reach])))
