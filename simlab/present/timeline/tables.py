"""The timeline's tables: a run's trace as one row per saga (its lane) and one per attempt or retry wait (its spans).

Pure functions of the trace records, read through ``simlab.evidence.trace_tables``; the
figure draws the same lanes and spans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import pandas as pd

from sagas.engine.trace import TraceRecord
from simlab.evidence.lock_ledger import LOCK_PREFIX
from simlab.evidence.trace_tables import saga_lanes, trace_spans
from simlab.present.timeline.style import ViolationLike

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


_CONNECTION = re.compile(r"\bconnection ([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})\b")


def run_connections(result: Any) -> dict[str, str]:
    """Each saga's broker connection in a replayed run (``RunResult``): as the run recorded it from the saga's
    trigger event (``RunResult.connections``), else as its locks and violations tell (``saga_connections``)."""
    told = saga_connections(getattr(result, "lock_holds", ()), getattr(result, "violations", ()))
    return {**told, **getattr(result, "connections", {})}


def saga_connections(
    lock_holds: Iterable[tuple[str, str, float, float]], violations: Iterable[ViolationLike] = ()
) -> dict[str, str]:
    """The broker connection each saga worked on, as far as a run's result tells: saga id -> connection id.

    A saga that held a connection's lock worked on that connection (``lock_holds`` are ``(key, owner,
    start, end)``; the owner is the saga's id). A violation that names one connection (``connection
    <id>`` in its explanation) links the sagas it names to it too, which is what lets a reader find,
    in a replay, the sagas of the connection a violation is about. Sagas neither tells of are absent.
    """
    found: dict[str, str] = {}
    for key, owner, _, _ in lock_holds:
        if key.startswith(LOCK_PREFIX):
            found.setdefault(owner, key.removeprefix(LOCK_PREFIX))
    for violation in violations:
        named = set(_CONNECTION.findall(getattr(violation, "explanation", "")))
        if len(named) == 1:
            connection = named.pop()
            for saga_id in violation.saga_ids:
                found.setdefault(saga_id, connection)
    return found
