"""Retry policies as plain values, the pure delay arithmetic, and ``retry_async``.

How this works: ``RetryConfig`` describes a policy; ``backoff_delay`` turns
(policy, retry number, previous delay, random generator) into the next delay in
seconds with no side effects, so every strategy can be tested with plain data.
``retry_async`` is the seed's polling helper built on those pieces; it sleeps
through whatever clock it is given, so it works on both runtimes. Inside a saga
step it also writes its attempts and delays to the saga's trace (phase ``poll``)
through the hook the engine leaves for the running step, so a poll can be
checked against its policy and seen in a replay like any step retry.
"""

from __future__ import annotations

import contextvars
import functools
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from sagas.engine.errors import RetryExhausted, SagaDefinitionError
from sagas.engine.trace import Outcome

if TYPE_CHECKING:
    from sagas.engine.ports import Runtime

Jitter = Literal["none", "full", "equal", "decorrelated"]
JITTER_STRATEGIES: tuple[Jitter, ...] = ("none", "full", "equal", "decorrelated")

T = TypeVar("T")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SagaDefinitionError(message)


def _retry_config_problem(c: RetryConfig) -> str | None:
    """What is wrong with ``c``, or None (messages are built only when needed)."""
    if not isinstance(c.max_attempts, int) or c.max_attempts < 1:
        return f"max_attempts must be an integer >= 1, got {c.max_attempts!r}"
    if c.initial_delay_ms < 0:
        return f"initial_delay_ms must be >= 0, got {c.initial_delay_ms!r}"
    if c.max_delay_ms < c.initial_delay_ms:
        return f"max_delay_ms must be >= initial_delay_ms ({c.initial_delay_ms!r}), got {c.max_delay_ms!r}"
    if c.backoff_factor < 1:
        return f"backoff_factor must be >= 1, got {c.backoff_factor!r}"
    if c.jitter not in JITTER_STRATEGIES:
        return f"jitter must be one of {', '.join(JITTER_STRATEGIES)} (or a bool), got {c.jitter!r}"
    if c.retry_budget_ms is not None and c.retry_budget_ms < 0:
        return f"retry_budget_ms must be >= 0 or None, got {c.retry_budget_ms!r}"
    return None


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """How often and how patiently to retry.

    ``max_attempts`` counts every attempt, the first included. The delay before
    retry *n* (n = 1, 2, ...) is ``initial_delay_ms * backoff_factor ** (n - 1)``
    capped at ``max_delay_ms``, then jittered:

    - ``none``: exactly that delay;
    - ``full``: uniform in [0, delay];
    - ``equal``: uniform in [delay / 2, delay];
    - ``decorrelated``: uniform in [initial, 3 * previous delay], capped.

    ``jitter=True`` (the seed's spelling) means ``full``; ``False`` means ``none``.
    ``non_retryable`` lists exception types that end the retries at once, as does
    any exception whose ``retryable`` attribute is false. ``retry_budget_ms``
    bounds the whole effort: no retry starts later than that after the first attempt.
    """

    max_attempts: int = 3
    initial_delay_ms: float = 1000.0
    max_delay_ms: float = 30000.0
    backoff_factor: float = 2.0
    jitter: Jitter | bool = "none"
    non_retryable: tuple[type[BaseException], ...] = field(default=())
    retry_budget_ms: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.jitter, bool):
            object.__setattr__(self, "jitter", "full" if self.jitter else "none")
        if not isinstance(self.non_retryable, tuple):
            object.__setattr__(self, "non_retryable", tuple(self.non_retryable))
        problem = _retry_config_problem(self)
        if problem is not None:
            raise SagaDefinitionError(problem)

    @classmethod
    @functools.lru_cache(maxsize=256, typed=True)
    def from_seed(cls, retry_count: int, retry_delay_base: float) -> RetryConfig:
        """The seed's step policy: ``retry_count`` retries after the first attempt,
        delays of ``retry_delay_base * 2 ** (n - 1)`` seconds, no jitter."""
        _require(
            isinstance(retry_count, int) and not isinstance(retry_count, bool) and retry_count >= 0,
            f"retry_count must be an integer >= 0, got {retry_count!r}",
        )
        _require(retry_delay_base >= 0, f"retry_delay_base must be >= 0, got {retry_delay_base!r}")
        initial_ms = retry_delay_base * 1000.0
        return cls(
            max_attempts=retry_count + 1,
            initial_delay_ms=initial_ms,
            max_delay_ms=max(initial_ms * 2.0 ** max(retry_count - 1, 0), initial_ms),
            backoff_factor=2.0,
            jitter="none",
        )

    def is_retryable(self, error: BaseException) -> bool:
        """Whether ``error`` may be retried under this policy."""
        if self.non_retryable and isinstance(error, self.non_retryable):
            return False
        return getattr(error, "retryable", True) is not False


