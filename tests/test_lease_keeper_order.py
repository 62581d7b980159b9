"""The lease keeper's heap of due times acts as a walk of every execution at each wake would.

``LeaseKeeper`` keeps the times at which an execution may need it in a heap, and at each wake acts
only on those due, in the order the manager holds its executions. These cases pin that down: the
order of renewals among executions due at one instant (equal and different times, overwritten and
re-added keys), and, on seeded random schedules (stores that answer late, refuse, fail or never
answer; sagas that end, lose their lease or leave), the same wakes, renewals, losses and task
names as ``WalkingKeeper``, the keeper as it was before the heap: a walk over every execution.
"""

from __future__ import annotations

import random
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from sagas.engine.execution import SagaExecution
from sagas.engine.leases import LeaseHolder, LeaseKeeper
from sagas.engine.ports import TaskHandle
from sagas.engine.state import SagaState, SagaStatus
from simlab.sim.runtime import SimRuntime

LEASE = 3.0


class WalkingKeeper(LeaseKeeper):
    """The reference: at each wake, walk every execution (the keeper's loop before the heap)."""

    async def _keep_leases(self) -> None:
        runtime = self._holder.runtime
        while self._executions:
            now = runtime.now()
            wake = now + self._holder.lease_seconds / 3
            for execution in list(self._executions.values()):
                if execution.lease_lost:
                    continue
                if now >= execution.lease_until:
                    self.lose(execution, f"no renewal succeeded; the lease ran out at {execution.lease_until:g} s")
                    continue
                if now >= execution.renew_at and not execution.renewing:
                    execution.renewing = True
                    runtime.spawn(self._renew(execution), name=f"lease {execution.state.saga_id}")
                elif not execution.renewing:
                    wake = min(wake, execution.renew_at)
                wake = min(wake, execution.lease_until)
            await runtime.sleep(wake - now)


class HeapKeeper(LeaseKeeper):
    """Takes due executions off its heap however few there are."""

    HEAP_FROM = 0


class SwitchingKeeper(LeaseKeeper):
    """Walks below 4 executions, uses its heap from 4 on: the random scripts cross that often."""

    HEAP_FROM = 4


KEEPERS = [HeapKeeper, SwitchingKeeper, LeaseKeeper]


@dataclass
class _State:
    saga_id: str
    status: SagaStatus = SagaStatus.RUNNING
    parent_id: str | None = None


@dataclass
class _Execution:
    """What the keeper reads and writes of a ``SagaExecution``."""

    state: _State
    lease_until: float
    log: list[tuple[Any, ...]]
    renew_at: float = 0.0
    renewing: bool = False
    lease_lost: bool = False
    started: bool = True
    fence: int = 1
    parent_cancel: str | None = None

    def stop_driving(self, reason: str) -> None:
        if not self.lease_lost:
            self.lease_lost = True
            self.log.append(("lost", self.state.saga_id, reason))


@dataclass
class _Recording:
    """The runtime, recording every sleep and spawn (with the time) in ``log``."""

    inner: SimRuntime
    log: list[tuple[Any, ...]]

    def now(self) -> float:
        return self.inner.now()

    def sleep(self, seconds: float) -> Any:
        self.log.append(("sleep", self.inner.now(), seconds))
        return self.inner.sleep(seconds)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str = "") -> Any:
        self.log.append(("spawn", self.inner.now(), name))
        return self.inner.spawn(coroutine, name=name)

    def run_with_deadline(self, awaitable: Coroutine[Any, Any, Any], timeout_seconds: float) -> Any:
        return self.inner.run_with_deadline(awaitable, timeout_seconds)


@dataclass
class _Store:
    """Answers each renewal after ``delay`` with ``answer`` (True, False, or an exception to raise)."""

    runtime: SimRuntime
    log: list[tuple[Any, ...]]
    plan: random.Random | None = None

    async def renew_lease(self, saga_id: str, owner: str, fence: int, lease_seconds: float) -> bool:
        self.log.append(("renew", self.runtime.now(), saga_id))
        delay, answer = (0.0, True) if self.plan is None else self._draw()
        await self.runtime.sleep(delay)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _draw(self) -> tuple[float, bool | Exception]:
        assert self.plan is not None
        delay = self.plan.choice([0.0, 0.0, 0.25, 0.5, 1.0, 3.0])  # 3.0: past the lease (a deadline)
        answers: list[bool | Exception] = [True, True, True, True, False, ConnectionError("store down")]
        return delay, self.plan.choice(answers)

    async def cancel_requested(self, saga_id: str) -> str | None:
        return None


@dataclass
class _Holder:
    runtime: Any
    store: Any
    owner: str = "m1"
    lease_seconds: float = LEASE

    def task_of(self, saga_id: str) -> TaskHandle[SagaState] | None:
        return None


