"""simlab.present.deadlines and tuning_plots: deadlines from the scenario, cut-off counts from the table, figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sagas.trading.wiring import saga_steps
from simlab.batch.batches import Results, load_results, run_batch_to
from simlab.batch.sweep import with_settings
from simlab.present import tuning_plots
from simlab.present.deadlines import deadline_cuts, step_deadlines
from simlab.scenario import load_scenario
from simlab.scenario.model import Scenario

DISCOVER = "sagas.steps.BrokerConnectionSaga.discover_accounts.timeout_s"


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Results]:
    """8 runs of broker_connection with a short discovery deadline (0.5 s, on a ~300 ms broker with spikes)."""
    scenario = with_settings(load_scenario("broker_connection"), {DISCOVER: 0.5})
    out: Path = tmp_path_factory.mktemp("deadlines") / "batch"
    run_batch_to(scenario, 8, 10, out, workers=1)
    return scenario, load_results(out)


def _cut_offs_in_the_table(results: Results) -> dict[tuple[str, str], tuple[int, int]]:
    steps = results.attempts[results.attempts["phase"] == "execute"]
    return {
        (saga_type, step): (int((group["outcome"] == "timed_out").sum()), len(group))
        for (saga_type, step), group in steps.groupby(["saga_type", "step"])
    }


def test_a_step_s_deadline_is_the_scenario_s_override_else_the_step_s_own():
    deadlines = step_deadlines(with_settings(load_scenario("broker_connection"), {DISCOVER: 0.5}))
    by_step = deadlines.set_index(["saga_type", "step"])["deadline_s"]
    assert by_step[("BrokerConnectionSaga", "discover_accounts")] == 0.5
    for saga_type, steps in saga_steps().items():  # every other step keeps its definition's deadline
        for step in steps:
            if (saga_type, step.name) != ("BrokerConnectionSaga", "discover_accounts"):
                assert by_step[(saga_type, step.name)] == step.timeout_seconds
    # In definition order, one row per step.
    assert deadlines[deadlines["saga_type"] == "BrokerConnectionSaga"]["step"].tolist() == [
        s.name for s in saga_steps()["BrokerConnectionSaga"]
    ]


def test_the_cut_off_attempts_are_those_the_table_records_as_timed_out(batch):
    scenario, results = batch
    cuts = deadline_cuts(results, scenario)
    table = _cut_offs_in_the_table(results)
    assert {(r.saga_type, r.step): (r.cut_off, r.attempts) for r in cuts.itertuples()} == table
    assert cuts.set_index("step").loc["discover_accounts", "cut_off"] > 0  # the short deadline did cut some
    assert cuts.set_index("step").loc["discover_accounts", "deadline_s"] == 0.5


def test_step_durations_draws_a_panel_per_saga_type_a_deadline_per_step_and_its_cut_off_count(batch):
    scenario, results = batch
    fig = tuning_plots.step_durations(results, scenario)
    cuts = deadline_cuts(results, scenario)
    table = _cut_offs_in_the_table(results)
    types = list(dict.fromkeys(cuts["saga_type"]))
    assert len(fig.axes) == len(types) == 1  # broker_connection starts connection sagas only
    for ax, saga_type in zip(fig.axes, types, strict=True):
        steps = cuts[cuts["saga_type"] == saga_type]
        assert ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == steps["step"].tolist()
        [markers] = [c for c in ax.collections if c.get_gid() == "deadlines"]
        assert [float(segment[0][1]) for segment in markers.get_segments()] == steps["deadline_s"].tolist()
        labels = [t.get_text() for t in ax.texts if t.get_gid() == "cut_off"]
        assert labels == [f"{table[(saga_type, s)][0]} of {table[(saga_type, s)][1]} cut off" for s in steps["step"]]


def _summary() -> pd.DataFrame:
    rows = [  # (timeout, profile): completed rate, calls per saga, p99
        (0.25, "real", 0.40, 4.0, 8.0),
        (1.0, "real", 0.70, 2.5, 9.0),
        (5.0, "real", 0.80, 1.5, 12.0),
    ]
    frame = pd.DataFrame(
        [
            {"sagas.steps.S.s.timeout_s": t, "brokers.alpaca.profile": p, "completed_rate": c,
             "completed_low": c - 0.1, "completed_high": c + 0.1, "calls_per_saga": k, "p99_s": q,
             "p99_low": q - 1, "p99_high": q + 1, "violation_rate": 0.0}
            for t, p, c, k, q in rows
        ]
    )  # fmt: skip
    return frame.set_index(["sagas.steps.S.s.timeout_s", "brokers.alpaca.profile"])


def test_setting_labels_name_only_what_varies_by_its_short_name():
    assert tuning_plots.setting_labels(_summary().index) == ["timeout_s=0.25", "timeout_s=1.0", "timeout_s=5.0"]
    one = _summary().iloc[:1]
    assert tuning_plots.setting_labels(one.index) == ["timeout_s=0.25, profile=real"]


def test_retry_cost_puts_every_setting_at_its_calls_per_saga_and_rate_and_labels_it():
    fig = tuning_plots.retry_cost(_summary())
    [ax] = fig.axes
    [points] = [line for line in ax.lines if line.get_marker() == "o"]
    assert points.get_xdata().tolist() == [4.0, 2.5, 1.5]
    assert points.get_ydata().tolist() == [0.40, 0.70, 0.80]
    assert [t.get_text() for t in ax.texts if t.get_gid() == "setting"] == ["timeout_s=0.25", "timeout_s=1.0",
                                                                            "timeout_s=5.0"]  # fmt: skip
    assert ax.get_xlabel() == "broker calls per saga"


def test_pareto_labelled_labels_every_point_not_only_the_front():
    summary = _summary()
    summary.loc[(5.0, "real"), "completed_rate"] = 0.5  # slower and worse than 1.0: off the front
    fig = tuning_plots.pareto_labelled(summary, rate="completed_rate")
    [ax] = fig.axes
    texts = [(t.get_text(), t.xy) for t in ax.texts]
    assert texts == [("timeout_s=0.25", (8.0, 0.4)), ("timeout_s=1.0", (9.0, 0.7)), ("timeout_s=5.0", (12.0, 0.5))]


def test_with_several_settings_varying_points_carry_their_values_and_the_title_names_the_settings():
    summary = _summary().reset_index()
    summary["brokers.alpaca.profile"] = ["real", "virtual", "real"]
    fig = tuning_plots.retry_cost(summary.set_index(["sagas.steps.S.s.timeout_s", "brokers.alpaca.profile"]))
    [ax] = fig.axes
    assert sorted(t.get_text() for t in ax.texts) == ["0.25, real", "1.0, virtual", "5.0, real"]
    assert ax.get_title().endswith("points labelled (timeout_s, profile)")
