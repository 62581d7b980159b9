"""``BaseSaga``: the class an application's sagas derive from, as in the seed."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import timedelta

from sagas.engine.errors import SagaDefinitionError
from sagas.engine.retry import RetryConfig
from sagas.engine.step import SagaStep, validate_steps

DEFAULT_SAGA_TIMEOUT = timedelta(minutes=5)


class BaseSaga(ABC):
    """A saga: an ordered list of steps with compensations and an overall deadline.

    Subclasses implement ``define_steps()`` and usually ``get_saga_type()`` and
    ``get_timeout()``. The manager assigns ``saga_id`` when it starts an instance.
    """

    def __init__(self, saga_id: str | None = None) -> None:
        self.saga_id = saga_id

    def get_saga_type(self) -> str:
        """The saga type name used in traces, metrics and the store (default: class name)."""
        return type(self).__name__

    def get_timeout(self) -> timedelta | float:
        """The saga-level deadline (a ``timedelta`` or seconds); the default is 5 minutes."""
        return DEFAULT_SAGA_TIMEOUT

    @abstractmethod
    def define_steps(self) -> list[SagaStep]:
        """The saga's steps, in execution order."""

    def timeout_seconds(self) -> float:
        """``get_timeout()`` in seconds, validated (> 0)."""
        timeout = self.get_timeout()
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
            raise SagaDefinitionError(f"{self.get_saga_type()}.get_timeout() must be > 0, got {timeout!r}")
        return float(seconds)

    def poll_policies(self) -> Mapping[str, RetryConfig]:
        """The policy of each step's ``retry_async`` poll, by step name (default: no step polls).

        The engine does not need it; it is the declaration a check of the trace compares a
        step's ``poll`` records with, as ``SagaStep.retry`` is for the step's own attempts.
        """
        return {}

    def validated_steps(self) -> tuple[SagaStep, ...]:
        """``define_steps()`` checked as a whole (unique names, at least one step)."""
        return validate_steps(self.get_saga_type(), self.define_steps())
