"""The replay timeline: a run's trace as tidy tables, and as a figure with one lane per saga.

``timeline_spans`` and ``timeline_lanes`` (``tables``) turn trace records into tables and
nothing else (pure functions, testable with hand-made records; the reading itself is
``simlab.evidence.trace_tables``). ``timeline_figure`` (``figure``) draws them: one
horizontal lane per saga (children right under their parent, indented and linked), step
attempts as bars coloured by outcome, retry waits as hatched bars, compensations as markers
and bars in a band of their own, the saga's terminal status at the end of its lane
(``lanes``); when given, a fault panel on top (one row per family, its windows also shaded
across the panels below), invariant violations as dashed lines, and panels for lock holders
and projection lag (``panels``); colours and labels live in ``style``. It builds a
``matplotlib.figure.Figure`` without pyplot: no global state, nothing shown; the caller saves
or displays it (``replay`` does so for ``simlab replay --plot``).
"""

from simlab.evidence.trace_tables import COMPENSATION_RETRY_WAIT, RETRY_WAIT
from simlab.present.timeline.figure import timeline_figure
from simlab.present.timeline.replay import plot_path_problem, replay_figure, save_replay_figure
from simlab.present.timeline.style import ViolationLike
from simlab.present.timeline.tables import LANE_COLUMNS, SPAN_COLUMNS, timeline_lanes, timeline_spans

__all__ = [
    "COMPENSATION_RETRY_WAIT",
    "LANE_COLUMNS",
    "RETRY_WAIT",
    "SPAN_COLUMNS",
    "ViolationLike",
    "plot_path_problem",
    "replay_figure",
    "save_replay_figure",
    "timeline_figure",
    "timeline_lanes",
    "timeline_spans",
]
