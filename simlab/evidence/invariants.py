"""Invariants checked on every lab run, each violation with its time, sagas and a one-line explanation.

They read the run's ground truth only: the trace, the saga store, the write
model (and its purge history) and what the user-deletion sagas saw when they
declared a user deleted, the virtual brokers' own accounts, the sagas' declared
step definitions (retry policies), the simulated Redis, and the lock ledger (who
believed they held which lock). Never what a saga reported about itself. The
longer checks live in ``simlab.evidence.checks``, one module per concept; this module is
their registry. A check that lacks its independent source raises ``CannotCheck``
and is listed as not checked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sagas.engine.execution import compensation_seconds_bound
from sagas.engine.state import SagaState, SagaStatus
from sagas.engine.step import SagaStep
from sagas.engine.trace import TraceRecord
from sagas.trading.model import BrokerConnection, ConnectionStatus
from sagas.trading.wiring import saga_steps, trading_sagas
from simlab.evidence.checks.locks import foreign_deletions, locks_left_at_horizon
from simlab.evidence.checks.retry_policy import declared_policies, retry_policy_violations
from simlab.evidence.checks.steps import step_rerun_violations
from simlab.evidence.checks.triggers import one_saga_per_trigger_violations
from simlab.evidence.checks.violation import CannotCheck, Violation
from simlab.evidence.lock_ledger import LOCK_PREFIX, Hold, LockLedger
from simlab.evidence.trace_tables import (
    RESUMED_RUNNING,
    Outcome,
    Phase,
    is_compensation_done,
    is_compensation_start,
    is_resume,
    is_saga_end,
    is_saga_start,
    may_have_applied,
    records_by_saga,
)
from simlab.sim.trading_world import TradingWorld


@dataclass(frozen=True, slots=True)
class DeletionSnapshot:
    """What was left of a user when their deletion saga completed."""

    t: float
    saga_id: str
    user_id: str
    live_connections: tuple[str, ...]
    accounts: tuple[str, ...]


def terminal_by_horizon(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """Every saga ends by its own deadline, give or take the compensations that deadline starts.

    A saga still running at the horizon is a violation once the horizon lies past its deadline
    plus the longest its compensations may take (each compensation's attempts, cut at their
    deadline, with the longest delays its policy allows); a saga whose deadline, so extended, lies
    beyond the horizon may legitimately still be at work. The deadline is the saga's own, from the
    store; the compensations to allow for are those of the steps it has touched.
    """
    states = {s.saga_id: s for s in _all_states(world)}
    steps = _steps_by_type(world)
    found = []
    for saga_id, records in records_by_saga(world.sim.tracer.records).items():
        if not any(is_saga_start(r) for r in records):
            continue
        if any(is_saga_end(r) for r in records):
            continue
        last = records[-1]
        state = states.get(saga_id)
        due = "no stored state"
        if state is not None:
            allowance = compensation_seconds_bound(steps.get(state.saga_type, ()), state)
            if horizon_s < state.deadline_at + allowance:
                continue  # within its own deadline (and the compensations it may still be running)
            due = f"due by {state.deadline_at:g} s, {state.deadline_at + allowance:g} s with its compensations"
        found.append(
            Violation(
                "terminal_by_horizon",
                horizon_s,
                (saga_id,),
                f"{last.saga_type} still running at the {horizon_s:g} s horizon, {due} "
                f"(last: {last.step} {last.outcome})",
            )
        )
    return found


def _steps_by_type(world: TradingWorld) -> dict[str, tuple[SagaStep, ...]]:
    """Each trading saga type's steps as this world's configuration defines them (overrides applied)."""
    config = world.deps.config
    return {
        saga_type: tuple(config.apply_step_overrides(saga_type, steps))
        for saga_type, steps in saga_steps(config).items()
    }


def compensation_exact(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """Compensations ran for exactly the steps that completed or may have applied, last first, none twice

    (but for the documented re-run, after a resume, of the compensation in flight when its manager stopped).
    """
    found = []
    for saga_id, records in records_by_saga(world.sim.tracer.records).items():
        ended = [r for r in records if is_saga_end(r)]
        if not ended:
            continue
        problem = _compensation_problem(records, ended[-1].outcome)
        if problem is not None:
            found.append(Violation("compensation_exact", ended[-1].t, (saga_id,), f"{records[0].saga_type}: {problem}"))
    return found


_COMPENSATING_ENDS = (Outcome.COMPENSATED, Outcome.COMPENSATION_FAILED, Outcome.TIMED_OUT)
"""Terminal statuses of a saga that compensated what it had touched."""


def _compensation_problem(records: list[TraceRecord], status: str) -> str | None:
    """What is wrong with one ended saga's compensations (its records, its terminal status), or None."""
    expected = list(reversed(_touched_steps(records))) if status in _COMPENSATING_ENDS else []
    compensated = _compensated_steps(records)
    twice = sorted({s for s in compensated if compensated.count(s) > 1 and s is not None})
    if twice:
        return f"compensated {twice} twice"
    first_starts = _compensation_order(records)
    if first_starts != expected:
        return f"compensated {first_starts}, expected {expected}"
    return None


