"""Runs one saga instance: steps under deadlines and retries, then compensation.

How this works: ``SagaExecution.run`` drives the instance through its state
machine (running -> completed | aborted | compensating -> terminal) and
persists the state and writes a trace record at every transition. Decisions
that need no I/O are pure functions (``next_retry_delay``,
``steps_to_compensate``, ``terminal_status``) so they can be tested with
plain data.

Semantics:

- each attempt runs under the step's deadline; an attempt that hits it is
  cancelled (its ``finally:`` blocks run), marked *possibly applied* and then
  retried or, when retries are exhausted, compensated along with the completed
  steps;
- the saga-level deadline cancels whatever runs at that moment; the saga then
  compensates and ends ``timed_out`` with its compensation outcome;
- compensation runs in reverse order; a compensation that fails (after its own
  retries) is recorded and the remaining ones still run;
- a step that raises ``SagaAborted`` or returns ``{"aborted": True, ...}`` ends
  the saga ``aborted``: not a failure, nothing is compensated;
- a saga that compensates first stops the child sagas it started that are
  still running: each is asked (in the store, and at once if it runs in the
  same manager) to stop at its current await and compensate, ending
  ``compensated`` or ``compensation_failed`` with error ``ParentCompensated``;
  the parent waits for them (up to the manager's ``children_grace_seconds``)
  before its own compensations. Children that already finished are left as
  they are: undoing them is the compensation of the step that started them;
- the execution drives the saga only while its manager holds the saga's lease:
  every write carries the lease's fencing token, and once the lease is lost (a
  write refused, a renewal refused, or its validity run out on the local clock)
  the execution stops at its next await, writes nothing more and publishes
  nothing; the manager that took the lease over goes on from the stored state;
- attempt counts and the time the first attempt began are persisted, so a
  resumed saga keeps its retry budget: the step (or compensation) in flight when
  its manager died runs once more, as documented, whatever its count, and counts
  the cut attempt as made; any retry after that obeys the policy with the count
  and elapsed time carried over (a retry that was scheduled but had not started
  counts too, so a restart never adds a fresh budget).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from sagas import probes
from sagas.engine.attempts import AttemptLoop, AttemptPlan, StepAborted, StepFailed
from sagas.engine.errors import DeadlineExceeded, LeaseLost
from sagas.engine.events import (
    Event,
    SagaCompensated,
    SagaCompleted,
    SagaFailed,
    SagaFinished,
    SagaLifecycleEvent,
    SagaStarted,
    SagaStepCompleted,
)
from sagas.engine.ports import TaskHandle
from sagas.engine.retry import worst_case_seconds
from sagas.engine.saga import BaseSaga
from sagas.engine.services import ExecutionServices
from sagas.engine.state import SagaState, SagaStatus, json_copy
from sagas.engine.step import SagaStep
from sagas.engine.trace import Outcome, Phase

__all__ = [
    "ExecutionServices",
    "SagaExecution",
    "compensation_seconds_bound",
    "steps_to_compensate",
    "terminal_status",
]


class _ParentCancelled(Exception):
    """Internal: the saga's parent is compensating and asked it to stop (before this execution began)."""


def steps_to_compensate(steps: Sequence[SagaStep], state: SagaState) -> list[SagaStep]:
    """Steps to compensate, in the order to do it: completed or possibly applied,
    last first, skipping any already compensated or given up on."""
    done = set(state.compensated_steps) | set(state.failed_compensations)
    touched = set(state.completed_steps) | set(state.possibly_applied)
    return [s for s in reversed(steps) if s.name in touched and s.name not in done]


def compensation_seconds_bound(steps: Sequence[SagaStep], state: SagaState) -> float:
    """The longest compensating ``state``'s saga can take from now: every step it would compensate,
    each with all its compensation attempts cut at their deadline and the longest delays between them."""
    return sum(
        worst_case_seconds(step.compensation_policy, step.compensation_deadline)
        for step in steps_to_compensate(steps, state)
        if step.compensate is not None
    )


def terminal_status(*, timed_out: bool, compensation_failed: bool) -> SagaStatus:
    """The terminal status after compensation."""
    if timed_out:
        return SagaStatus.TIMED_OUT
    return SagaStatus.COMPENSATION_FAILED if compensation_failed else SagaStatus.COMPENSATED


