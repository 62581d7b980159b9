"""simlab.present.analysis: intervals, grouping by sweep point, load, compensations, the Pareto front and the choice."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from simlab.batch.batches import Results
from simlab.batch.sweep import Grid, run_sweep
from simlab.present import analysis
from simlab.present.choice import display_names, grid_edge
from simlab.present.tables import interval
from simlab.scenario import load_scenario

KEYS = {"scenario": "s", "config_hash": "h"}


def _results(sagas: list[dict], calls: list[dict] | None = None, runs: int = 2, attempts: list[dict] | None = None):
    run_rows = [{**KEYS, "run": r, "seed": 100 + r, "violations": 0} for r in range(runs)]
    return Results(
        runs=pd.DataFrame(run_rows),
        sagas=pd.DataFrame([{**KEYS, **s} for s in sagas]),
        attempts=pd.DataFrame(attempts or []),
        violations=pd.DataFrame(),
        faults=pd.DataFrame(),
        broker_calls=pd.DataFrame(calls or []),
    )


def test_wilson_intervals_match_the_textbook_values():
    low, high = analysis.wilson_interval(0, 100)
    assert low == 0.0 and high == pytest.approx(0.0370, abs=1e-4)  # "0 of 100" still allows 3.7 %
    low, high = analysis.wilson_interval(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))
    assert all(math.isnan(x) for x in analysis.wilson_interval(0, 0))


def test_the_quantile_interval_is_seeded_and_brackets_the_estimate():
    values = [float(i) for i in range(1, 201)]
    first = analysis.quantile_interval(values, 0.99)
    assert first == analysis.quantile_interval(values, 0.99)  # a report is reproducible too
    estimate, low, high = first
    assert estimate == pytest.approx(198.01) and low <= estimate <= high <= 200.0
    assert analysis.quantile_interval([5.0], 0.99) == (5.0, 5.0, 5.0)


def test_broker_load_averages_over_every_run_including_runs_without_calls():
    calls = [
        {**KEYS, "run": 0, "start": 0.2, "end": 0.3},
        {**KEYS, "run": 0, "start": 0.7, "end": 0.8},
        {**KEYS, "run": 0, "start": 3.5, "end": 3.6},
    ]
    results = _results([{"run": 0, "saga_id": "a", "saga_type": "T", "status": "completed", "duration_s": 1.0,
                         "retries": 0}], calls, runs=2)  # fmt: skip
    load = analysis.broker_load(results)
    assert load[["t", "mean_calls_per_s", "max_calls_per_s"]].values.tolist() == [
        [0.0, 1.0, 2.0],
        [1.0, 0.0, 0.0],  # quiet seconds are zeros, not gaps
        [2.0, 0.0, 0.0],
        [3.0, 0.5, 1.0],
    ]
    summary = analysis.config_summary(results)
    assert summary.loc[0, "peak_calls_per_s"] == 1.0  # run 0's busiest second had 2 calls; run 1 had none
    assert summary.loc[0, "calls_per_saga"] == 3.0


def test_compensations_are_attributed_to_the_last_failed_step():
    sagas = [
        {"run": 0, "saga_id": "a", "saga_type": "T", "status": "compensated", "duration_s": 1.0, "retries": 1},
        {"run": 0, "saga_id": "b", "saga_type": "T", "status": "completed", "duration_s": 1.0, "retries": 0},
    ]
    attempts = [
        {**KEYS, "run": 0, "saga_id": "a", "saga_type": "T", "step": "one", "phase": "execute", "outcome": "completed"},
        {**KEYS, "run": 0, "saga_id": "a", "saga_type": "T", "step": "two", "phase": "execute", "outcome": "timed_out"},
        {**KEYS, "run": 0, "saga_id": "a", "saga_type": "T", "step": "two", "phase": "execute", "outcome": "failed"},
        {
            **KEYS,
            "run": 0,
            "saga_id": "a",
            "saga_type": "T",
            "step": "one",
            "phase": "compensate",
            "outcome": "completed",
        },
        {**KEYS, "run": 0, "saga_id": "b", "saga_type": "T", "step": "one", "phase": "execute", "outcome": "completed"},
    ]
    results = _results(sagas, attempts=attempts, runs=1)
    table = analysis.compensations_by_step(results)
    assert table.to_dict("records") == [{"saga_type": "T", "failing_step": "two", "status": "compensated", "sagas": 1}]
    comp = analysis.compensation_attempts(results)
    assert comp.to_dict("records") == [{"saga_type": "T", "step": "one", "outcome": "completed", "attempts": 1}]


def _summary() -> pd.DataFrame:
    rows = {
        # (budget, lag): clean, completed, violation rate, p99
        (2, 0.5): (1.0, 0.6, 0.40, 3.0),
        (5, 0.5): (1.0, 1.0, 0.00, 5.0),
        (8, 0.5): (1.0, 1.0, 0.00, 6.0),
        (5, 2.0): (1.0, 0.5, 0.50, 5.0),
        (8, 2.0): (1.0, 1.0, 0.00, 9.0),
    }
    frame = pd.DataFrame(
        [
            {"budget": b, "lag": lag, "clean_rate": c, "clean_low": c - 0.01, "clean_high": 1.0,
             "completed_rate": d, "completed_low": d - 0.05, "completed_high": min(1.0, d + 0.05),
             "success_rate": 1 - v, "violation_rate": v, "violation_low": 0.0, "violation_high": v + 0.04,
             "p99_s": p, "p99_low": p - 1, "p99_high": p + 1}
            for (b, lag), (c, d, v, p) in rows.items()
        ]
    )  # fmt: skip
    return frame.set_index(["budget", "lag"])


def test_the_pareto_front_keeps_only_the_undominated_settings():
    front = analysis.pareto_front(_summary())
    assert front[front].index.tolist() == [(2, 0.5), (5, 0.5)]
    # One front per circumstance, among the settings within the violation tolerance.
    per_lag = analysis.pareto_front(_summary(), given=["lag"], max_violation_rate=0.0)
    assert per_lag[per_lag].index.tolist() == [(5, 0.5), (8, 2.0)]


def test_zero_violations_seen_with_a_tight_rate_interval_is_a_confident_choice():
    summary = _summary()
    summary.loc[(8, 2.0), ["completed_rate", "completed_low"]] = [1.0, 0.9995]
    chosen = analysis.recommend(summary, target=0.999, given=["lag"], objective="completed_rate")
    assert chosen.loc[(8, 2.0), "confident"] and not chosen.loc[(5, 0.5), "confident"]


def test_a_swept_null_is_a_configuration_of_its_own():
    sagas = [
        {"run": 0, "saga_id": "a", "saga_type": "T", "status": "completed", "duration_s": 1.0, "retries": 0, "t": None},
        {"run": 0, "saga_id": "b", "saga_type": "T", "status": "compensated", "duration_s": 2.0, "retries": 1, "t": 5},
    ]
    results = _results(sagas, runs=1)
    results.runs = pd.concat([results.runs.assign(t=None), results.runs.assign(t=5)], ignore_index=True)
    results.params = ["t"]
    summary = analysis.config_summary(results)
    rates = dict(zip(summary.index.tolist(), summary["completed_rate"], strict=True))
    assert len(rates) == 2 and rates[5] == 0.0
    assert [rate for key, rate in rates.items() if pd.isna(key)] == [1.0]


def test_the_recommendation_is_the_fastest_setting_meeting_the_target_per_condition():
    chosen = analysis.recommend(_summary(), target=0.99, given=["lag"], objective="completed_rate")
    assert chosen.index.tolist() == [(5, 0.5), (8, 0.5), (8, 2.0)]
    assert chosen["rank"].tolist() == [1, 2, 1]
    assert not chosen["confident"].any()  # the intervals reach below 99 %
    text = analysis.describe_choice(_summary(), target=0.99, given=["lag"], objective="completed_rate")
    assert "When lag=0.5: choose budget=5" in text and "When lag=2.0: choose budget=8" in text
    # Rates and their intervals read as in the report's tables, "99.20% (97.10-99.80%)" with an en dash.
    top = chosen.iloc[0]
    rate = interval(top["completed_rate"], top["completed_low"], top["completed_high"], 2)
    assert f": {rate} completing (no compensation), " in text and "[" not in text
    none = analysis.describe_choice(_summary().xs(2.0, level="lag", drop_level=False).iloc[:1], target=0.99)
    assert "no configuration meets the target" in none


def test_a_sweep_s_points_reuse_run_indices_but_count_as_different_runs(tmp_path):
    scenario = load_scenario("broker_disconnection")
    grid = Grid.model_validate({"parameters": {"sagas.consistency_retry.max_attempts": [2, 12]}})
    run_sweep(scenario, grid, 4, 11, tmp_path / "sweep", workers=1)
    from simlab.batch.batches import load_results

    results = load_results(tmp_path / "sweep")
    overall = analysis.config_summary(results, by=[])
    assert overall.loc[0, "runs"] == 8
    per_point = analysis.config_summary(results)
    # Two polls never outlast the lag for all five users; twelve always do. Pooled: exactly half the runs.
    assert per_point["success_rate"].tolist() == [0.0, 1.0]
    assert overall.loc[0, "success_rate"] == 0.5


def test_in_the_same_outage_retries_without_jitter_hit_the_recovered_broker_far_harder_than_full_jitter(tmp_path):
    """The issue's acceptance for notebook 03, checked on its own: the busiest second after the heal."""
    scenario = load_scenario("thundering_herd")
    retry = "sagas.steps.ConnectionRecoverySaga.restore_connection.retry"
    grid = Grid.model_validate({"parameters": {f"{retry}.jitter": ["none", "full"], f"{retry}.max_attempts": [6]}})
    run_sweep(scenario, grid, 4, 3, tmp_path / "herd", workers=2)
    from simlab.batch.batches import load_results

    results = load_results(tmp_path / "herd")
    heal = float(results.faults["end"].max())
    assert heal == 40.0
    peaks = analysis.config_summary(results, load_window=(heal, math.inf))["peak_calls_per_s"]
    none, full = peaks.loc[("none", 6)], peaks.loc[("full", 6)]
    assert none > 2.5 * full, (none, full)


