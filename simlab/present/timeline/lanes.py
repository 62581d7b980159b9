"""The timeline's main panel: one lane per saga, its attempts, retry waits and compensations, its terminal status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.font_manager import FontProperties

from sagas.engine.trace import Outcome, Phase
from simlab.evidence.trace_tables import COMPENSATION_RETRY_WAIT, INTERRUPTED, RETRY_WAIT, Lane, Span
from simlab.present.timeline.style import (
    ANNOTATED_LANES,
    COMPENSATION_COLOURS,
    OUTCOME_COLOURS,
    STATUS_STYLE,
    VIOLATION_COLOUR,
    ViolationLike,
    compensations_by_lane,
    lane_label,
    status_text,
    text_width,
)

FAILED_ATTEMPTS = (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.INVALID_RESULT)
"""Outcomes of a step attempt whose step the lane names (with its errors)."""


def bars(
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


def draw_lanes(
    ax: Axes,
    lanes: list[Lane],
    spans: list[Span],
    span_min: float,
    violations: Sequence[ViolationLike],
    connections: Mapping[str, str] | None = None,
) -> float:
    """Draw the lanes (labelled with each saga's connection where ``connections`` has it: saga id -> id);
    returns the width of the widest lane label in points."""
    width = _lane_axis(ax, lanes, violations, connections or {})
    _lane_lines(ax, lanes)
    execute = [s for s in spans if s.kind == Phase.EXECUTE]
    compensations = _attempt_bars(ax, spans, execute, span_min)
    if (
        len(lanes) <= ANNOTATED_LANES
    ):  # name each failing step once per lane, with its errors; beyond that, colours only
        _failure_notes(ax, execute)
    _status_marks(ax, lanes, compensations)
    return width


def _lane_axis(
    ax: Axes, lanes: list[Lane], violations: Sequence[ViolationLike], connections: Mapping[str, str]
) -> float:
    """Lane labels (red for sagas in a violation), alternate shading and grid; the widest label's width."""
    n = len(lanes)
    ax.set_ylim(n - 0.5, -0.8)  # first lane on top, with room above it for its annotations
    labels = [lane_label(lane, connections.get(lane.saga_id)) for lane in lanes]
    ax.set_yticks(range(n), labels, fontsize=8, family="monospace")
    involved = {saga_id for v in violations for saga_id in v.saga_ids}
    for tick, lane in zip(ax.get_yticklabels(), lanes, strict=True):
        tick.set_horizontalalignment("left")
        if lane.saga_id in involved:
            tick.set_color(VIOLATION_COLOUR)
            tick.set_fontweight("bold")
    font = FontProperties(family="monospace", size=8, weight="bold")
    width = max((text_width(label, font) for label in labels), default=0.0)
    ax.tick_params(axis="y", length=0, pad=1.1 * width + 8)  # left-aligned labels, clear of the axes
    for lane_index in range(0, n, 2):
        ax.axhspan(lane_index - 0.5, lane_index + 0.5, color="#f4f4f4", zorder=0, linewidth=0)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)
    return width


def _lane_lines(ax: Axes, lanes: list[Lane]) -> None:
    """Each saga's line from first to last record; a child's linked to its parent's lane."""
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


def _attempt_bars(ax: Axes, spans: list[Span], execute: list[Span], span_min: float) -> dict[int, list[str]]:
    """Attempts, retry waits and compensations as bars (a marker for every compensation, often instantaneous);
    returns each lane's compensation outcomes."""
    compensate = [s for s in spans if s.kind == Phase.COMPENSATE]
    waits = [s for s in spans if s.kind == RETRY_WAIT]
    compensation_waits = [s for s in spans if s.kind == COMPENSATION_RETRY_WAIT]
    bars(ax, execute, -0.08, 0.5, OUTCOME_COLOURS, span_min, edgecolor="white", linewidth=0.4)
    hollow = {Outcome.SCHEDULED: "none", INTERRUPTED: "none"}
    bars(ax, waits, -0.08, 0.3, hollow, span_min, edgecolor="#666666", hatch="////", linewidth=0.5)
    bars(ax, compensation_waits, 0.3, 0.18, hollow, span_min, edgecolor="#666666", hatch="////", linewidth=0.5)
    bars(ax, compensate, 0.3, 0.22, COMPENSATION_COLOURS, span_min, edgecolor="black", linewidth=0.4)
    for span in compensate:
        ax.plot(
            [span.start],
            [span.lane + 0.3],
            marker="<",
            color=COMPENSATION_COLOURS.get(span.outcome, "#cccccc"),
            markeredgecolor="black",
            markeredgewidth=0.5,
            markersize=6,
            zorder=3,
        )
    return compensations_by_lane(spans)


def _failure_notes(ax: Axes, execute: list[Span]) -> None:
    """Above each lane, its failing steps once each, with their errors and how many attempts failed."""
    failures: dict[tuple[int, str | None], list[Span]] = {}
    for span in execute:
        if span.outcome in FAILED_ATTEMPTS:
            failures.setdefault((span.lane, span.step), []).append(span)
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


def _status_marks(ax: Axes, lanes: list[Lane], compensations: dict[int, list[str]]) -> None:
    """Each saga's terminal status at the end of its lane: a marker and a few words."""
    for lane in lanes:
        marker, colour = STATUS_STYLE.get(lane.status, ("o", "#333333"))
        ax.plot([lane.end], [lane.lane], marker=marker, color=colour, markersize=6, markeredgecolor="white", zorder=4)
        ax.annotate(
            status_text(lane, compensations.get(lane.lane, [])),
            xy=(lane.end, lane.lane),
            xytext=(6, 0),
            textcoords="offset points",
            fontsize=7,
            color=colour,
            va="center",
            ha="left",
            zorder=5,
        )
