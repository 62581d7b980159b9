"""The saga engine: sagas, steps, retries, the manager, buses, events and ports."""

from sagas.engine.buses import CommandBus, EventBus, QueryBus, Subscription
from sagas.engine.context import ChildSagas
from sagas.engine.errors import (
    ChildSagasTimeout,
    DeadlineExceeded,
    HandlerNotFound,
    InvalidEvent,
    LeaseLost,
    NonRetryableError,
    RetryExhausted,
    SagaAborted,
    SagaDefinitionError,
    SagaError,
)
from sagas.engine.events import (
    Event,
    SagaCompensated,
    SagaCompleted,
    SagaFailed,
    SagaFinished,
    SagaLifecycleEvent,
    SagaStarted,
    SagaStepCompleted,
    event_data,
)
from sagas.engine.manager import SagaManager
from sagas.engine.ports import LockManager, Runtime, RuntimeEvent, SagaStore, TaskHandle
from sagas.engine.randomness import IdSource, RandomStreams, derive_seed
from sagas.engine.retry import JITTER_STRATEGIES, RetryConfig, backoff_delay, next_retry_delay, retry_async
from sagas.engine.saga import BaseSaga
from sagas.engine.state import SagaState, SagaStatus
from sagas.engine.step import SagaStep
from sagas.engine.trace import (
    ATTEMPT_END_OUTCOMES,
    ATTEMPT_PHASES,
    POSSIBLY_APPLIED_OUTCOMES,
    TERMINAL_SAGA_OUTCOMES,
    Outcome,
    Phase,
    Tracer,
    TraceRecord,
    canonical_trace,
    trace_hash,
)

__all__ = [
    "ATTEMPT_END_OUTCOMES",
    "ATTEMPT_PHASES",
    "JITTER_STRATEGIES",
    "POSSIBLY_APPLIED_OUTCOMES",
    "TERMINAL_SAGA_OUTCOMES",
    "BaseSaga",
    "ChildSagas",
    "ChildSagasTimeout",
    "CommandBus",
    "DeadlineExceeded",
    "Event",
    "EventBus",
    "HandlerNotFound",
    "IdSource",
    "InvalidEvent",
    "LeaseLost",
    "LockManager",
    "NonRetryableError",
    "Outcome",
    "Phase",
    "QueryBus",
    "RandomStreams",
    "RetryConfig",
    "RetryExhausted",
    "Runtime",
    "RuntimeEvent",
    "SagaAborted",
    "SagaCompensated",
    "SagaCompleted",
    "SagaDefinitionError",
    "SagaError",
    "SagaFailed",
    "SagaFinished",
    "SagaLifecycleEvent",
    "SagaManager",
    "SagaStarted",
    "SagaState",
    "SagaStatus",
    "SagaStep",
    "SagaStepCompleted",
    "SagaStore",
    "Subscription",
    "TaskHandle",
    "TraceRecord",
    "Tracer",
    "backoff_delay",
    "canonical_trace",
    "derive_seed",
    "event_data",
    "next_retry_delay",
    "retry_async",
    "trace_hash",
]
