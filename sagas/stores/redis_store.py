"""A saga store on Redis, through the redis-py API.

It accepts a synchronous client (``redis.Redis``, or ``fakeredis.FakeRedis`` in
the lab, where nothing may block on real I/O) or an asyncio one
(``redis.asyncio.Redis`` in production): each call's result is awaited only if
it is awaitable. Layout, under ``prefix``: ``saga:{id}`` holds the state as
JSON; the sorted set ``unfinished`` holds unfinished ids scored by start time;
``trigger:{key}`` is claimed with ``SET NX``.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from sagas.engine.errors import SagaError
from sagas.engine.state import SagaState

# Lost-SET-NX-then-key-gone rounds before claim_trigger gives up (each needs the key to expire in between).
_CLAIM_ATTEMPTS = 5


async def resolve(result: Any) -> Any:
    """``result`` itself, or what it yields if it is awaitable (async clients)."""
    if inspect.isawaitable(result):
        return await result
    return result


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSagaStore:
    """Persists saga states in Redis; several managers may share one server."""

    def __init__(self, client: Any, prefix: str = "sagas", trigger_ttl_seconds: int | None = 7 * 24 * 3600) -> None:
        self._redis = client
        self._prefix = prefix
        self._trigger_ttl = trigger_ttl_seconds

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def save(self, state: SagaState) -> None:
        """Write the state as JSON and keep the unfinished index current, in one transaction."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._key("saga", state.saga_id), json.dumps(state.to_dict(), separators=(",", ":")))
        if state.status.is_terminal:
            pipe.zrem(self._key("unfinished"), state.saga_id)
        else:
            pipe.zadd(self._key("unfinished"), {state.saga_id: state.started_at})
        await resolve(pipe.execute())

    async def load(self, saga_id: str) -> SagaState | None:
        """The stored state of ``saga_id``, or None."""
        raw = await resolve(self._redis.get(self._key("saga", saga_id)))
        return SagaState.from_dict(json.loads(raw)) if raw is not None else None

    async def unfinished(self) -> list[SagaState]:
        """Unfinished sagas ordered by (started_at, saga_id)."""
        members = await resolve(self._redis.zrange(self._key("unfinished"), 0, -1, withscores=True))
        ordered = sorted((float(score), _text(member)) for member, score in members)
        states: list[SagaState] = []
        for _, saga_id in ordered:
            state = await self.load(saga_id)
            if state is not None and not state.status.is_terminal:
                states.append(state)
        return states

    async def claim_trigger(self, trigger_key: str, saga_id: str) -> str:
        """``SET NX`` the trigger key; return the owner (``saga_id`` if this call won).

        If the owner's key expires between a lost ``SET NX`` and the ``GET`` of
        its owner, the trigger is free again: claim it anew rather than report
        ``saga_id`` as the owner of a trigger nobody holds.
        """
        key = self._key("trigger", trigger_key)
        for _ in range(_CLAIM_ATTEMPTS):
            claimed = await resolve(self._redis.set(key, saga_id, nx=True, ex=self._trigger_ttl))
            if claimed:
                return saga_id
            owner = await resolve(self._redis.get(key))
            if owner is not None:
                return _text(owner)
        raise SagaError(
            f"could not claim trigger {trigger_key!r} for {saga_id}: its key vanished after each of "
            f"{_CLAIM_ATTEMPTS} lost SET NX attempts"
        )
