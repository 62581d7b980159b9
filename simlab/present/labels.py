"""Text on figures that stays readable: labels placed where they collide with nothing, ink that contrasts.

``place_labels`` annotates points of an axes one by one, each at the first of a ring of
offsets (growing outwards) where its text overlaps no label placed before it, no marker
and nothing outside the axes; a far label gets a thin leader line to its point.
``ink_for`` picks black or white text for a coloured background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

RING = ((7, 5), (7, -5), (-7, 5), (-7, -5), (0, 9), (0, -9), (9, 0), (-9, 0))
"""Offsets (points) around a point, tried in this order; then the same ring further out."""
REACH = (1.0, 2.0, 3.2, 4.6)
MARKER_PX = 7.0  # half the side of the box kept clear around each marker


@dataclass(frozen=True)
class PointLabel:
    """A text to put next to the point ``xy`` (data coordinates); ``required`` ones are placed even when crowded."""

    xy: tuple[float, float]
    text: str
    required: bool = True
    style: dict[str, Any] = field(default_factory=dict)


def ink_for(rgba: Any) -> str:
    """Black or white, whichever contrasts more with the background colour ``rgba`` (RGB[A] in 0..1; WCAG luminance)."""

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(float(c)) for c in rgba[:3])
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    # Contrast with white is 1.05 / (L + 0.05), with black (L + 0.05) / 0.05: they are equal at L = 0.179.
    return "white" if luminance < 0.179 else "black"


def renderer_of(fig: Figure) -> RendererBase:
    """An Agg renderer for ``fig`` with its layout settled (the figure keeps the Agg canvas it is given)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # runs the layout engine, so the axes are where they will be drawn
    return canvas.get_renderer()


def text_box(text: Text, renderer: RendererBase) -> Bbox:
    """The box of a text alone (an annotation's own extent also covers its leader line)."""
    if isinstance(text, Annotation):
        text.update_positions(renderer)
    return Text.get_window_extent(text, renderer)


def place_labels(
    ax: Axes,
    labels: Sequence[PointLabel],
    *,
    markers: Sequence[tuple[float, float]] = (),
    bars: Sequence[tuple[float, float, float]] = (),
) -> int:
    """Annotate ``ax`` with ``labels`` where no two collide, none covers a marker or an interval and none leaves
    the axes (``markers`` are points, ``bars`` vertical intervals ``(x, low, high)``, both in data coordinates).

    Labels are placed in order, so the first ones get the places nearest their points. A label
    that is not ``required`` is left out when every place collides; a required one takes the
    place with the least collision. Limits must be set before: the placement is in pixels.
    Returns how many labels were left out. The labels are kept out of the layout, so placing
    them does not move the axes they were placed in.
    """
    fig = ax.get_figure()
    assert isinstance(fig, Figure)
    renderer = renderer_of(fig)
    frame = ax.get_window_extent(renderer)
    to_px = ax.transData.transform
    taken = [_around(to_px(xy)) for xy in markers] + [_bar(to_px((x, low)), to_px((x, high))) for x, low, high in bars]
    left_out = 0
    for label in labels:
        best: tuple[float, Annotation] | None = None
        for reach in REACH:
            for dx, dy in RING:
                candidate = _annotate(ax, label, dx * reach, dy * reach, far=reach > 1.0)
                box = text_box(candidate, renderer)
                cost = _outside(box, frame) * 10 + sum(_area(box, other) for other in taken)
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, candidate)
                else:
                    candidate.remove()
                if cost == 0:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None
        cost, chosen = best
        if cost > 0 and not label.required:
            chosen.remove()
            left_out += 1
            continue
        taken.append(text_box(chosen, renderer))
    return left_out


def _annotate(ax: Axes, label: PointLabel, dx: float, dy: float, *, far: bool) -> Annotation:
    style: dict[str, Any] = {"fontsize": "x-small", **label.style}
    if far:
        style["arrowprops"] = {"arrowstyle": "-", "color": "#90a4ae", "lw": 0.6, "shrinkA": 1, "shrinkB": 4}
    annotation = ax.annotate(
        label.text,
        label.xy,
        xytext=(dx, dy),
        textcoords="offset points",
        ha="left" if dx > 0 else "right" if dx < 0 else "center",
        va="bottom" if dy > 0 else "top" if dy < 0 else "center",
        annotation_clip=False,
        **style,
    )
    annotation.set_in_layout(False)
    return annotation


def _around(xy: Any) -> Bbox:
    x, y = float(xy[0]), float(xy[1])
    return Bbox([[x - MARKER_PX, y - MARKER_PX], [x + MARKER_PX, y + MARKER_PX]])


def _bar(low: Any, high: Any) -> Bbox:
    x = float(low[0])
    return Bbox([[x - MARKER_PX / 2, float(low[1])], [x + MARKER_PX / 2, float(high[1])]])


def _area(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def _outside(box: Bbox, frame: Bbox) -> float:
    """How far (pixels) ``box`` reaches beyond ``frame``, summed over its four sides."""
    return (
        max(0.0, frame.x0 - box.x0)
        + max(0.0, box.x1 - frame.x1)
        + max(0.0, frame.y0 - box.y0)
        + max(0.0, box.y1 - frame.y1)
    )


def spread(labels: Sequence[Annotation], shifts: Sequence[tuple[float, float]]) -> int:
    """Move each label (in order) to the first offset of ``shifts`` (points) where it overlaps none kept before it;
    hide it if there is none. Call it once the axes' limits are set. Returns how many were hidden."""
    if not labels:
        return 0
    fig = labels[0].get_figure()
    assert isinstance(fig, Figure)
    renderer = renderer_of(fig)
    kept: list[Bbox] = []
    hidden = 0
    for label in labels:
        for shift in shifts:
            label.xyann = shift
            box = text_box(label, renderer)
            if not any(_area(box, other) > 0 for other in kept):
                kept.append(box)
                break
        else:
            label.set_visible(False)
            hidden += 1
    return hidden
