"""``LeaseKeeper``: keeps the leases of the sagas one manager drives, and stops a saga whose lease is lost.

A manager drives a saga only while it holds the saga's lease in the store. One keeper task per
manager renews each lease a third of ``lease_seconds`` after the last renewal; when a renewal is
refused, or none succeeded within ``lease_seconds`` minus a tenth (the margin for clock drift
between this process and the store), the saga's task is cancelled at its current await.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from sagas.engine.errors import DeadlineExceeded
from sagas.engine.execution import SagaExecution
from sagas.engine.ports import Runtime, SagaStore, TaskHandle
from sagas.engine.state import SagaState


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

    def __init__(self, holder: LeaseHolder, executions: dict[str, SagaExecution]) -> None:
        self._holder = holder
        self._executions = executions  # the manager's own: it adds and drops them, the keeper reads them
        self._task: TaskHandle[None] | None = None

    def valid_until(self, asked_at: float) -> float:
        """When a lease asked for at ``asked_at`` runs out by this process's clock, with a tenth for drift."""
        return asked_at + self._holder.lease_seconds * 0.9

    def track(self, execution: SagaExecution) -> None:
        """Keep ``execution``'s lease from now on (it is already among the manager's executions)."""
        runtime = self._holder.runtime
        execution.renew_at = runtime.now() + self._holder.lease_seconds / 3
        if self._task is None:
            self._task = runtime.spawn(self._keep_leases(), name="lease keeper")

    def stop(self) -> None:
        """Stop renewing (nothing left to keep, or the manager stopped); the next ``track`` starts again."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

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

    async def _renew(self, execution: SagaExecution) -> None:
        holder = self._holder
        state = execution.state
        asked_at = holder.runtime.now()
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
        if not renewed:
            if not state.status.is_terminal:  # a final write releases the lease: nothing was lost then
                self.lose(execution, "the store refused the renewal: another manager holds the lease")
            return
        execution.lease_until = self.valid_until(asked_at)
        execution.renew_at = asked_at + holder.lease_seconds / 3
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
