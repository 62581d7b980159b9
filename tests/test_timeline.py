"""The replay timeline: spans derived from a trace, the figure drawn from them, and `simlab replay --plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sagas.engine.trace import TraceRecord
from simlab.batch.runner import RunResult, run_once, run_seed
from simlab.cli import main
from simlab.present.timeline import SPAN_COLUMNS, timeline_figure, timeline_lanes, timeline_spans
from simlab.scenario import load_scenario
from tests.text_layout import text_problems


def none(value: Any) -> Any:
    """A table's missing value (NaN, NA) as None, so that rows compare with plain tuples."""
    return None if pd.isna(value) else value


A, B, C, D = "aaaaaaaa-0001", "bbbbbbbb-0002", "cccccccc-0003", "dddddddd-0004"


def rec(
    t: float,
    saga_id: str,
    phase: str,
    outcome: str,
    step: str | None = None,
    attempt: int | None = None,
    *,
    error_type: str | None = None,
    retry_delay: float | None = None,
    detail: str | None = None,
) -> TraceRecord:
    saga_type, parent = {A: ("ParentSaga", None), B: ("ChildSaga", A), C: ("LoneSaga", None), D: ("LateSaga", None)}[
        saga_id
    ]
    return TraceRecord(t, saga_id, saga_type, parent, step, attempt, phase, outcome, error_type, retry_delay, detail)


# A parent with a retried step and a child that times out and compensates (its first compensation fails and
# is retried); a saga still running when the trace ends; one whose retry wait is cut short by its deadline.
# Times are exact binary fractions, so spans compare exactly.
TRACE = [
    rec(0.0, A, "saga", "started"),
    rec(0.0, A, "execute", "started", "step1", 1),
    rec(1.0, A, "execute", "failed", "step1", 1, error_type="BrokerUnavailable"),
    rec(1.0, A, "retry", "scheduled", "step1", 1, retry_delay=0.5),
    rec(1.5, A, "execute", "started", "step1", 2),
    rec(2.0, A, "execute", "completed", "step1", 2),
    rec(2.0, A, "execute", "started", "step2", 1),
    rec(2.5, B, "saga", "started"),
    rec(2.5, B, "execute", "started", "b1", 1),
    rec(2.75, B, "execute", "completed", "b1", 1),
    rec(2.75, B, "execute", "started", "b2", 1),
    rec(3.0, B, "execute", "timed_out", "b2", 1, error_type="DeadlineExceeded"),
    rec(3.0, B, "saga", "step_failed", "b2", error_type="DeadlineExceeded"),
    rec(3.0, B, "saga", "compensating"),
    rec(3.0, B, "compensate", "started", "b1", 1),
    rec(3.125, B, "compensate", "failed", "b1", 1, error_type="ValueError"),
    rec(3.125, B, "retry", "scheduled", "b1", 1, retry_delay=0.125, detail="compensation"),
    rec(3.25, B, "compensate", "started", "b1", 2),
    rec(3.5, B, "compensate", "compensated", "b1", 2),
    rec(3.5, B, "saga", "compensated", detail="compensated"),
    rec(4.0, A, "execute", "completed", "step2", 1),
    rec(4.0, A, "saga", "completed"),
    rec(4.5, C, "saga", "started"),
    rec(4.5, C, "execute", "started", "c", 1),
    rec(4.75, D, "saga", "started"),
    rec(4.75, D, "execute", "started", "d", 1),
    rec(5.0, D, "execute", "failed", "d", 1, error_type="RateLimited"),
    rec(5.0, D, "retry", "scheduled", "d", 1, retry_delay=10.0),
    rec(6.0, D, "saga", "deadline_exceeded", "d"),
]

EXPECTED_SPANS = [
    # saga, lane, step, attempt, kind, start, end, outcome, error_type
    (A, 0, "step1", 1, "execute", 0.0, 1.0, "failed", "BrokerUnavailable"),
    (A, 0, "step1", 1, "retry_wait", 1.0, 1.5, "scheduled", None),
    (A, 0, "step1", 2, "execute", 1.5, 2.0, "completed", None),
    (A, 0, "step2", 1, "execute", 2.0, 4.0, "completed", None),
    (B, 1, "b1", 1, "execute", 2.5, 2.75, "completed", None),
    (B, 1, "b2", 1, "execute", 2.75, 3.0, "timed_out", "DeadlineExceeded"),
    (B, 1, "b1", 1, "compensate", 3.0, 3.125, "failed", "ValueError"),
    (B, 1, "b1", 1, "compensation_retry_wait", 3.125, 3.25, "scheduled", None),
    (B, 1, "b1", 2, "compensate", 3.25, 3.5, "compensated", None),
    (C, 2, "c", 1, "execute", 4.5, 6.0, "running", None),
    (D, 3, "d", 1, "execute", 4.75, 5.0, "failed", "RateLimited"),
    (D, 3, "d", 1, "retry_wait", 5.0, 6.0, "interrupted", None),
]


