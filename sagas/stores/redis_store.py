"""A saga store on Redis, through the redis-py API.

It accepts a synchronous client (``redis.Redis``, or the lab's fakeredis on the
simulated clock, where nothing may block on real I/O) or an asyncio one
(``redis.asyncio.Redis`` in production): each call's result is awaited only if
it is awaitable. Layout, under ``prefix``: ``saga:{id}`` holds the state as
JSON; the sorted set ``unfinished`` holds unfinished ids scored by start time;
``trigger:{key}`` names the saga that a trigger started. ``create`` claims the
trigger and writes the first state in one optimistic transaction (WATCH/MULTI),
so a crash can never leave a claimed trigger without a saga to resume.

Leases: ``lease:{id}`` holds ``"{fence}:{owner}"`` and expires (PX) on the
server's clock, so managers on different hosts agree on when a lease ran out;
``fence:{id}`` is the saga's fencing-token counter (never expires while the
saga lives). Acquiring, renewing and every save are WATCH/MULTI transactions on
those keys: a save reads the counter and writes only if its token is still the
latest, and Redis aborts the EXEC if anyone bumped it in between. Each also
checks the replies of its EXEC rather than trusting it ran: real Redis aborts a
transaction whose watched key expired after the WATCH, fakeredis does not, and
a ``PEXPIRE`` of a key that is gone answers 0 on both, so both give the same
verdict. ``manager:incarnations`` counts the managers that ever started;
``cancel:{id}`` holds why a saga was asked to stop (its parent compensates).
"""

from __future__ import annotations

from typing import Any

from sagas.engine.errors import LeaseLost, SagaError
from sagas.engine.state import SagaState, dumps_state, loads_state, succeeds
from sagas.infra.redis_io import resolve
from sagas.infra.redis_io import text as _text

# Rounds of WATCH conflicts (another process touching the same trigger) before create() gives up.
_CREATE_ATTEMPTS = 5


def _ms(seconds: float) -> int:
    if not seconds > 0:
        raise ValueError(f"lease_seconds must be > 0, got {seconds!r}")
    return max(1, round(seconds * 1000))


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

    async def create(self, state: SagaState, trigger_key: str, owner: str, lease_seconds: float) -> str:
        """Claim ``trigger_key`` for ``state``, save it and lease it to ``owner``, atomically; return the owner."""
        # Imported here: redis is an optional extra, and `import sagas` must work without it.
        from redis.exceptions import WatchError

        key = self._key("trigger", trigger_key)
        saga_id = state.saga_id
        for _ in range(_CREATE_ATTEMPTS):
            pipe = self._redis.pipeline(transaction=True)
            try:
                await resolve(pipe.watch(key))
                claimed = await resolve(pipe.get(key))
                if claimed is not None:
                    return _text(claimed)
                pipe.multi()
                pipe.set(key, saga_id, ex=self._trigger_ttl)
                pipe.set(self._key("saga", saga_id), dumps_state(state))
                pipe.zadd(self._key("unfinished"), {saga_id: state.started_at})
                pipe.set(self._key("fence", saga_id), 1)
                pipe.set(self._key("lease", saga_id), f"1:{owner}", px=_ms(lease_seconds))
                await resolve(pipe.execute())
                return saga_id
            except WatchError:
                continue
            finally:
                await resolve(pipe.reset())
        raise SagaError(f"could not claim trigger {trigger_key!r}: {_CREATE_ATTEMPTS} conflicting writers in a row")

    async def save(self, state: SagaState, fence: int) -> None:
        """Write the state and keep the unfinished index current, in one transaction fenced by ``fence``."""
        from redis.exceptions import WatchError

        saga_id = state.saga_id
        fence_key = self._key("fence", saga_id)
        for _ in range(_CREATE_ATTEMPTS):
            pipe = self._redis.pipeline(transaction=True)
            try:
                await resolve(pipe.watch(fence_key))
                latest = int(await resolve(pipe.get(fence_key)) or 0)  # 0: never leased
                if latest != fence:
                    raise LeaseLost(f"saga {saga_id}: write with fencing token {fence} refused, the latest is {latest}")
                pipe.multi()
                if state.status.is_terminal:
                    pipe.set(self._key("saga", saga_id), dumps_state(state), ex=self._finished_ttl)
                    pipe.zrem(self._key("unfinished"), saga_id)
                    pipe.delete(self._key("lease", saga_id))
                    if self._finished_ttl is not None:
                        pipe.expire(fence_key, self._finished_ttl)
                else:
                    pipe.set(self._key("saga", saga_id), dumps_state(state))
                    pipe.zadd(self._key("unfinished"), {saga_id: state.started_at})
                await resolve(pipe.execute())
                return
            except WatchError:
                continue  # the counter moved: the next round reads it and refuses
            finally:
                await resolve(pipe.reset())
        raise SagaError(f"could not save saga {saga_id}: {_CREATE_ATTEMPTS} conflicting writers in a row")

    async def acquire_lease(self, saga_id: str, owner: str, lease_seconds: float) -> int | None:
        """Lease ``saga_id`` to ``owner`` unless another node holds an unexpired lease; return the new token."""
        from redis.exceptions import WatchError

        lease_key, fence_key = self._key("lease", saga_id), self._key("fence", saga_id)
        pipe = self._redis.pipeline(transaction=True)
        try:
            await resolve(pipe.watch(lease_key, fence_key))
            held = await resolve(pipe.get(lease_key))
            if held is not None and not succeeds(owner, _text(held).partition(":")[2]):
                return None
            fence = int(await resolve(pipe.get(fence_key)) or 0) + 1
            pipe.multi()
            pipe.set(fence_key, fence)
            pipe.set(lease_key, f"{fence}:{owner}", px=_ms(lease_seconds))
            await resolve(pipe.execute())
            return fence
        except WatchError:
            return None  # another manager acquired it (or renewed it) meanwhile
        finally:
            await resolve(pipe.reset())

    async def renew_lease(self, saga_id: str, owner: str, fence: int, lease_seconds: float) -> bool:
        """Extend ``owner``'s lease with token ``fence``; False if it expired or is someone else's."""
        from redis.exceptions import WatchError

        lease_key = self._key("lease", saga_id)
        pipe = self._redis.pipeline(transaction=True)
        try:
            await resolve(pipe.watch(lease_key))
            held = await resolve(pipe.get(lease_key))
            if held is None or _text(held) != f"{fence}:{owner}":
                return False
            pipe.multi()
            pipe.pexpire(lease_key, _ms(lease_seconds))
            [renewed] = await resolve(pipe.execute())
            return bool(renewed)  # 0 if the lease expired after the GET (fakeredis commits; Redis aborts)
        except WatchError:
            return False
        finally:
            await resolve(pipe.reset())

    async def new_incarnation(self) -> int:
        """The next value of this store's manager counter (INCR: unique across every process)."""
        return int(await resolve(self._redis.incr(self._key("manager", "incarnations"))))

    async def request_cancel(self, saga_id: str, reason: str) -> None:
        """Record that ``saga_id`` must stop and compensate (SET NX: the first reason stays)."""
        await resolve(self._redis.set(self._key("cancel", saga_id), reason, nx=True, ex=self._trigger_ttl))

    async def cancel_requested(self, saga_id: str) -> str | None:
        """Why ``saga_id`` must stop, or None."""
        reason = await resolve(self._redis.get(self._key("cancel", saga_id)))
        return _text(reason) if reason is not None else None

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
