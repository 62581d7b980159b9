"""The retry policy is obeyed: every attempt and delay in the trace against the policy the saga declares.

How this works: the policies come from the sagas' own definitions, never from the
trace: ``declared_policies`` (``simlab.evidence.definitions``) reads each saga's
``validated_steps()`` (the scenario's per-step overrides applied) for its steps' execute
and compensation policies, and ``poll_policies()`` for the ``retry_async`` polls its steps
make. ``retry_policy_violations`` then walks each saga's records in order. For the execute
attempts of every step, its compensation attempts, and every poll inside a step attempt:

- at most ``max_attempts`` attempts, counted from the ``started`` records (not from
  the attempt numbers the engine writes);
- every attempt after the first follows a scheduled delay and starts no earlier
  than that delay ends;
- each scheduled delay lies within ``delay_bounds`` of the policy's backoff and
  jitter strategy, keeps the retry budget (no retry starts later than the budget
  after the first attempt), follows an error the policy retries (not one of its
  ``non_retryable`` types, by name), and never follows the last allowed attempt.

A resumed saga (its manager crashed or lost its lease, and another recovered it
from the store) carries on with the attempt counts and retry budget its state
persisted: the count does not start over. The attempt cut by the restart counts
as made, and so may the attempt a retry had reserved before it: the first start
after a ``resumed`` record is numbered one or two past the attempts seen (any
other number is flagged), needs no scheduled delay and is the documented re-run,
allowed even past ``max_attempts``; every retry after it obeys the same
``max_attempts`` and budget, counted across the restart. Polls inside a step are not persisted: they
start over with each attempt, as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sagas.engine.retry import RetryConfig
from sagas.engine.trace import COMPENSATION_RETRY, Outcome, TraceRecord
from simlab.evidence.checks.violation import CannotCheck, Violation
from simlab.evidence.definitions import StepPolicies, declared_policies
from simlab.evidence.sources import Evidence
from simlab.evidence.trace_tables import (
    COMPENSATE_PHASE,
    EXECUTE_PHASE,
    FAILED_OUTCOME,
    POLL_PHASE,
    RESUMED_OUTCOME,
    RETRY_PHASE,
    SAGA_PHASE,
    SCHEDULED_OUTCOME,
    STARTED_OUTCOME,
    TIMED_OUT_OUTCOME,
    records_by_saga,
)

__all__ = [
    "NAME",
    "StepPolicies",
    "declared_policies",
    "delay_bounds",
    "retry_policy_obeyed",
    "retry_policy_violations",
]

NAME = "retry_policy_obeyed"
_REL = 1e-9  # float noise allowed in delays and times (relative; absolute below 1 s)

# Plain strings, read once (see the note in ``simlab.evidence.trace_tables``).
_POLL_ENDS = (Outcome.COMPLETED.value, Outcome.GAVE_UP.value, Outcome.CANCELLED.value)
_FAILURES = (FAILED_OUTCOME, TIMED_OUT_OUTCOME)
_ATTEMPT_PHASES = (EXECUTE_PHASE, COMPENSATE_PHASE)
_JUDGED_PHASES = frozenset({EXECUTE_PHASE, POLL_PHASE, COMPENSATE_PHASE, RETRY_PHASE})


def delay_bounds(policy: RetryConfig, retry_number: int, previous_delay_s: float | None) -> tuple[float, float]:
    """The least and greatest delay (seconds) ``policy`` allows before retry ``retry_number`` (1 = first).

    Worked out here from the policy's definition, not by calling the engine's arithmetic:
    the base delay is ``initial * factor ** (n - 1)`` capped at ``max_delay``; ``none``
    allows exactly it, ``full`` [0, base], ``equal`` [base / 2, base]; ``decorrelated``
    allows [initial, min(cap, 3 * previous)] (the previous delay is ``initial`` before
    the first retry, and the upper end never falls below ``initial``).
    """
    cap = policy.max_delay_ms / 1000.0
    initial = policy.initial_delay_ms / 1000.0
    if policy.jitter == "decorrelated":
        previous = initial if previous_delay_s is None else previous_delay_s
        return initial, min(cap, max(3.0 * previous, initial))
    base = _base_delay(initial, cap, policy.backoff_factor, retry_number)
    if policy.jitter == "full":
        return 0.0, base
    if policy.jitter == "equal":
        return base / 2.0, base
    return base, base


def _base_delay(initial: float, cap: float, factor: float, retry_number: int) -> float:
    if initial <= 0:
        return 0.0
    exponent = retry_number - 1
    # Compared in logs first: a large retry number must not overflow the power (cap >= initial > 0).
    if factor > 1 and exponent * math.log(factor) >= math.log(cap / initial):
        return cap
    return min(cap, initial * factor**exponent)


def _close_enough(value: float, limit: float) -> float:
    return _REL * max(1.0, abs(value), abs(limit))


@dataclass(slots=True)
class _Attempts:
    """The attempts of one step, compensation or poll within one incarnation of a saga."""

    policy: RetryConfig
    kind: str  # "step {}", "compensation of {}" or "poll in {}": what it is, given its step
    step: str | None
    first_t: float = 0.0
    count: int = 0
    previous_delay: float | None = None
    scheduled: tuple[float, float] | None = None  # (when, delay) of the retry not yet started
    last_error: str | None = None
    ended: bool = False  # a poll that completed, gave up or was cancelled
    resumed: bool = False  # a restart happened since the last start
    reruns: int = 0  # documented re-runs after restarts (allowed beyond max_attempts)

    @property
    def what(self) -> str:
        """What these are attempts of, as a violation names it (spelt only for a violation)."""
        return self.kind.format(self.step)


class _SagaCheck:
    """One saga's records, checked in order against its declared steps."""

    def __init__(self, saga_id: str, saga_type: str, steps: Mapping[str, StepPolicies]) -> None:
        self.saga_id = saga_id
        self.saga_type = saga_type
        self.steps = steps
        # Each step's attempts, its compensation's and its current poll's, by step name.
        self.executes: dict[str | None, _Attempts] = {}
        self.compensations: dict[str | None, _Attempts] = {}
        self.polls: dict[str | None, _Attempts] = {}
        self.found: list[Violation] = []

    def flag(self, t: float, problem: str) -> None:
        self.found.append(Violation(NAME, t, (self.saga_id,), f"{self.saga_type}: {problem}"))

    def record(self, r: TraceRecord) -> None:
        phase = r.phase
        if phase not in _JUDGED_PHASES:
            if phase == SAGA_PHASE and r.outcome == RESUMED_OUTCOME:
                self.resumed()
            return
        if r.step is None:
            return
        declared = self.steps.get(r.step)
        outcome = r.outcome
        if declared is None:
            self.flag(r.t, f"{phase} record for step {r.step!r}, which the saga does not declare")
        elif phase in _ATTEMPT_PHASES:
            # NOTE: only starts and failures matter here; the other outcomes (most) cost no call.
            if outcome == STARTED_OUTCOME:
                self.attempt_started(r, declared)
            elif outcome in _FAILURES:
                run = (self.executes if phase == EXECUTE_PHASE else self.compensations).get(r.step)
                if run is not None:
                    run.last_error = r.error_type
        elif phase == POLL_PHASE:
            self.poll(r, declared)
        elif outcome == SCHEDULED_OUTCOME:
            run = (self.compensations if r.detail == COMPENSATION_RETRY else self.executes).get(r.step)
            if run is None:
                self.flag(r.t, f"a retry of {r.step} was scheduled before any attempt of it")
            else:
                self.scheduled(run, r)

    def resumed(self) -> None:
        """Counts carry on after a restart (see the module docstring); polls start over."""
        self.polls.clear()
        for runs in (self.executes, self.compensations):
            for attempts in runs.values():
                attempts.resumed = True
                attempts.scheduled = None
                attempts.previous_delay = None  # not persisted: decorrelated jitter starts from the initial delay

    def attempt_started(self, r: TraceRecord, declared: StepPolicies) -> None:
        """An attempt of a declared step, or of its compensation, starts."""
        execute = r.phase == EXECUTE_PHASE
        runs = self.executes if execute else self.compensations
        run = runs.get(r.step)
        if run is None:
            policy = declared.execute if execute else declared.compensate
            run = runs[r.step] = _Attempts(policy, "step {}" if execute else "compensation of {}", r.step)
        self.polls.pop(r.step, None)  # a new attempt makes its own polls
        self.started(run, r)

    def poll(self, r: TraceRecord, declared: StepPolicies) -> None:
        key = str(r.step)
        run = self.polls.get(key)
        outcome = r.outcome
        if outcome == STARTED_OUTCOME:
            if run is None or run.ended:
                if declared.poll is None:
                    self.flag(r.t, f"step {r.step} polls with retry_async but declares no poll policy")
                    self.polls[key] = run = _Attempts(RetryConfig(max_attempts=1), "poll in {}", r.step)
                    run.ended = True  # judged once; its later records are not held to a made-up policy
                    return
                run = self.polls[key] = _Attempts(declared.poll, "poll in {}", r.step)
            self.started(run, r)
        elif run is None or run.ended:
            return
        elif outcome == FAILED_OUTCOME:
            run.last_error = r.error_type
        elif outcome == SCHEDULED_OUTCOME:
            self.scheduled(run, r)
        elif outcome in _POLL_ENDS:
            run.ended = True

    def started(self, run: _Attempts, r: TraceRecord) -> None:
        if run.resumed:
            run.resumed = False
            if r.attempt not in (run.count + 1, run.count + 2):
                self.flag(
                    r.t, f"{run.what}: resumed at attempt {r.attempt} after {run.count} attempt(s): the count was lost"
                )
            run.count = max(run.count + 1, r.attempt or 0)
            run.reruns = max(0, run.count - run.policy.max_attempts)
        else:
            run.count += 1
            if run.count == 1:
                run.first_t = r.t
            elif run.scheduled is None:
                self.flag(r.t, f"{run.what}: attempt {run.count} started with no retry scheduled")
            else:
                at, delay = run.scheduled
                if r.t < at + delay - _close_enough(r.t, at + delay):
                    self.flag(
                        r.t, f"{run.what}: attempt {run.count} started {at + delay - r.t:.6g} s before its delay ended"
                    )
        run.scheduled = None
        if run.count == run.policy.max_attempts + run.reruns + 1:
            self.flag(
                r.t, f"{run.what}: attempt {run.count} exceeds its policy's max_attempts={run.policy.max_attempts}"
            )

    def scheduled(self, run: _Attempts, r: TraceRecord) -> None:
        policy, n, delay = run.policy, run.count, r.retry_delay
        if delay is None:
            self.flag(r.t, f"{run.what}: a retry was scheduled without a delay")
            return
        if n >= policy.max_attempts:
            self.flag(r.t, f"{run.what}: retry scheduled after attempt {n} of max_attempts={policy.max_attempts}")
        error = run.last_error
        if error is not None and any(kind.__name__ == error for kind in policy.non_retryable):
            self.flag(r.t, f"{run.what}: retried after {run.last_error}, which its policy never retries")
        low, high = delay_bounds(policy, n, run.previous_delay)
        if delay < low - _close_enough(delay, low) or delay > high + _close_enough(delay, high):
            self.flag(
                r.t,
                f"{run.what}: delay {delay:.6g} s before retry {n} is outside [{low:.6g}, {high:.6g}] s "
                f"({policy.jitter} jitter)",
            )
        if policy.retry_budget_ms is not None:
            budget = policy.retry_budget_ms / 1000.0
            ends = r.t - run.first_t + delay
            if ends > budget + _close_enough(ends, budget):
                self.flag(
                    r.t,
                    f"{run.what}: retry {n} would start {ends:.6g} s after the first attempt, past "
                    f"its {budget:g} s budget",
                )
        run.previous_delay = delay
        run.scheduled = (r.t, delay)


