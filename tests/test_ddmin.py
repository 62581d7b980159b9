"""ddmin (simlab.batch.ddmin): a 1-minimal failing subset, never a subset that passed, no test run twice."""

from __future__ import annotations

import random

import pytest

from simlab.batch.ddmin import ddmin


def _fails_when_holding(needed: set[int], calls: list[list[int]]):
    def fails(subset: list[int]) -> bool:
        calls.append(subset)
        return needed <= set(subset)

    return fails


@pytest.mark.parametrize(
    ("size", "needed"),
    [(1, {0}), (2, {1}), (8, {3}), (10, {3, 7}), (16, {0, 15}), (13, {2, 5, 11}), (9, set(range(9)))],
)
def test_it_finds_exactly_the_items_the_failure_needs(size: int, needed: set[int]) -> None:
    calls: list[list[int]] = []
    assert ddmin(list(range(size)), _fails_when_holding(needed, calls)) == sorted(needed)
    assert [] not in calls  # the empty subset is the caller's to try
    assert len(calls) == len({tuple(c) for c in calls})  # a candidate is a run: never the same one twice


def test_it_never_returns_a_subset_that_passed_and_keeps_the_order() -> None:
    rng = random.Random(7)
    for _ in range(200):  # random monotone failures: any subset holding one of a few sets of items fails
        items = rng.sample(range(100), rng.randint(1, 12))
        triggers = [set(rng.sample(items, rng.randint(1, min(3, len(items))))) for _ in range(rng.randint(1, 3))]
        results: dict[tuple[int, ...], bool] = {}

        def fails(subset: list[int], triggers=triggers, results=results) -> bool:
            results[tuple(subset)] = any(t <= set(subset) for t in triggers)
            return results[tuple(subset)]

        found = ddmin(items, fails)
        assert any(t <= set(found) for t in triggers)
        assert found == [i for i in items if i in found]  # a subsequence of the items
        if len(found) > 1:  # 1-minimal: removing any one item passes
            for drop in found:
                assert not any(t <= set(found) - {drop} for t in triggers)
        assert all(results[key] for key in results if list(key) == found)


def test_equal_items_are_told_apart_by_position() -> None:
    assert ddmin(["a", "a", "a", "a"], lambda subset: len(subset) >= 2) == ["a", "a"]


def test_a_non_monotone_failure_still_yields_a_failing_subset() -> None:
    # fails on subsets of even size holding item 0: ddmin's guarantees of minimality do not hold, but
    # what it returns still fails
    def fails(subset: list[int]) -> bool:
        return 0 in subset and len(subset) % 2 == 0

    for size in (2, 4, 6, 8):
        found = ddmin(list(range(size)), fails)
        assert fails(found)