def _touched_steps(records: list[TraceRecord]) -> list[str]:
    """The steps a saga completed or may have applied, in the order first touched."""
    touched: list[str] = []
    in_flight: str | None = None
    for r in records:
        if r.phase == Phase.EXECUTE and r.step is not None:
            in_flight = None if r.outcome == Outcome.COMPLETED else r.step
        # A resumed saga counts the step it was in when the process died as possibly applied.
        resumed_in = is_resume(r) and r.detail == RESUMED_RUNNING and in_flight is not None
        step = in_flight if resumed_in else (r.step if may_have_applied(r) else None)
        if step is not None and step not in touched:
            touched.append(step)
    return touched


def _compensated_steps(records: list[TraceRecord]) -> list[str | None]:
    """Each compensation done, once per time it was done (but for the documented re-run after a resume)."""
    compensated: list[str | None] = []
    last_compensating: str | None = None  # the compensation that ran last: in flight if the manager stops
    for r in records:
        if r.phase == Phase.COMPENSATE:
            last_compensating = r.step
            if is_compensation_done(r):
                compensated.append(r.step)
        elif is_resume(r) and last_compensating in compensated:
            # It ran, but its manager stopped before the store recorded it: the resumed saga runs it
            # once more, as documented (compensations are idempotent). Count it once.
            compensated.remove(last_compensating)
    return compensated


def _compensation_order(records: list[TraceRecord]) -> list[str]:
    """The steps whose compensation began, in the order each first began."""
    first_starts: list[str] = []
    for r in records:
        if is_compensation_start(r) and r.step not in first_starts:
            first_starts.append(str(r.step))
    return first_starts


