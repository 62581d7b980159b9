"""``SimulatedRedis``: fakeredis whose "now" is the simulated clock (TTLs, locks, the saga store on it).

Every scenario runs as a simulated task: ``world.runtime.sleep`` advances simpy's clock, so a 300 s TTL
passes without any real waiting. Observations are collected inside the run and asserted outside it.
"""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest
import redis

from sagas.engine.state import SagaState, SagaStatus
from sagas.stores.redis_store import RedisSagaStore
from simlab.sim.clocked_redis import EPOCH, SimulatedRedis
from simlab.sim.world import SimWorld, simulate


async def _sleep_until(world: SimWorld, t: float) -> None:
    """Advance simulated time to ``t`` (absolute seconds)."""
    await world.runtime.sleep(t - world.runtime.now())


def test_key_with_ex_300_expires_after_300_simulated_seconds() -> None:
    async def main(world: SimWorld) -> dict[str, Any]:
        r = SimulatedRedis(clock=world.runtime.now)
        seen: dict[str, Any] = {"set": r.set("session", "s-1", ex=300)}
        await _sleep_until(world, 299.9)
        seen["at 299.9"] = (r.get("session"), r.exists("session"))
        await _sleep_until(world, 300.1)
        seen["at 300.1"] = (r.get("session"), r.exists("session"), r.ttl("session"))
        seen["now"] = world.runtime.now()
        return seen

    seen, _ = simulate(main, seed=1)
    assert seen == {
        "set": True,
        "at 299.9": (b"s-1", 1),
        "at 300.1": (None, 0, -2),
        "now": pytest.approx(300.1),
    }


def test_ttl_and_pexpire_report_simulated_remaining_time_exactly() -> None:
    async def main(world: SimWorld) -> dict[str, Any]:
        r = SimulatedRedis(clock=world.runtime.now)
        r.set("k", "v", ex=300)
        await _sleep_until(world, 50.0)
        seen: dict[str, Any] = {"ttl@50": r.ttl("k"), "pttl@50": r.pttl("k"), "time@50": r.time()}
        seen["expiretime"] = r.expiretime("k")
        seen["pexpire"] = r.pexpire("k", 1500)
        await _sleep_until(world, 51.0)
        seen["pttl@51"] = r.pttl("k")
        seen["ttl@51"] = r.ttl("k")
        await _sleep_until(world, 51.499)
        seen["get@51.499"] = r.get("k")
        await _sleep_until(world, 51.501)
        seen["get@51.501"] = r.get("k")
        seen["pttl@51.501"] = r.pttl("k")
        return seen

    seen, _ = simulate(main, seed=1)
    assert seen == {
        "ttl@50": 250,
        "pttl@50": 250_000,
        "time@50": (int(EPOCH) + 50, 0),
        "expiretime": int(EPOCH) + 300,
        "pexpire": True,
        "pttl@51": 500,
        "ttl@51": 0,  # 0.5 s left, rounded like Redis's TTL
        "get@51.499": b"v",
        "get@51.501": None,
        "pttl@51.501": -2,
    }


def test_hash_field_ttl_follows_the_simulated_clock() -> None:
    """HEXPIRE reads fakeredis's other clock (``_helpers.current_time``); it must be simulated too."""

    async def main(world: SimWorld) -> list[Any]:
        r = SimulatedRedis(clock=world.runtime.now, version=(7, 4))
        r.hset("h", mapping={"short": "1", "long": "2"})
        seen: list[Any] = [r.hexpire("h", 100, "short")]
        await _sleep_until(world, 99.5)
        seen.append((r.hget("h", "short"), r.hpttl("h", "short")))
        await _sleep_until(world, 100.5)
        seen.append((r.hget("h", "short"), r.hget("h", "long")))
        return seen

    seen, _ = simulate(main, seed=1)
    assert seen == [[1], (b"1", [500]), (None, b"2")]


def test_set_nx_lock_is_held_until_its_ttl_passes_in_simulated_time() -> None:
    """Owner A takes a 30 s lock at t=0 and never releases it; B retries every 7 s and gets it at t=35."""

    async def main(world: SimWorld) -> dict[str, Any]:
        server = fakeredis.FakeServer()
        a = SimulatedRedis(clock=world.runtime.now, server=server)
        b = SimulatedRedis(clock=world.runtime.now, server=server)
        attempts: list[tuple[float, bool]] = []

        async def owner_a() -> bool:
            return bool(a.set("lock:account:a-1", "owner-a", nx=True, ex=30))

        async def owner_b() -> float:
            await world.runtime.sleep(0.0)  # let A go first at t=0
            while True:
                taken = bool(b.set("lock:account:a-1", "owner-b", nx=True, ex=30))
                attempts.append((world.runtime.now(), taken))
                if taken:
                    return world.runtime.now()
                await world.runtime.sleep(7.0)

        task_a = world.runtime.spawn(owner_a(), name="a")
        task_b = world.runtime.spawn(owner_b(), name="b")
        return {
            "a": await task_a.join(),
            "b_acquired_at": await task_b.join(),
            "attempts": attempts,
            "holder": a.get("lock:account:a-1"),
            "ttl": a.ttl("lock:account:a-1"),
            "a_again": a.set("lock:account:a-1", "owner-a", nx=True, ex=30),
        }

    seen, _ = simulate(main, seed=1)
    assert seen == {
        "a": True,
        "b_acquired_at": 35.0,
        "attempts": [(0.0, False), (7.0, False), (14.0, False), (21.0, False), (28.0, False), (35.0, True)],
        "holder": b"owner-b",
        "ttl": 30,
        "a_again": None,
    }


