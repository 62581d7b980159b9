"""The lock ledger sees every hold, through the safe lock and the seed's safe_set/safe_delete alike."""

from __future__ import annotations

from sagas.infra import RedisLockManager, safe_delete, safe_set
from simlab.evidence.lock_ledger import LedgerRedis, LockLedger
from simlab.sim.clocked_redis import SimulatedRedis
from simlab.sim.world import simulate

KEY = "broker:disconnect:lock:c-1"


def test_a_holder_paused_past_its_ttl_and_a_second_holder_overlap():
    async def main(world):
        ledger = LockLedger(world)
        redis = LedgerRedis(SimulatedRedis(clock=world.runtime.now), ledger)
        locks = RedisLockManager(redis)
        clock = world.runtime

        async def slow_holder():
            assert await locks.acquire(KEY, "saga-a", ttl_seconds=300)
            await clock.sleep(400)  # a pause longer than the TTL
            return await locks.release(KEY, "saga-a")

        async def second():
            await clock.sleep(350)
            assert await locks.acquire(KEY, "saga-b", ttl_seconds=300)
            await clock.sleep(10)
            assert await locks.release(KEY, "saga-b")

        a, b = clock.spawn(slow_holder()), clock.spawn(second())
        released_by_a = await a.join()
        await b.join()
        return ledger, released_by_a

    (ledger, released_by_a), _ = simulate(main)
    assert released_by_a is False  # its lock had expired; the owner check refused the release
    assert [(o.t, o.first_owner, o.second_owner) for o in ledger.overlaps] == [(350.0, "saga-a", "saga-b")]
    # saga-a believed it held the lock until it woke and tried to release it at 400 s
    assert ledger.spans() == [(KEY, "saga-a", 0.0, 400.0), (KEY, "saga-b", 350.0, 360.0)]
    assert [h.expires_at for h in ledger.holds] == [300.0, 650.0]


def test_fenced_acquisitions_inside_a_transaction_open_holds_too():
    async def main(world):
        ledger = LockLedger(world)
        locks = RedisLockManager(LedgerRedis(SimulatedRedis(clock=world.runtime.now), ledger))
        tokens = [await locks.acquire_fenced(KEY, "saga-a", ttl_seconds=300)]
        tokens.append(await locks.acquire_fenced(KEY, "saga-b", ttl_seconds=300))  # refused: no hold
        await world.runtime.sleep(301)
        tokens.append(await locks.acquire_fenced(KEY, "saga-b", ttl_seconds=300))
        return ledger, tokens

    (ledger, tokens), _ = simulate(main)
    assert tokens == [1, None, 3]
    assert [(h.owner, h.start, h.expires_at) for h in ledger.holds] == [
        ("saga-a", 0.0, 300.0),
        ("saga-b", 301.0, 601.0),
    ]
    assert [(o.t, o.first_owner, o.second_owner) for o in ledger.overlaps] == [(301.0, "saga-a", "saga-b")]


def test_the_seed_helpers_open_and_close_holds_without_overlap_when_used_in_turn():
    async def main(world):
        ledger = LockLedger(world)
        redis = LedgerRedis(SimulatedRedis(clock=world.runtime.now), ledger)
        assert await safe_set(redis, KEY, "saga-a:0.0", ttl_seconds=300, nx=True)
        await world.runtime.sleep(1)
        assert not await safe_set(redis, KEY, "saga-b:1.0", ttl_seconds=300, nx=True)  # not a hold
        await safe_delete(redis, KEY)
        await world.runtime.sleep(1)
        assert await safe_set(redis, KEY, "saga-b:2.0", ttl_seconds=300, nx=True)
        await safe_delete(redis, KEY)
        return ledger

    ledger, _ = simulate(main)
    assert ledger.overlaps == []
    assert ledger.spans() == [(KEY, "saga-a", 0.0, 1.0), (KEY, "saga-b", 2.0, 2.0)]
