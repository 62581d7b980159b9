"""Who believes they hold which lock, and when: the evidence for the single-lock-holder invariant.

How this works: ``LedgerRedis`` wraps the Redis client that locks and the seed's
``safe_set``/``safe_delete`` use (a wrapper around a port, like the fault families).
A successful ``SET key owner NX`` on a lock key (alone, or inside the fenced
acquisition's transaction) opens a hold for the owner, with the instant its TTL
runs out; a ``DEL`` of the key (directly, or inside the owner-checked release
transaction) closes the deleting process's own hold. A hold also ends when its
holder's process has died (a crashed manager's saga believes nothing any more). A
second hold opening while another one on the same key is still believed is an
overlap: two holders at once, which a TTL that ran out during a long pause
produces. No lock can prevent that; what must not follow from it is a write the
stale holder gets accepted after the new holder acted (``single_lock_holder``
compares these holds with the write model's record of writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simpy.events import PENDING

from simlab.runtime import SimRuntime

LOCK_PREFIX = "broker:disconnect:lock:"


@dataclass
class Hold:
    """A believed hold: ``end`` is None while it lasts; ``expires`` is when its TTL runs out (None: no TTL)."""

    key: str
    owner: str
    start: float
    end: float | None
    process: Any
    expires: float | None = None
    died: bool = False  # ended because its process died, not by a release: a resumed saga believes in it again


@dataclass(frozen=True, slots=True)
class Overlap:
    """Two holders of one lock at the same instant."""

    t: float
    key: str
    first_owner: str
    second_owner: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ttl_s(kwargs: dict[str, Any]) -> float | None:
    """The TTL a SET's ``px``/``ex`` asks for, in seconds."""
    if kwargs.get("px"):
        return float(kwargs["px"]) / 1000.0
    if kwargs.get("ex"):
        return float(kwargs["ex"])
    return None


class LockLedger:
    """Every hold of every lock in one run, and the overlaps among them."""

    def __init__(self, runtime: SimRuntime) -> None:
        self._runtime = runtime
        self.holds: list[Hold] = []
        self.overlaps: list[Overlap] = []

    def opened(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        """A ``SET NX`` on ``key`` succeeded for the owner named in ``value``, for ``ttl_s`` seconds."""
        now = self._runtime.now()
        owner = _text(value).split(":", 1)[0]  # the seed's value is "saga_id:timestamp"; the safe lock's, saga_id
        for hold in self._open(key, now):
            self.overlaps.append(Overlap(now, key, hold.owner, owner))
        expires = now + ttl_s if ttl_s is not None else None
        self.holds.append(Hold(key, owner, now, None, self._runtime.env.active_process, expires))

    def closed(self, key: str) -> None:
        """``key`` was deleted: the deleting process's own hold on it ends now.

        Another process's hold goes on: the seed's ``safe_delete`` can remove a lock that a
        later holder took after the TTL ran out, and that holder still believes it holds it.
        """
        now = self._runtime.now()
        process = self._runtime.env.active_process
        for hold in self._open(key, now):
            if process is None or hold.process is process:
                hold.end = now

    def _open(self, key: str, now: float) -> list[Hold]:
        still = []
        for hold in self.holds:
            if hold.key != key or hold.end is not None:
                continue
            if hold.process is not None and hold.process._value is not PENDING:
                hold.end, hold.died = now, True  # its process is gone: nobody believes in this hold any more
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
        """DEL; deleting a lock key closes its holds."""
        result = self.inner.delete(*names)
        for name in names:
            if _text(name).startswith(LOCK_PREFIX):
                self._ledger.closed(_text(name))
        return result

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> LedgerPipeline:
        """A pipeline whose executed deletions of lock keys close their holds."""
        return LedgerPipeline(self.inner.pipeline(transaction, shard_hint), self._ledger)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LedgerPipeline:
    """A pipeline that remembers queued deletions and ``SET NX`` of lock keys and reports them once executed."""

    def __init__(self, inner: Any, ledger: LockLedger) -> None:
        self.inner = inner
        self._ledger = ledger
        self._queued: list[str] = []
        self._queued_sets: list[
            tuple[int, str, Any, float | None]
        ] = []  # (position in the transaction, key, value, ttl)
        self._in_transaction = False

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        """SET, buffered until EXEC (a fenced lock acquisition): a successful ``NX`` on a lock key opens a hold."""
        position = len(self.inner.command_stack)
        result = self.inner.set(name, value, *args, **kwargs)
        if kwargs.get("nx") and _text(name).startswith(LOCK_PREFIX):
            self._queued_sets.append((position, _text(name), value, _ttl_s(kwargs)))
        return result

    def multi(self) -> None:
        """Start queueing (after WATCH)."""
        self._in_transaction = True
        self.inner.multi()

    def delete(self, *names: Any) -> Any:
        """DEL, queued inside MULTI (reported when EXEC succeeds), else run at once."""
        result = self.inner.delete(*names)
        keys = [_text(n) for n in names if _text(n).startswith(LOCK_PREFIX)]
        if self._in_transaction:
            self._queued.extend(keys)
        else:
            for key in keys:
                self._ledger.closed(key)
        return result

    def execute(self, raise_on_error: bool = True) -> Any:
        """EXEC; its deletions of lock keys close their holds (an aborted transaction closes none)."""
        result = self.inner.execute(raise_on_error)
        for key in self._queued:
            self._ledger.closed(key)
        self._queued.clear()
        for position, key, value, ttl_s in self._queued_sets:
            if result[position]:
                self._ledger.opened(key, value, ttl_s)
        self._queued_sets.clear()
        return result

    def reset(self) -> Any:
        """Forget what was queued (an unexecuted transaction opens and closes nothing)."""
        self._queued.clear()
        self._queued_sets.clear()
        self._in_transaction = False
        return self.inner.reset()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
