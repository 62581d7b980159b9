"""The ``SagaStore`` contract: one suite, run against every implementation of the port.

Each test is an ``async def`` body that receives a fresh, empty store; the ``run_on_store``
fixture runs it on each implementation in that implementation's own world:

- ``memory``: ``InMemorySagaStore`` under ``asyncio.run``;
- ``fakeredis``: ``RedisSagaStore`` on a synchronous ``fakeredis.FakeRedis``;
- ``simulated``: ``RedisSagaStore`` on ``SimulatedRedis`` inside a simulated run (no asyncio loop at all);
- ``redis-sync`` / ``redis-asyncio``: ``RedisSagaStore`` on a real server (REDIS_URL) with ``redis.Redis``
  and with ``redis.asyncio.Redis`` on a real asyncio loop; each test gets its own key prefix.

At the end, tests of ``RedisSagaStore`` specifics (a rival between WATCH and EXEC), not of the port.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import fakeredis
import pytest

from sagas.engine.errors import LeaseLost, SagaError
from sagas.engine.ports import SagaStore
from sagas.engine.state import SagaState, SagaStatus
from sagas.stores.memory import InMemorySagaStore
from sagas.stores.redis_store import RedisSagaStore
from simlab.sim.clocked_redis import SimulatedRedis
from simlab.sim.world import SimWorld, simulate
from tests.redis_server import REDIS_KINDS, redis_runner

Body = Callable[[SagaStore], Awaitable[None]]
Runner = Callable[[Body], None]

TERMINAL = [s for s in SagaStatus if s.is_terminal]
NON_TERMINAL = [s for s in SagaStatus if not s.is_terminal]


@pytest.fixture(params=["memory", *REDIS_KINDS])
def run_on_store(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """A function that runs a contract body against one fresh store of the parametrized kind."""
    if request.param == "memory":
        store = InMemorySagaStore()
        yield lambda body: asyncio.run(body(store))
        return
    with redis_runner(request.param, "store-contract") as run:
        yield lambda body: run(lambda client, prefix: body(RedisSagaStore(client, prefix=prefix)))


def full_state(saga_id: str = "saga-1", **changes: Any) -> SagaState:
    """A state in which every field differs from its default (checked by the round-trip test)."""
    state = SagaState(
        saga_id=saga_id,
        saga_type="connect_broker",
        trigger_type="BrokerConnectionRequested",
        trigger_id="evt-17",
        trigger_data={"user_id": "u-1", "broker": "ib", "accounts": ["a-1", "a-2"], "limits": {"max_orders": 3}},
        status=SagaStatus.COMPENSATING,
        parent_id="saga-0",
        started_at=12.5,
        updated_at=40.25,
        deadline_at=312.5,
        current_step="sync_positions",
        results={
            "connection_id": "c-9",
            "accounts": [{"id": "a-1", "balance": 1500.75}, {"id": "a-2", "balance": -3.5}],
            "synced": True,
            "count": 3,
            "missing": None,
        },
        completed_steps=["validate", "connect", "fetch_accounts"],
        possibly_applied=["sync_positions"],
        compensated_steps=["fetch_accounts"],
        failed_compensations=["connect"],
        compensation_outcome="compensation_failed",
        timed_out=True,
        error_type="DeadlineExceeded",
        error="step sync_positions exceeded its deadline of 30 s",
        transitions=7,
        attempts={"sync_positions": 3, "fetch_accounts:compensate": 2},
        attempts_since={"sync_positions": 30.5, "fetch_accounts:compensate": 38.0},
        children=["saga-2", "saga-3"],
    )
    return dataclasses.replace(state, **changes)


def test_full_state_sets_every_field() -> None:
    """Guards the round-trip test: a field added to SagaState must be given a non-default value above."""
    state = full_state()
    for field in dataclasses.fields(SagaState):
        if not field.init:  # not state (a cache), never saved
            continue
        if field.default is not dataclasses.MISSING:
            assert getattr(state, field.name) != field.default, field.name
        elif field.default_factory is not dataclasses.MISSING:
            assert getattr(state, field.name) != field.default_factory(), field.name


def test_save_load_round_trips_every_field(run_on_store: Runner) -> None:
    async def body(store: SagaStore) -> None:
        state = full_state()
        await store.save(state, 0)
        loaded = await store.load("saga-1")
        assert loaded is not None
        assert loaded is not state
        assert loaded == full_state()
        assert loaded.to_dict() == full_state().to_dict()
        assert type(loaded.status) is SagaStatus
        assert loaded.status is SagaStatus.COMPENSATING

    run_on_store(body)


def test_load_returns_the_last_save(run_on_store: Runner) -> None:
    async def body(store: SagaStore) -> None:
        await store.save(full_state(status=SagaStatus.RUNNING, transitions=1), 0)
        await store.save(full_state(status=SagaStatus.COMPLETED, transitions=2, current_step=None), 0)
        assert await store.load("saga-1") == full_state(status=SagaStatus.COMPLETED, transitions=2, current_step=None)

    run_on_store(body)


def test_load_of_a_missing_id_returns_none(run_on_store: Runner) -> None:
    async def body(store: SagaStore) -> None:
        assert await store.load("saga-404") is None
        await store.save(full_state("saga-1"), 0)
        assert await store.load("saga-404") is None
        assert await store.load("saga-") is None

    run_on_store(body)


def test_saved_state_is_a_snapshot(run_on_store: Runner) -> None:
    """Changing the saved object (or a loaded one) afterwards changes nothing in the store."""

    async def body(store: SagaStore) -> None:
        state = full_state()
        await store.save(state, 0)
        state.status = SagaStatus.COMPLETED
        state.results["connection_id"] = "changed"
        state.results["added"] = 1
        state.trigger_data["broker"] = "changed"
        state.completed_steps.append("sync_positions")
        state.possibly_applied.clear()
        state.compensated_steps.append("x")
        state.failed_compensations.append("y")
        state.transitions = 99
        assert await store.load("saga-1") == full_state()
        assert [s.saga_id for s in await store.unfinished()] == ["saga-1"]

        loaded = await store.load("saga-1")
        assert loaded is not None
        loaded.results["connection_id"] = "changed"
        loaded.completed_steps.append("more")
        assert await store.load("saga-1") == full_state()

    run_on_store(body)


def test_saved_state_is_a_deep_snapshot(run_on_store: Runner) -> None:
    """Step results and trigger data nest containers; changing those later must not leak into the store either."""

    async def body(store: SagaStore) -> None:
        state = full_state()
        await store.save(state, 0)
        state.results["accounts"][0]["balance"] = 0.0
        state.trigger_data["accounts"].append("a-3")
        assert await store.load("saga-1") == full_state()

        loaded = await store.load("saga-1")
        assert loaded is not None
        loaded.results["accounts"].append({"id": "a-9"})
        loaded.trigger_data["limits"]["max_orders"] = 0
        assert await store.load("saga-1") == full_state()

    run_on_store(body)


def test_unfinished_is_exactly_the_non_terminal_sagas_in_start_order(run_on_store: Runner) -> None:
    async def body(store: SagaStore) -> None:
        assert await store.unfinished() == []
        # Saved out of order; ties on started_at are broken by saga_id ("s-10" < "s-a" < "s-b").
        specs = [
            ("s-b", 20.0, SagaStatus.RUNNING),
            ("s-t1", 1.0, TERMINAL[0]),
            ("s-i", 100.0, SagaStatus.COMPENSATING),
            ("s-a", 20.0, SagaStatus.COMPENSATING),
            ("s-t2", 2.0, TERMINAL[1]),
            ("s-c", 5.0, SagaStatus.RUNNING),
            ("s-t3", 3.0, TERMINAL[2]),
            ("s-10", 20.0, SagaStatus.RUNNING),
            ("s-t4", 4.0, TERMINAL[3]),
            ("s-0", 0.25, SagaStatus.RUNNING),
            ("s-t5", 50.0, TERMINAL[4]),
        ]
        assert len(TERMINAL) == 5
        for saga_id, started_at, status in specs:
            await store.save(full_state(saga_id, started_at=started_at, status=status), 0)

        unfinished = await store.unfinished()
        assert [s.saga_id for s in unfinished] == ["s-0", "s-c", "s-10", "s-a", "s-b", "s-i"]
        assert unfinished[3] == full_state("s-a", started_at=20.0, status=SagaStatus.COMPENSATING)
        assert {s.status for s in unfinished} == set(NON_TERMINAL)

        # Re-saving an unfinished saga updates it in place (no duplicate, new content).
        await store.save(full_state("s-c", started_at=5.0, status=SagaStatus.COMPENSATING, transitions=8), 0)
        unfinished = await store.unfinished()
        assert [s.saga_id for s in unfinished] == ["s-0", "s-c", "s-10", "s-a", "s-b", "s-i"]
        assert unfinished[1].transitions == 8
        assert unfinished[1].status is SagaStatus.COMPENSATING

        # Saved with a terminal status, a saga drops out (and is still loadable).
        for saga_id, started_at, status in [("s-a", 20.0, SagaStatus.COMPLETED), ("s-0", 0.25, SagaStatus.TIMED_OUT)]:
            await store.save(full_state(saga_id, started_at=started_at, status=status), 0)
        assert [s.saga_id for s in await store.unfinished()] == ["s-c", "s-10", "s-b", "s-i"]
        finished = await store.load("s-a")
        assert finished is not None
        assert finished.status is SagaStatus.COMPLETED

    run_on_store(body)


@pytest.mark.parametrize("status", TERMINAL, ids=[s.value for s in TERMINAL])
def test_every_terminal_status_leaves_unfinished(run_on_store: Runner, status: SagaStatus) -> None:
    async def body(store: SagaStore) -> None:
        await store.save(full_state("s-1", status=SagaStatus.RUNNING, started_at=1.0), 0)
        await store.save(full_state("s-2", status=SagaStatus.RUNNING, started_at=2.0), 0)
        await store.save(full_state("s-1", status=status, started_at=1.0), 0)
        assert [s.saga_id for s in await store.unfinished()] == ["s-2"]

    run_on_store(body)


def test_create_claims_the_trigger_and_saves_the_state_atomically(run_on_store: Runner) -> None:
    async def body(store: SagaStore) -> None:
        first = full_state("saga-1", status=SagaStatus.RUNNING, started_at=1.0)
        assert await store.create(first, "connect_broker:evt-1", "node-a/1", 30) == "saga-1"
        assert await store.load("saga-1") == first
        # The same trigger again: the first owner is returned and nothing is written.
        again = full_state("saga-2", status=SagaStatus.RUNNING, started_at=2.0)
        assert await store.create(again, "connect_broker:evt-1", "node-a/1", 30) == "saga-1"
        assert await store.load("saga-2") is None
        assert [s.saga_id for s in await store.unfinished()] == ["saga-1"]
        # Another event, or the same event for another saga type, is another trigger.
        assert await store.create(again, "purge_account:evt-1", "node-a/1", 30) == "saga-2"
        third = full_state("saga-3", status=SagaStatus.RUNNING, started_at=3.0)
        assert await store.create(third, "connect_broker:evt-2", "node-a/1", 30) == "saga-3"
        assert await store.create(full_state("saga-4"), "connect_broker:evt-2", "node-a/1", 30) == "saga-3"
        assert [s.saga_id for s in await store.unfinished()] == ["saga-1", "saga-2", "saga-3"]

    run_on_store(body)


def test_a_state_that_json_cannot_hold_is_rejected_by_every_store(run_on_store: Runner) -> None:
    async def body(store: SagaStore) -> None:
        with pytest.raises(TypeError, match="state of saga saga-1 \\(connect_broker\\) is not JSON-serializable"):
            await store.save(full_state(results={"when": object()}), 0)
        assert await store.load("saga-1") is None

    run_on_store(body)


# -- leases and fencing: every store, on its own clock -------------------------------------------

Sleep = Callable[[float], Awaitable[None]]
LeaseBody = Callable[[SagaStore, Sleep], Awaitable[None]]


@pytest.fixture(params=["memory", "memory-simulated", *REDIS_KINDS])
def run_with_clock(request: pytest.FixtureRequest) -> Iterator[Callable[[LeaseBody], None]]:
    """Runs ``body(store, sleep)``: ``sleep`` lets the store's own clock pass (real, or simulated)."""
    kind = request.param
    if kind == "memory":
        yield lambda body: asyncio.run(body(InMemorySagaStore(), asyncio.sleep))
    elif kind in ("memory-simulated", "simulated"):

        def run_simulated(body: LeaseBody) -> None:
            async def main(world: SimWorld) -> None:
                clock = world.runtime.now
                store: SagaStore
                if kind == "memory-simulated":
                    store = InMemorySagaStore(clock)
                else:
                    store = RedisSagaStore(SimulatedRedis(clock=clock))
                await body(store, world.runtime.sleep)

            simulate(main, seed=3)

        yield run_simulated
    else:
        with redis_runner(kind, "lease-contract") as run:
            yield lambda body: run(lambda client, prefix: body(RedisSagaStore(client, prefix=prefix), asyncio.sleep))