def backoff_delay(config: RetryConfig, retry_number: int, previous_delay_s: float | None, rng: random.Random) -> float:
    """Seconds to wait before retry ``retry_number`` (1 for the first retry).

    Pure apart from the draws it takes from ``rng`` (none for ``jitter='none'``).
    """
    cap_s = config.max_delay_ms / 1000.0
    initial_s = config.initial_delay_ms / 1000.0
    jitter = config.jitter
    if jitter == "decorrelated":
        previous = initial_s if previous_delay_s is None else previous_delay_s
        upper = max(previous * 3.0, initial_s)
        return min(cap_s, rng.uniform(initial_s, upper))
    # NOTE: exponent growth is bounded before pow() so huge retry numbers cannot overflow.
    exponent = retry_number - 1
    if config.backoff_factor > 1 and initial_s > 0:
        limit = math.log(cap_s / initial_s, config.backoff_factor) if cap_s > initial_s else 0.0
        exponent = min(exponent, math.ceil(limit))
    base = min(cap_s, initial_s * config.backoff_factor**exponent)
    if jitter == "none":
        return base
    if jitter == "full":
        return rng.uniform(0.0, base)
    return base / 2.0 + rng.uniform(0.0, base / 2.0)  # equal


def worst_case_seconds(config: RetryConfig, attempt_timeout_s: float) -> float:
    """The longest every attempt under ``config`` can take together: each attempt cut at
    ``attempt_timeout_s``, and between them the longest delay the policy and its jitter allow."""
    cap_s = config.max_delay_ms / 1000.0
    initial_s = config.initial_delay_ms / 1000.0
    delays = 0.0
    longest = min(cap_s, initial_s)  # the longest delay before the next retry (capped as it grows: no overflow)
    for _ in range(1, config.max_attempts):
        if config.jitter == "decorrelated":
            longest = min(cap_s, max(longest * 3.0, initial_s))
            delays += longest
        else:
            delays += longest
            longest = min(cap_s, longest * config.backoff_factor)
    total = config.max_attempts * attempt_timeout_s + delays
    if config.retry_budget_ms is not None:
        # No retry starts later than the budget after the first attempt started.
        total = min(total, config.retry_budget_ms / 1000.0 + attempt_timeout_s)
    return total


def next_retry_delay(
    config: RetryConfig,
    *,
    attempts_made: int,
    error: BaseException,
    elapsed_s: float,
    previous_delay_s: float | None,
    rng: random.Random,
) -> float | None:
    """The delay before the next attempt, or None when the policy says stop.

    Stops when ``error`` is not retryable, when ``attempts_made`` reached
    ``max_attempts``, or when the retry would start past the retry budget.
    """
    if attempts_made >= config.max_attempts or not config.is_retryable(error):
        return None
    delay = backoff_delay(config, attempts_made, previous_delay_s, rng)
    if config.retry_budget_ms is not None and (elapsed_s + delay) * 1000.0 > config.retry_budget_ms:
        return None
    return delay


class PollTrace(Protocol):
    """Where ``retry_async`` reports a poll's transitions: the running step's trace.

    ``attempt`` counts the poll's attempts from 1; ``outcome`` is ``started``,
    ``completed``, ``failed``, ``cancelled``, ``scheduled`` (with ``retry_delay``,
    the wait before the next attempt) or ``gave_up``.
    """

    def __call__(
        self, attempt: int, outcome: Outcome, error: BaseException | None = None, retry_delay: float | None = None
    ) -> None: ...