def retry_policy_violations(
    records: Iterable[TraceRecord], declared: Mapping[str, Mapping[str, StepPolicies]]
) -> list[Violation]:
    """Every attempt count and delay in ``records`` that ``declared`` does not allow (see the module docstring).

    Raises ``CannotCheck`` if a saga type in the trace has no declaration.
    """
    return _violations(records_by_saga(records), declared)


def _violations(
    by_saga: Mapping[str, list[TraceRecord]], declared: Mapping[str, Mapping[str, StepPolicies]]
) -> list[Violation]:
    """``retry_policy_violations`` of a trace already grouped by saga (``records_by_saga``)."""
    found: list[Violation] = []
    for saga_id, saga_records in by_saga.items():
        saga_type = saga_records[0].saga_type
        steps = declared.get(saga_type)
        if steps is None:
            raise CannotCheck(f"no step definitions known for saga type {saga_type!r}")
        check = _SagaCheck(saga_id, saga_type, steps)
        record = check.record
        for r in saga_records:
            record(r)
        found += check.found
    return found


def retry_policy_obeyed(ev: Evidence) -> list[Violation]:
    """Every step's attempts, compensations and polls keep the retry policy its saga declares.

    The policies are the trading sagas' definitions under the run's configuration (the
    scenario's step overrides applied), not the trace's own.
    """
    return _violations(ev.by_saga(), ev.definitions().policies)