LEASE = 0.2  # seconds: short, so real-clock kinds wait little


def running(saga_id: str = "saga-1", **changes: Any) -> SagaState:
    return full_state(saga_id, status=SagaStatus.RUNNING, started_at=1.0, **changes)


def test_create_leases_the_new_saga_with_token_1_and_writes_carry_it(run_with_clock: Any) -> None:
    async def body(store: SagaStore, sleep: Sleep) -> None:
        assert await store.create(running(), "connect_broker:evt-1", "node-a/1", 30) == "saga-1"
        await store.save(running(transitions=2), 1)
        with pytest.raises(LeaseLost, match="saga saga-1: write with fencing token 0 refused, the latest is 1"):
            await store.save(running(transitions=3), 0)
        with pytest.raises(LeaseLost, match="fencing token 2 refused, the latest is 1"):
            await store.save(running(transitions=3), 2)
        assert await store.load("saga-1") == running(transitions=2)  # refused writes wrote nothing
        # Another node cannot take a live lease; the holder can renew it.
        assert await store.acquire_lease("saga-1", "node-b/2", 30) is None
        assert await store.renew_lease("saga-1", "node-a/1", 1, 30) is True
        assert await store.renew_lease("saga-1", "node-b/2", 1, 30) is False
        assert await store.renew_lease("saga-1", "node-a/1", 2, 30) is False

    run_with_clock(body)


