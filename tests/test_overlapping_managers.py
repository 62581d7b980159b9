"""Overlapping managers: a second manager recovers while the first still runs.

Before leases, ``recover()`` took over every unfinished saga, so two managers drove the same
instances and completed steps ran again; the lab found it on broker_connection, all safe, run 1.
With leases the same seed is clean, and a store that grants every lease (the engine as it was)
brings the finding back at the same seed, so the check keeps its teeth.
"""

from __future__ import annotations

import pytest

import simlab.world
from sagas.engine.state import SagaState
from sagas.stores.memory import InMemorySagaStore
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


class LeaselessStore(InMemorySagaStore):
    """The engine before leases: every manager may take over every unfinished saga, and no write is fenced."""

    async def acquire_lease(self, saga_id: str, owner: str, lease_seconds: float) -> int | None:
        return 1

    async def renew_lease(self, saga_id: str, owner: str, fence: int, lease_seconds: float) -> bool:
        return True

    async def save(self, state: SagaState, fence: int) -> None:
        await super().save(state, 1)


def test_a_second_manager_recovering_leaves_the_sagas_the_first_one_runs_alone():
    scenario = with_settings(load_scenario("broker_connection"), OVERLAP)
    result = run_once(scenario, SEED, keep_trace=True)
    [at] = overlap_schedule(plan_faults(scenario, SEED), SEED)
    assert at == pytest.approx(5.9128, abs=1e-4)
    [window] = [w for w in result.fault_windows if w.family == "overlapping_managers"]
    assert (window.start, window.end) == (at, scenario.faults.heal_after_s)
    assert result.violations == []
    # It took nothing over: no saga resumed at that instant, none lost its lease.
    assert [r for r in result.trace if (r.outcome == "resumed" and r.t == at) or r.outcome == "lease_lost"] == []


def test_without_leases_the_same_seed_runs_completed_steps_again(monkeypatch):
    monkeypatch.setattr(simlab.world, "InMemorySagaStore", LeaselessStore)
    scenario = with_settings(load_scenario("broker_connection"), OVERLAP)
    result = run_once(scenario, SEED, keep_trace=True)
    [at] = overlap_schedule(plan_faults(scenario, SEED), SEED)
    twice = [v for v in result.violations if v.invariant == "no_step_applied_twice"]
    assert twice, "the planted leaseless store must be caught"
    for violation in twice:  # each a saga the second manager took over while the first was still running it
        [saga_id] = violation.saga_ids
        assert [r.t for r in result.trace if r.saga_id == saga_id and r.outcome == "resumed"] == [at]
    assert run_once(scenario, SEED).violations == result.violations  # the seed replays the finding
    # Without the second manager the same run is clean, leases or not.
    assert run_once(with_settings(load_scenario("broker_connection"), SAFE), SEED).violations == []
