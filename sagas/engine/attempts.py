"""The attempt loop: the attempts of one step, or of its compensation, under a deadline and a retry policy.

``AttemptPlan`` holds everything that differs between running a step and compensating it;
``AttemptLoop`` runs the attempts a plan describes, and holds what every attempt goes through:
the trace, the fenced write of the saga's state and the lease check. ``SagaExecution`` is the
one ``AttemptLoop``: it sets the members declared on the class, and drives the saga's phases.
The exceptions here are internal: they carry an attempt's end to the execution's state machine.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sagas.engine.errors import DeadlineExceeded, LeaseLost, SagaAborted
from sagas.engine.ports import Runtime
from sagas.engine.retry import PollTrace, RetryConfig, next_retry_delay, set_step_ambient
from sagas.engine.saga import BaseSaga
from sagas.engine.services import ExecutionServices
from sagas.engine.state import SagaState
from sagas.engine.step import SagaStep
from sagas.engine.trace import COMPENSATION_RETRY, Outcome, Phase, Tracer


class StepFailed(Exception):
    """Internal: a step (or a compensation) gave up; carries its last error and, if any, the last attempt."""

    def __init__(self, step: str, error: BaseException, attempt: int | None = None) -> None:
        super().__init__(step, error)
        self.step = step
        self.error = error
        self.attempt = attempt


class StepAborted(Exception):
    """Internal: a step asked to end the saga early."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(step, reason)
        self.step = step
        self.reason = reason


class _InnerDeadline(Exception):
    """Internal: a deadline inside the step's own code (not the attempt's) expired."""

    def __init__(self, error: DeadlineExceeded) -> None:
        super().__init__(error)
        self.error = error


async def _call(
    fn: Any, context: Mapping[str, Any], clock: Runtime, retry_rng: random.Random, poll_trace: PollTrace
) -> Any:
    set_step_ambient(clock, retry_rng, poll_trace)
    try:
        return await fn(**context)
    except DeadlineExceeded as error:
        # Keep the attempt's own deadline distinguishable from one the step awaited.
        raise _InnerDeadline(error) from error


# NOTE: not frozen: a frozen dataclass sets each field through object.__setattr__, and a plan is built for
# every step a saga runs. Nothing assigns to a plan after it is built.
@dataclass(slots=True)
class AttemptPlan:
    """How the attempts of one step, or of its compensation, run: everything that differs between the two."""

    phase: Phase
    key: str
    """Attempts are counted under this key in ``SagaState.attempts``."""
    call: Callable[..., Awaitable[Any]]
    deadline_s: float
    policy: RetryConfig
    in_flight: bool
    """The previous manager died during these attempts: the attempt it cut counts as made."""
    succeeded: Outcome
    what: str
    """Names the attempts in a timeout's message."""
    retry_detail: str | None
    forward: bool
    """A step's execution: it runs under the saga deadline, may abort the saga, and an attempt cut
    short (timed out or cancelled) may have taken effect. A compensation does none of these."""

    @classmethod
    def for_step(cls, step: SagaStep, *, in_flight: bool) -> AttemptPlan:
        """The attempts of ``step``'s execution."""
        return cls(
            phase=Phase.EXECUTE,
            key=step.name,
            call=step.execute,
            deadline_s=step.timeout_seconds,
            policy=step.policy,
            in_flight=in_flight,
            succeeded=Outcome.COMPLETED,
            what=f"step {step.name}",
            retry_detail=None,
            forward=True,
        )

    @classmethod
    def for_compensation(cls, step: SagaStep, *, in_flight: bool) -> AttemptPlan:
        """The attempts of ``step``'s compensation (which must be defined)."""
        assert step.compensate is not None
        return cls(
            phase=Phase.COMPENSATE,
            key=f"{step.name}:compensate",
            call=step.compensate,
            deadline_s=step.compensation_deadline,
            policy=step.compensation_policy,
            in_flight=in_flight,
            succeeded=Outcome.COMPENSATED,
            what=f"compensation of {step.name}",
            retry_detail=COMPENSATION_RETRY,
            forward=False,
        )