def test_spans_of_a_hand_made_trace_are_exact() -> None:
    spans = timeline_spans(TRACE)
    assert tuple(spans.columns) == SPAN_COLUMNS
    got = [
        (r.saga_id, r.lane, r.step, r.attempt, r.kind, r.start, r.end, r.outcome, none(r.error_type))
        for r in spans.itertuples()
    ]
    assert got == EXPECTED_SPANS
    assert list(spans["saga_type"].unique()) == ["ParentSaga", "ChildSaga", "LoneSaga", "LateSaga"]
    assert spans.loc[spans["saga_id"] == B, "parent_id"].eq(A).all()


def test_lanes_put_children_under_their_parent_and_carry_terminal_statuses() -> None:
    lanes = timeline_lanes(TRACE)
    assert list(lanes["saga_id"]) == [A, B, C, D]
    assert list(lanes["depth"]) == [0, 1, 0, 0]
    assert list(lanes["status"]) == ["completed", "compensated", "running", "running"]
    assert list(lanes["start"]) == [0.0, 2.5, 4.5, 4.75]
    assert list(lanes["end"]) == [4.0, 3.5, 4.5, 6.0]


def test_later_records_amend_an_attempt_and_a_resumed_saga_interrupts_what_was_in_flight() -> None:
    trace = [
        rec(0.0, A, "execute", "started", "s", 1),
        rec(1.0, A, "execute", "completed", "s", 1),
        rec(1.0, A, "execute", "invalid_result", "s", None, error_type="TypeError"),
        rec(1.0, A, "compensate", "skipped", "t", None, detail="no compensation defined"),
        rec(1.0, A, "compensate", "started", "s", 1),
        rec(2.0, A, "compensate", "failed", "s", 1, error_type="OSError"),
        rec(2.0, A, "compensate", "gave_up", "s", 1, error_type="OSError"),
        rec(3.0, C, "execute", "started", "c", 1),
        rec(5.0, C, "saga", "resumed", detail="running"),
        rec(5.0, C, "execute", "started", "c", 1),
        rec(6.0, C, "execute", "completed", "c", 1),
    ]
    got = [(r.step, r.kind, r.start, r.end, r.outcome, none(r.error_type)) for r in timeline_spans(trace).itertuples()]
    assert got == [
        ("s", "execute", 0.0, 1.0, "invalid_result", "TypeError"),
        ("t", "compensate", 1.0, 1.0, "skipped", None),
        ("s", "compensate", 1.0, 2.0, "gave_up", "OSError"),
        ("c", "execute", 3.0, 5.0, "interrupted", None),
        ("c", "execute", 5.0, 6.0, "completed", None),
    ]


def test_an_empty_trace_gives_empty_tables_and_still_a_figure() -> None:
    assert timeline_spans([]).empty and timeline_lanes([]).empty
    assert isinstance(timeline_figure([]), Figure)


def _bars(ax: Axes, kind: str) -> int:
    return sum(len(c.get_paths()) for c in ax.collections if c.get_gid() == f"timeline:{kind}")


def test_figure_of_a_hand_made_trace_draws_every_panel() -> None:
    fig = timeline_figure(
        TRACE,
        lags=[("accounts", 0.5, 0.75), ("accounts", 2.0, 4.5), ("connections", 3.0, 3.25)],
        fault_windows=[("broker_errors", 0.5, 1.25), ("redis_outage", 2.0, 2.5)],
        lock_holders=[("lock:a", A, 0.0, 3.0), ("lock:a", B, 2.5, 3.5), ("lock:b", C, 4.5, 6.0)],
        title="hand-made",
    )
    faults, main, locks, lags = fig.axes
    assert [t.get_text() for t in faults.get_yticklabels()] == ["broker_errors", "redis_outage"]
    assert _bars(faults, "fault") == 2
    assert [t.get_text() for t in main.get_yticklabels()] == [
        "Parent aaaaaaaa",
        "  └ Child bbbbbbbb",
        "Lone cccccccc",
        "Late dddddddd",
    ]
    assert _bars(main, "execute") == 7
    assert _bars(main, "retry_wait") == 3
    assert _bars(main, "compensate") == 2
    assert [t.get_text() for t in locks.get_yticklabels()] == ["lock:a", "lock:b"]
    assert lags.get_ylabel() == "projection lag (s)"
    assert fig.get_suptitle() == "hand-made"
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"attempt completed", "attempt timed out", "retry wait", "compensation", "compensation failed"} <= legend
    assert {"saga completed", "saga compensated", "saga running"} <= legend


