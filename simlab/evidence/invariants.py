"""The invariants checked on every lab run: one registry entry each, with its check and the evidence it needs.

Each violation comes with its time, sagas and a one-line explanation. The checks read the
run's ground truth only (``simlab.evidence.sources``: the trace, the saga store, the write
model, the brokers' own accounts, the sagas' declared step definitions, the simulated
Redis and live managers, the lock ledger, what the deletion sagas saw), never what a saga
reported about itself; they live in ``simlab.evidence.checks``, one module per concept.
An invariant whose evidence the run lacks, or whose check raises ``CannotCheck``, is listed
as not checked rather than called clean.

To add an invariant: write its check (``Evidence`` in, violations out) in a module of
``simlab.evidence.checks`` and add one ``Invariant`` to ``INVARIANTS`` below; scenarios
name it from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from simlab.evidence.checks.endings import compensation_exact, terminal_by_horizon
from simlab.evidence.checks.locks import lock_hygiene, single_lock_holder
from simlab.evidence.checks.retry_policy import retry_policy_obeyed
from simlab.evidence.checks.steps import no_step_applied_twice
from simlab.evidence.checks.triggers import one_saga_per_trigger
from simlab.evidence.checks.violation import CannotCheck, Violation
from simlab.evidence.checks.write_model import (
    deleted_user_clean,
    disconnect_completed,
    no_data_loss,
    no_duplicate_accounts,
    no_orphans,
    position_matches_fills,
)
from simlab.evidence.sources import Evidence, Source

__all__ = ["INVARIANTS", "CannotCheck", "Evidence", "Invariant", "Source", "Violation", "check_invariants"]

Check = Callable[[Evidence], list[Violation]]


@dataclass(frozen=True, slots=True)
class Invariant:
    """One invariant: its name (as scenarios spell it), its check, and the sources its check reads."""

    name: str
    check: Check
    needs: frozenset[Source]


def _invariant(name: str, check: Check, *needs: Source) -> tuple[str, Invariant]:
    return name, Invariant(name, check, frozenset(needs))


TRACE, STORE, WRITES, BROKERS = Source.TRACE, Source.STORE, Source.WRITE_MODEL, Source.BROKERS
DEFINITIONS, REDIS, MANAGERS, LEDGER = Source.DEFINITIONS, Source.REDIS, Source.MANAGERS, Source.LOCK_LEDGER

INVARIANTS: dict[str, Invariant] = dict(
    [
        _invariant("terminal_by_horizon", terminal_by_horizon, TRACE, STORE, DEFINITIONS),
        _invariant("compensation_exact", compensation_exact, TRACE),
        _invariant("no_data_loss", no_data_loss, WRITES, BROKERS, STORE),
        _invariant("no_orphans", no_orphans, WRITES, STORE),
        _invariant("no_duplicate_accounts", no_duplicate_accounts, WRITES, STORE),
        _invariant("disconnect_completed", disconnect_completed, WRITES, STORE),
        _invariant("single_lock_holder", single_lock_holder, WRITES, LEDGER),
        _invariant("deleted_user_clean", deleted_user_clean, Source.DELETIONS),
        _invariant("position_matches_fills", position_matches_fills, WRITES),
        _invariant("retry_policy_obeyed", retry_policy_obeyed, TRACE, DEFINITIONS),
        _invariant("one_saga_per_trigger", one_saga_per_trigger, STORE),
        _invariant("lock_hygiene", lock_hygiene, REDIS, STORE, MANAGERS, LEDGER),
        _invariant("no_step_applied_twice", no_step_applied_twice, TRACE),
    ]
)
"""Every invariant, by name, in the order a scenario checks them when it names none."""


def check_invariants(evidence: Evidence, names: Iterable[str]) -> tuple[list[Violation], list[str]]:
    """Run the named invariants' checks on ``evidence``; return the violations (by time) and the names not checked.

    A name is not checked when no invariant has it, when the run lacks a source its invariant
    needs (no lock ledger watched it, say), or when its check raises ``CannotCheck``.
    """
    violations: list[Violation] = []
    unchecked: list[str] = []
    for name in names:
        invariant = INVARIANTS.get(name)
        if invariant is None or not all(evidence.has(source) for source in invariant.needs):
            unchecked.append(name)
            continue
        try:
            violations += invariant.check(evidence)
        except CannotCheck:
            unchecked.append(name)
    return sorted(violations, key=lambda v: (v.t, v.invariant, v.saga_ids)), unchecked
