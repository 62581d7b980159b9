"""Whether a figure's texts are readable: no two drawn text boxes overlap, and none runs off the figure.

``drawn_texts`` draws a figure on an Agg canvas and records every text the renderer actually
drew (titles, tick labels, axis labels, annotations, legend entries): a tick label matplotlib
keeps for a tick outside the view is never drawn, so it is never counted. Each text's box is
its window extent; a rotated text's box is the rotated rectangle itself, not the axis-aligned
box around it, so neighbouring tilted tick labels do not count as overlapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class TextBox:
    """One drawn text: its string, the corners of its (possibly rotated) box in pixels."""

    text: str
    corners: np.ndarray  # 4 x 2, in order around the rectangle

    def __str__(self) -> str:
        low, high = self.corners.min(axis=0), self.corners.max(axis=0)
        return f"{self.text!r} at x {low[0]:.0f}..{high[0]:.0f}, y {low[1]:.0f}..{high[1]:.0f}"


def drawn_texts(fig: Figure, dpi: float = 100) -> tuple[list[TextBox], tuple[float, float]]:
    """Every non-empty text drawn when ``fig`` is rendered at ``dpi``, and the figure's size in pixels."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # the layout settles (constrained layout runs on draw)
    renderer = canvas.get_renderer()
    drawn: dict[int, Text] = {}
    original = renderer.draw_text

    def record(gc: Any, x: float, y: float, s: str, prop: Any, angle: float, ismath: Any = False, mtext: Any = None):
        if mtext is not None and s.strip():
            drawn[id(mtext)] = mtext
        return original(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = record  # type: ignore[method-assign]
    try:
        fig.draw(renderer)
    finally:
        del renderer.draw_text
    boxes = [_box(text, renderer) for text in drawn.values()]
    return boxes, (float(fig.bbox.width), float(fig.bbox.height))


def _box(text: Text, renderer: Any) -> TextBox:
    extent = Text.get_window_extent(text, renderer)  # an annotation's own extent also covers its arrow
    angle = math.radians(text.get_rotation() % 180)
    c, s = abs(math.cos(angle)), abs(math.sin(angle))
    cx, cy = (extent.x0 + extent.x1) / 2, (extent.y0 + extent.y1) / 2
    if abs(c - s) < 1e-3:  # 45 degrees: the box cannot be recovered; keep the axis-aligned one
        w, h, angle = extent.width, extent.height, 0.0
    else:  # the axis-aligned extent of a w x h box turned by angle is (w c + h s) x (w s + h c)
        det = c * c - s * s
        w = (c * extent.width - s * extent.height) / det
        h = (c * extent.height - s * extent.width) / det
    half = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return TextBox(text.get_text(), half @ turn.T + [cx, cy])


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """How deep two convex quadrilaterals overlap in pixels (separating axis test; 0 if they do not)."""
    depth = math.inf
    for corners in (a, b):
        for i in range(4):
            edge = corners[(i + 1) % 4] - corners[i]
            norm = math.hypot(*edge)
            if norm == 0:
                continue
            axis = np.array([-edge[1], edge[0]]) / norm
            pa, pb = a @ axis, b @ axis
            depth = min(depth, min(pa.max(), pb.max()) - max(pa.min(), pb.min()))
            if depth <= 0:
                return 0.0
    return depth


def text_problems(fig: Figure, dpi: float = 100) -> list[str]:
    """Every pair of drawn texts that overlap by more than a pixel, and every text reaching outside the figure."""
    boxes, (width, height) = drawn_texts(fig, dpi)
    problems = []
    for box in boxes:
        low, high = box.corners.min(axis=0), box.corners.max(axis=0)
        if (
            low[0] < -TOLERANCE_PX
            or low[1] < -TOLERANCE_PX
            or high[0] > width + TOLERANCE_PX
            or (high[1] > height + TOLERANCE_PX)
        ):
            problems.append(f"outside the {width:.0f}x{height:.0f} figure: {box}")
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            if _overlap(first.corners, second.corners) > TOLERANCE_PX:
                problems.append(f"overlap: {first} and {second}")
    return problems


def assert_texts_readable(fig: Figure, dpi: float = 100) -> None:
    """Fail, naming each problem, if two drawn texts of ``fig`` overlap or one runs outside it."""
    problems = text_problems(fig, dpi)
    assert not problems, f"{len(problems)} text problem(s):\n" + "\n".join(problems)
