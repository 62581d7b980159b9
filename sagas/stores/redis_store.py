"""A saga store on Redis, through the redis-py API.

It accepts a synchronous client (``redis.Redis``, or the lab's fakeredis on the
simulated clock, where nothing may block on real I/O) or an asyncio one
(``redis.asyncio.Redis`` in production): each call's result is awaited only if
it is awaitable. Layout, under ``prefix``: ``saga:{id}`` holds the state as
JSON; the sorted set ``unfinished`` holds unfinished ids scored by start time;
``trigger:{key}`` names the saga that a trigger started. ``create`` claims the
trigger and writes the first state in one optimistic transaction (WATCH/MULTI),
so a crash can never leave a claimed trigger without a saga to resume.
"""

from __future__ import annotations

from typing import Any

from sagas.engine.errors import SagaError
from sagas.engine.state import SagaState, dumps_state, loads_state
from sagas.infra.redis_io import resolve
from sagas.infra.redis_io import text as _text

# Rounds of WATCH conflicts (another process touching the same trigger) before create() gives up.
_CREATE_ATTEMPTS = 5


class RedisSagaStore:
    """Persists saga states in Redis; several managers may share one server.

    ``trigger_ttl_seconds`` bounds how long a trigger's event id is remembered
    for deduplication; ``finished_ttl_seconds`` (None: forever) lets the records
    of finished sagas expire.
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "sagas",
        trigger_ttl_seconds: int | None = 7 * 24 * 3600,
        finished_ttl_seconds: int | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._trigger_ttl = trigger_ttl_seconds
        self._finished_ttl = finished_ttl_seconds

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def create(self, state: SagaState, trigger_key: str) -> str:
        """Claim ``trigger_key`` for ``state`` and save it, atomically; return the owner's id."""
        # Imported here: redis is an optional extra, and `import sagas` must work without it.
        from redis.exceptions import WatchError

        key = self._key("trigger", trigger_key)
        for _ in range(_CREATE_ATTEMPTS):
            pipe = self._redis.pipeline(transaction=True)
            try:
                await resolve(pipe.watch(key))
                owner = await resolve(pipe.get(key))
                if owner is not None:
                    return _text(owner)
                pipe.multi()
                pipe.set(key, state.saga_id, ex=self._trigger_ttl)
                pipe.set(self._key("saga", state.saga_id), dumps_state(state))
                pipe.zadd(self._key("unfinished"), {state.saga_id: state.started_at})
                await resolve(pipe.execute())
                return state.saga_id
            except WatchError:
                continue
            finally:
                await resolve(pipe.reset())
        raise SagaError(f"could not claim trigger {trigger_key!r}: {_CREATE_ATTEMPTS} conflicting writers in a row")

    async def save(self, state: SagaState) -> None:
        """Write the state as JSON and keep the unfinished index current, in one transaction."""
        pipe = self._redis.pipeline(transaction=True)
        if state.status.is_terminal:
            pipe.set(self._key("saga", state.saga_id), dumps_state(state), ex=self._finished_ttl)
            pipe.zrem(self._key("unfinished"), state.saga_id)
        else:
            pipe.set(self._key("saga", state.saga_id), dumps_state(state))
            pipe.zadd(self._key("unfinished"), {state.saga_id: state.started_at})
        await resolve(pipe.execute())

    async def load(self, saga_id: str) -> SagaState | None:
        """The stored state of ``saga_id``, or None."""
        raw = await resolve(self._redis.get(self._key("saga", saga_id)))
        return loads_state(raw) if raw is not None else None

    async def unfinished(self) -> list[SagaState]:
        """Unfinished sagas ordered by (started_at, saga_id)."""
        members = await resolve(self._redis.zrange(self._key("unfinished"), 0, -1, withscores=True))
        ordered = sorted((float(score), _text(member)) for member, score in members)
        states: list[SagaState] = []
        for _, saga_id in ordered:
            state = await self.load(saga_id)
            if state is None:
                # Indexed but gone (deleted by hand, or expired): drop it from the index too.
                await resolve(self._redis.zrem(self._key("unfinished"), saga_id))
            elif not state.status.is_terminal:
                states.append(state)
        return states
