"""``SagaStep``: one step of a saga, validated when it is defined."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from sagas.engine.errors import SagaDefinitionError
from sagas.engine.retry import RetryConfig

StepFunction = Callable[..., Coroutine[Any, Any, Any]]


def _is_async(fn: object) -> bool:
    # Callable objects count when their __call__ is a coroutine function.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


@dataclass(frozen=True, slots=True)
class SagaStep:
    """A named step: an ``async`` action, its ``async`` compensation, a deadline, a retry policy.

    ``execute(**context)`` and ``compensate(**context)`` receive the saga's context:
    the trigger event's data, earlier steps' results merged in, and the services
    (``command_bus``, ``query_bus``, ``event_bus``, ``clock``, ``rng``, ``locks``,
    ``saga_id``, ``sagas`` for child sagas). ``execute`` returns a mapping merged
    into the context of later steps (or None).

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
        if not isinstance(self.name, str) or not self.name:
            raise SagaDefinitionError(f"SagaStep.name must be a non-empty string, got {self.name!r}")
        where = f"SagaStep {self.name!r}"
        if not _is_async(self.execute):
            raise SagaDefinitionError(f"{where}: execute must be an async function, got {self.execute!r}")
        if self.compensate is not None and not _is_async(self.compensate):
            raise SagaDefinitionError(f"{where}: compensate must be an async function or None, got {self.compensate!r}")
        for label in ("timeout_seconds", "compensation_timeout_seconds"):
            value = getattr(self, label)
            if value is None and label == "compensation_timeout_seconds":
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise SagaDefinitionError(f"{where}: {label} must be > 0, got {value!r}")
        if self.retry is None:
            # Validates retry_count and retry_delay_base, naming them.
            try:
                policy = RetryConfig.from_seed(self.retry_count, self.retry_delay_base)
            except SagaDefinitionError as error:
                raise SagaDefinitionError(f"{where}: {error}") from None
            object.__setattr__(self, "retry", policy)
        elif not isinstance(self.retry, RetryConfig):
            raise SagaDefinitionError(f"{where}: retry must be a RetryConfig, got {self.retry!r}")
        if self.compensation_retry is None:
            object.__setattr__(self, "compensation_retry", self.retry)

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