def test_duration_quantiles_per_configuration_with_intervals():
    sagas = [
        {"run": r, "saga_id": f"s{r}", "saga_type": "T", "status": "completed", "duration_s": float(r), "retries": 0}
        for r in range(1, 101)
    ]
    table = analysis.duration_quantiles(_results(sagas, runs=100), quantiles=(0.5, 0.99))
    assert table["q"].tolist() == [0.5, 0.99] and table["sagas"].tolist() == [100, 100]
    assert table["duration_s"].tolist() == [pytest.approx(50.5), pytest.approx(99.01)]
    assert (table["low"] <= table["duration_s"]).all() and (table["duration_s"] <= table["high"]).all()


def test_short_names_keep_settings_distinct():
    frame = pd.DataFrame(
        {"a.retry.max_attempts": [1], "b.retry.max_attempts": [2], "x.jitter": ["none"], "rate": [0.5]}
    ).set_index(["x.jitter"])
    short = analysis.short_names(frame)
    assert list(short.columns) == ["a.retry.max_attempts", "b.retry.max_attempts", "rate"]
    assert short.index.names == ["jitter"]
    single = analysis.short_names(pd.DataFrame({"sagas.consistency_retry.max_attempts": [2]}))
    assert list(single.columns) == ["max_attempts"]


