"""Overlapping managers: a second manager recovers while the first still runs.

Before leases, ``recover()`` took over every unfinished saga, so two managers drove the same
instances and completed steps ran again; the lab found it on broker_connection, all safe (run 1 then;
run 0 since the draws are keyed per user).
With leases the same seed is clean, and a store that grants every lease (the engine as it was)
brings the finding back at the same seed, so the check keeps its teeth. Split brain (the first
manager cut off from the store past its lease, ``pause_s``) is the same pair: the shipped
``split_brain`` scenario clean at a seed where leases are lost and taken over, and a manager that
never gives a lease up caught at that seed.
"""

from __future__ import annotations

import pytest

import simlab.sim.world
from sagas.engine.execution import SagaExecution
from sagas.engine.leases import LeaseKeeper
from sagas.engine.state import SagaState
from sagas.stores.memory import InMemorySagaStore
from simlab.batch.runner import run_once, run_seed
from simlab.batch.sweep import with_settings
from simlab.chaos.faults import FAMILIES, overlap_pauses, overlap_schedule, plan_faults
from simlab.scenario import load_scenario
from simlab.scenario.model import Scenario

SAFE = {f"sagas.variants.{switch}": "safe" for switch in ("disconnect_lock", "child_wait", "purge")}
OVERLAP = {**SAFE, "faults.overlapping_managers.enabled": True}
# broker_connection, all safe, run 0: at 33.63 s the second manager recovers sagas the first is driving.
SEED = run_seed(0, load_scenario("broker_connection").seed)


def test_the_family_is_drawn_last_so_no_other_family_s_draws_move():
    assert FAMILIES[-1] == "overlapping_managers"


def test_second_managers_recover_at_instants_drawn_between_the_start_and_the_heal():
    faults = {"start_after_s": 10, "heal_after_s": 50, "overlapping_managers": {"enabled": True, "overlaps": 3}}
    scenario = Scenario.model_validate({"name": "overlaps", "faults": faults})
    for seed in range(5):
        schedule = overlap_schedule(plan_faults(scenario, seed))
        assert len(schedule) == 3 and schedule == sorted(schedule) and all(10 <= at < 50 for at in schedule)
        assert schedule == overlap_schedule(plan_faults(scenario, seed))
    off = Scenario.model_validate({"name": "overlaps", "faults": {"heal_after_s": 50}})
    assert overlap_schedule(plan_faults(off, 0)) == []


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
    [at] = overlap_schedule(plan_faults(scenario, SEED))
    assert at == pytest.approx(33.6282, abs=1e-4)
    [window] = [w for w in result.fault_windows if w.family == "overlapping_managers"]
    assert (window.start, window.end) == (at, scenario.faults.heal_after_s)
    assert result.violations == []
    # It took nothing over: no saga resumed at that instant, none lost its lease.
    assert [r for r in result.trace if (r.outcome == "resumed" and r.t == at) or r.outcome == "lease_lost"] == []


def test_without_leases_the_same_seed_runs_completed_steps_again(monkeypatch):
    monkeypatch.setattr(simlab.sim.world, "InMemorySagaStore", LeaselessStore)
    scenario = with_settings(load_scenario("broker_connection"), OVERLAP)
    result = run_once(scenario, SEED, keep_trace=True)
    [at] = overlap_schedule(plan_faults(scenario, SEED))
    twice = [v for v in result.violations if v.invariant == "no_step_applied_twice"]
    assert twice, "the planted leaseless store must be caught"
    for violation in twice:  # each a saga the second manager took over while the first was still running it
        [saga_id] = violation.saga_ids
        assert [r.t for r in result.trace if r.saga_id == saga_id and r.outcome == "resumed"] == [at]
    assert run_once(scenario, SEED).violations == result.violations  # the seed replays the finding
    # Without the second manager the same run is clean, leases or not.
    assert run_once(with_settings(load_scenario("broker_connection"), SAFE), SEED).violations == []


# -- split brain: the first manager cannot reach the store for longer than a lease ---------------------

# Run 240 of the shipped split_brain, all safe: found as the first run whose planted bug (below) runs a step
# twice once draws were keyed per user; the planted bug does that in 4 of runs 0-299 (run 24's, before).
SPLIT_SEED = run_seed(240, load_scenario("split_brain").seed)


def test_split_brain_a_manager_cut_off_past_its_lease_stops_and_the_other_takes_over_cleanly():
    scenario = with_settings(load_scenario("split_brain"), SAFE)
    plan = plan_faults(scenario, SPLIT_SEED)
    at = overlap_schedule(plan)
    pauses = overlap_pauses(plan)
    assert [round(x, 4) for x in at] == [63.2217, 97.2929] and [round(p, 4) for p in pauses] == [28.1132, 14.0719]
    result = run_once(scenario, SPLIT_SEED, keep_trace=True)
    assert result.violations == []
    lost = [(round(r.t, 4), r.saga_id) for r in result.trace if r.outcome == "lease_lost"]
    resumed = [(round(r.t, 4), r.saga_id) for r in result.trace if r.outcome == "resumed"]
    # The first pause (63.22 s to 91.33 s) outlasts the 30 s lease of two connection sagas: their manager stops
    # each one when its lease runs out by its own clock (27 s after the last renewal, before the store lets
    # anyone in), and at the thaw both are taken over and finish; nothing ran twice. Then the running manager
    # crashes (93.58 s) and its restart (97.85 s) resumes the two sagas it was running, which lost nothing.
    assert [t for t, _ in lost] == [85.112, 85.2112]
    thaw = round(at[0] + pauses[0], 4)
    assert resumed[:2] == [(thaw, saga_id) for _, saga_id in lost]
    [crash] = [w for w in result.fault_windows if w.family == "manager_crashes"]
    assert (round(crash.start, 4), round(crash.end, 4)) == (93.5772, 97.8543)
    assert [t for t, _ in resumed[2:]] == [97.8543, 97.8543]
    assert not {saga_id for _, saga_id in resumed[2:]} & {saga_id for _, saga_id in lost}
    assert result.reach["lease_lost"] == 2
    assert run_once(scenario, SPLIT_SEED).trace_hash == result.trace_hash  # replayable


def test_split_brain_with_a_manager_that_never_gives_a_lease_up_runs_steps_twice(monkeypatch):
    # The planted bug: a manager that never gives a lease up (nor looks at it before a step).
    monkeypatch.setattr(LeaseKeeper, "lose", lambda self, execution, reason: None)
    monkeypatch.setattr(SagaExecution, "check_lease", lambda self: None)
    result = run_once(with_settings(load_scenario("split_brain"), SAFE), SPLIT_SEED)
    # The store still fences its writes, yet the steps it ran meanwhile are done twice.
    assert "no_step_applied_twice" in {v.invariant for v in result.violations}