def no_data_loss(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """No connection is purged while connected; a connected connection keeps the accounts its broker has.

    The accounts expected are the broker's own (``accounts_of`` of the virtual broker: its
    ground truth), never what a saga said it discovered. They are expected once a connection
    saga that started after the connection last became connected has completed: from then on
    the connection stayed connected, so nothing may take its accounts away. Without such a
    saga (the reconnect's saga failed or still runs) missing accounts are a failure, not a loss.
    """
    write = world.platform.write
    found = [
        Violation(
            "no_data_loss",
            purge.t,
            _sagas_of(world, purge.broker_connection_id),
            f"connection {purge.broker_connection_id} was purged while {purge.status_at_purge}: the user's live "
            "connection is gone",
        )
        for purge in write.purges
        if purge.status_at_purge == ConnectionStatus.CONNECTED.value
    ]
    for connection in write.connections.values():
        if connection.status is not ConnectionStatus.CONNECTED:
            continue
        linker = _completed_since_connected(world, connection)
        if linker is None:
            continue
        truth = _broker_accounts(world, connection)
        linked = {a.external_id for a in write.accounts_of(connection.connection_id)}
        missing = sorted(truth - linked)
        if missing:
            found.append(
                Violation(
                    "no_data_loss",
                    horizon_s,
                    _sagas_of(world, connection.connection_id),
                    f"connection {connection.connection_id} is connected with {len(truth) - len(missing)} of the "
                    f"{len(truth)} accounts its broker has (missing {', '.join(missing)}), although "
                    f"{linker.saga_type} {linker.saga_id} completed for it at t={linker.updated_at:g}",
                )
            )
    return found


def _completed_since_connected(world: TradingWorld, connection: BrokerConnection) -> SagaState | None:
    """The first connection saga that started after ``connection`` last became connected and completed."""
    done = [
        s
        for s in _all_states(world)
        if s.saga_type == "BrokerConnectionSaga"
        and s.trigger_data.get("broker_connection_id") == connection.connection_id
        and s.started_at >= connection.connected_at
        and s.status is SagaStatus.COMPLETED
    ]
    return min(done, key=lambda s: (s.updated_at, s.saga_id)) if done else None


def _broker_accounts(world: TradingWorld, connection: BrokerConnection) -> set[str]:
    """External ids of the accounts the connection's broker itself has for it (its ground truth)."""
    broker = world.brokers.get(connection.broker_id)
    accounts_of = getattr(broker, "accounts_of", None)
    if accounts_of is None:
        raise CannotCheck(f"broker {connection.broker_id!r} does not tell its accounts (no ground truth)")
    return {account.external_id for account in accounts_of(connection.connection_id)}


def no_orphans(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """No account is left without its connection."""
    write = world.platform.write
    found = []
    for account in write.accounts.values():
        connection = write.connections.get(account.connection_id)
        if connection is None or connection.status is ConnectionStatus.PURGED:
            found.append(
                Violation(
                    "no_orphans",
                    horizon_s,
                    _sagas_of(world, account.connection_id),
                    f"account {account.account_id} outlived its connection {account.connection_id} (purged)",
                )
            )
    return found


def disconnect_completed(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """A connection its user disconnected (and did not reconnect) is purged by the horizon.

    The disconnection saga ends in the purge; a saga that gives up (for example when its
    eventual-consistency poll runs out before the account projection catches up) leaves the
    connection stranded in ``disconnected``, still holding whatever the purge would have removed.
    """
    found = []
    for connection in world.platform.write.connections.values():
        if connection.status is ConnectionStatus.DISCONNECTED:
            last = _last_saga(world, "BrokerDisconnectionSaga", connection.connection_id)
            how = f"its disconnection saga ended {last.status.value}" if last is not None else "no disconnection ran"
            found.append(
                Violation(
                    "disconnect_completed",
                    horizon_s,
                    _sagas_of(world, connection.connection_id),
                    f"connection {connection.connection_id} is still disconnected, not purged, at the "
                    f"{horizon_s:g} s horizon ({how})",
                )
            )
    return found


def no_duplicate_accounts(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """No connection has two accounts for the same broker account."""
    seen: dict[tuple[str, str], str] = {}
    found = []
    for account in world.platform.write.accounts.values():
        key = (account.connection_id, account.external_id)
        if key in seen:
            found.append(
                Violation(
                    "no_duplicate_accounts",
                    horizon_s,
                    _sagas_of(world, account.connection_id),
                    f"accounts {seen[key]} and {account.account_id} both stand for {account.external_id}",
                )
            )
        seen.setdefault(key, account.account_id)
    return found


def deleted_user_clean(world: TradingWorld, horizon_s: float, snapshots: Iterable[DeletionSnapshot]) -> list[Violation]:
    """When a user's deletion saga completes, nothing of the user is left."""
    return [
        Violation(
            "deleted_user_clean",
            snap.t,
            (snap.saga_id,),
            f"user {snap.user_id} declared deleted with {len(snap.live_connections)} unpurged connection(s) and "
            f"{len(snap.accounts)} account(s) left",
        )
        for snap in snapshots
        if snap.live_connections or snap.accounts
    ]


def position_matches_fills(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """A position's quantity equals the sum of the order fills applied to it (and not reverted)."""
    write = world.platform.write
    applied: dict[str, float] = defaultdict(float)
    for fill in write.applied_fills.values():
        applied[fill.position_id] += fill.signed
    found = []
    for position in write.positions.values():
        total = applied.get(position.position_id, 0.0)
        if abs(position.quantity - total) > 1e-9:
            found.append(
                Violation(
                    "position_matches_fills",
                    horizon_s,
                    (),
                    f"position {position.position_id} holds {position.quantity:g} but its fills sum to {total:g}",
                )
            )
    return found


def _last_saga(world: TradingWorld, saga_type: str, connection_id: str) -> SagaState | None:
    states = [
        s
        for s in _all_states(world)
        if s.saga_type == saga_type and s.trigger_data.get("broker_connection_id") == connection_id
    ]
    return max(states, key=lambda s: (s.started_at, s.transitions)) if states else None


def _sagas_of(world: TradingWorld, connection_id: str) -> tuple[str, ...]:
    return tuple(s.saga_id for s in _all_states(world) if s.trigger_data.get("broker_connection_id") == connection_id)


_states_cache: list[tuple[object, int, list[SagaState]]] = []


def _all_states(world: TradingWorld) -> list[SagaState]:
    # Several checks look sagas up per connection; rebuilding every state each time made checking
    # quadratic. One cached read per store version (the store does not change while checks run).
    store = world.sim.store
    version = getattr(store, "version", None)
    if _states_cache and _states_cache[0][0] is store and _states_cache[0][1] == version:
        return _states_cache[0][2]
    all_states = getattr(store, "all_states", None)
    states = all_states() if all_states is not None else []
    _states_cache[:] = [(store, version if version is not None else -1, states)]
    return states


def retry_policy_obeyed(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """Every step's attempts, compensations and polls keep the retry policy its saga declares.

    See ``simlab.evidence.checks.retry_policy``; the policies are the trading sagas' definitions under
    the run's configuration (the scenario's step overrides applied), not the trace's own.
    """
    return retry_policy_violations(world.sim.tracer.records, declared_policies(trading_sagas(world.deps)))


def one_saga_per_trigger(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """At most one saga per (saga type, trigger event id) in the saga store."""
    return one_saga_per_trigger_violations(_all_states(world))


def no_step_applied_twice(world: TradingWorld, horizon_s: float) -> list[Violation]:
    """No completed step runs again, but the one a dead manager was in (see ``simlab.evidence.checks.steps``)."""
    return step_rerun_violations(world.sim.tracer.records)


def lock_hygiene(world: TradingWorld, horizon_s: float, ledger: LockLedger) -> list[Violation]:
    """At the horizon no lock is held by a finished or dead saga and every lock expires; no lock was
    deleted by a process that did not hold it while its holder did (see ``simlab.evidence.checks.locks``)."""
    states = {s.saga_id: s for s in _all_states(world)}
    live = {saga_id for manager in (world.manager, *world.sim.others) for saga_id in manager.running}
    left = locks_left_at_horizon(world.redis, states, live, horizon_s)
    return foreign_deletions(ledger.foreign_deletions) + left


CHECKS: dict[str, Callable[[TradingWorld, float], list[Violation]]] = {
    "terminal_by_horizon": terminal_by_horizon,
    "compensation_exact": compensation_exact,
    "no_data_loss": no_data_loss,
    "no_orphans": no_orphans,
    "no_duplicate_accounts": no_duplicate_accounts,
    "disconnect_completed": disconnect_completed,
    "position_matches_fills": position_matches_fills,
    "retry_policy_obeyed": retry_policy_obeyed,
    "one_saga_per_trigger": one_saga_per_trigger,
    "no_step_applied_twice": no_step_applied_twice,
}


def single_lock_holder(world: TradingWorld, holds: Iterable[Hold]) -> list[Violation]:
    """No holder of a connection's lock gets a write accepted after a later holder of that lock wrote.

    Under process pauses no lock can stop two sagas from believing they hold it at once: a holder
    frozen past its TTL wakes up believing it still does (the lock ledger records these overlaps, and
    the run result counts them). What must never follow is an effect of the stale holder on the
    connection once the new holder has acted, since the new holder decided on what it had seen. So
    this compares two independent records: the write model's accepted writes (who, when, in order)
    and the ledger's holds (who believed they held which lock, from when, until when). A write by a
    saga that believed it held the lock at that instant, accepted after a write by a saga that took
    the same lock later, is a violation. Fencing tokens prevent it; the check does not read them.
    """
    by_key: dict[str, list[Hold]] = defaultdict(list)
    for hold in holds:
        by_key[hold.key].append(hold)
    found = []
    writes = world.platform.write.writes
    for index, write in enumerate(writes):
        key = LOCK_PREFIX + write.broker_connection_id
        believed = [
            h
            for h in by_key.get(key, ())
            # Only its own release ends a holder's belief: a hold whose process died lives on in the
            # saga's stored state (resumed, it believes again), and one deleted by another is still believed.
            if h.owner == write.saga_id and h.start <= write.t and (h.released_at is None or h.released_at >= write.t)
        ]
        if not believed:
            continue  # not a write under this lock
        mine = max(believed, key=lambda h: h.start)
        for newer in by_key[key]:
            if newer.owner == write.saga_id or not mine.start < newer.start <= write.t:
                continue
            acted = next(
                (
                    w
                    for w in writes[:index]
                    if w.saga_id == newer.owner
                    and w.broker_connection_id == write.broker_connection_id
                    and w.t >= newer.start
                ),
                None,
            )
            if acted is None:
                continue
            ran_out = f"its TTL ran out at {mine.expires_at:g} s" if mine.expires_at is not None else "it had no TTL"
            found.append(
                Violation(
                    "single_lock_holder",
                    write.t,
                    (write.saga_id, newer.owner),
                    f"{write.saga_id}'s {write.command} on connection {write.broker_connection_id} was accepted at "
                    f"{write.t:g} s while it still believed it held {key} ({ran_out}), after {newer.owner} had "
                    f"taken the lock at {newer.start:g} s and written ({acted.command} at {acted.t:g} s)",
                )
            )
            break
    return found


def check_invariants(
    world: TradingWorld,
    names: Iterable[str],
    horizon_s: float,
    snapshots: Iterable[DeletionSnapshot] = (),
    *,
    ledger: LockLedger | None = None,
) -> tuple[list[Violation], list[str]]:
    """Run the named checks; return the violations (by time) and the names that could not be checked.

    ``lock_hygiene`` and ``single_lock_holder`` need the run's ``ledger``; a check that raises
    ``CannotCheck`` is not checked.
    """
    violations: list[Violation] = []
    unchecked: list[str] = []
    for name in names:
        try:
            if name == "deleted_user_clean":
                violations += deleted_user_clean(world, horizon_s, snapshots)
            elif name == "single_lock_holder" and ledger is not None:
                violations += single_lock_holder(world, ledger.holds)
            elif name == "lock_hygiene" and ledger is not None:
                violations += lock_hygiene(world, horizon_s, ledger)
            elif name in CHECKS:
                violations += CHECKS[name](world, horizon_s)
            else:
                unchecked.append(name)
        except CannotCheck:
            unchecked.append(name)
    return sorted(violations, key=lambda v: (v.t, v.invariant, v.saga_ids)), unchecked
