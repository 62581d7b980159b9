"""Leases and fencing: managers that overlap, recover at once or pause never drive one saga twice.

Each case runs on the simulated runtime with the in-memory store (the lab's setting), on a
virtual-time asyncio loop with the in-memory store, and on real asyncio with the Redis store
on a real server (REDIS_URL, as the store contract suite). In every case each completed
execute runs once (the step in flight when its owner stopped may run once more, as
documented), each completion event is published once, and no record is overwritten by a
manager that no longer owns it. The last case is the cross-manager half of how a compensating
parent stops its children (the same-manager half is in test_manager and test_engine_edge_cases).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import redis.asyncio

from sagas.engine import BaseSaga, EventBus, RandomStreams, SagaCompleted, SagaManager, SagaStep, SagaStore, Tracer
from sagas.engine.events import Event
from sagas.engine.ports import Runtime
from sagas.engine.state import SagaStatus
from sagas.runtime.asyncio_runtime import AsyncioRuntime
from sagas.stores.memory import InMemorySagaStore
from sagas.stores.redis_store import RedisSagaStore
from sagas.testing import VirtualTimeLoop
from simlab.sim.runtime import SimRuntime
from tests.redis_server import delete_prefix, require_redis_url, unique_prefix

STEPS = ("reserve", "charge", "ship")


class Go(Event):
    pass


@dataclass
class Bed:
    """One runtime and one store shared by every manager of a case, and what the steps did."""

    runtime: Runtime
    store: SagaStore
    scale: float  # seconds per unit of the case's timeline (real Redis runs it faster)
    bus: EventBus = field(default_factory=EventBus)
    tracer: Tracer = field(init=False)
    effects: Counter[str] = field(default_factory=Counter)
    completions: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.tracer = Tracer(self.runtime.now)
        self.t0 = self.runtime.now()  # a real clock does not start at 0

        async def completed(event: SagaCompleted) -> None:
            self.completions[event.saga_id] += 1

        self.bus.subscribe(SagaCompleted, completed)

    def manager(self, node: str, store: SagaStore | None = None) -> SagaManager:
        manager = SagaManager(
            runtime=self.runtime,
            store=store or self.store,
            random_streams=RandomStreams(7),  # the same seed for all: ids differ by incarnation alone
            event_bus=self.bus,
            tracer=self.tracer,
            lease_seconds=3 * self.scale,
            node=node,
        )
        manager.register(Go, lambda: Shipping(self))
        return manager

    async def sleep_until(self, t: float) -> None:
        await self.runtime.sleep(max(0.0, self.t0 + t * self.scale - self.runtime.now()))


class Shipping(BaseSaga):
    """Three steps of 2 units each; every execute that runs to its end counts one effect."""

    def __init__(self, bed: Bed) -> None:
        super().__init__()
        self.bed = bed

    def get_saga_type(self) -> str:
        return "Shipping"

    def get_timeout(self) -> float:
        return 100 * self.bed.scale

    def define_steps(self) -> list[SagaStep]:
        return [SagaStep(name, self._step(name), timeout_seconds=10 * self.bed.scale) for name in STEPS]

    def _step(self, name: str) -> Callable[..., Awaitable[None]]:
        async def execute(**context: Any) -> None:
            await self.bed.runtime.sleep(2 * self.bed.scale)
            self.bed.effects[name] += 1

        return execute


class PausableStore:
    """One manager's connection to the shared store; while paused, its calls wait (a frozen process)."""

    def __init__(self, inner: SagaStore, bed: Bed) -> None:
        self._inner = inner
        self._bed = bed
        self.until = 0.0

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._inner, name)

        async def frozen(*args: Any, **kwargs: Any) -> Any:
            runtime = self._bed.runtime
            if runtime.now() < self.until:
                await runtime.sleep(self.until - runtime.now())
            return await call(*args, **kwargs)

        return frozen


Case = Callable[[Bed], Coroutine[Any, Any, None]]


def _run_sim(case: Case) -> Bed:
    runtime = SimRuntime()
    bed = Bed(runtime, InMemorySagaStore(runtime.now), 1.0)
    task = runtime.spawn(case(bed), name="main")
    runtime.run()
    assert runtime.unobserved_errors() == [] and task.done()
    task.result()
    return bed


