"""Lock hygiene: no lock left behind by a finished or dead saga, none without expiry, none taken from its holder.

How this works: at the horizon the simulated Redis itself is read (every key with the
lock prefix, its value and its PTTL), and each lock's owner is looked up in the saga
store and among the sagas the live manager still runs. During the run the lock ledger
noted every deletion of a lock key whose value named a live holder other than the
deleting process (the seed's ``safe_delete`` of a lock that expired under a paused
holder and was taken by another is the classic one).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sagas.engine.state import SagaState
from simlab.evidence.checks.violation import Violation
from simlab.evidence.lock_ledger import LOCK_PREFIX, ForeignDeletion, owner_of

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