@pytest.fixture(scope="module")
def data_loss_run() -> tuple[str, RunResult]:
    scenario = load_scenario("reconnect_race")
    seed = run_seed(1, 1)  # run 1 of reconnect_race (root seed 1) loses data, with retries
    return scenario.name, run_once(scenario, seed, keep_trace=True)


def test_figure_of_a_data_loss_replay_has_a_lane_per_saga_and_a_bar_per_attempt(
    data_loss_run: tuple[str, RunResult], tmp_path: Path
) -> None:
    name, result = data_loss_run
    assert any(v.invariant == "no_data_loss" for v in result.violations)  # the run this test is about
    fig = timeline_figure(result.trace, lags=result.lags, violations=result.violations, title=name)
    main = fig.axes[0]
    labels = [t.get_text() for t in main.get_yticklabels()]
    assert len(labels) == len(result.sagas) == len({r.saga_id for r in result.trace})
    assert {label.split()[-1] for label in labels} == {row.saga_id[:8] for row in result.sagas}
    attempts = sum(1 for r in result.trace if r.phase == "execute" and r.outcome == "started")
    retries = sum(1 for r in result.trace if r.phase == "retry")
    assert _bars(main, "execute") == attempts > 0
    assert _bars(main, "retry_wait") == retries > 0
    involved = {sid[:8] for v in result.violations for sid in v.saga_ids}
    red = {t.get_text().split()[-1] for t in main.get_yticklabels() if t.get_color() != "black"}
    assert red == involved
    assert len(fig.axes) == 2 and result.lags  # the projection-lag panel

    path = tmp_path / "timeline.png"
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 0
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 10  # not a blank canvas


def test_replay_plot_writes_the_figure_and_prints_the_timeline(
    data_loss_run: tuple[str, RunResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "replay.png"
    seed = str(run_seed(1, 1))
    assert main(["replay", "reconnect_race", "--seed", seed, "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    assert "VIOLATION no_data_loss" in out
    assert f"trace sha256: {data_loss_run[1].trace_hash}" in out
    assert out.rstrip().endswith(f"timeline figure: {path}")
    image = matplotlib.image.imread(path)
    assert image.size > 0 and float(image.std()) > 0


@pytest.mark.parametrize(
    ("plot", "message"),
    [
        ("{tmp}/missing/dir/replay.png", "does not exist"),
        ("{tmp}", "is a directory"),
        ("{tmp}/replay.nope", "unknown image format 'nope'"),
    ],
)
def test_a_bad_plot_path_gets_one_line_and_exit_2_before_running(
    plot: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = plot.format(tmp=tmp_path)
    assert main(["replay", "reconnect_race", "--seed", "1", "--plot", target]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab replay: --plot ") and message in lines[0]
    assert not Path(tmp_path, "missing").exists()


def test_a_violation_found_long_after_the_sagas_is_drawn_after_a_break_in_the_time_axis() -> None:
    from simlab.evidence.checks.violation import Violation
    from simlab.present.timeline.axis import GAP, LATE, TimeAxis

    late = [Violation("no_orphans", 600.0, (A,), "found at the horizon"), Violation("no_orphans", 600.0, (C,), "x")]
    fig = timeline_figure(TRACE, violations=late)
    main = fig.axes[0]
    low, high = main.get_xlim()
    assert low < 0 < 6.0 < 600.0 < high  # the activity (to 6 s) and the violation (600 s) are both on the chart
    assert 600.0 in main.get_xticks()
    assert [t.get_text() for t in main.texts if "no_orphans" in t.get_text()] == ["no_orphans (x2)"]
    assert text_problems(fig) == []
    # The activity keeps its scale; the break and the late segment take fixed shares of its width.
    axis = TimeAxis.of((low, 7.0), [600.0])
    u = axis.forward(np.array([low, 7.0, 600.0, axis.stop]))
    width = 7.0 - low
    assert u[:2].tolist() == [low, 7.0]
    assert u[3] - u[1] == pytest.approx((GAP + LATE) * width)
    assert axis.inverse(u).tolist() == pytest.approx([low, 7.0, 600.0, axis.stop])
    # Zoomed in, the violation is named in the corner, with its time.
    zoomed = timeline_figure(TRACE, violations=late, xlim=(0.0, 7.0))
    assert zoomed.axes[0].get_xlim() == (0.0, 7.0)
    assert [t.get_text() for t in zoomed.axes[0].texts if "later" in t.get_text()] == [
        "later: no_orphans (x2) at t=600 s →"
    ]
