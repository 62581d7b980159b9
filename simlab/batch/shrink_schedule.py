"""``simlab shrink``'s reducers over what a run recorded: the faults that struck, and its equal-time choices.

Both work on the run of the scenario they are given, not on its configuration:

- ``fault_strikes``: the run's strikes (``RunResult.strikes``, named ``broker_errors/alpaca@user-2#3``) become the
  scenario's explicit schedule ``faults.strikes``, and ddmin keeps the fewest of them that still fail. A fault
  left out is still drawn (its own stream keeps its place), so a candidate is the same run up to the first
  fault it leaves out, and one injected fault can go while its neighbours stay.
- ``orderings_toward_fifo``: a run ordered by ``random`` or ``pct:D`` becomes ``fifo`` with the run's own
  non-FIFO choices (``orderings.choices``: the same run), and ddmin keeps the fewest choices that still
  fail; every choice dropped is one more tie run in FIFO order. A run that fails under FIFO needs none.

Each returns the last candidate kept; when ddmin can remove nothing, the run's full schedule is still
written into the scenario (tested once: it is the same run), so the reproduction names its faults and
choices explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from simlab.batch.ddmin import ddmin
from simlab.batch.runner import RunResult
from simlab.batch.shrink_reducers import Data, Test, build
from simlab.scenario.model import Scenario

T = TypeVar("T")


def fault_strikes(scenario: Scenario, test: Test, run: RunResult) -> Scenario:
    """The fewest of the run's strikes (``faults.strikes``) that still show the failure (ddmin)."""
    labels = [strike.label for strike in run.strikes]
    if not labels:
        return scenario

    def candidate(subset: Sequence[str]) -> Scenario | None:
        data = scenario.model_dump(mode="json")
        data["faults"]["strikes"] = list(subset)
        return build(data)

    def what(subset: Sequence[str]) -> str:
        shown = ", ".join(subset[:5]) + (", ..." if len(subset) > 5 else "")
        return f"faults.strikes: {len(subset)} of {len(labels)} ({shown or 'none'})"

    return _smallest(labels, candidate, what, test, scenario)


def orderings_toward_fifo(scenario: Scenario, test: Test, run: RunResult) -> Scenario:
    """FIFO with the fewest of the run's non-FIFO choices (``orderings.choices``) that still fail (ddmin)."""
    if run.ties is None:  # already plain FIFO: nothing was chosen
        return scenario
    choices = list(run.ties.choices)
    base: Data = scenario.model_dump(mode="json")

    def candidate(subset: Sequence[tuple[int, int]]) -> Scenario | None:
        data: dict[str, Any] = {**base, "orderings": {**base["orderings"], "strategy": "fifo"}}
        data["orderings"]["choices"] = [list(pair) for pair in subset]
        return build(data)

    def what(subset: Sequence[tuple[int, int]]) -> str:
        return f"orderings: fifo with {len(subset)} of {len(choices)} recorded choices"

    return _smallest(choices, candidate, what, test, scenario)


def _smallest(
    items: list[T],
    candidate: Callable[[Sequence[T]], Scenario | None],
    what: Callable[[Sequence[T]], str],
    test: Test,
    scenario: Scenario,
) -> Scenario:
    """The candidate of the smallest subset of ``items`` ddmin finds still failing, else of all of them."""
    kept: dict[tuple[T, ...], Scenario] = {}

    def fails(subset: list[T]) -> bool:
        made = candidate(subset)
        if made == scenario:  # the scenario being shrunk, which fails: no run, and nothing new kept
            kept[tuple(subset)] = scenario
            return True
        if made is not None and test(made, what(subset)):
            kept[tuple(subset)] = made
            return True
        return False

    if fails([]):
        return kept[()]
    smallest = tuple(ddmin(items, fails)) if items else ()
    if smallest not in kept:  # nothing could go: the whole schedule, written out (the same run)
        fails(list(items))
    return kept.get(smallest, scenario)
