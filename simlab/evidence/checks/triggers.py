"""One saga per trigger: at most one instance per (saga type, trigger event id), read from the saga store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sagas.engine.state import SagaState
from simlab.evidence.checks.violation import Violation
from simlab.evidence.sources import Evidence

NAME = "one_saga_per_trigger"


def one_saga_per_trigger_violations(states: Iterable[SagaState]) -> list[Violation]:
    """Every (saga type, trigger id) with more than one instance in the store, at the second one's start.

    The store is the independent source: the engine claims the trigger while saving the new
    state, so a redelivered event (duplicated by the bus, replayed after a crash) must find the
    claim and start nothing. Two stored instances for one trigger mean that claim failed.
    """
    by_trigger: dict[tuple[str, str], list[SagaState]] = defaultdict(list)
    for state in states:
        by_trigger[(state.saga_type, state.trigger_id)].append(state)
    found = []
    for (saga_type, trigger_id), instances in by_trigger.items():
        if len(instances) < 2:
            continue
        instances.sort(key=lambda s: (s.started_at, s.saga_id))
        found.append(
            Violation(
                NAME,
                instances[1].started_at,
                tuple(s.saga_id for s in instances),
                f"{len(instances)} {saga_type} instances for one trigger ({instances[0].trigger_type} {trigger_id})",
            )
        )
    return found


def one_saga_per_trigger(ev: Evidence) -> list[Violation]:
    """At most one saga per (saga type, trigger event id) in the saga store."""
    return one_saga_per_trigger_violations(ev.sagas())