def test_pipelines_and_transactions_run_on_the_simulated_clock() -> None:
    async def main(world: SimWorld) -> list[Any]:
        r = SimulatedRedis(clock=world.runtime.now)
        await _sleep_until(world, 1000.0)
        with r.pipeline(transaction=True) as pipe:
            pipe.set("a", "1", ex=60).set("b", "2", px=90_000).ttl("a").pttl("b").time()
            in_multi = pipe.execute()
        seen: list[Any] = [in_multi]
        with r.pipeline(transaction=False) as pipe:
            pipe.expire("a", 10).ttl("a")
            seen.append(pipe.execute())

        # WATCH ... MULTI/EXEC (the reads between WATCH and MULTI run at once, not queued).
        def bump(pipe: redis.client.Pipeline) -> None:
            ttl = pipe.ttl("b")
            pipe.multi()
            pipe.set("c", str(ttl), ex=ttl)

        seen.append(r.transaction(bump, "b"))
        await _sleep_until(world, 1010.5)
        seen.append((r.get("a"), r.get("b"), r.get("c"), r.ttl("c")))
        await _sleep_until(world, 1090.5)
        seen.append((r.get("b"), r.get("c")))
        return seen

    seen, _ = simulate(main, seed=1)
    assert seen == [
        [True, True, 60, 90_000, (int(EPOCH) + 1000, 0)],
        [True, 10],
        [True],
        (None, b"2", b"90", 80),
        (None, None),
    ]


def test_plain_fakeredis_alongside_keeps_the_wall_clock() -> None:
    async def main(world: SimWorld) -> dict[str, Any]:
        simulated = SimulatedRedis(clock=world.runtime.now)
        plain = fakeredis.FakeRedis()
        simulated.set("k", "v", ex=300)
        plain.set("k", "v", ex=300)
        await _sleep_until(world, 1000.0)
        seen: dict[str, Any] = {
            "simulated": (simulated.get("k"), simulated.time()),
            "plain": (plain.get("k"), plain.pttl("k"), plain.time()[0]),
            "wall": time.time(),
        }
        # A failing simulated command must not leave its clock installed for the next caller.
        simulated.set("text", "x")
        with pytest.raises(redis.ResponseError):
            simulated.lpush("text", "y")
        seen["plain_after_error"] = plain.time()[0]
        seen["wall_after_error"] = time.time()
        return seen

    seen, _ = simulate(main, seed=1)
    assert seen["simulated"] == (None, (int(EPOCH) + 1000, 0))
    value, pttl, plain_seconds = seen["plain"]
    # Less than a second of real time passed: the plain key is there with (almost) its full TTL.
    assert value == b"v"
    assert 299_000 < pttl <= 300_000
    assert abs(plain_seconds - seen["wall"]) <= 1
    assert abs(seen["plain_after_error"] - seen["wall_after_error"]) <= 1


def test_redis_saga_store_on_simulated_redis_uses_simulated_time() -> None:
    """The store's trigger TTL runs on the simulated clock; states and the unfinished index work inside a run."""

    def state(saga_id: str, started_at: float, status: SagaStatus = SagaStatus.RUNNING) -> SagaState:
        return SagaState(
            saga_id=saga_id,
            saga_type="connect_broker",
            trigger_type="BrokerConnectionRequested",
            trigger_id=f"evt-{saga_id}",
            trigger_data={"user_id": "u-1"},
            status=status,
            started_at=started_at,
            updated_at=started_at,
            results={"step": {"ok": True}},
            completed_steps=["validate"],
        )

    async def main(world: SimWorld) -> list[Any]:
        client = SimulatedRedis(clock=world.runtime.now)
        store = RedisSagaStore(client, prefix="lab", trigger_ttl_seconds=600)
        first = state("saga-1", world.runtime.now())
        seen: list[Any] = [await store.create(first, "connect_broker:evt-1", "lab/1", 30)]
        await _sleep_until(world, 30.0)
        await store.save(state("saga-2", world.runtime.now()), 0)
        seen.append(await store.create(state("saga-x", 30.0), "connect_broker:evt-1", "lab/1", 30))
        seen.append(client.ttl("lab:trigger:connect_broker:evt-1"))
        await _sleep_until(world, 599.5)
        seen.append(await store.create(state("saga-3", 599.5), "connect_broker:evt-1", "lab/1", 30))
        await store.save(state("saga-1", 0.0, SagaStatus.COMPLETED), 1)
        seen.append([(s.saga_id, s.started_at) for s in await store.unfinished()])
        await _sleep_until(world, 600.5)
        # The trigger key expired after 600 simulated seconds: a redelivered event can be claimed again.
        seen.append(await store.create(state("saga-4", 600.5), "connect_broker:evt-1", "lab/1", 30))
        loaded = await store.load("saga-2")
        seen.append(loaded == state("saga-2", 30.0))
        return seen

    seen, _ = simulate(main, seed=1)
    assert seen == ["saga-1", "saga-1", 570, "saga-1", [("saga-2", 30.0)], "saga-4", True]
    # (saga-x and saga-3 lost the trigger to saga-1 and were never written)


def test_simulated_clients_do_not_pile_up_in_fakeredis_server_registry() -> None:
    """Each run builds a client; none may stay reachable from fakeredis's process-wide server map."""
    before = dict(fakeredis.FakeServer._servers_map)
    for _ in range(20):
        SimulatedRedis(clock=lambda: 0.0).set("k", "v")
    assert fakeredis.FakeServer._servers_map == before