@pytest.mark.parametrize(
    ("value", "tried", "edge"),
    [
        (0.25, [0.25, 0.5, 60.0], "smallest"),
        (60.0, [0.25, 0.5, 60.0], "largest"),
        (0.5, [0.25, 0.5, 60.0], None),
        (8, [5, 8], "largest"),
        (5, [5], None),  # one value tried: nothing was swept
        ("real", ["virtual", "real"], None),  # not a number: no direction to extend in
        (True, [True, False], None),
    ],
)
def test_grid_edge_says_which_end_of_the_values_tried_a_value_is_at(value, tried, edge):
    assert grid_edge(value, tried) == edge


def test_a_choice_on_the_edge_of_the_grid_is_followed_by_one_line_saying_where_to_extend_it():
    text = analysis.describe_choice(_summary(), target=0.99, given=["lag"], objective="completed_rate")
    lines = text.splitlines()
    # lag 0.5 chooses budget 5 of 2, 5, 8 (inside the grid); lag 2.0 chooses 8 of 5, 8 (its largest).
    assert lines[1].startswith("When lag=0.5: choose budget=5") and lines[2].startswith("When lag=2.0: choose budget=8")
    assert lines[3] == (
        "  On the edge of the grid: budget=8 is the largest value tried, so the best may lie beyond it: "
        "extend the grid to budget above 8."
    )
    assert len(lines) == 4


def test_display_names_keep_as_many_trailing_parts_as_keep_settings_apart():
    paths = ["sagas.steps.A.s.retry.max_attempts", "sagas.steps.B.s.retry.max_attempts", "brokers.alpaca.profile"]
    assert display_names(paths) == {
        "sagas.steps.A.s.retry.max_attempts": "A.s.retry.max_attempts",
        "sagas.steps.B.s.retry.max_attempts": "B.s.retry.max_attempts",
        "brokers.alpaca.profile": "profile",
    }
