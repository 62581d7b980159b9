"""``SagaStep``: one step of a saga, validated when it is defined."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sagas.engine.errors import SagaDefinitionError
from sagas.engine.retry import RetryConfig

StepFunction = Callable[..., Coroutine[Any, Any, Any]]


def _is_async(fn: object) -> bool:
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is not None:  # NOTE: fast path for functions and bound methods (checked per saga instance)
        return bool(code.co_flags & inspect.CO_COROUTINE)
    # Partials, callable objects whose __call__ is a coroutine function, marked functions.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


@dataclass(frozen=True, slots=True)
class SagaStep:
    """A named step: an ``async`` action, its ``async`` compensation, a deadline, a retry policy.

    ``execute(**context)`` and ``compensate(**context)`` receive the saga's context:
    the trigger event's data, earlier steps' results merged in, and the services
    (``command_bus``, ``query_bus``, ``event_bus``, ``clock``, ``rng``, ``locks``,
    ``saga_id``, ``sagas`` for child sagas), and ``attempt``: which attempt of this
    step (or of its compensation) is running, from 1. ``execute`` returns a mapping
    merged into the context of later steps (or None).

    The retry policy is ``retry`` when given; otherwise the seed's
    ``retry_count`` retries with delays ``retry_delay_base * 2 ** (n - 1)`` seconds.
    ``compensation_retry`` defaults to the same policy (compensations are
    idempotent, so retrying them is safe); each compensation attempt has the
    step's ``timeout_seconds`` unless ``compensation_timeout_seconds`` is given.
    """

    name: str
    execute: StepFunction
    compensate: StepFunction | None = None
    timeout_seconds: float = 30.0
    retry_count: int = 0
    retry_delay_base: float = 1.0
    retry: RetryConfig | None = None
    compensation_retry: RetryConfig | None = None
    compensation_timeout_seconds: float | None = None

    def __post_init__(self) -> None:
        # NOTE: steps are built for every saga instance, so messages are formatted only on failure.
        if not isinstance(self.name, str) or not self.name:
            raise SagaDefinitionError(f"SagaStep.name must be a non-empty string, got {self.name!r}")
        if not _is_async(self.execute):
            self._fail(f"execute must be an async function, got {self.execute!r}")
        if self.compensate is not None and not _is_async(self.compensate):
            self._fail(f"compensate must be an async function or None, got {self.compensate!r}")
        if not _positive(self.timeout_seconds):
            self._fail(f"timeout_seconds must be > 0, got {self.timeout_seconds!r}")
        if self.compensation_timeout_seconds is not None and not _positive(self.compensation_timeout_seconds):
            self._fail(f"compensation_timeout_seconds must be > 0, got {self.compensation_timeout_seconds!r}")
        if self.retry is None:
            try:
                policy = RetryConfig.from_seed(self.retry_count, self.retry_delay_base)
            except SagaDefinitionError as error:
                self._fail(str(error))
            object.__setattr__(self, "retry", policy)
        elif not isinstance(self.retry, RetryConfig):
            self._fail(f"retry must be a RetryConfig, got {self.retry!r}")
        if self.compensation_retry is None:
            object.__setattr__(self, "compensation_retry", self.retry)

    def _fail(self, problem: str) -> NoReturn:
        raise SagaDefinitionError(f"SagaStep {self.name!r}: {problem}") from None

    @property
    def policy(self) -> RetryConfig:
        """The retry policy of ``execute`` (always set after definition)."""
        assert self.retry is not None
        return self.retry

    @property
    def compensation_policy(self) -> RetryConfig:
        """The retry policy of ``compensate``."""
        assert self.compensation_retry is not None
        return self.compensation_retry

    @property
    def compensation_deadline(self) -> float:
        """Seconds each compensation attempt may take."""
        return self.compensation_timeout_seconds or self.timeout_seconds


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def validate_steps(saga_type: str, steps: Sequence[SagaStep]) -> tuple[SagaStep, ...]:
    """Check a saga's step list as a whole: non-empty, ``SagaStep`` items, unique names."""
    if not steps:
        raise SagaDefinitionError(f"{saga_type}.define_steps() must return at least one SagaStep, got none")
    seen: set[str] = set()
    for index, step in enumerate(steps):
        if not isinstance(step, SagaStep):
            raise SagaDefinitionError(
                f"{saga_type}.define_steps()[{index}] must be a SagaStep, got {type(step).__name__}"
            )
        if step.name in seen:
            raise SagaDefinitionError(f"{saga_type}: duplicate step name {step.name!r} at position {index}")
        seen.add(step.name)
    return tuple(steps)
