"""What a scenario expects of its variants, whether a batch met it, and saga types that never reach their goal."""

from __future__ import annotations

import pandas as pd
import pytest

from simlab import lab
from simlab.batch.runner import run_batch, run_seed
from simlab.present.commands import simlab_command
from simlab.present.summary import expectation_verdict, format_tables, goal_notes
from simlab.scenario.model import Scenario
from tests.test_scenarios import SHIPPED

SWITCHES = ("disconnect_lock", "child_wait", "purge")
SMALL = 10  # runs per scenario and side: every shipped scenario, both sides, in a few seconds


def _scenario(variants: dict[str, str], expect: dict[str, object]) -> Scenario:
    return Scenario.model_validate(
        {"name": "x", "sagas": {"variants": variants}, "expect": expect, "invariants": ["no_orphans", "no_data_loss"]}
    )


SEED = {switch: "seed" for switch in SWITCHES}
SAFE = {switch: "safe" for switch in SWITCHES}
EXPECT = {"seed": ["no_orphans", "no_data_loss"], "safe": "clean"}


def test_a_batch_that_shows_exactly_what_was_expected_met_it():
    verdict = expectation_verdict(_scenario(SEED, EXPECT), ["no_data_loss", "no_orphans", "no_orphans"], 1000)
    assert (verdict.status, verdict.variant, verdict.unexpected, verdict.missing) == ("met", "seed", (), ())
    assert (
        verdict.describe() == "Expectation (seed variants, violations of no_orphans, no_data_loss): met in 1000 run(s)"
    )
    assert expectation_verdict(_scenario(SAFE, EXPECT), [], 1000).describe() == (
        "Expectation (safe variants, clean): met in 1000 run(s)"
    )


def test_a_batch_that_differs_says_how():
    missing = expectation_verdict(_scenario(SEED, EXPECT), ["no_orphans"], 20)
    assert (missing.status, missing.missing) == ("not met", ("no_data_loss",))
    assert missing.describe().endswith("not met: no_data_loss violated in none of 20 run(s)")
    dirty = expectation_verdict(_scenario(SAFE, EXPECT), ["no_orphans", "task_failed"], 1000)
    assert (dirty.status, dirty.unexpected) == ("not met", ("no_orphans", "task_failed"))
    assert dirty.describe() == "Expectation (safe variants, clean): not met: violated no_orphans, task_failed"


def test_mixed_variants_or_no_stated_expectation_expect_nothing():
    mixed = expectation_verdict(_scenario({**SEED, "child_wait": "safe"}, EXPECT), ["no_orphans"], 10)
    assert mixed.status == "no expectation"
    assert mixed.describe() == ("Expectation: none (mixed variants: disconnect_lock=seed, child_wait=safe, purge=seed)")
    unstated = expectation_verdict(_scenario(SAFE, {"seed": "clean"}), [], 10)
    assert unstated.describe() == "Expectation: none (the scenario states none for safe variants)"


@pytest.mark.parametrize(
    ("expect", "problem"),
    [
        ({"seed": ["no_orphanz"]}, "unknown invariant 'no_orphanz'"),
        ({"safe": "dirty"}, "expected clean or a list of invariant names, got 'dirty'"),
        ({"seed": []}, "an empty list expects nothing to be violated: write clean"),
        ({"seed": ["deleted_user_clean"]}, "expect.seed names deleted_user_clean, which this scenario does not check"),
    ],
)
def test_an_expectation_naming_what_cannot_be_seen_is_refused(expect, problem):
    with pytest.raises(ValueError, match=problem):
        _scenario(SEED, expect)


def test_a_saga_type_that_never_completes_gets_a_note():
    sagas = pd.DataFrame(
        {
            "saga_type": ["OrderExecutionSaga", "OrderExecutionSaga", "PositionManagementSaga"] + ["X"] * 2,
            "status": ["completed", "compensated", "compensated", "timed_out", "running"],
            "seed": [1] * 5,
            "duration_s": [1.0] * 5,
            "retries": [0] * 5,
        }
    )
    assert goal_notes(sagas) == [
        "PositionManagementSaga never completed (1 compensated): the batch never shows it reaching its goal",
        "X never completed (1 running, 1 timed_out): the batch never shows it reaching its goal",
    ]
    text = format_tables("s", 1, 0, sagas, pd.DataFrame(columns=["seed", "invariant", "explanation"]), [])
    assert "Note: PositionManagementSaga never completed (1 compensated)" in text


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_meets_its_safe_expectation_and_the_seed_shows_nothing_unexpected(name):
    # The full check (1,000 runs per side, where the seed's rarer failures show) is benchmarks/baseline.py.
    for side in ("safe", "seed"):
        scenario = lab.scenario(name, {f"sagas.variants.{switch}": side for switch in SWITCHES})
        seen = {v.invariant for result in run_batch(scenario, SMALL, scenario.seed) for v in result.violations}
        verdict = expectation_verdict(scenario, seen, SMALL)
        if side == "safe":
            assert verdict.status == "met", verdict.describe()
        else:
            assert verdict.unexpected == (), verdict.describe()


def test_simlab_run_says_whether_the_batch_met_its_expectation_and_replays_from_what_ran(tmp_path):
    from simlab.batch.shards import read_manifest
    from simlab.present.summary import batch_summary, replay_reference

    safe = lab.run("reconnect_race", runs=6, out=tmp_path / "safe", settings=SAFE_SETTINGS, progress=False)
    assert safe.violations.empty
    text = batch_summary(tmp_path / "safe")
    assert "\nExpectation (safe variants, clean): met in 6 run(s)\n" in text

    # From root seed 31 (not the shipped 1, whose run 1 loses data), the only violating run, 10, orphans accounts.
    seed = lab.run("reconnect_race", runs=12, seed=31, out=tmp_path / "seed", progress=False)
    assert set(seed.violations["invariant"]) == {"no_orphans"}
    text = batch_summary(tmp_path / "seed")
    assert "\nExpectation (seed variants, violations of no_data_loss, no_orphans): not met: no_data_loss " in text
    assert "violated in none of 12 run(s)\n" in text
    assert f"Replay one: {simlab_command()} replay {tmp_path / 'seed'} --run 10\n" in text
    # By seed, the shipped file is what ran.
    assert f"  (run 10 is seed {run_seed(10, 31)}: {simlab_command()} replay reconnect_race --seed " in text

    # Run with changed settings, a batch replays only from the exact scenario kept in its folder.
    lab.run("reconnect_race", runs=2, out=tmp_path / "changed", settings={"bus_latency.sigma": 0.6}, progress=False)
    assert replay_reference(tmp_path / "seed", read_manifest(tmp_path / "seed")) == "reconnect_race"
    kept = str(tmp_path / "changed" / "scenario.yaml")
    assert replay_reference(tmp_path / "changed", read_manifest(tmp_path / "changed")) == kept


SAFE_SETTINGS = {f"sagas.variants.{switch}": "safe" for switch in SWITCHES}
