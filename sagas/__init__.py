"""Saga Lab's saga engine: event-driven sagas with compensation, deadlines and retries.

Import the seed's vocabulary from here: ``BaseSaga``, ``SagaStep``,
``RetryConfig``, ``retry_async``, ``SagaManager``. The engine runs on the
asyncio runtime in ``sagas.runtime`` or on the lab's simulated clock; it never
imports the lab.
"""

from sagas.engine import *  # noqa: F403
from sagas.engine import __all__ as _engine_all
from sagas.stores import InMemorySagaStore, RedisSagaStore

__all__ = [*_engine_all, "InMemorySagaStore", "RedisSagaStore"]