def _run_virtual(case: Case) -> Bed:
    loop = VirtualTimeLoop()
    runtime = AsyncioRuntime(clock=loop.time)
    bed = Bed(runtime, InMemorySagaStore(loop.time), 1.0)
    try:
        loop.run_until_complete(case(bed))
        assert not asyncio.all_tasks(loop)
    finally:
        loop.close()
    return bed


def _run_redis(case: Case) -> Bed:
    url = require_redis_url()
    prefix = unique_prefix("leases")
    holder: list[Bed] = []

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(url)
        try:
            bed = Bed(AsyncioRuntime(), RedisSagaStore(client, prefix=prefix), 0.1)
            holder.append(bed)
            await case(bed)
        finally:
            await client.aclose()

    try:
        asyncio.run(main())
    finally:
        with contextlib.closing(redis.Redis.from_url(url)) as cleanup:
            delete_prefix(cleanup, prefix)
    return holder[0]


@pytest.fixture(
    params=[
        "sim",
        "asyncio-virtual",
        pytest.param("asyncio-redis", marks=pytest.mark.redis),
    ]
)
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Case], Bed]]:
    yield {"sim": _run_sim, "asyncio-virtual": _run_virtual, "asyncio-redis": _run_redis}[request.param]


def _outcomes(bed: Bed, saga_id: str) -> list[str]:
    return [r.outcome for r in bed.tracer.records if r.saga_id == saga_id and r.phase == "saga"]


def test_a_live_manager_keeps_its_saga_when_another_recovers(run: Callable[[Case], Bed]) -> None:
    seen: dict[str, Any] = {}

    async def case(bed: Bed) -> None:
        live, other = bed.manager("a"), bed.manager("b")
        [saga_id] = await live.handle_event(Go(event_id="go-1"))
        await bed.sleep_until(1)
        seen["taken"] = await other.recover()
        await bed.sleep_until(4)  # past one lease length: the live manager renewed it
        seen["taken later"] = await other.recover()
        seen["final"] = (await live.wait_idle())[0]
        seen["id"] = saga_id

    bed = run(case)
    assert seen["taken"] == [] and seen["taken later"] == []
    assert seen["final"].status is SagaStatus.COMPLETED
    assert bed.effects == Counter(dict.fromkeys(STEPS, 1))
    assert bed.completions == Counter({seen["id"]: 1})


def test_two_managers_recovering_at_once_resume_a_dead_manager_s_saga_once(run: Callable[[Case], Bed]) -> None:
    seen: dict[str, Any] = {}

    async def case(bed: Bed) -> None:
        dead = bed.manager("a")
        [saga_id] = await dead.handle_event(Go(event_id="go-1"))
        await bed.sleep_until(3)  # reserve done at 2; charge in flight
        dead.stop()  # killed: nothing more is written, its lease is left to run out
        await bed.runtime.sleep(0)
        b, c = bed.manager("b"), bed.manager("c")
        seen["before expiry"] = await asyncio_free_gather(bed, b.recover(), c.recover())
        await bed.sleep_until(7)  # the dead manager's lease (renewed at 2 at the latest) has run out
        seen["taken"] = await asyncio_free_gather(bed, b.recover(), c.recover())
        seen["finals"] = [*await b.wait_idle(), *await c.wait_idle()]
        seen["id"] = saga_id

    bed = run(case)
    saga_id = seen["id"]
    assert seen["before expiry"] == [[], []]
    assert sorted(map(len, seen["taken"])) == [0, 1] and [*seen["taken"][0], *seen["taken"][1]] == [saga_id]
    [final] = seen["finals"]
    assert final.status is SagaStatus.COMPLETED and final.completed_steps == list(STEPS)
    assert final.possibly_applied == ["charge"]
    # charge was cut before it took effect, so it ran to its end once; nothing ran twice.
    assert bed.effects == Counter(dict.fromkeys(STEPS, 1))
    assert bed.completions == Counter({saga_id: 1})
    assert _outcomes(bed, saga_id) == ["started", "resumed", "completed"]


