"""Reach: which engine paths one run exercised, and how often, from its trace and its lock ledger.

A clean batch means little if the code a scenario asks about never ran. Each run
counts, per engine path, how many times it was taken (``run_reach``); the counts
are stored with the run (columns ``reach_<path>`` of the ``runs`` table), and
``simlab.present.summary.reach_table`` turns them into "in how many runs was each path
reached", flagging a path the scenario's ``reach:`` list needs that no run reached.

The paths, and the evidence counted for each:

``retry``                          a scheduled retry of a step or a compensation (``retry``/``scheduled``)
``step_timeout``                   an attempt (or compensation attempt) cut by its own deadline (``timed_out``)
``possibly_applied_compensation``  a compensation of a step that never completed (it timed out, was
                                   cancelled or was in flight at a crash: it may have applied)
``failed_compensation``            a compensation given up after its retries (``compensate``/``gave_up``)
``saga_deadline``                  a saga cut by its own deadline (``saga``/``deadline_exceeded``)
``crash_resume``                   a saga resumed by a new manager after a crash (``saga``/``resumed``)
``duplicate_trigger``              a trigger event that found its saga already started (``duplicate_trigger``)
``lock_expiry``                    a lock whose TTL ran out while its holder still believed it held it
``child_wait``                     a step waiting for its child sagas' completion events (``children``/``waiting``)
``poll_retry``                     a scheduled delay of a ``retry_async`` poll (``poll``/``scheduled``)
``lease_lost``                     a manager that stopped driving a saga whose lease it lost (``saga``/``lease_lost``)
``child_stopped``                  a child saga stopped because its parent compensated (``saga``/``parent_compensated``)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sagas.engine.trace import Outcome, Phase, TraceRecord
from simlab.evidence.trace_tables import (
    COMPENSATE_PHASE,
    COMPLETED_OUTCOME,
    EXECUTE_PHASE,
    INVALID_RESULT_OUTCOME,
    SKIPPED_OUTCOME,
    STARTED_OUTCOME,
)

REACH_PATHS: tuple[str, ...] = (
    "retry",
    "step_timeout",
    "possibly_applied_compensation",
    "failed_compensation",
    "saga_deadline",
    "crash_resume",
    "duplicate_trigger",
    "lock_expiry",
    "child_wait",
    "poll_retry",
    "lease_lost",
    "child_stopped",
)
"""Every engine path the reach table counts, in the order it prints them."""

REACH_PREFIX = "reach_"
"""Prefix of the ``runs`` table's reach columns: ``reach_retry``, ``reach_step_timeout``..."""

# (phase, outcome) -> path, for the paths one record is evidence of.
_BY_MEMBERS: dict[tuple[Phase, Outcome], str] = {
    (Phase.RETRY, Outcome.SCHEDULED): "retry",
    (Phase.EXECUTE, Outcome.TIMED_OUT): "step_timeout",
    (Phase.COMPENSATE, Outcome.TIMED_OUT): "step_timeout",
    (Phase.COMPENSATE, Outcome.GAVE_UP): "failed_compensation",
    (Phase.SAGA, Outcome.DEADLINE_EXCEEDED): "saga_deadline",
    (Phase.SAGA, Outcome.RESUMED): "crash_resume",
    (Phase.SAGA, Outcome.DUPLICATE_TRIGGER): "duplicate_trigger",
    (Phase.CHILDREN, Outcome.WAITING): "child_wait",
    (Phase.POLL, Outcome.SCHEDULED): "poll_retry",
    (Phase.SAGA, Outcome.LEASE_LOST): "lease_lost",
    (Phase.SAGA, Outcome.PARENT_COMPENSATED): "child_stopped",
}
# NOTE: keyed by the members' plain value strings, which records hold: a lookup then matches by identity
# (see the note in ``simlab.evidence.trace_tables``).
_BY_RECORD: dict[tuple[str, str], str] = {(p.value, o.value): path for (p, o), path in _BY_MEMBERS.items()}
_BEGUN = (STARTED_OUTCOME, SKIPPED_OUTCOME)


def reach_column(path: str) -> str:
    """The ``runs`` table column holding ``path``'s count."""
    return f"{REACH_PREFIX}{path}"


class _HasReach(Protocol):
    @property
    def reach(self) -> dict[str, int]: ...


def reach_columns(result: _HasReach) -> dict[str, int]:
    """A run's reach as ``runs`` table cells: one ``reach_<path>`` column per path (zeros included)."""
    return {reach_column(path): int(result.reach.get(path, 0)) for path in REACH_PATHS}


def run_reach(records: Iterable[TraceRecord], lock_expiries: int = 0) -> dict[str, int]:
    """How many times each engine path was taken in one run (every path present, zeros included).

    ``lock_expiries`` comes from the lock ledger (``LockLedger.expired_while_held``): the trace
    cannot see a TTL run out.
    """
    counts = dict.fromkeys(REACH_PATHS, 0)
    completed: set[tuple[str, str | None]] = set()
    compensated: set[tuple[str, str | None]] = set()
    by_record = _BY_RECORD
    for r in records:
        phase, outcome = r.phase, r.outcome
        path = by_record.get((phase, outcome))
        if path is not None:
            counts[path] += 1
        if phase == EXECUTE_PHASE:
            if outcome == COMPLETED_OUTCOME:
                completed.add((r.saga_id, r.step))
            elif outcome == INVALID_RESULT_OUTCOME:
                completed.discard((r.saga_id, r.step))  # it ran to the end, yet the saga does not count it completed
        elif phase == COMPENSATE_PHASE and outcome in _BEGUN:  # ``is_compensation_start``
            key = (r.saga_id, r.step)
            if key not in compensated:
                compensated.add(key)
                if key not in completed:  # the engine compensates only completed and possibly applied steps
                    counts["possibly_applied_compensation"] += 1
    counts["lock_expiry"] = lock_expiries
    return counts
