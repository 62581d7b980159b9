"""Restructuring and speed-ups change no outcome: a sample of the recorded corpus runs the same.

The sample is runs 0, 40, 80, 120 and 160 of every scenario and side, plus the first run of each
that violated an invariant when recorded, so violations are always part of the check. The whole
corpus (4,800 runs, about 2.5 minutes on two cores): ``python -m tests.outcome_corpus --check``.
"""

from __future__ import annotations

import pytest

from tests.outcome_corpus import RUNS, SIDES, compute, recorded, scenario_names

RECORDED = recorded()


def _sample() -> list[tuple[str, str, int]]:
    keys = []
    for name in scenario_names():
        for side in SIDES:
            runs = set(range(0, RUNS, 40))
            violating = [run for run in range(RUNS) if RECORDED[(name, side, run)][4]]
            runs.update(violating[:1])
            keys += [(name, side, run) for run in sorted(runs)]
    return keys


def test_the_corpus_covers_every_shipped_scenario_and_side() -> None:
    assert {key[:2] for key in RECORDED} == {(name, side) for name in scenario_names() for side in SIDES}
    assert len(RECORDED) == len(scenario_names()) * len(SIDES) * RUNS


@pytest.mark.parametrize("name", scenario_names())
def test_the_sampled_runs_keep_their_hashes_violations_and_outcomes(name: str) -> None:
    keys = [key for key in _sample() if key[0] == name]
    assert [row for row in compute(keys, workers=1)] == [RECORDED[key] for key in keys]
