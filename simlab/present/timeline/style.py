"""How the timeline looks: its colours and markers, lane labels and status texts, and text widths without a renderer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

from sagas.engine.trace import Outcome, Phase
from simlab.evidence.trace_tables import Lane, Span


class ViolationLike(Protocol):
    """What the figure needs of an invariant violation (``simlab.evidence.invariants.Violation`` fits)."""

    @property
    def invariant(self) -> str: ...

    @property
    def t(self) -> float: ...

    @property
    def saga_ids(self) -> tuple[str, ...]: ...


OUTCOME_COLOURS = {
    "completed": "#2ca02c",
    "failed": "#d62728",
    "timed_out": "#ff7f0e",
    "cancelled": "#7f7f7f",
    "aborted": "#9467bd",
    "invalid_result": "#8c564b",
    "interrupted": "#bcbd22",
    "running": "#9ecae1",
}


COMPENSATION_COLOURS = {
    "compensated": "#1f77b4",
    "failed": "#d62728",
    "timed_out": "#ff7f0e",
    "gave_up": "#67000d",
    "skipped": "#c6dbef",
    "interrupted": "#bcbd22",
    "running": "#9ecae1",
}


STATUS_STYLE = {  # terminal status: marker and colour at the lane's end
    "completed": ("o", "#2ca02c"),
    "compensated": ("s", "#1f77b4"),
    "compensation_failed": ("X", "#67000d"),
    "aborted": ("D", "#9467bd"),
    "timed_out": ("X", "#ff7f0e"),
    "running": (">", "#7f7f7f"),
}


FAULT_COLOURS = ("#ff9896", "#c5b0d5", "#ffbb78", "#98df8a", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")


LAG_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


VIOLATION_COLOUR = "#b2182b"


WIDTH_IN = 13.0  # figure width in inches


ANNOTATED_LANES = 40  # more lanes than this leave no room to name failing steps


def short(saga_id: str) -> str:
    return saga_id[:8]


def lane_label(lane: Lane, connection: str | None = None) -> str:
    """``BrokerConnection 7ed74acb``, and ``conn 9bc9ff06`` after it for a saga about one broker connection
    (as the text replay names them), indented under its parent for a child saga."""
    indent = "    " * (lane.depth - 1) + "  └ " if lane.depth else ""
    about = f" conn {short(connection)}" if connection else ""
    return f"{indent}{lane.saga_type.removesuffix('Saga')} {short(lane.saga_id)}{about}"


def status_text(lane: Lane, compensations: list[str]) -> str:
    parts = [lane.detail] if lane.detail and lane.detail != lane.status else []
    if compensations:
        n = len(compensations)
        failed = sum(outcome not in (Outcome.COMPENSATED, Outcome.SKIPPED) for outcome in compensations)
        parts.append(f"{failed} of {n} compensations failed" if failed else f"{n} step{'s' if n > 1 else ''} undone")
    return lane.status + (f" ({'; '.join(parts)})" if parts else "")


def compensations_by_lane(spans: Iterable[Span]) -> dict[int, list[str]]:
    """Per lane, the outcome of each compensation attempt."""
    outcomes: dict[int, list[str]] = {}
    for span in spans:
        if span.kind == Phase.COMPENSATE:
            outcomes.setdefault(span.lane, []).append(span.outcome)
    return outcomes


def text_width(text: str, font: FontProperties) -> float:
    """Width of ``text`` in points, without a renderer."""
    width: float = TextToPath().get_text_width_height_descent(text, font, ismath=False)[0]
    return width
