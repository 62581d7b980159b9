"""The timeline's other panels: fault windows on top, lock holders and projection lag below, violations across all,
and the legend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation

from sagas.engine.trace import Outcome, Phase
from simlab.evidence.lock_ledger import LOCK_PREFIX
from simlab.evidence.trace_tables import Lane, Span
from simlab.present.labels import renderer_of, text_box
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


def mark_violations(axes: Sequence[Axes], violations: Sequence[ViolationLike], stop: float) -> None:
    """A dashed line per violation across every panel, one label per cluster of close ones above the lanes.

    The time axis (``axis.TimeAxis``) must be set: it reaches every violation, unless the caller zoomed
    in (``xlim``); violations after ``stop``, the axis's end, are then listed in the top right corner.
    Labels that would collide move up a row; one that would leave the figure is aligned inwards.
    """
    top = axes[0]
    clusters: list[tuple[float, float, list[str]]] = []  # (first t, its axes fraction, names)
    later: dict[tuple[str, float], int] = {}
    for violation in sorted(violations, key=lambda v: v.t):
        if violation.t > stop:
            later[(violation.invariant, violation.t)] = later.get((violation.invariant, violation.t), 0) + 1
            continue
        for ax in axes:
            ax.axvline(violation.t, color=VIOLATION_COLOUR, linestyle="--", linewidth=1.0, zorder=4)
        where = float(top.transLimits.transform(top.transScale.transform((violation.t, 0.0)))[0])
        if clusters and where - clusters[-1][1] < 0.03:
            clusters[-1][2].append(violation.invariant)
        else:
            clusters.append((violation.t, where, [violation.invariant]))
    style: dict[str, Any] = {"fontsize": 8, "fontweight": "bold", "color": VIOLATION_COLOUR, "va": "bottom"}
    labels = []
    for t, _, names in clusters:
        counts = {name: names.count(name) for name in dict.fromkeys(names)}
        text = ", ".join(name if n == 1 else f"{name} (x{n})" for name, n in counts.items())
        labels.append(top.annotate(text, xy=(t, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                                   textcoords="offset points", ha="center", **style))  # fmt: skip
    if later:
        text = "; ".join(f"{name}{f' (x{n})' if n > 1 else ''} at t={t:g} s" for (name, t), n in later.items())
        labels.append(top.annotate(f"later: {text} →", xy=(1.0, 1.0), xycoords="axes fraction", xytext=(0, 3),
                                   textcoords="offset points", ha="right", **style))  # fmt: skip
    if len(labels) > 1 or clusters:
        _unclash(labels)


def _unclash(labels: list[Annotation]) -> None:
    """Align a label that leaves the figure inwards; move one that overlaps another up a row (at most 6)."""
    fig = labels[0].get_figure()
    assert isinstance(fig, Figure)
    renderer = renderer_of(fig)
    width = fig.bbox.width
    placed: list[Any] = []
    for label in labels:
        box = text_box(label, renderer)
        if box.x1 > width - 2:
            label.set_horizontalalignment("right")
        elif box.x0 < 2:
            label.set_horizontalalignment("left")
        for row in range(6):
            label.xyann = (0, 3 + 11 * row)
            box = text_box(label, renderer)
            if not any(box.overlaps(other) for other in placed):
                break
        placed.append(box)


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


def draw_locks(
    ax: Axes, keys: list[str], holders: Sequence[tuple[str, str, float, float]], span_min: float
) -> list[Annotation]:
    """One row per lock key, a bar per hold named by its holder's short id, overlapping holds outlined in red;
    returns the holders' labels (``labels.spread`` them once the time axis is set)."""
    names: list[Annotation] = []
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
            name = ax.annotate(
                short(owner),
                xy=(start, y + offset),
                xytext=(2, 0),
                textcoords="offset points",
                fontsize=6,
                va="center",
                zorder=3,
            )
            names.append(name)
        _outline_overlaps(ax, y, holds)
    ax.set_ylim(len(keys) - 0.5, -0.5)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([lock_label(key) for key in keys], fontsize=7, family="monospace")
    ax.set_ylabel("locks", fontsize=8)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    return sorted(names, key=lambda name: name.xy[0])


def _outline_overlaps(ax: Axes, y: int, holds: list[tuple[str, float, float]]) -> None:
    """Outline in red, on row ``y``, every stretch where a hold overlaps an earlier one (``holds`` by start)."""
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


def lock_label(key: str) -> str:
    """A lock's row label: ``connection 45dbecb7`` for a connection's lock (the id a violation names, as short
    as the sagas' ids), otherwise the key, its start cut if long."""
    if key.startswith(LOCK_PREFIX):
        return f"connection {short(key.removeprefix(LOCK_PREFIX))}"
    return key if len(key) <= 32 else "…" + key[-31:]


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
    involved = {saga_id for v in violations for saga_id in v.saga_ids}
    if any(lane.saga_id in involved for lane in lanes):  # what the red lane labels mean
        handles.append(Line2D([], [], marker=r"$\mathbf{Ab}$", markersize=11, color=VIOLATION_COLOUR, linestyle="none",
                              label="red label: saga named in a violation"))  # fmt: skip
    return handles
