"""``LeaseKeeper``: keeps the leases of the sagas one manager drives, and stops a saga whose lease is lost.

A manager drives a saga only while it holds the saga's lease in the store. One keeper task per
manager renews each lease a third of ``lease_seconds`` after the last renewal; when a renewal is
refused, or none succeeded within ``lease_seconds`` minus a tenth (the margin for clock drift
between this process and the store), the saga's task is cancelled at its current await.

With many executions the keeper does not walk them all at each wake: it keeps a heap of the times
at which an execution may need it (each lease's end, each renewal not under way) and acts, at each
wake, on those that have come due only, in the order the manager holds its executions (the order a
walk of all of them would act in). Heap entries are not removed when a time moves: an entry that no
longer matches its execution is dropped when it reaches the top. With few executions a walk is
cheaper than the heap's bookkeeping, so below ``LeaseKeeper.HEAP_FROM`` it walks (and keeps no heap);
both ways act on the same executions in the same order and sleep until the same time.
"""

from __future__ import annotations

import contextlib
import heapq
from itertools import count
from typing import Protocol

from sagas.engine.errors import DeadlineExceeded
from sagas.engine.execution import SagaExecution
from sagas.engine.ports import Runtime, SagaStore, TaskHandle
from sagas.engine.state import SagaState

_LEASE_ENDS = 0  # a heap entry for when an execution's lease runs out (its ``lease_until``)
_RENEW = 1  # a heap entry for when an execution is to be renewed (its ``renew_at``, unless renewing)


class LeaseHolder(Protocol):
    """What the keeper reads of its manager, at each use: the lab may swap the store, and the
    owner is known only once the manager has drawn its incarnation."""

    runtime: Runtime
    store: SagaStore
    owner: str
    lease_seconds: float

    def task_of(self, saga_id: str) -> TaskHandle[SagaState] | None: ...


