"""Sweeps: grid files, points as validated scenarios, tables with parameter columns, and what they show."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simlab.batch.batches import load_results
from simlab.batch.fit import possible_workload, saga_types_started
from simlab.batch.runner import run_once, run_seed
from simlab.batch.sweep import (
    Grid,
    GridError,
    grid_targets,
    grid_values,
    load_grid,
    make_points,
    resolve_grid_path,
    run_sweep,
)
from simlab.cli import main
from simlab.present import analysis
from simlab.scenario import load_scenario
from simlab.scenario.model import Scenario

BUDGET = "sagas.consistency_retry.max_attempts"
LAG = "projections.accounts.median_lag_s"


def _grid(text: str, tmp_path: Path) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def test_a_grid_is_the_product_of_its_values_in_file_order():
    grid = Grid.model_validate({"parameters": {BUDGET: [2, 5], LAG: [0.5, 2.0, 5.0]}})
    assert grid_values(grid) == [
        {BUDGET: 2, LAG: 0.5},
        {BUDGET: 2, LAG: 2.0},
        {BUDGET: 2, LAG: 5.0},
        {BUDGET: 5, LAG: 0.5},
        {BUDGET: 5, LAG: 2.0},
        {BUDGET: 5, LAG: 5.0},
    ]


def test_random_mode_draws_the_same_points_from_the_same_seed():
    spec = {
        "mode": "random",
        "samples": 5,
        "seed": 3,
        "parameters": {BUDGET: {"low": 2, "high": 9, "integer": True}, LAG: [1, 2]},
    }
    first, again = grid_values(Grid.model_validate(spec)), grid_values(Grid.model_validate(spec))
    assert first == again and len(first) == 4  # five draws, one a repeat: it would only rerun the same seeds
    assert len({tuple(p.items()) for p in first}) == len(first)
    assert all(isinstance(p[BUDGET], int) and 2 <= p[BUDGET] <= 9 and p[LAG] in (1, 2) for p in first)


def test_a_range_draws_fractions_unless_it_asks_for_whole_numbers():
    spec = {"mode": "random", "samples": 20, "parameters": {"faults.broker_errors.error_rate": {"low": 0, "high": 1}}}
    values = [p["faults.broker_errors.error_rate"] for p in grid_values(Grid.model_validate(spec))]
    assert len(values) == 20 and all(0 <= v <= 1 for v in values) and len({round(v, 6) for v in values}) == 20


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"parameters": {"seed": [1, 2]}}, "parameter 'seed' cannot be swept: use --seed"),
        ({"parameters": {"runs": [1, 2]}}, "parameter 'runs' cannot be swept: use --runs-per-point"),
        (
            {"mode": "random", "samples": 3, "conditions": [LAG], "parameters": {LAG: {"low": 0.5, "high": 5}}},
            f"condition '{LAG}' must list its values",
        ),
    ],
)
def test_grids_refuse_what_would_mislead(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Grid.model_validate(spec)


def test_sweeping_one_field_of_a_step_s_retry_keeps_the_rest_of_the_step_s_own_policy():
    scenario = load_scenario("connection_recovery")  # its scenario file leaves the recovery step's retry alone
    path = "sagas.steps.ConnectionRecoverySaga.restore_connection.retry.max_attempts"
    [point] = make_points(scenario, Grid.model_validate({"parameters": {path: [6]}}))
    policy = point.scenario.sagas.to_config().step_overrides["ConnectionRecoverySaga.restore_connection"][1]
    assert policy is not None
    # The step's own policy is the seed's: 3 retries at 2, 4 and 8 s. Only the attempts change.
    assert (policy.max_attempts, policy.initial_delay_ms, policy.max_delay_ms, policy.backoff_factor) == (
        6,
        2000.0,
        8000.0,
        2.0,
    )


def test_points_set_nested_and_step_settings_and_keep_the_rest_of_the_scenario():
    scenario = load_scenario("broker_disconnection")
    step = "sagas.steps.BrokerDisconnectionSaga.validate_accounts_deleted.timeout_s"
    grid = Grid.model_validate({"parameters": {step: [45.0], "sagas.consistency_retry.jitter": ["none"], LAG: [3.0]}})
    [point] = make_points(scenario, grid)
    settings = point.scenario.sagas
    assert settings.steps["BrokerDisconnectionSaga.validate_accounts_deleted"].timeout_s == 45.0
    assert settings.consistency_retry.jitter == "none"
    assert settings.consistency_retry.max_attempts == scenario.sagas.consistency_retry.max_attempts
    assert point.scenario.projections["accounts"].median_lag_s == 3.0
    assert point.scenario.workload == scenario.workload
    assert point.label == "timeout_s=45.0, jitter=none, median_lag_s=3.0"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"sagas.consistency_retry.max_atempts": [3]},
            "parameters.sagas.consistency_retry.max_atempts = 3: not accepted by scenario 'broker_disconnection': "
            "sagas.consistency_retry.max_atempts: unknown key (not part of the scenario schema)",
        ),
        (
            {BUDGET: [3, "three"]},
            f"parameters.{BUDGET} = 'three': not accepted by scenario 'broker_disconnection': "
            f"{BUDGET}: Input should be a valid integer, unable to parse string as an integer (got 'three')",
        ),
        (
            {"sagas.timeouts_s.NoSuchSaga": [10]},
            "parameters.sagas.timeouts_s.NoSuchSaga = 10: not accepted by scenario 'broker_disconnection': "
            "sagas.timeouts_s: unknown saga type 'NoSuchSaga'",
        ),
        (
            {"horizon_s.seconds": [10]},
            "parameters.horizon_s.seconds: horizon_s is a single value in scenario 'broker_disconnection', "
            "not a section with settings",
        ),
    ],
)
def test_a_parameter_the_scenario_lacks_or_a_wrong_value_is_named_in_one_line(parameters, message):
    scenario = load_scenario("broker_disconnection")
    with pytest.raises(GridError) as caught:
        make_points(scenario, Grid.model_validate({"parameters": parameters}), "grid.yaml")
    assert str(caught.value).startswith(f"grid.yaml: {message}")


def test_simlab_sweep_rejects_a_bad_grid_before_any_run_and_writes_nothing(tmp_path):
    grid = _grid(f"parameters:\n  {BUDGET}: [2, 3.5x]\n", tmp_path)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "simlab", "sweep", "broker_disconnection", "--grid", str(grid), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"simlab sweep: {grid}: parameters.{BUDGET} = '3.5x': not accepted by scenario 'broker_disconnection': "
        f"{BUDGET}: Input should be a valid integer, unable to parse string as an integer (got '3.5x')"
    )
    assert "Traceback" not in done.stderr and not out.exists()


def test_a_grid_file_with_an_unknown_key_or_bad_yaml_is_one_line(tmp_path):
    with pytest.raises(GridError, match=r"grid.yaml: mod: unknown key"):
        load_grid(_grid(f"parameters: {{{BUDGET}: [1]}}\nmod: random\n", tmp_path))
    with pytest.raises(GridError, match=r"grid.yaml: line 2, column 1: YAML syntax error"):
        load_grid(_grid("parameters: [a: 1\n", tmp_path))
    with pytest.raises(GridError, match=r"grid.yaml: a range needs mode: random|grid.yaml: .*range needs mode"):
        load_grid(_grid(f"parameters:\n  {BUDGET}: {{low: 1, high: 3}}\n", tmp_path))


def test_sweep_tables_carry_one_column_per_parameter_and_match_on_1_and_2_workers(tmp_path):
    scenario = load_scenario("broker_disconnection")
    grid = Grid.model_validate({"parameters": {BUDGET: [2, 8]}})
    run_sweep(scenario, grid, 6, 11, tmp_path / "one", workers=1)
    run_sweep(scenario, grid, 6, 11, tmp_path / "two", workers=2)
    one, two = load_results(tmp_path / "one"), load_results(tmp_path / "two")
    assert one.params == [BUDGET]
    for name in ("runs", "sagas", "attempts", "violations", "broker_calls"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name))
    assert one.runs[[BUDGET, "point"]].drop_duplicates().values.tolist() == [[2, 0], [8, 1]]
    # Common random numbers: every point runs the same seeds.
    seeds = one.runs.groupby("point")["seed"].apply(list)
    assert seeds[0] == seeds[1]
    # Each point's exact scenario is kept for replay; its runs replay from it.
    assert (
        load_scenario(str(tmp_path / "one" / "point-001" / "scenario.yaml")).sagas.consistency_retry.max_attempts == 8
    )


def test_a_sweep_resumes_and_refuses_another_grid_in_the_same_folder(tmp_path):
    scenario = load_scenario("broker_disconnection")
    grid = Grid.model_validate({"parameters": {BUDGET: [2, 8]}})
    out = tmp_path / "sweep"
    assert run_sweep(scenario, grid, 4, 11, out, workers=1)[0] == 8
    assert run_sweep(scenario, grid, 4, 11, out, workers=1)[0] == 0  # nothing left to do
    other = Grid.model_validate({"parameters": {BUDGET: [3]}})
    with pytest.raises(ValueError, match="holds a different sweep"):
        run_sweep(scenario, other, 4, 11, out, workers=1)


def test_the_consistency_budget_sweep_shows_violations_falling_as_the_budget_outgrows_the_lag(tmp_path):
    """The issue's acceptance: violation rate falls as the poll budget grows past the projection lag,
    and the recommendation picks a budget that meets the target, for each lag."""
    scenario = load_scenario("broker_disconnection")
    grid = Grid.model_validate({"parameters": {BUDGET: [2, 5, 12], LAG: [0.5, 2.0]}})
    # Root seed 15: at five polls and a 0.5 s lag none of its 20 runs violates. (Root 11 had one violating
    # run there once draws were keyed per user, and the recommendation then rightly went to 12 polls.)
    run_sweep(scenario, grid, 20, 15, tmp_path / "sweep", workers=2)
    results = load_results(tmp_path / "sweep")
    summary = analysis.config_summary(results, saga_type="BrokerDisconnectionSaga")
    rate = summary["violation_rate"].unstack(LAG)
    assert rate.loc[2].tolist() == [1.0, 1.0]  # two polls never outlast even a 0.5 s lag for all five users
    assert rate.loc[5, 0.5] <= 0.1 < 0.9 <= rate.loc[5, 2.0]  # five polls outlast 0.5 s but not 2 s
    assert rate.loc[12].tolist() == [0.0, 0.0]
    chosen = analysis.recommend(summary, given=[LAG])
    best = chosen[chosen["rank"] == 1].reset_index().set_index(LAG)[BUDGET]
    assert best.to_dict() == {0.5: 5, 2.0: 12}
    text = analysis.describe_choice(summary, given=[LAG])
    assert "When median_lag_s=2.0: choose max_attempts=12" in text


RECOVERY_RETRY = "sagas.steps.ConnectionRecoverySaga.restore_connection.retry"


def test_a_grid_is_about_its_saga_type_and_the_saga_types_whose_settings_it_varies():
    grid = Grid.model_validate(
        {
            "parameters": {
                f"{RECOVERY_RETRY}.max_attempts": [4],
                "sagas.timeouts_s.UserDeletionSaga": [60.0],
                "sagas.steps.ConnectionRecoverySaga.verify_recoverable.timeout_s": [5.0],
                BUDGET: [2],
            },
            "saga_type": "BrokerConnectionSaga",
        }
    )
    assert grid_targets(grid) == {
        "BrokerConnectionSaga": "saga_type",
        "ConnectionRecoverySaga": f"parameters.{RECOVERY_RETRY}.max_attempts",
        "UserDeletionSaga": "parameters.sagas.timeouts_s.UserDeletionSaga",
    }
    assert grid_targets(Grid.model_validate({"parameters": {BUDGET: [2]}})) == {}


def test_the_dry_run_makes_every_workload_chance_certain_so_a_rare_saga_type_is_not_missed():
    scenario = load_scenario("chaos_swarm")  # each of its 3 users deletes their account with probability 0.3
    plain = {row.saga_type for row in run_once(scenario, run_seed(1, scenario.seed)).sagas}
    assert "UserDeletionSaga" not in plain  # the scenario's own run 1 deletes nobody
    assert possible_workload(scenario).workload.user_deletions.probability == 1.0
    assert saga_types_started(scenario) == {
        "BrokerConnectionSaga",
        "BrokerDisconnectionSaga",
        "OrderExecutionSaga",
        "PositionManagementSaga",
        "UserDeletionSaga",
    }


def test_a_grid_about_a_saga_type_its_scenario_never_starts_is_refused_before_any_run(tmp_path):
    scenario = load_scenario("broker_connection")
    grid = load_grid(resolve_grid_path("retry_jitter"))
    with pytest.raises(GridError) as refused:
        make_points(scenario, grid, "retry_jitter.yaml")
    assert str(refused.value) == (
        "retry_jitter.yaml: saga_type: ConnectionRecoverySaga never ran in 32 dry runs of scenario "
        "'broker_connection' (it runs BrokerConnectionSaga); scenarios that run it: connection_recovery, "
        "thundering_herd (--no-fit-check sweeps anyway)"
    )
    with pytest.raises(GridError, match="never ran"):
        run_sweep(scenario, grid, 2, 1, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()  # nothing written
    # A setting of a saga type that never runs changes nothing: refused too, naming the setting.
    setting = Grid.model_validate({"parameters": {f"{RECOVERY_RETRY}.max_attempts": [4, 6]}})
    with pytest.raises(GridError, match=re.escape(f"parameters.{RECOVERY_RETRY}.max_attempts: ConnectionRecovery")):
        make_points(scenario, setting)
    # The same grid fits the scenario its comment names.
    assert len(make_points(load_scenario("thundering_herd"), grid)) == 12
    # And --no-fit-check sweeps anyway: the dry runs can miss a type that only timing lets run.
    assert len(make_points(scenario, grid, fit_check=False)) == 12


def test_a_saga_type_that_only_timing_lets_start_is_not_refused_for_one_dry_run_that_missed_it():
    # One user places one order soon after connecting: the order starts a saga only if the account is linked
    # by then, which the dry run's certain chances cannot force. Its first dry run starts no order saga.
    probe = Scenario.model_validate(
        {
            "name": "order_probe", "runs": 10, "seed": 0, "invariants": ["terminal_by_horizon"],
            "workload": {"users": 1, "brokers": ["alpaca"], "cycles": {"count": 0},
                         "orders": {"per_user": 1, "gap_s": {"dist": "exponential", "mean": 0.5}}},
            "brokers": {"alpaca": {"profile": "real"}},
        }
    )  # fmt: skip
    assert "OrderExecutionSaga" not in saga_types_started(probe, 0)
    grid = Grid.model_validate(
        {"parameters": {"sagas.steps.OrderExecutionSaga.submit_order.timeout_s": [1.0, 5.0]},
         "saga_type": "OrderExecutionSaga"}
    )  # fmt: skip
    assert len(make_points(probe, grid)) == 2  # a later dry run saw it start


def test_the_sweep_summary_labels_settings_by_short_names_and_warns_of_a_choice_on_the_grid_s_edge(tmp_path, capsys):
    grid = _grid(f"parameters:\n  {BUDGET}: [2, 12]\nsaga_type: BrokerDisconnectionSaga\n", tmp_path)
    status = main(
        ["sweep", "broker_disconnection", "--grid", str(grid), "--runs-per-point", "2", "--workers", "1",
         "--out", str(tmp_path / "out")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    assert BUDGET not in out  # only in the grid file: the table and the sentences use the short name
    header, names = out.splitlines()[1:3]
    columns = ["runs", "clean_rate", "completed_rate", "violation_rate", "success_rate", "p50_s", "p99_s"]
    assert header.split() == columns
    assert names.split() == ["max_attempts"]
    lines = out.splitlines()
    chosen = next(i for i, line in enumerate(lines) if line.startswith("choose max_attempts=12"))
    assert lines[chosen + 1] == (
        "  On the edge of the grid: max_attempts=12 is the largest value tried, so the best may lie beyond it: "
        "extend the grid to max_attempts above 12."
    )