# The clock, generator and poll trace of the saga step that is running (set by the engine before
# each step call). Seed-style `retry_async(fn, retry_config=...)` calls, which pass no clock or
# generator, use them; every call inside a step reports to its trace. A context variable, not a
# global: each task (asyncio's, and the lab's simulated ones, which run in a copied Context each:
# simlab/sim/runtime.py) sees only what its own step set, and a task runs one step at a time.
# Kept on purpose (issue 11 asked to replace it if that changed no trace and no step signature):
# the seed's public call takes no clock, generator or trace hook, so only an ambient value can give
# it simulated time and a traced poll; making it explicit would break every seed-style step. The
# trading sagas already pass clock and rng explicitly; only the trace hook reaches them this way.
_ambient: contextvars.ContextVar[tuple[Runtime, random.Random, PollTrace | None] | None] = contextvars.ContextVar(
    "sagas_retry_ambient", default=None
)


def set_step_ambient(clock: Runtime, rng: random.Random, trace: PollTrace | None = None) -> None:
    """Record the running step's clock, generator and poll trace for ``retry_async`` calls inside it."""
    _ambient.set((clock, rng, trace))


def clear_step_ambient() -> None:
    """Forget the step clock (a simulated run calls this when it ends)."""
    _ambient.set(None)


def _untraced(
    attempt: int, outcome: Outcome, error: BaseException | None = None, retry_delay: float | None = None
) -> None:
    """Where a poll outside any saga step reports: nowhere."""


def _poll_context(clock: Runtime | None, rng: random.Random | None) -> tuple[Runtime, random.Random, PollTrace]:
    """The clock and generator a poll uses (those given, else the running step's) and where it reports."""
    ambient = _ambient.get()
    trace: PollTrace = _untraced
    if ambient is not None:
        clock = clock if clock is not None else ambient[0]
        rng = rng if rng is not None else ambient[1]
        trace = ambient[2] if ambient[2] is not None else _untraced
    if clock is None or rng is None:
        raise SagaDefinitionError(
            "retry_async needs a clock and rng: pass clock=context['clock'], rng=context['rng'] "
            "or run it inside a saga step"
        )
    return clock, rng, trace


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    retry_config: RetryConfig | None = None,
    *,
    clock: Runtime | None = None,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn`` until it succeeds or the policy gives up (the seed's polling helper).

    Sleeps through ``clock`` (a runtime: simulated in the lab, asyncio in production) and draws jitter from
    ``rng``. Raises ``RetryExhausted`` carrying the last error when the attempts or the budget run out, or at
    once for a non-retryable error. Inside a saga step it writes each attempt (``started``, then ``completed``,
    ``failed`` or ``cancelled``), each delay and a final ``gave_up`` to the step's trace as ``poll`` records.
    """
    config = retry_config if retry_config is not None else RetryConfig()
    clock, rng, trace = _poll_context(clock, rng)
    started = clock.now()
    previous: float | None = None
    attempts = 0
    while True:
        attempts += 1
        trace(attempts, Outcome.STARTED)
        try:
            result = await fn()
        except Exception as error:
            trace(attempts, Outcome.FAILED, error)
            delay = next_retry_delay(
                config,
                attempts_made=attempts,
                error=error,
                elapsed_s=clock.now() - started,
                previous_delay_s=previous,
                rng=rng,
            )
            if delay is None:
                trace(attempts, Outcome.GAVE_UP, error)
                raise RetryExhausted(attempts, error) from error
        except BaseException as stop:
            # Cancelled from outside (the step's deadline, a shutdown): the attempt ends here. A coroutine
            # closed unfinished (GeneratorExit) is being discarded, not cancelled: nothing to record.
            if not isinstance(stop, GeneratorExit):
                trace(attempts, Outcome.CANCELLED)
            raise
        else:
            trace(attempts, Outcome.COMPLETED)
            return result
        trace(attempts, Outcome.SCHEDULED, retry_delay=delay)
        previous = delay
        await clock.sleep(delay)
