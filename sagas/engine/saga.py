"""``BaseSaga``: the class an application's sagas derive from, as in the seed."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from datetime import timedelta

from sagas.engine.errors import SagaDefinitionError
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

    def validated_steps(self) -> tuple[SagaStep, ...]:
        """``define_steps()`` checked as a whole (unique names, at least one step)."""
        return validate_steps(self.get_saga_type(), self.define_steps())