@dataclass
class _Bed:
    """One manager's executions and keeper on a simulated clock; ``log`` is all they did."""

    keeper_type: type[LeaseKeeper]
    plan_seed: int | None = None
    log: list[tuple[Any, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sim = SimRuntime()
        self.runtime = _Recording(self.sim, self.log)
        plan = None if self.plan_seed is None else random.Random(self.plan_seed)
        holder = _Holder(self.runtime, _Store(self.sim, self.log, plan))
        self.executions: dict[str, SagaExecution] = {}
        self.keeper = self.keeper_type(cast(LeaseHolder, holder), self.executions)

    def add(self, saga_id: str, asked_at: float | None = None) -> _Execution:
        """Launch ``saga_id`` as the manager does (a key already held is overwritten in place)."""
        lease_until = self.keeper.valid_until(self.sim.now() if asked_at is None else asked_at)
        execution = _Execution(_State(saga_id), lease_until, self.log)
        self.executions[saga_id] = cast(SagaExecution, execution)
        self.keeper.track(cast(SagaExecution, execution))
        return execution

    def drop(self, saga_id: str) -> None:
        """``saga_id``'s task ended, as the manager's ``_run`` drops it."""
        del self.executions[saga_id]
        self.keeper.forget(saga_id)
        if not self.executions:
            self.keeper.stop()

    def at(self, when: float, action: Any) -> None:
        async def later() -> None:
            await self.sim.sleep(when - self.sim.now())
            action()

        self.sim.spawn(later(), name="script")

    def renewals(self) -> list[tuple[float, str]]:
        return [(entry[1], entry[2]) for entry in self.log if entry[0] == "renew"]


@pytest.mark.parametrize("keeper_type", KEEPERS)
def test_executions_due_at_one_wake_renew_in_the_manager_s_order(keeper_type: type[LeaseKeeper]) -> None:
    bed = _Bed(keeper_type)
    bed.at(0.0, lambda: [bed.add(saga_id) for saga_id in ("c", "a", "e", "b")])
    bed.at(0.5, lambda: bed.add("d"))  # due half a second after the others
    bed.at(0.5, lambda: bed.add("a"))  # "a" overwritten: it keeps its place, and its new times
    bed.at(0.75, lambda: bed.drop("e"))
    bed.at(0.75, lambda: bed.add("e"))  # "e" left and came back: it comes last now
    bed.sim.run(until=1.6)
    assert bed.renewals() == [(1.0, "c"), (1.0, "b"), (1.5, "a"), (1.5, "d")]
    bed.sim.run(until=1.8)
    assert bed.renewals()[4:] == [(1.75, "e")]


@pytest.mark.parametrize("keeper_type", KEEPERS)
def test_a_lease_that_ran_out_on_an_ended_saga_takes_no_renewal_and_no_wake(keeper_type: type[LeaseKeeper]) -> None:
    beds = [_Bed(kind) for kind in (WalkingKeeper, keeper_type)]
    for bed in beds:
        # Launched long after it asked (as a resumed saga may be): its renewal falls after its lease's end.
        bed.at(0.0, lambda bed=bed: bed.add("x", asked_at=-2.0))
        bed.at(0.0, lambda bed=bed: setattr(bed.executions["x"].state, "status", SagaStatus.COMPLETED))
        bed.at(0.5, lambda bed=bed: bed.add("y"))
        bed.sim.run(until=3.0)
    walked, heaped = beds
    assert heaped.log == walked.log
    assert heaped.renewals() == [(1.5, "y"), (2.5, "y")]
    sleeps = [(round(entry[1], 9), round(entry[2], 9)) for entry in heaped.log if entry[0] == "sleep"]
    assert (0.7, 0.8) in sleeps  # at x's lease end, the keeper sleeps until y's renewal: none at 1.0 for x
    assert not heaped.executions["x"].lease_lost  # ``lose`` leaves an ended saga alone, at every wake


def _script(bed: _Bed, seed: int) -> None:
    """Launches, overwrites, drops, ends and losses at random (grid) times: many land together."""
    rng = random.Random(seed)
    known: list[str] = []
    for _ in range(60):
        when = rng.randrange(0, 80) / 4
        saga_id = f"s{rng.randrange(25)}"
        kind = rng.choice(["add", "add", "add", "drop", "end", "lose", "late"])
        if kind in ("add", "late"):
            asked = when - rng.choice([0.0, 0.5, 2.5]) if kind == "late" else None
            bed.at(when, lambda saga_id=saga_id, asked=asked: bed.add(saga_id, asked))
            known.append(saga_id)
        elif known:
            target = rng.choice(known)
            bed.at(when, lambda target=target, kind=kind: _act(bed, target, kind))


def _act(bed: _Bed, saga_id: str, kind: str) -> None:
    execution = cast(Any, bed.executions.get(saga_id))
    if execution is None:
        return
    if kind == "drop":
        bed.drop(saga_id)
    elif kind == "end":
        execution.state.status = SagaStatus.COMPLETED
    else:
        execution.stop_driving("lost by its own task")


@pytest.mark.parametrize("keeper_type", KEEPERS)
@pytest.mark.parametrize("seed", range(40))
def test_the_heap_does_what_a_walk_of_every_execution_does(seed: int, keeper_type: type[LeaseKeeper]) -> None:
    beds = [_Bed(kind, plan_seed=seed) for kind in (WalkingKeeper, keeper_type)]
    for bed in beds:
        _script(bed, seed)
        bed.sim.run(until=40.0)
    walked, heaped = beds
    assert heaped.log == walked.log
    assert any(entry[0] == "lost" for entry in walked.log)
    assert len(walked.renewals()) > 20