class SagaExecution(AttemptLoop):
    """One saga instance being run (or resumed) by a ``SagaManager``."""

    def __init__(
        self,
        services: ExecutionServices,
        saga: BaseSaga,
        state: SagaState,
        *,
        fence: int,
        lease_until: float,
        resumed: bool = False,
        steps: tuple[SagaStep, ...] | None = None,
    ) -> None:
        self.services = services
        self.saga = saga
        self.state = state
        self.resumed = resumed
        self.fence = fence  # the fencing token of this execution's lease
        self.lease_until = lease_until  # when the lease runs out by the local clock (renewals move it)
        self.lease_lost = False
        self.renew_at = lease_until  # when the manager's lease keeper renews next (set at launch)
        self.renewing = False  # a renewal is on its way to the store
        self.task: TaskHandle[SagaState] | None = None  # the task driving it (set by the manager at launch)
        self.started = False  # run() has begun (a task cancelled before that never runs its cleanup)
        self.parent_cancel: str | None = None  # why the parent asked this saga to stop, once it did
        self._forwarding = False  # running its steps: a parent's cancellation may cut in now
        # The step in flight when the previous manager died: its cut attempt counts as made.
        self._in_flight = state.current_step if resumed and state.status is SagaStatus.RUNNING else None
        self._in_flight_since = state.updated_at  # its first attempt began no earlier than its last write
        self.steps = steps if steps is not None else saga.validated_steps()
        # The compensation in flight when the previous manager died (the first one left): its cut attempt counts.
        undo = steps_to_compensate(self.steps, state) if resumed and state.status is SagaStatus.COMPENSATING else []
        self._undo_in_flight = undo[0].name if undo else None
        self._undo_key = f"{self._undo_in_flight}:compensate" if self._undo_in_flight else None
        self._made: dict[str, int] = {}  # attempts made before this execution, of what was in flight
        self._runtime = services.runtime
        self._tracer = services.tracer
        self._rng = services.jitter_rng
        self._retry_rng = services.retry_rng
        # The steps' own copy of the trigger data: what a step changes in place stays out of the saga's state.
        self._context: dict[str, Any] = {
            **json_copy(state.trigger_data, "trigger_data"),
            **state.results,
            **services.step_services(state.saga_id, state.saga_type, state.parent_id),
        }

    # -- publishing --------------------------------------------------------

    async def _publish_lifecycle(self, kind: type[SagaLifecycleEvent], suffix: str, **fields: Any) -> None:
        """Publish a lifecycle event about this saga; its id is derived from the saga's (deterministic)."""
        state = self.state
        await self._publish(
            kind(
                event_id=f"{state.saga_id}:{suffix}",
                saga_id=state.saga_id,
                saga_type=state.saga_type,
                parent_id=state.parent_id,
                causation_id=state.saga_id,
                **fields,
            )
        )

    async def _publish(self, event: Event) -> None:
        # A failing subscriber must not strand the saga mid-transition: record it and go on.
        try:
            await self.services.publish(event)
        except Exception as error:  # noqa: BLE001 - recorded in the trace, not swallowed
            self._trace(
                None, None, Phase.SAGA, Outcome.SUBSCRIBER_FAILED, error, detail=f"{type(event).__name__}: {error}"
            )

    # -- the state machine -------------------------------------------------

    async def run(self) -> SagaState:
        """Run the saga to a terminal status and return its final state.

        If the lease is lost on the way, return the state as this execution last saw it
        (not terminal): the saga's new owner finishes it.
        """
        self.started = True
        if self.lease_lost:
            return self.state  # lost before it began: the manager takes it back, or another does
        try:
            return await self._drive()
        except LeaseLost as lost:
            self.stop_driving(str(lost))
            return self.state
        except BaseException:
            if self.lease_lost:  # the lease keeper cancelled this task: stop quietly
                return self.state
            raise

    def cancel_for_parent(self, reason: str) -> None:
        """The parent compensates: stop the steps at their current await and compensate this saga."""
        if self.parent_cancel is not None or self.state.status is not SagaStatus.RUNNING:
            return  # already asked, or already compensating or finished: nothing to cut
        self.parent_cancel = reason
        if self._forwarding:
            task = self.services.task_of(self.state.saga_id)
            if task is not None and not task.done():
                task.cancel()

    async def record_child(self, child_id: str) -> None:
        """Remember (in the store) a child saga this saga started, so any manager compensating it finds it."""
        if child_id in self.state.children:
            return
        self.state.children.append(child_id)
        with contextlib.suppress(LeaseLost):  # this execution no longer owns the saga; its keeper stops it
            await self._persist()

    def stop_driving(self, reason: str) -> None:
        """Mark the lease lost (once) and say so in the trace."""
        if not self.lease_lost:
            self.lease_lost = True
            self._trace(self.state.current_step, None, Phase.SAGA, Outcome.LEASE_LOST, detail=reason)

    async def _drive(self) -> SagaState:
        state = self.state
        if self.resumed:
            await self._take_over()
        else:
            self._trace(None, None, Phase.SAGA, Outcome.STARTED)  # the store already holds the new state
        if self.services.has_subscribers(SagaStarted):
            await self._publish_lifecycle(SagaStarted, f"started:{state.transitions}", resumed=self.resumed)
        if state.status is SagaStatus.RUNNING and await self._run_forward():
            return await self._finish()  # completed or aborted: nothing to compensate
        await self.services.stop_children(state)  # children's effects are undone before the parent's
        failed = await self._compensate_all()
        state.compensation_outcome = "compensation_failed" if failed else "compensated"
        # Only the forward phase sets timed_out, always together with the move to compensating.
        status = terminal_status(timed_out=state.timed_out, compensation_failed=failed)
        await self._transition(status, detail=state.compensation_outcome)
        return await self._finish()

    async def _take_over(self) -> None:
        """Resume from the stored state: count the cut attempt in flight as made, and reserve the next."""
        state = self.state
        self._trace(None, None, Phase.SAGA, Outcome.RESUMED, detail=state.status.value)
        in_flight = state.current_step
        write = False
        if (
            state.status is SagaStatus.RUNNING
            and in_flight is not None
            and in_flight not in state.completed_steps
            and in_flight not in state.possibly_applied
        ):
            # The crash may have cut an attempt of this step after it took effect.
            state.possibly_applied.append(in_flight)
            write = True
        # The attempt about to re-run the step (or compensation) in flight is reserved in the same
        # write, so one more restart during it cannot hand out its number again.
        for key in (self._in_flight, self._undo_key):
            if key is not None:
                self._made[key] = made = state.attempts.get(key, 1)  # the cut one counts as made
                state.attempts[key] = made + 1
                state.attempts_since.setdefault(key, self._in_flight_since)
                write = True
        if write:
            await self._persist()

    async def _run_forward(self) -> bool:
        """Run the steps under the saga deadline. True when the saga finished (completed or aborted);
        False when it must compensate (it is then ``compensating``, in the store too)."""
        state = self.state
        remaining = state.deadline_at - self._runtime.now()
        try:
            if self.parent_cancel is not None:
                raise _ParentCancelled()
            if remaining <= 0:
                raise DeadlineExceeded(self.saga.timeout_seconds(), f"saga {state.saga_type}")
            self._forwarding = True
            try:
                await self._runtime.run_with_deadline(self._forward(), remaining)
            finally:
                self._forwarding = False
        except DeadlineExceeded:
            state.timed_out = True
            state.error_type = "DeadlineExceeded"
            state.error = f"saga {state.saga_type} exceeded its timeout of {self.saga.timeout_seconds():g} s"
            self._trace(state.current_step, None, Phase.SAGA, Outcome.DEADLINE_EXCEEDED, detail=state.error)
        except StepAborted as abort:
            state.error = abort.reason
            await self._transition(SagaStatus.ABORTED, step=abort.step, detail=abort.reason)
            return True
        except StepFailed as failure:
            state.error_type, state.error = type(failure.error).__name__, str(failure.error)
            self._trace(failure.step, None, Phase.SAGA, Outcome.STEP_FAILED, failure.error)
        except BaseException:
            # Cancelled: by the parent (compensate, below), or by a crash or a lost lease (stop).
            if self.parent_cancel is None or self.lease_lost:
                raise
            state.error_type, state.error = "ParentCompensated", self.parent_cancel
            self._trace(state.current_step, None, Phase.SAGA, Outcome.PARENT_COMPENSATED, detail=self.parent_cancel)
        else:
            state.current_step = None
            await self._transition(SagaStatus.COMPLETED)
            return True
        await self._transition(SagaStatus.COMPENSATING)
        return False

    async def _transition(self, status: SagaStatus, *, step: str | None = None, detail: str | None = None) -> None:
        """Move the saga to ``status``: persist the state, then trace the move as a ``saga`` record
        named for the status. The record follows the write: the trace never shows a status the store
        was refused (a lost lease raises here, before the record)."""
        self.state.status = status
        await self._persist()
        self._trace(step, None, Phase.SAGA, Outcome(status.value), detail=detail)

    async def _finish(self) -> SagaState:
        state = self.state
        cls: type[SagaFinished]
        if state.status in (SagaStatus.COMPLETED, SagaStatus.ABORTED):
            cls = SagaCompleted
        elif state.status is SagaStatus.COMPENSATED:
            cls = SagaCompensated
        else:
            cls = SagaFailed
        await self._publish_lifecycle(
            cls,
            "finished",
            status=state.status.value,
            compensation_outcome=state.compensation_outcome,
            error=state.error,
        )
        return state

    async def _forward(self) -> None:
        state = self.state
        completed = state.completed_steps
        remaining = [step for step in self.steps if step.name not in completed]
        for index, step in enumerate(remaining):
            if state.current_step != step.name:
                state.current_step = step.name
                await self._persist()
            result = self._checked_result(step, await self._run_step(step))
            if result is not None:
                state.results.update(result)
                self._context.update(result)
                if result.get("aborted") is True:
                    completed.append(step.name)
                    raise StepAborted(step.name, str(result.get("reason", "aborted by step")))
            completed.append(step.name)
            # One write records both transitions: this step completed, the next one current.
            state.current_step = remaining[index + 1].name if index + 1 < len(remaining) else None
            await self._persist()
            if self.services.has_subscribers(SagaStepCompleted):
                await self._publish_lifecycle(SagaStepCompleted, f"step:{step.name}", step=step.name)

    def _checked_result(self, step: SagaStep, result: Any) -> dict[str, Any] | None:
        """The step's result as the store will hold it; a result it cannot hold fails the step."""
        if result is None:
            return None
        where = f"{self.state.saga_type}.{step.name}"
        problem: TypeError
        if isinstance(result, Mapping):
            try:
                # JSON-shaped, as a resumed saga would see it: fresh and resumed runs see the same types.
                checked: dict[str, Any] = json_copy(dict(result), "result")
                return checked
            except TypeError as error:
                problem = TypeError(f"{where} returned a result the saga store cannot hold: {error}")
        else:
            problem = TypeError(f"{where} must return a mapping or None, got {type(result).__name__}")
        self._mark_possibly_applied(step.name)  # it ran to the end: its effects are real
        self._trace(step.name, None, Phase.EXECUTE, Outcome.INVALID_RESULT, problem, detail=str(problem))
        raise StepFailed(step.name, problem)

    async def _run_step(self, step: SagaStep) -> Any:
        """Attempts of one step under its deadline and retry policy; its result, or ``StepFailed``."""
        plan = AttemptPlan.for_step(step, in_flight=step.name == self._in_flight)
        return await self._attempts(step.name, plan)

    async def _compensate_all(self) -> bool:
        """Compensate in reverse order; return True if any compensation failed."""
        state = self.state
        for step in steps_to_compensate(self.steps, state):
            probes.sometimes("engine: compensating a possibly applied step", step.name not in state.completed_steps)
            ok = await self._compensate(step)
            probes.sometimes("engine: a compensation given up", not ok, needs="failing_compensations")
            (state.compensated_steps if ok else state.failed_compensations).append(step.name)
            await self._persist()
        return bool(state.failed_compensations)

    async def _compensate(self, step: SagaStep) -> bool:
        """Attempts of one compensation under its deadline and retry policy; whether one succeeded."""
        name = step.name
        if step.compensate is None:
            self._trace(name, None, Phase.COMPENSATE, Outcome.SKIPPED, detail="no compensation defined")
            return True
        plan = AttemptPlan.for_compensation(step, in_flight=name == self._undo_in_flight)
        try:
            await self._attempts(name, plan)
        except StepFailed as failure:  # recorded; the remaining compensations still run
            self._trace(name, failure.attempt, Phase.COMPENSATE, Outcome.GAVE_UP, failure.error)
            return False
        return True