def test_a_paused_manager_whose_lease_ran_out_stops_and_cannot_overwrite_its_successor(
    run: Callable[[Case], Bed],
) -> None:
    seen: dict[str, Any] = {}

    async def case(bed: Bed) -> None:
        connection = PausableStore(bed.store, bed)
        paused = bed.manager("a", store=connection)  # type: ignore[arg-type]
        [saga_id] = await paused.handle_event(Go(event_id="go-1"))
        await bed.sleep_until(2.5)  # reserve done at 2, charge in flight
        connection.until = bed.t0 + 12 * bed.scale  # frozen from 2.5 to 12: its lease runs out on the store at 5
        await bed.sleep_until(6)
        successor = bed.manager("b")
        seen["taken"] = await successor.recover()
        seen["finals"] = await successor.wait_idle()
        seen["paused"] = await paused.wait_idle()
        seen["stored"] = await bed.store.load(saga_id)
        seen["id"] = saga_id

    bed = run(case)
    saga_id = seen["id"]
    assert seen["taken"] == [saga_id]
    [final] = seen["finals"]
    assert final.status is SagaStatus.COMPLETED
    assert bed.effects["reserve"] == 1 and bed.effects["ship"] == 1
    # charge was in flight when the pause struck: the paused manager finished its attempt (its
    # effect is real) and the successor re-ran it, the documented re-run of a possibly applied step.
    assert bed.effects["charge"] == 2 and final.possibly_applied == ["charge"]
    assert bed.completions == Counter({saga_id: 1})
    [stale] = seen["paused"]
    assert stale.status is SagaStatus.RUNNING  # what the paused manager last saw; it wrote nothing more
    outcomes = _outcomes(bed, saga_id)
    assert outcomes.count("lease_lost") == 1 and outcomes.count("completed") == 1
    assert seen["stored"] == final  # the successor's terminal state, not overwritten


async def asyncio_free_gather(bed: Bed, *calls: Coroutine[Any, Any, list[str]]) -> list[list[str]]:
    """Run ``calls`` concurrently on the bed's runtime (no asyncio under the simulated one)."""
    tasks = [bed.runtime.spawn(call, name=f"recover {i}") for i, call in enumerate(calls)]
    return [await task.join() for task in tasks]


def test_a_child_driven_by_another_manager_hears_its_parent_s_cancellation_at_its_next_renewal(
    run: Callable[[Case], Bed],
) -> None:
    seen: dict[str, Any] = {}

    async def case(bed: Bed) -> None:
        b = bed.manager("b")
        [child] = await b.handle_event(Go(event_id="go-1"), parent_id="parent-on-a")
        await bed.sleep_until(2.5)  # reserve done at 2; charge in flight
        # What a parent compensating on another manager does: it can only ask through the store.
        await bed.store.request_cancel(child, "parent Parent parent-on-a is compensating")
        seen["finals"] = await b.wait_idle()
        seen["id"] = child

    bed = run(case)
    [final] = seen["finals"]
    assert (final.status, final.error_type) == (SagaStatus.COMPENSATED, "ParentCompensated")
    assert final.error == "parent Parent parent-on-a is compensating"
    assert final.completed_steps == ["reserve"] and final.possibly_applied == ["charge"]
    assert bed.effects == Counter({"reserve": 1})  # charge was cut, ship never ran
    if bed.scale == 1.0:  # exact on the simulated and virtual clocks: the renewal at 3 s hears it
        assert final.updated_at == 3.0
    assert _outcomes(bed, seen["id"]) == ["started", "parent_compensated", "compensating", "compensated"]


def test_a_stopped_manager_that_kept_recovering_takes_nothing_back_from_its_successor(
    run: Callable[[Case], Bed],
) -> None:
    """Found in review: a stopped incarnation's recovery round took leases back from its restarted node."""
    seen: dict[str, Any] = {}

    async def case(bed: Bed) -> None:
        old = bed.manager("a")
        [saga_id] = await old.handle_event(Go(event_id="go-1"))
        rounds = bed.runtime.spawn(old.keep_recovering(1 * bed.scale, until=bed.t0 + 20 * bed.scale))
        await bed.sleep_until(2.5)
        old.stop()
        await bed.runtime.sleep(0)
        successor = bed.manager("a")  # the same node, restarted
        seen["taken"] = await successor.recover()
        seen["finals"] = await successor.wait_idle()
        await rounds.join()
        seen["id"] = saga_id

    bed = run(case)
    [final] = seen["finals"]
    assert seen["taken"] == [seen["id"]] and final.status is SagaStatus.COMPLETED
    assert _outcomes(bed, seen["id"]) == ["started", "resumed", "completed"]
    assert bed.effects["reserve"] == 1 and bed.effects["ship"] == 1 and bed.completions[seen["id"]] == 1