class AttemptLoop:
    """Runs attempts under a plan; traces them, persists the saga's state and checks its lease.

    A base for ``SagaExecution``, which sets every member declared here in its constructor.
    """

    services: ExecutionServices
    saga: BaseSaga
    state: SagaState
    fence: int
    lease_until: float
    lease_lost: bool
    _runtime: Runtime
    _tracer: Tracer
    _rng: random.Random
    _retry_rng: random.Random
    _context: dict[str, Any]
    _made: dict[str, int]
    _in_flight_since: float

    # -- bookkeeping -------------------------------------------------------

    def _trace(
        self,
        step: str | None,
        attempt: int | None,
        phase: Phase,
        outcome: Outcome,
        error: BaseException | None = None,
        retry_delay: float | None = None,
        detail: str | None = None,
    ) -> None:
        s = self.state
        self._tracer.record(
            s.saga_id,
            s.saga_type,
            parent_id=s.parent_id,
            step=step,
            attempt=attempt,
            phase=phase,
            outcome=outcome,
            error_type=type(error).__name__ if error is not None else None,
            retry_delay=retry_delay,
            detail=detail,
        )

    def _poll_trace(self, step: str) -> PollTrace:
        """The hook through which ``retry_async`` polls inside ``step`` write ``poll`` records."""
        return functools.partial(self._trace_poll, step)

    def _trace_poll(
        self,
        step: str,
        attempt: int,
        outcome: Outcome,
        error: BaseException | None = None,
        retry_delay: float | None = None,
    ) -> None:
        self._trace(step, attempt, Phase.POLL, outcome, error, retry_delay)

    def check_lease(self) -> None:
        """Raise ``LeaseLost`` if this execution may no longer drive its saga."""
        if self.lease_lost:
            raise LeaseLost(f"saga {self.state.saga_id}: lease lost")
        if self._runtime.now() >= self.lease_until:
            raise LeaseLost(f"saga {self.state.saga_id}: lease ran out at {self.lease_until:g} s")

    async def _persist(self) -> None:
        self.check_lease()
        state = self.state
        state.transitions += 1
        state.updated_at = self._runtime.now()
        await self.services.save_state(state, self.fence)

    # -- the attempts ------------------------------------------------------

    async def _attempts(self, name: str, plan: AttemptPlan) -> Any:
        """Attempts under ``plan`` until one succeeds (its result) or the policy stops (``StepFailed``)."""
        runtime = self._runtime
        attempt, started = self._attempts_so_far(plan.key, 1 if plan.in_flight else 0)
        previous_delay: float | None = None
        while True:
            attempt += 1
            self.check_lease()
            if plan.forward and runtime.now() >= self.state.deadline_at:
                # Normally the saga deadline cancels what runs; this also holds if a step swallowed that.
                raise DeadlineExceeded(self.saga.timeout_seconds(), f"saga {self.state.saga_type}")
            self._trace(name, attempt, plan.phase, Outcome.STARTED)
            # The step may want to know which try this is (e.g. to report the attempt that succeeded).
            self._context["attempt"] = attempt
            succeeded, outcome = await self._attempt(name, attempt, plan)
            if succeeded:
                return outcome
            delay = self._retry_delay(plan.policy, attempt, outcome, started, previous_delay)
            if delay is None:
                raise StepFailed(name, outcome, attempt)
            self._trace(name, attempt, Phase.RETRY, Outcome.SCHEDULED, retry_delay=delay, detail=plan.retry_detail)
            await self._reserve_attempt(plan.key, attempt + 1, started)
            previous_delay = delay
            await runtime.sleep(delay)

    async def _attempt(self, name: str, attempt: int, plan: AttemptPlan) -> tuple[bool, Any]:
        """One attempt, traced: ``(True, result)``, or ``(False, error)`` for the retry policy to judge."""
        runtime = self._runtime
        phase = plan.phase
        try:
            result = await runtime.run_with_deadline(
                _call(plan.call, self._context, runtime, self._retry_rng, self._poll_trace(name)), plan.deadline_s
            )
        except DeadlineExceeded:
            error = DeadlineExceeded(plan.deadline_s, f"{plan.what} attempt {attempt}")
            if plan.forward:
                self._mark_possibly_applied(name)
            self._trace(name, attempt, phase, Outcome.TIMED_OUT, error)
            return False, error
        except _InnerDeadline as inner:
            self._trace(name, attempt, phase, Outcome.FAILED, inner.error)
            return False, inner.error
        except Exception as failure:  # noqa: BLE001 - handed to the retry policy
            if plan.forward and isinstance(failure, SagaAborted):
                self._trace(name, attempt, phase, Outcome.ABORTED, detail=failure.reason)
                raise StepAborted(name, failure.reason) from None
            self._trace(name, attempt, phase, Outcome.FAILED, failure)
            return False, failure
        except BaseException:
            if plan.forward:  # cancelled from outside (saga deadline, shutdown): the attempt may have applied
                self._mark_possibly_applied(name)
                self._trace(name, attempt, phase, Outcome.CANCELLED)
            raise
        self._trace(name, attempt, phase, plan.succeeded)
        return True, result

    def _attempts_so_far(self, key: str, unrecorded: int) -> tuple[int, float]:
        """Attempts of ``key`` already made (persisted by an earlier owner, or ``unrecorded``) and when they began."""
        state = self.state
        since = state.attempts_since.get(key)
        if since is None:  # recorded only once a retry is reserved: most steps never need it
            since = self._in_flight_since if unrecorded else self._runtime.now()
        made = self._made.pop(key, None)
        return (made if made is not None else state.attempts.get(key, unrecorded)), since

    async def _reserve_attempt(self, key: str, attempt: int, since: float) -> None:
        """Persist that attempt ``attempt`` of ``key`` is coming (and since when it tries), so a restart
        cannot hand out a fresh budget."""
        self.state.attempts[key] = attempt
        self.state.attempts_since.setdefault(key, since)
        await self._persist()

    def _retry_delay(
        self, policy: RetryConfig, attempt: int, error: BaseException, started: float, previous: float | None
    ) -> float | None:
        """The wait before the next attempt, or None when the policy says stop."""
        return next_retry_delay(
            policy,
            attempts_made=attempt,
            error=error,
            elapsed_s=self._runtime.now() - started,
            previous_delay_s=previous,
            rng=self._rng,
        )

    def _mark_possibly_applied(self, name: str) -> None:
        if name not in self.state.possibly_applied:
            self.state.possibly_applied.append(name)
