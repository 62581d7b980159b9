"""Lock hygiene: no lock left behind by a finished or dead saga, none without expiry, none taken from its holder.

How this works: at the horizon the simulated Redis itself is read (every key with the
lock prefix, its value and its PTTL), and each lock's owner is looked up in the saga
store and among the sagas the live manager still runs. During the run the lock ledger
noted every deletion of a lock key whose value named a live holder other than the
deleting process (the seed's ``safe_delete`` of a lock that expired under a paused
holder and was taken by another is the classic one).

``single_lock_holder`` compares two other independent records: the write model's accepted
writes and the ledger's holds (see its docstring).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sagas.engine.state import SagaState
from sagas.trading.fencing import ConnectionWrite
from simlab.evidence.checks.violation import Violation
from simlab.evidence.lock_ledger import LOCK_PREFIX, ForeignDeletion, Hold, owner_of
from simlab.evidence.sources import Evidence

NAME = "lock_hygiene"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def locks_left_at_horizon(
    redis: Any,
    states: Mapping[str, SagaState],
    running: Collection[str],
    horizon_s: float,
    prefix: str = LOCK_PREFIX,
) -> list[Violation]:
    """Lock keys in ``redis`` (read now, at the horizon) without expiry, or held by a saga that ended or died.

    ``states`` are the store's sagas by id; ``running`` the ids the live manager still runs. A saga
    that is neither finished nor running had its process die (a crashed manager) and is not resumed.
    """
    found = []
    for key in sorted(_text(k) for k in redis.scan_iter(match=f"{prefix}*")):
        value = redis.get(key)
        if value is None:
            continue  # expired between the scan and the read
        owner = owner_of(value)
        who = (owner,)
        if redis.pttl(key) == -1:
            found.append(Violation(NAME, horizon_s, who, f"lock {key} (held by {owner}) has no expiry"))
        state = states.get(owner)
        if state is None:
            found.append(Violation(NAME, horizon_s, who, f"lock {key} is held by {owner}, which is no saga"))
        elif state.status.is_terminal:
            found.append(
                Violation(
                    NAME,
                    horizon_s,
                    who,
                    f"lock {key} is still held at the horizon by {state.saga_type} {owner}, which ended "
                    f"{state.status.value} at t={state.updated_at:g}",
                )
            )
        elif owner not in running:
            found.append(
                Violation(
                    NAME,
                    horizon_s,
                    who,
                    f"lock {key} is still held at the horizon by {state.saga_type} {owner}, which no live "
                    "manager runs (its process died)",
                )
            )
    return found


def foreign_deletions(deletions: Iterable[ForeignDeletion]) -> list[Violation]:
    """A lock deleted by a process that did not hold it, while its holder was alive and believed it held it."""
    return [
        Violation(
            NAME,
            d.t,
            (d.deleter, d.holder),
            f"{d.deleter} deleted lock {d.key}, which {d.holder} held (and still believed it held)",
        )
        for d in deletions
    ]


def lock_hygiene(ev: Evidence) -> list[Violation]:
    """At the horizon no lock is held by a finished or dead saga and every lock expires; no lock was
    deleted by a process that did not hold it while its holder did (see ``simlab.evidence.checks.locks``)."""
    world = ev.world
    live = {saga_id for manager in (world.manager, *world.sim.others) for saga_id in manager.running}
    left = locks_left_at_horizon(world.redis, ev.states_by_id(), live, ev.horizon_s)
    return foreign_deletions(ev.lock_ledger().foreign_deletions) + left


def single_lock_holder(ev: Evidence) -> list[Violation]:
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
    holders: set[tuple[str, str]] = set()  # (key, owner) of every hold
    for hold in ev.lock_ledger().holds:
        by_key[hold.key].append(hold)
        holders.add((hold.key, hold.owner))
    writes = ev.world.platform.write.writes
    found = []
    for index, w in enumerate(writes):
        key = LOCK_PREFIX + w.broker_connection_id
        if (key, w.saga_id) not in holders:
            continue  # a saga that never held this lock wrote: no write under it (``_stale_write`` says None)
        violation = _stale_write(writes, index, by_key[key])
        if violation is not None:
            found.append(violation)
    return found


def _stale_write(writes: Sequence[ConnectionWrite], index: int, holds: list[Hold]) -> Violation | None:
    """The violation if ``writes[index]`` came from a stale holder of its connection's lock (``holds``), else None."""
    write = writes[index]
    key = LOCK_PREFIX + write.broker_connection_id
    believed = [
        h
        for h in holds
        # Only its own release ends a holder's belief: a hold whose process died lives on in the
        # saga's stored state (resumed, it believes again), and one deleted by another is still believed.
        if h.owner == write.saga_id and h.start <= write.t and (h.released_at is None or h.released_at >= write.t)
    ]
    if not believed:
        return None  # not a write under this lock
    mine = max(believed, key=lambda h: h.start)
    for newer in holds:
        if newer.owner == write.saga_id or not mine.start < newer.start <= write.t:
            continue
        acted = next(
            (
                w
                for w in itertools.islice(writes, index)  # the writes accepted before this one (no copy)
                if w.saga_id == newer.owner
                and w.broker_connection_id == write.broker_connection_id
                and w.t >= newer.start
            ),
            None,
        )
        if acted is None:
            continue
        ran_out = f"its TTL ran out at {mine.expires_at:g} s" if mine.expires_at is not None else "it had no TTL"
        return Violation(
            "single_lock_holder",
            write.t,
            (write.saga_id, newer.owner),
            f"{write.saga_id}'s {write.command} on connection {write.broker_connection_id} was accepted at "
            f"{write.t:g} s while it still believed it held {key} ({ran_out}), after {newer.owner} had "
            f"taken the lock at {newer.start:g} s and written ({acted.command} at {acted.t:g} s)",
        )
    return None
