"""Overlapping managers: a second manager recovers while the first still runs, and the lab sees the damage.

Today's engine has no leases: ``recover()`` takes over every unfinished saga, so two managers
drive the same instances and completed steps run again. These tests pin that finding on a
shipped scenario with a replayable seed; when the engine gains leases, the same seeds must
come out clean.
"""

from __future__ import annotations

import pytest

from simlab.faults import FAMILIES, overlap_schedule, plan_faults
from simlab.runner import run_once, run_seed
from simlab.scenario import load_scenario
from simlab.scenario.model import Scenario
from simlab.sweep import with_settings

SAFE = {f"sagas.variants.{switch}": "safe" for switch in ("disconnect_lock", "child_wait", "purge")}
OVERLAP = {**SAFE, "faults.overlapping_managers.enabled": True}
# broker_connection, all safe, run 1: at 5.91 s the second manager recovers a saga the first is driving.
SEED = run_seed(1, load_scenario("broker_connection").seed)


def test_the_family_is_drawn_last_so_no_other_family_s_draws_move():
    assert FAMILIES[-1] == "overlapping_managers"


def test_second_managers_recover_at_instants_drawn_between_the_start_and_the_heal():
    faults = {"start_after_s": 10, "heal_after_s": 50, "overlapping_managers": {"enabled": True, "overlaps": 3}}
    scenario = Scenario.model_validate({"name": "overlaps", "faults": faults})
    for seed in range(5):
        schedule = overlap_schedule(plan_faults(scenario, seed), seed)
        assert len(schedule) == 3 and schedule == sorted(schedule) and all(10 <= at < 50 for at in schedule)
        assert schedule == overlap_schedule(plan_faults(scenario, seed), seed)
    off = Scenario.model_validate({"name": "overlaps", "faults": {"heal_after_s": 50}})
    assert overlap_schedule(plan_faults(off, 0), 0) == []


def test_today_s_engine_runs_a_completed_step_again_when_a_second_manager_recovers():
    scenario = with_settings(load_scenario("broker_connection"), OVERLAP)
    result = run_once(scenario, SEED, keep_trace=True)
    [at] = overlap_schedule(plan_faults(scenario, SEED), SEED)
    assert at == pytest.approx(5.9128, abs=1e-4)
    [window] = [w for w in result.fault_windows if w.family == "overlapping_managers"]
    assert (window.start, window.end) == (at, scenario.faults.heal_after_s)
    twice = [v for v in result.violations if v.invariant == "no_step_applied_twice"]
    assert [v.explanation for v in twice] == [
        "BrokerConnectionSaga: step link_accounts started again at 6.82136 s (attempt 1) after it completed at "
        "6.36403 s",
        "BrokerConnectionSaga: step discover_accounts started again at 11.8211 s (attempt 4) after it completed at "
        "8.94506 s",
    ]
    for violation in twice:  # each a saga the second manager took over while the first was still running it
        [saga_id] = violation.saga_ids
        assert [r.t for r in result.trace if r.saga_id == saga_id and r.outcome == "resumed"] == [at]
    assert run_once(scenario, SEED).violations == result.violations  # the seed replays the finding
    # Without the second manager the same run is clean.
    assert run_once(with_settings(load_scenario("broker_connection"), SAFE), SEED).violations == []
