"""The timeline's other panels: fault windows on top, lock holders and projection lag below, violations across all,
and the legend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sagas.engine.trace import Outcome, Phase
from simlab.evidence.trace_tables import Lane, Span
from simlab.present.timeline.style import (
    COMPENSATION_COLOURS,
    FAULT_COLOURS,
    LAG_COLOURS,
    OUTCOME_COLOURS,
    STATUS_STYLE,
    VIOLATION_COLOUR,
    ViolationLike,
    short,
)


def mark_violations(axes: Sequence[Axes], violations: Sequence[ViolationLike], t_max: float) -> None:
    """A dashed line per violation across every panel, one label per cluster of close ones above the lanes;
    violations found after the drawn range (checked at the horizon) are listed in the top right corner."""
    clusters: list[tuple[float, str, int]] = []
    later: dict[tuple[str, float], int] = {}
    for violation in sorted(violations, key=lambda v: v.t):
        if violation.t > t_max:
            later[(violation.invariant, violation.t)] = later.get((violation.invariant, violation.t), 0) + 1
            continue
        for ax in axes:
            ax.axvline(violation.t, color=VIOLATION_COLOUR, linestyle="--", linewidth=1.0, zorder=4)
        if clusters and clusters[-1][1] == violation.invariant and violation.t - clusters[-1][0] < 0.04 * t_max:
            first, name, count = clusters[-1]
            clusters[-1] = (first, name, count + 1)
        else:
            clusters.append((violation.t, violation.invariant, 1))
    style: dict[str, Any] = {"fontsize": 8, "fontweight": "bold", "color": VIOLATION_COLOUR, "va": "bottom"}
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


def draw_faults(
    axes: Sequence[Axes],
    families: list[str],
    windows: Sequence[tuple[str, float, float]],
    span_min: float,
    t_max: float,
) -> None:
    """A panel on top with one row of windows per fault family; light shading of the same windows below it."""
    colours = {family: FAULT_COLOURS[i % len(FAULT_COLOURS)] for i, family in enumerate(families)}
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


def draw_locks(ax: Axes, keys: list[str], holders: Sequence[tuple[str, str, float, float]], span_min: float) -> None:
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
                short(owner),
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
                    edgecolor=VIOLATION_COLOUR,
                    linewidth=1.2,
                    zorder=4,
                )
            held_until = max(held_until, end)
    ax.set_ylim(len(keys) - 0.5, -0.5)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([key if len(key) <= 40 else "…" + key[-39:] for key in keys], fontsize=7, family="monospace")
    ax.set_ylabel("locks", fontsize=8)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)


def draw_lags(ax: Axes, lags: Sequence[tuple[str, float, float]]) -> None:
    projections = list(dict.fromkeys(name for name, _, _ in lags))
    for i, name in enumerate(projections):
        points = [(published, applied - published) for n, published, applied in lags if n == name]
        ax.scatter(
            [p for p, _ in points],
            [lag for _, lag in points],
            s=10,
            color=LAG_COLOURS[i % len(LAG_COLOURS)],
            label=name,
            zorder=3,
        )
    ax.set_ylabel("projection lag (s)", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.grid(color="#dddddd", linewidth=0.6)
    ax.legend(title="projection", fontsize=7, title_fontsize=7, loc="upper right", frameon=False)


def legend_handles(spans: list[Span], lanes: list[Lane], violations: Sequence[ViolationLike]) -> list[Any]:
    handles: list[Any] = []
    execute = {s.outcome for s in spans if s.kind == Phase.EXECUTE} | {
        Outcome.COMPLETED,
        Outcome.FAILED,
        Outcome.TIMED_OUT,
    }
    for outcome, colour in OUTCOME_COLOURS.items():
        if outcome in execute:
            handles.append(Patch(facecolor=colour, label=f"attempt {outcome.replace('_', ' ')}"))
    handles.append(Patch(facecolor="none", edgecolor="#666666", hatch="////", label="retry wait"))
    compensate = {s.outcome for s in spans if s.kind == Phase.COMPENSATE} | {Outcome.COMPENSATED}
    for outcome, colour in COMPENSATION_COLOURS.items():
        if outcome in compensate:
            label = "compensation" if outcome == Outcome.COMPENSATED else f"compensation {outcome.replace('_', ' ')}"
            handles.append(
                Line2D([], [], marker="<", color=colour, markeredgecolor="black", linestyle="none", label=label)
            )
    for status in dict.fromkeys(lane.status for lane in lanes):
        marker, colour = STATUS_STYLE.get(status, ("o", "#333333"))
        handles.append(Line2D([], [], marker=marker, color=colour, linestyle="none", label=f"saga {status}"))
    if violations:
        handles.append(Line2D([], [], color=VIOLATION_COLOUR, linestyle="--", label="invariant violated"))
    return handles