class LeaseKeeper:
    """Renews the leases of a manager's executions with one task for all of them."""

    HEAP_FROM = 16
    """From this many executions on, a wake takes the due ones off a heap instead of walking them all."""

    def __init__(self, holder: LeaseHolder, executions: dict[str, SagaExecution]) -> None:
        self._holder = holder
        self._executions = executions  # the manager's own: it adds and drops them, the keeper reads them
        self._task: TaskHandle[None] | None = None
        # (time, push number, kind, execution): the push number keeps executions from being compared.
        self._heap: list[tuple[float, int, int, SagaExecution]] | None = None  # None: walking
        self._pushes = count()
        # Each saga id among the manager's executions, to its place in that dict's insertion order
        # (a key overwritten keeps its place, as in the dict): due executions are acted on in this order.
        self._order: dict[str, int] = {}
        self._joined = count()

    def valid_until(self, asked_at: float) -> float:
        """When a lease asked for at ``asked_at`` runs out by this process's clock, with a tenth for drift."""
        return asked_at + self._holder.lease_seconds * 0.9

    def track(self, execution: SagaExecution) -> None:
        """Keep ``execution``'s lease from now on (it is already among the manager's executions)."""
        runtime = self._holder.runtime
        execution.renew_at = runtime.now() + self._holder.lease_seconds / 3
        self._order.setdefault(execution.state.saga_id, next(self._joined))
        self._watch_lease(execution)
        self._watch_renewal(execution)
        if self._task is None:
            self._task = runtime.spawn(self._keep_leases(), name="lease keeper")

    def forget(self, saga_id: str) -> None:
        """``saga_id`` has left the manager's executions (a later ``track`` of it places it last)."""
        self._order.pop(saga_id, None)

    def stop(self) -> None:
        """Stop renewing (nothing left to keep, or the manager stopped); the next ``track`` starts again."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if not self._executions:  # every entry left is stale: free them
            self._heap = None

    def _watch_lease(self, execution: SagaExecution) -> None:
        """Note when ``execution``'s lease runs out now (a renewal moved it, or it is new)."""
        if self._heap is not None:
            heapq.heappush(self._heap, (execution.lease_until, next(self._pushes), _LEASE_ENDS, execution))

    def _watch_renewal(self, execution: SagaExecution) -> None:
        """Note when ``execution`` is to be renewed next (no renewal of it is under way)."""
        if self._heap is not None:
            heapq.heappush(self._heap, (execution.renew_at, next(self._pushes), _RENEW, execution))

    def _heap_of_all(self) -> list[tuple[float, int, int, SagaExecution]]:
        """A heap of every execution's times as they stand (a walk is giving way to the heap)."""
        heap: list[tuple[float, int, int, SagaExecution]] = []
        for execution in self._executions.values():
            if execution.lease_lost:
                continue
            heap.append((execution.lease_until, next(self._pushes), _LEASE_ENDS, execution))
            if not execution.renewing:
                heap.append((execution.renew_at, next(self._pushes), _RENEW, execution))
        heapq.heapify(heap)
        return heap

    def _holds(self, execution: SagaExecution, kind: int, at: float) -> bool:
        """Whether a heap entry still stands: its execution is the manager's, not lost, and its time unmoved."""
        if execution.lease_lost or self._executions.get(execution.state.saga_id) is not execution:
            return False
        if kind == _LEASE_ENDS:
            return execution.lease_until == at
        return execution.renew_at == at and not execution.renewing

    def _due(self, heap: list[tuple[float, int, int, SagaExecution]], now: float) -> list[SagaExecution]:
        """The executions whose lease end or renewal time has come by ``now``, in the manager's order."""
        due: dict[int, SagaExecution] = {}
        while heap and heap[0][0] <= now:
            at, _, kind, execution = heapq.heappop(heap)
            if self._holds(execution, kind, at):
                due[self._order[execution.state.saga_id]] = execution
        return [due[place] for place in sorted(due)] if len(due) > 1 else list(due.values())

    def _next_time(self, heap: list[tuple[float, int, int, SagaExecution]], now: float) -> float | None:
        """The earliest time after ``now`` at which an execution may need the keeper, if any."""
        while heap:
            at, _, kind, execution = heap[0]
            # A lease run out (and left alone by ``lose``) takes no renewal: its renewal time does not count.
            if self._holds(execution, kind, at) and execution.lease_until > now:
                return at
            heapq.heappop(heap)  # stale: the execution has a newer entry if it ever matters again
        return None

    async def _keep_leases(self) -> None:
        """Keep the leases of every saga the manager drives.

        Each lease is renewed a third of its length after the last renewal (by a task of its
        own, so a store slow to answer one delays no other); a lease whose local validity runs
        out unrenewed is lost at that instant.
        """
        runtime = self._holder.runtime
        while self._executions:
            now = runtime.now()
            wake = now + self._holder.lease_seconds / 3
            if len(self._executions) < self.HEAP_FROM:
                self._heap = None
                wake = self._walk(now, wake)
            else:
                if self._heap is None:
                    self._heap = self._heap_of_all()
                wake = self._take_due(self._heap, now, wake)
            await runtime.sleep(wake - now)

    def _walk(self, now: float, wake: float) -> float:
        """Act on every execution that is due, walking them all; the next wake (no later than ``wake``)."""
        for execution in list(self._executions.values()):
            if execution.lease_lost:
                continue
            if self._act(execution, now):
                continue
            if not execution.renewing:
                wake = min(wake, execution.renew_at)
            wake = min(wake, execution.lease_until)
        return wake

    def _take_due(self, heap: list[tuple[float, int, int, SagaExecution]], now: float, wake: float) -> float:
        """Act on the executions the heap says are due; the next wake (no later than ``wake``)."""
        for execution in self._due(heap, now):
            # ``lose`` leaves a saga that has ended alone; it stays ended, so a walk calling ``lose``
            # again at each later wake would change nothing: its entries are not put back.
            self._act(execution, now)
        upcoming = self._next_time(heap, now)
        return wake if upcoming is None else min(wake, upcoming)

    def _act(self, execution: SagaExecution, now: float) -> bool:
        """Lose ``execution``'s run-out lease (True), or start its renewal if one is due (False, and on)."""
        if now >= execution.lease_until:
            self.lose(execution, f"no renewal succeeded; the lease ran out at {execution.lease_until:g} s")
            return True
        if now >= execution.renew_at and not execution.renewing:
            execution.renewing = True
            self._holder.runtime.spawn(self._renew(execution), name=f"lease {execution.state.saga_id}")
        return False

    async def _renew(self, execution: SagaExecution) -> None:
        holder = self._holder
        state = execution.state
        asked_at = holder.runtime.now()
        renewed = False
        try:
            # A store that does not answer before the lease runs out here has as good as refused:
            # waiting longer would let this saga run on after another manager may have taken it.
            renewed = await holder.runtime.run_with_deadline(
                holder.store.renew_lease(state.saga_id, holder.owner, execution.fence, holder.lease_seconds),
                execution.lease_until - asked_at,
            )
        except DeadlineExceeded:
            self.lose(execution, f"the store did not answer before the lease ran out at {execution.lease_until:g} s")
            return
        except Exception:  # noqa: BLE001 - the store is unreachable: try again until the lease runs out
            execution.renew_at = asked_at + holder.lease_seconds / 3
            return
        finally:
            execution.renewing = False
            if not renewed:  # its renewal time (moved or not) counts again; its lease's end has not moved
                self._watch_renewal(execution)
        if not renewed:
            if not state.status.is_terminal:  # a final write releases the lease: nothing was lost then
                self.lose(execution, "the store refused the renewal: another manager holds the lease")
            return
        execution.lease_until = self.valid_until(asked_at)
        execution.renew_at = asked_at + holder.lease_seconds / 3
        self._watch_lease(execution)
        self._watch_renewal(execution)
        await self._hear_parent(execution)

    async def _hear_parent(self, execution: SagaExecution) -> None:
        """A parent driven by another manager asks through the store; it is heard at the next renewal."""
        state = execution.state
        if state.parent_id is not None and execution.parent_cancel is None:
            with contextlib.suppress(Exception):
                asked = await self._holder.store.cancel_requested(state.saga_id)
                if asked is not None:
                    execution.cancel_for_parent(asked)

    def lose(self, execution: SagaExecution, reason: str) -> None:
        """``execution`` no longer holds its lease: it stops driving its saga at its current await."""
        if execution.lease_lost or execution.state.status.is_terminal:
            return
        execution.stop_driving(reason)
        task = self._holder.task_of(execution.state.saga_id)
        # A task not started yet must not be cancelled: it would never run its cleanup. It starts,
        # sees the lease lost and ends at once.
        if execution.started and task is not None and not task.done():
            task.cancel()
