"""Distributed locks with an owner token and a TTL: on Redis, and in memory on a runtime's clock.

How this works: ``acquire`` is ``SET key owner NX PX ttl``; only one caller can
create the key, and the TTL frees it if its holder dies. ``release`` deletes the
key only if it still holds the caller's token, atomically: WATCH the key, read
the owner, and DELETE inside MULTI/EXEC, which Redis refuses if the key changed
in between (an expiry and a new holder's SET included). That is the same
guarantee as the usual compare-and-delete Lua script, and it also runs on
fakeredis without a Lua interpreter, so the lab exercises this exact code. One
difference between the two servers is closed by reading the DEL's reply: a
TTL that runs out between the GET and the EXEC makes real Redis abort the EXEC
and fakeredis commit a DEL that deletes nothing, and both mean "no longer held".

Fencing tokens: no lock can stop a holder that froze past its TTL from
believing it still holds the lock. ``acquire_fenced`` therefore also hands out
a token: ``SET key owner NX PX ttl`` and ``INCR fence:key`` in one MULTI/EXEC,
so the tokens of successive holders increase in the order they took the lock
(a failed SET bumps the counter too, which costs nothing: tokens only need to
grow). A write model that remembers the highest token it accepted for a
resource and refuses older ones shuts out the stale holder. The counter never
expires: a counter that restarted would make a stale token look fresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sagas.engine.errors import SagaError
from sagas.infra.redis_io import resolve, text

# WATCH conflicts in a row before release() gives up (each needs another writer on the same key).
_RELEASE_ATTEMPTS = 5


def fence_key(key: str) -> str:
    """The key of ``key``'s fencing-token counter (outside the lock's own key space)."""
    return f"fence:{key}"


def _check_ttl(ttl_seconds: float) -> int:
    if not ttl_seconds > 0:
        raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds!r}")
    return max(1, round(ttl_seconds * 1000))


class RedisLockManager:
    """The ``LockManager`` port on Redis; keys are used as given (e.g. ``broker:disconnect:lock:{id}``)."""

    def __init__(self, client: Any) -> None:
        self._redis = client

    async def acquire(self, key: str, owner: str, ttl_seconds: float) -> bool:
        """Take ``key`` for ``owner`` for ``ttl_seconds`` unless someone holds it."""
        ttl_ms = _check_ttl(ttl_seconds)
        return bool(await resolve(self._redis.set(key, owner, nx=True, px=ttl_ms)))

    async def acquire_fenced(self, key: str, owner: str, ttl_seconds: float) -> int | None:
        """Take ``key`` like ``acquire``; return its fencing token (>= 1), or None if someone holds it.

        The SET and the token's INCR run in one transaction, so no holder that took the lock
        later can have received a smaller token.
        """
        ttl_ms = _check_ttl(ttl_seconds)
        pipe = self._redis.pipeline(transaction=True)
        try:
            pipe.set(key, owner, nx=True, px=ttl_ms)
            pipe.incr(fence_key(key))
            acquired, token = await resolve(pipe.execute())
        finally:
            await resolve(pipe.reset())
        return int(token) if acquired else None

    async def release(self, key: str, owner: str) -> bool:
        """Delete ``key`` if ``owner`` still holds it; False if it expired or another holds it."""
        # Imported here: redis is an optional extra, and `import sagas` must work without it.
        from redis.exceptions import WatchError

        for _ in range(_RELEASE_ATTEMPTS):
            pipe = self._redis.pipeline(transaction=True)
            try:
                await resolve(pipe.watch(key))
                holder = await resolve(pipe.get(key))
                if holder is None or text(holder) != owner:
                    return False
                pipe.multi()
                pipe.delete(key)
                [deleted] = await resolve(pipe.execute())
                # 0 if the TTL ran out after the GET: real Redis aborts the EXEC then (WatchError), while
                # fakeredis commits a DEL of nothing; both must tell the caller it no longer held the lock.
                return bool(deleted)
            except WatchError:
                continue
            finally:
                await resolve(pipe.reset())
        raise SagaError(f"could not release lock {key!r} for {owner}: {_RELEASE_ATTEMPTS} conflicting writers in a row")

    async def holder(self, key: str) -> str | None:
        """The current holder's token, or None."""
        value = await resolve(self._redis.get(key))
        return text(value) if value is not None else None


class InMemoryLockManager:
    """The ``LockManager`` port in one process, expiring on the given clock (tests, single-process use)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._held: dict[str, tuple[str, float]] = {}
        self._tokens: dict[str, int] = {}

    async def acquire(self, key: str, owner: str, ttl_seconds: float) -> bool:
        """Take ``key`` for ``owner`` for ``ttl_seconds`` unless someone holds it."""
        return await self.acquire_fenced(key, owner, ttl_seconds) is not None

    async def acquire_fenced(self, key: str, owner: str, ttl_seconds: float) -> int | None:
        """Take ``key`` like ``acquire``; return its fencing token (>= 1), or None if someone holds it."""
        _check_ttl(ttl_seconds)
        if await self.holder(key) is not None:
            return None
        self._held[key] = (owner, self._clock() + ttl_seconds)
        self._tokens[key] = token = self._tokens.get(key, 0) + 1
        return token

    async def release(self, key: str, owner: str) -> bool:
        """Delete ``key`` if ``owner`` still holds it."""
        if await self.holder(key) != owner:
            return False
        del self._held[key]
        return True

    async def holder(self, key: str) -> str | None:
        """The current holder's token, or None (expired holds are dropped)."""
        held = self._held.get(key)
        if held is None:
            return None
        if held[1] <= self._clock():
            del self._held[key]
            return None
        return held[0]