def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_out(run_with_clock: Any) -> None:
    async def body(store: SagaStore, sleep: Sleep) -> None:
        await store.create(running(), "connect_broker:evt-1", "node-a/1", LEASE)
        await sleep(LEASE * 1.5)
        assert await store.renew_lease("saga-1", "node-a/1", 1, LEASE) is False  # it ran out
        assert await store.acquire_lease("saga-1", "node-b/2", 30) == 2
        assert await store.acquire_lease("saga-1", "node-c/3", 30) is None
        with pytest.raises(LeaseLost, match="write with fencing token 1 refused, the latest is 2"):
            await store.save(running(transitions=9), 1)
        await store.save(running(transitions=3), 2)
        assert await store.load("saga-1") == running(transitions=3)

    run_with_clock(body)


def test_a_restarted_node_reclaims_its_earlier_incarnation_s_lease_at_once(run_with_clock: Any) -> None:
    async def body(store: SagaStore, sleep: Sleep) -> None:
        await store.create(running(), "connect_broker:evt-1", "node-a/1", 30)
        assert await store.acquire_lease("saga-1", "node-a/4", 30) == 2
        assert await store.renew_lease("saga-1", "node-a/1", 1, 30) is False
        assert await store.acquire_lease("saga-1", "node-ab/5", 30) is None  # a node name is not a prefix
        # Never backwards (a stopped incarnation cannot take it back), never one's own live lease again.
        assert await store.acquire_lease("saga-1", "node-a/1", 30) is None
        assert await store.acquire_lease("saga-1", "node-a/4", 30) is None

    run_with_clock(body)


