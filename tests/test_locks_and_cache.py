"""The lock and cache contract, run on fakeredis, fakeredis on the simulated clock, and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import fakeredis
import pytest

from sagas.infra import CacheManager, InMemoryLockManager, RedisLockManager, safe_delete, safe_set
from sagas.infra.cache import is_critical_disconnect_reason
from simlab.sim.clocked_redis import SimulatedRedis
from simlab.sim.world import SimWorld, simulate
from tests.redis_server import REDIS_KINDS, redis_runner

Body = Callable[[Any, str], Awaitable[None]]  # (client, key prefix)
Runner = Callable[[Body], None]


@pytest.fixture(params=REDIS_KINDS)
def on_redis(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """Runs a body with a Redis client of the parametrized kind and a key prefix nobody else uses."""
    with redis_runner(request.param, "locks") as run:
        yield run


def test_only_one_owner_can_hold_a_lock(on_redis: Runner) -> None:
    async def body(client: Any, prefix: str) -> None:
        locks = RedisLockManager(client)
        key = f"{prefix}:broker:disconnect:lock:c-1"
        assert await locks.acquire(key, "saga-a", ttl_seconds=300) is True
        assert await locks.acquire(key, "saga-b", ttl_seconds=300) is False
        assert await locks.holder(key) == "saga-a"
        pttl = await _resolve(client.pttl(key))
        assert 299_000 < pttl <= 300_000

    on_redis(body)


def test_only_the_owner_can_release_a_lock(on_redis: Runner) -> None:
    async def body(client: Any, prefix: str) -> None:
        locks = RedisLockManager(client)
        key = f"{prefix}:broker:disconnect:lock:c-1"
        await locks.acquire(key, "saga-a", ttl_seconds=300)
        assert await locks.release(key, "saga-b") is False
        assert await locks.holder(key) == "saga-a"
        assert await locks.release(key, "saga-a") is True
        assert await locks.holder(key) is None
        assert await locks.release(key, "saga-a") is False  # nothing left to release
        assert await locks.acquire(key, "saga-b", ttl_seconds=300) is True

    on_redis(body)


class _ExpiresAfterTheGet:
    """A client whose transactions' watched GET is followed by a wait past the lock's TTL (passive expiry)."""

    def __init__(self, client: Any, sleep: Callable[[float], Awaitable[None]], wait_s: float) -> None:
        self._client, self._sleep, self._wait_s = client, sleep, wait_s

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self._client.pipeline(transaction=transaction)
        watched_get = pipe.get

        async def get(key: str) -> Any:
            value = await _resolve(watched_get(key))
            await self._sleep(self._wait_s)  # the TTL runs out here, between the GET and the EXEC
            return value

        pipe.get = get
        return pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.parametrize("kind", REDIS_KINDS)
def test_a_release_whose_ttl_ran_out_after_the_read_reports_false_on_every_server(kind: str) -> None:
    """Real Redis aborts the EXEC (the watched key expired); fakeredis commits a DEL of nothing: both say False."""

    async def body(client: Any, prefix: str, sleep: Callable[[float], Awaitable[None]]) -> None:
        key = f"{prefix}:broker:disconnect:lock:c-1"
        assert await RedisLockManager(client).acquire(key, "saga-a", ttl_seconds=0.05) is True
        assert await RedisLockManager(_ExpiresAfterTheGet(client, sleep, 0.15)).release(key, "saga-a") is False
        assert await RedisLockManager(client).holder(key) is None

    if kind == "simulated":

        async def main(world: SimWorld) -> None:
            await body(SimulatedRedis(clock=world.runtime.now), "expiry", world.runtime.sleep)

        simulate(main, seed=3)
        return
    with redis_runner(kind, "locks-expiry") as run:
        run(lambda client, prefix: body(client, prefix, asyncio.sleep))


def test_fenced_acquisitions_hand_out_growing_tokens_only_to_the_holder(on_redis: Runner) -> None:
    async def body(client: Any, prefix: str) -> None:
        locks = RedisLockManager(client)
        key = f"{prefix}:broker:disconnect:lock:c-1"
        first = await locks.acquire_fenced(key, "saga-a", ttl_seconds=300)
        assert first == 1
        assert await locks.acquire_fenced(key, "saga-b", ttl_seconds=300) is None  # held: no token
        assert await locks.holder(key) == "saga-a"
        assert 299_000 < await _resolve(client.pttl(key)) <= 300_000
        assert await locks.release(key, "saga-a") is True
        second = await locks.acquire_fenced(key, "saga-b", ttl_seconds=300)
        assert second is not None and second > first
        assert await locks.holder(key) == "saga-b"
        # The counter has no expiry: it must outlive every holder, or tokens would start again.
        assert await _resolve(client.pttl(f"fence:{key}")) == -1
        # Another key has its own counter.
        assert await locks.acquire_fenced(f"{prefix}:broker:disconnect:lock:c-2", "saga-a", 300) == 1

    on_redis(body)


def test_a_holder_whose_ttl_ran_out_has_a_smaller_token_than_the_next_holder() -> None:
    async def main(world: SimWorld) -> list[tuple[float, str, int | None]]:
        locks = RedisLockManager(SimulatedRedis(clock=world.runtime.now))
        log = [(world.runtime.now(), "a", await locks.acquire_fenced("lock:c-1", "saga-a", 300))]
        await world.runtime.sleep(299.0)
        log.append((world.runtime.now(), "b", await locks.acquire_fenced("lock:c-1", "saga-b", 300)))
        await world.runtime.sleep(1.5)
        log.append((world.runtime.now(), "b", await locks.acquire_fenced("lock:c-1", "saga-b", 300)))
        return log

    log, _ = simulate(main, seed=0)
    # The failed attempt at 299 s bumped the counter too: tokens grow, they need not be consecutive.
    assert log == [(0.0, "a", 1), (299.0, "b", None), (300.5, "b", 3)]


def test_seed_safe_set_and_safe_delete_keep_the_seed_semantics(on_redis: Runner) -> None:
    async def body(client: Any, prefix: str) -> None:
        key = f"{prefix}:broker:disconnect:lock:c-1"
        assert await safe_set(client, key, "saga-a", ttl_seconds=300, nx=True) is True
        assert await safe_set(client, key, "saga-b", ttl_seconds=300, nx=True) is False
        # safe_delete removes the key whoever holds it: the seed's fragile release.
        assert await safe_delete(client, key) == 1
        assert await safe_set(client, key, "saga-b", ttl_seconds=300, nx=True) is True

    on_redis(body)


def test_cache_clears_one_connection_or_all_of_a_users_broker_data(on_redis: Runner) -> None:
    async def body(client: Any, prefix: str) -> None:
        cache = CacheManager(client, prefix=f"{prefix}:cache")
        connections = [("u1", "alpaca", "c1"), ("u1", "alpaca", "c2"), ("u1", "ib", "c3"), ("u2", "alpaca", "c4")]
        for user, broker, conn in connections:
            for item in ("accounts", "status"):
                await cache.put(user, broker, conn, item, f"{conn}-{item}")
        assert await cache.get("u1", "alpaca", "c1", "status") == "c1-status"
        assert await cache.clear_connection_cache("c1") == 2
        assert await cache.get("u1", "alpaca", "c1", "status") is None
        assert await cache.get("u1", "alpaca", "c2", "status") == "c2-status"
        assert await cache.clear_all_user_broker_data("u1", "alpaca") == 2  # c2's two entries
        remaining = await cache.entries()
        assert [k.split(":cache:", 1)[1] for k in remaining] == [
            "user:u1:broker:ib:conn:c3:accounts",
            "user:u1:broker:ib:conn:c3:status",
            "user:u2:broker:alpaca:conn:c4:accounts",
            "user:u2:broker:alpaca:conn:c4:status",
        ]
        assert await cache.clear_all_user_broker_data("u1") == 2
        assert await cache.clear_connection_cache("c-unknown") == 0

    on_redis(body)


def test_cache_clears_leave_no_index_behind(on_redis: Runner) -> None:
    async def body(client: Any, prefix: str) -> None:
        cache = CacheManager(client, prefix=f"{prefix}:cache")
        for user, broker, conn in [("u1", "alpaca", "c1"), ("u1", "ib", "c2")]:
            await cache.put(user, broker, conn, "accounts", "x")
        assert await cache.clear_connection_cache("c1") == 1
        assert await cache.clear_all_user_broker_data("u1") == 1  # only c2 is still indexed for u1
        assert await _resolve(client.keys(f"{prefix}:cache*")) == []

    on_redis(body)


async def _resolve(value: Any) -> Any:
    from sagas.infra import resolve

    return await resolve(value)


def test_a_300_s_lock_expires_after_300_simulated_seconds_and_never_has_two_holders() -> None:
    # Two sagas want the same lock; the first takes it and then stalls for 400 s (longer than the
    # TTL). The second polls every 10 s: it must fail while the TTL holds and succeed once it ends.
    async def main(world: SimWorld) -> list[tuple[float, str, bool]]:
        locks = RedisLockManager(SimulatedRedis(clock=world.runtime.now))
        clock = world.runtime
        log: list[tuple[float, str, bool]] = []

        async def first() -> None:
            log.append((clock.now(), "a", await locks.acquire("lock:c-1", "saga-a", ttl_seconds=300)))
            await clock.sleep(400)
            log.append((clock.now(), "a-release", await locks.release("lock:c-1", "saga-a")))

        async def second() -> None:
            await clock.sleep(5)
            while not await locks.acquire("lock:c-1", "saga-b", ttl_seconds=300):
                log.append((clock.now(), "b", False))
                await clock.sleep(10)
            log.append((clock.now(), "b", True))

        tasks = [clock.spawn(first()), clock.spawn(second())]
        for task in tasks:
            await task.join()
        return log

    log, world = simulate(main, seed=0)
    assert log[0] == (0.0, "a", True)
    assert all(not ok for t, who, ok in log if who == "b" and t < 300)
    assert (305.0, "b", True) in log  # the first poll after the TTL ran out
    assert [t for t, who, ok in log if who == "b" and not ok] == [5.0 + 10 * i for i in range(30)]
    assert log[-1] == (400.0, "a-release", False)  # its lock had expired and is someone else's now
    assert world.runtime.now() == 400.0


def test_in_memory_locks_expire_on_the_given_clock() -> None:
    now = [0.0]
    locks = InMemoryLockManager(lambda: now[0])

    async def body() -> list[Any]:
        seen = [await locks.acquire("k", "a", 300), await locks.acquire("k", "b", 300)]
        now[0] = 299.9
        seen.append(await locks.acquire("k", "b", 300))
        now[0] = 300.0
        seen += [await locks.acquire("k", "b", 300), await locks.release("k", "a"), await locks.holder("k")]
        return seen

    assert asyncio.run(body()) == [True, False, False, True, False, "b"]


def test_in_memory_fenced_locks_hand_out_growing_tokens() -> None:
    now = [0.0]
    locks = InMemoryLockManager(lambda: now[0])

    async def body() -> list[Any]:
        seen = [await locks.acquire_fenced("k", "a", 300), await locks.acquire_fenced("k", "b", 300)]
        now[0] = 300.0
        seen += [await locks.acquire_fenced("k", "b", 300), await locks.acquire_fenced("other", "a", 300)]
        return seen

    assert asyncio.run(body()) == [1, None, 2, 1]


@pytest.mark.parametrize("ttl", [0, -1])
def test_a_lock_ttl_must_be_positive(ttl: float) -> None:
    with pytest.raises(ValueError, match=f"ttl_seconds must be > 0, got {ttl}"):
        asyncio.run(RedisLockManager(fakeredis.FakeRedis()).acquire("k", "a", ttl))


def test_critical_disconnect_reasons_are_the_seeds() -> None:
    assert is_critical_disconnect_reason("cache_corruption")
    assert is_critical_disconnect_reason(" Duplicate_Accounts ")
    assert not is_critical_disconnect_reason("user_requested")
    assert not is_critical_disconnect_reason(None)
