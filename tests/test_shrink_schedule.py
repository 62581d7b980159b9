"""``simlab shrink`` over what a run recorded: the faults that struck, and its equal-time choices.

Each reduced schedule is checked for what ddmin promises: it still shows the failure's signature, it is a
subset of what the run recorded, and no single fault or choice can be dropped from it (1-minimal).
"""

from __future__ import annotations

import pytest

from simlab.batch.runner import RunResult, run_once, run_seed
from simlab.batch.shrink import ShrinkResult, shrink, signatures
from simlab.batch.shrink_schedule import fault_strikes, orderings_toward_fifo
from simlab.lab import scenario
from simlab.scenario import ScenarioError, load_scenario
from simlab.scenario.model import Scenario


def _shows(candidate: Scenario, seed: int, result: ShrinkResult) -> bool:
    return result.target in signatures(run_once(candidate, seed, keep_trace=True))


def _without(candidate: Scenario, path: str, items: tuple, dropped: object) -> Scenario:
    data = candidate.model_dump(mode="json")
    section, key = path.split(".")
    data[section][key] = [list(i) if isinstance(i, tuple) else i for i in items if i != dropped]
    return Scenario.model_validate(data)


@pytest.fixture(scope="module")
def swarm_shrunk() -> tuple[int, RunResult, ShrinkResult]:
    swarm = scenario("chaos_swarm")
    seed = run_seed(95, swarm.seed)  # 34 faults strike; the orphan needs one broker error
    return seed, run_once(swarm, seed), shrink(swarm, seed, budget_s=60, reducers=[("strikes", fault_strikes)])


def test_the_faults_that_struck_shrink_to_a_one_minimal_schedule(swarm_shrunk):
    seed, original, result = swarm_shrunk
    kept = result.best.faults.strikes
    assert kept is not None and 0 < len(kept) < len(original.strikes)
    assert set(kept) <= {s.label for s in original.strikes}
    assert result.stopped == "done"
    assert _shows(result.best, seed, result)
    for label in kept:
        assert not _shows(_without(result.best, "faults.strikes", kept, label), seed, result), label


def test_a_failure_that_needs_no_fault_gets_an_empty_schedule():
    cascade = scenario("user_deletion_cascade")
    seed = run_seed(0, cascade.seed)
    assert run_once(cascade, seed).strikes  # faults strike, but the deletion race needs none of them
    result = shrink(cascade, seed, budget_s=60, reducers=[("strikes", fault_strikes)])
    assert result.best.faults.strikes == ()
    assert result.best_result.strikes == []
    assert result.candidates == 1


def test_a_random_order_shrinks_to_fifo_with_the_choices_the_race_needs():
    # Run 29 of reconnect_race with a 10 ms quantum fails under random orderings and not under FIFO.
    shuffled = scenario("reconnect_race", {"orderings.strategy": "random", "orderings.quantum_ms": 10})
    seed = run_seed(29, shuffled.seed)
    fifo = scenario("reconnect_race", {"orderings.quantum_ms": 10})
    assert run_once(fifo, seed).violations == []
    original = run_once(shuffled, seed)
    result = shrink(shuffled, seed, budget_s=60, reducers=[("orderings", orderings_toward_fifo)])
    orderings = result.best.orderings
    assert orderings.strategy == "fifo"
    assert original.ties is not None
    assert 0 < len(orderings.choices) < len(original.ties.choices)
    assert set(orderings.choices) <= set(original.ties.choices)
    assert _shows(result.best, seed, result)
    for pair in orderings.choices:
        assert not _shows(_without(result.best, "orderings.choices", orderings.choices, pair), seed, result)


def test_a_run_that_fails_under_fifo_too_needs_no_choice():
    shuffled = scenario("reconnect_race", {"orderings.strategy": "random"})
    seed = run_seed(5, shuffled.seed)  # the no_orphans race of run 5 happens in FIFO order as well
    assert signatures(run_once(scenario("reconnect_race"), seed, keep_trace=True))
    result = shrink(shuffled, seed, budget_s=60, reducers=[("orderings", orderings_toward_fifo)])
    assert result.best.orderings.strategy == "fifo"
    assert result.best.orderings.choices == ()


# -- the users a failure needs -----------------------------------------------------------------


def test_all_users_named_is_the_same_run_as_none_named():
    race = scenario("reconnect_race")
    seed = run_seed(3, race.seed)
    every = scenario("reconnect_race", {"workload.only_users": list(range(race.workload.users))})
    assert run_once(every, seed).trace_hash == run_once(race, seed).trace_hash


def test_a_user_left_out_starts_no_saga_and_the_others_still_do():
    race = scenario("reconnect_race")
    seed = run_seed(3, race.seed)
    full = run_once(race, seed)
    kept = [0, race.workload.users - 1]
    thinned = run_once(scenario("reconnect_race", {"workload.only_users": kept}), seed)
    assert 0 < len(thinned.sagas) < len(full.sagas)
    assert len(thinned.sagas) * race.workload.users == len(full.sagas) * len(kept)  # every user starts as many


@pytest.mark.parametrize("only", [[1, 0], [0, 0], [99], [-1], []])
def test_only_users_must_name_each_existing_user_once_in_order(tmp_path, only):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nworkload:\n  users: 3\n  only_users: {only}\n")
    with pytest.raises(
        ScenarioError, match=r"workload.*only_users must be at least one increasing user index below users \(3\)"
    ):
        load_scenario(str(path))
