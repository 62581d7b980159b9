"""Who believes they hold which lock, and when: the evidence for the single-lock-holder invariant.

How this works: ``LedgerRedis`` wraps the Redis client that locks and the seed's
``safe_set``/``safe_delete`` use (a wrapper around a port, like the fault families).
A successful ``SET key owner NX`` on a lock key (alone, or inside the fenced
acquisition's transaction) opens a hold for the owner; a ``DEL`` of the key
(directly, or inside the owner-checked release transaction) closes the deleting
process's own hold (``released_at``). A hold also ends when its holder's process has
died (a crashed manager's saga believes nothing any more). A second hold opening while
another one on the same key is still believed is an overlap: two holders at once,
which a TTL that ran out during a long pause produces. No lock can prevent that;
what must not follow from it is a write the stale holder gets accepted after the new
holder acted (``single_lock_holder`` compares these holds with the write model's
record of writes).

Two more things the ledger sees, for lock hygiene and the reach table: a deletion of a
key whose value (read from Redis just before the DEL runs) names a live holder other
than the deleting process (``foreign_deletions``), and a hold whose TTL ran out while
its holder still believed in it (``expired_while_held``: the holder neither deleted it nor
died before the expiry; its death time comes from a callback on its process, so the
ledger schedules nothing and moves no event).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sagas.trading.sagas.base import CONNECTION_LOCK_PREFIX
from simlab.sim.runtime import SimTask
from simlab.sim.world import SimWorld

LOCK_PREFIX = CONNECTION_LOCK_PREFIX  # the locks the ledger watches: the trading sagas' connection locks


@dataclass
class Hold:
    """A believed hold: ``end`` is None while it lasts; ``expires_at`` is when its TTL runs out (None: never)."""

    key: str
    owner: str
    start: float
    end: float | None
    task: SimTask | None  # the holder's task (None: taken outside any task)
    expires_at: float | None = None
    died_at: float | None = None
    released_at: float | None = None  # when its holder deleted the key itself (its belief ends only so)
    taken_at: float | None = None  # when a process that did not hold it deleted the key


@dataclass(frozen=True, slots=True)
class ForeignDeletion:
    """A lock key deleted by a process that did not hold it, while its holder still did."""

    t: float
    key: str
    deleter: str
    holder: str


@dataclass(frozen=True, slots=True)
class Overlap:
    """Two holders of one lock at the same instant."""

    t: float
    key: str
    first_owner: str
    second_owner: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def owner_of(value: Any) -> str:
    """The saga a lock value names: the seed's value is ``saga_id:timestamp``, the safe lock's the saga id."""
    return _text(value).split(":", 1)[0]


def _ttl_s(kwargs: dict[str, Any]) -> float | None:
    if kwargs.get("px") is not None:
        return float(kwargs["px"]) / 1000.0
    if kwargs.get("ex") is not None:
        return float(kwargs["ex"])
    return None


class LockLedger:
    """Every hold of every lock in one run, and the overlaps among them."""

    def __init__(self, world: SimWorld) -> None:
        self._runtime = world.runtime
        self._saga_of = world.saga_of  # names a deleting task by the saga it drives
        self.holds: list[Hold] = []
        self.overlaps: list[Overlap] = []
        self.foreign_deletions: list[ForeignDeletion] = []

    def opened(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        """A ``SET NX`` on ``key`` succeeded for the owner named in ``value``; it expires after ``ttl_s`` (or never)."""
        now = self._runtime.now()
        owner = owner_of(value)
        for hold in self._open(key, now):
            self.overlaps.append(Overlap(now, key, hold.owner, owner))
        task = self._runtime.current_task()
        hold = Hold(key, owner, now, None, task, None if ttl_s is None else now + ttl_s)
        self.holds.append(hold)
        if task is not None:
            task.when_done(lambda: self._died(hold))

    def _died(self, hold: Hold) -> None:
        hold.died_at = self._runtime.now()

    def expired_while_held(self) -> list[Hold]:
        """Holds whose TTL ran out by now while their holder still believed in them.

        Believed: the holder had not deleted the key, had not died, and nobody else had deleted
        it, when its TTL ran out. A holder paused past its TTL is the usual way.
        """
        now = self._runtime.now()
        expired = []
        for hold in self.holds:
            at = hold.expires_at
            if at is None or at > now:
                continue
            ends = [t for t in (hold.end, hold.died_at, hold.taken_at) if t is not None]
            if not ends or min(ends) > at:
                expired.append(hold)
        return expired

    def deleting(self, key: str, value: Any) -> None:
        """``key`` is about to be deleted while holding ``value`` (None: absent): note a holder's lock taken away.

        Only a live hold counts: a crashed process's lock deleted by its resumed saga (same owner)
        or by anyone after its holder died takes nothing from anybody.
        """
        if value is None:
            return
        now = self._runtime.now()
        task = self._runtime.current_task()
        holder = owner_of(value)
        theirs = [h for h in self._open(key, now) if h.owner == holder]
        if theirs and all(h.task is not task for h in theirs):
            for hold in theirs:
                hold.taken_at = now
            self.foreign_deletions.append(ForeignDeletion(now, key, self._who(task, key, now), holder))

    def _who(self, task: SimTask | None, key: str, now: float) -> str:
        """The deleting task as a saga id (its own believed hold of ``key``, else the saga it drives, else its name)."""
        for hold in self._open(key, now):
            if hold.task is task:
                return hold.owner
        if task is None:
            return "an unknown process"
        return self._saga_of(task) or task.name

    def closed(self, key: str) -> None:
        """``key`` was deleted: the deleting process's own hold on it ends now.

        Another process's hold goes on: the seed's ``safe_delete`` can remove a lock that a
        later holder took after the TTL ran out, and that holder still believes it holds it.
        """
        now = self._runtime.now()
        task = self._runtime.current_task()
        for hold in self._open(key, now):
            if task is None or hold.task is task:
                hold.end = hold.released_at = now

    def _open(self, key: str, now: float) -> list[Hold]:
        still = []
        for hold in self.holds:
            if hold.key != key or hold.end is not None:
                continue
            if hold.task is not None and hold.task.done():
                hold.end = now  # its process is gone: nobody believes in this hold any more
                continue
            still.append(hold)
        return still

    def spans(self) -> list[tuple[str, str, float, float]]:
        """(key, owner, start, end) of every hold, open ones ending now (for the timeline figure)."""
        now = self._runtime.now()
        return [(h.key, h.owner, h.start, h.end if h.end is not None else now) for h in self.holds]


class LedgerRedis:
    """The Redis client, reporting lock acquisitions and deletions to a ``LockLedger``."""

    def __init__(self, inner: Any, ledger: LockLedger) -> None:
        self.inner = inner
        self._ledger = ledger

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        """SET; a successful ``NX`` on a lock key opens a hold."""
        result = self.inner.set(name, value, *args, **kwargs)
        if kwargs.get("nx") and result and _text(name).startswith(LOCK_PREFIX):
            self._ledger.opened(_text(name), value, _ttl_s(kwargs))
        return result

    def delete(self, *names: Any) -> Any:
        """DEL; deleting a lock key closes its holds (and a live other holder's is noted first)."""
        for name in names:
            if _text(name).startswith(LOCK_PREFIX):
                self._ledger.deleting(_text(name), self.inner.get(name))
        result = self.inner.delete(*names)
        for name in names:
            if _text(name).startswith(LOCK_PREFIX):
                self._ledger.closed(_text(name))
        return result

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> LedgerPipeline:
        """A pipeline whose executed deletions of lock keys close their holds."""
        return LedgerPipeline(self.inner.pipeline(transaction, shard_hint), self._ledger, self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LedgerPipeline:
    """A pipeline that remembers queued deletions and ``SET NX`` of lock keys and reports them once executed."""

    def __init__(self, inner: Any, ledger: LockLedger, client: Any = None) -> None:
        self.inner = inner
        self._ledger = ledger
        self._client = client  # reads a queued key's value just before EXEC (a read does not disturb WATCH)
        self._queued: list[str] = []
        # (position in the transaction, key, value, ttl) of each queued SET NX of a lock key
        self._queued_sets: list[tuple[int, str, Any, float | None]] = []
        self._in_transaction = False

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        """SET, buffered until EXEC (a fenced lock acquisition): a successful ``NX`` on a lock key opens a hold."""
        position = len(self.inner.command_stack)
        result = self.inner.set(name, value, *args, **kwargs)
        if kwargs.get("nx") and _text(name).startswith(LOCK_PREFIX):
            self._queued_sets.append((position, _text(name), value, _ttl_s(kwargs)))
        return result

    def reset(self) -> Any:
        """Forget what was queued (an unexecuted transaction opens and closes nothing)."""
        self._queued.clear()
        self._queued_sets.clear()
        self._in_transaction = False
        return self.inner.reset()

    def multi(self) -> None:
        """Start queueing (after WATCH)."""
        self._in_transaction = True
        self.inner.multi()

    def delete(self, *names: Any) -> Any:
        """DEL, queued inside MULTI (reported when EXEC succeeds), else run at once."""
        keys = [_text(n) for n in names if _text(n).startswith(LOCK_PREFIX)]
        if not self._in_transaction and self._client is not None:
            for key in keys:
                self._ledger.deleting(key, self._client.get(key))
        result = self.inner.delete(*names)
        if self._in_transaction:
            self._queued.extend(keys)
        else:
            for key in keys:
                self._ledger.closed(key)
        return result

    def execute(self, raise_on_error: bool = True) -> Any:
        """EXEC; its deletions of lock keys close their holds (an aborted transaction closes none)."""
        values = [(key, self._client.get(key)) for key in self._queued] if self._client is not None else []
        result = self.inner.execute(raise_on_error)
        for key, value in values:
            self._ledger.deleting(key, value)
        for key in self._queued:
            self._ledger.closed(key)
        self._queued.clear()
        for position, key, value, ttl_s in self._queued_sets:
            if result[position]:
                self._ledger.opened(key, value, ttl_s)
        self._queued_sets.clear()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
