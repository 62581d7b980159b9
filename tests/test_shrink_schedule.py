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
    seed = run_seed(2, swarm.seed)  # 75 faults strike; the orphan needs one broker error
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
    seed = run_seed(1, cascade.seed)
    assert run_once(cascade, seed).strikes  # faults strike, but the deletion race needs none of them
    result = shrink(cascade, seed, budget_s=60, reducers=[("strikes", fault_strikes)])
    assert result.best.faults.strikes == ()
    assert result.best_result.strikes == []
    assert result.candidates == 1


def test_a_random_order_shrinks_to_fifo_with_the_choices_the_race_needs():
    # Run 64 of reconnect_race with a 10 ms quantum fails under random orderings and not under FIFO.
    shuffled = scenario("reconnect_race", {"orderings.strategy": "random", "orderings.quantum_ms": 10})
    seed = run_seed(64, shuffled.seed)
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
    seed = run_seed(11, shuffled.seed)  # the no_orphans race of run 11 happens in FIFO order as well
    assert signatures(run_once(scenario("reconnect_race"), seed, keep_trace=True))
    result = shrink(shuffled, seed, budget_s=60, reducers=[("orderings", orderings_toward_fifo)])
    assert result.best.orderings.strategy == "fifo"
    assert result.best.orderings.choices == ()