def test_a_terminal_save_releases_the_lease(run_with_clock: Any) -> None:
    async def body(store: SagaStore, sleep: Sleep) -> None:
        await store.create(running(), "connect_broker:evt-1", "node-a/1", 30)
        await store.save(full_state("saga-1", status=SagaStatus.COMPLETED), 1)
        assert await store.renew_lease("saga-1", "node-a/1", 1, 30) is False
        assert await store.acquire_lease("saga-1", "node-b/2", 30) == 2

    run_with_clock(body)


def test_incarnations_are_handed_out_once_each(run_with_clock: Any) -> None:
    async def body(store: SagaStore, sleep: Sleep) -> None:
        assert [await store.new_incarnation() for _ in range(3)] == [1, 2, 3]

    run_with_clock(body)


# -- RedisSagaStore specifics: a rival writer between WATCH and EXEC ---------------------------


class _RivalBetweenWatchAndExec:
    """A fakeredis client whose pipelines let a rival touch the trigger key right after our WATCH + GET.

    The rival claims the trigger for good (``keeps_claim``), or claims and releases it
    at once, which still invalidates the WATCH and leaves the trigger free for a retry.
    """

    def __init__(self, *, keeps_claim: bool) -> None:
        self.redis = fakeredis.FakeRedis()
        self.keeps_claim = keeps_claim
        self.rivals = 0

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self.redis.pipeline(transaction=transaction)
        watched_get = pipe.get

        def get(key: str) -> Any:
            value = watched_get(key)
            self.rivals += 1
            self.redis.set(key, f"saga-rival-{self.rivals}")
            if not self.keeps_claim:
                self.redis.delete(key)
            return value

        pipe.get = get
        return pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.redis, name)


def test_create_loses_to_a_rival_that_claims_between_watch_and_exec() -> None:
    client = _RivalBetweenWatchAndExec(keeps_claim=True)
    store = RedisSagaStore(client, prefix="race")
    state = full_state("saga-2", status=SagaStatus.RUNNING)

    assert asyncio.run(store.create(state, "connect_broker:evt-1", "node-a/1", 30)) == "saga-rival-1"
    assert asyncio.run(store.load("saga-2")) is None  # the aborted transaction wrote nothing
    assert client.rivals == 2  # round two's GET saw the rival's claim


def test_create_gives_up_after_a_bounded_number_of_conflicts() -> None:
    client = _RivalBetweenWatchAndExec(keeps_claim=False)
    store = RedisSagaStore(client, prefix="race")

    with pytest.raises(SagaError, match=r"could not claim trigger 'connect_broker:evt-1': 5 conflicting writers"):
        asyncio.run(store.create(full_state("saga-2"), "connect_broker:evt-1", "node-a/1", 30))
    assert client.rivals == 5
