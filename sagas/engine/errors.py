"""The engine's exceptions: one root, misuse errors that are also ValueErrors."""

from __future__ import annotations


class SagaError(Exception):
    """Root of every exception the saga engine raises."""


class SagaDefinitionError(SagaError, ValueError):
    """A saga, step or retry policy was defined with an invalid value.

    Raised at definition time, naming the field, the value and what was expected.
    """


class DeadlineExceeded(SagaError, TimeoutError):
    """An awaited operation did not finish before its deadline and was cancelled."""

    def __init__(self, timeout_seconds: float, what: str = "operation") -> None:
        super().__init__(timeout_seconds, what)
        self.timeout_seconds = timeout_seconds
        self.what = what

    def __str__(self) -> str:
        return f"{self.what} exceeded its deadline of {self.timeout_seconds:g} s"


class ChildSagasTimeout(DeadlineExceeded):
    """Child sagas did not all finish before the parent's deadline."""


class NonRetryableError(SagaError):
    """An error that retrying cannot fix (invalid credentials, bad input).

    Any exception with a false ``retryable`` attribute is treated the same way.
    """

    retryable = False


class RetryExhausted(SagaError):
    """``retry_async`` gave up; ``last_error`` is the final attempt's exception."""

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        super().__init__(attempts, last_error)
        self.attempts = attempts
        self.last_error = last_error

    def __str__(self) -> str:
        return f"gave up after {self.attempts} attempt(s): {type(self.last_error).__name__}: {self.last_error}"


class SagaAborted(SagaError):
    """Raised by a step to end its saga early without failure (no compensation).

    A step may equally return a mapping with ``"aborted": True``, as the seed's
    purge guard does.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandlerNotFound(SagaError, LookupError):
    """A command or query was sent for which no handler is registered."""


class InvalidEvent(SagaError, ValueError):
    """An event lacks data a saga needs; names the event, the field and the problem."""


class LeaseLost(SagaError):
    """This manager no longer owns the saga: its lease expired or another manager took it over.

    Raised by a store refusing a write whose fencing token is stale, and by the engine when the
    lease's validity ran out locally; the execution stops driving the saga (its new owner goes on).
    """
