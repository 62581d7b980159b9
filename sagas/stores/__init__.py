"""Saga store implementations: in memory, and on Redis through the redis-py API."""

from sagas.stores.memory import InMemorySagaStore
from sagas.stores.redis_store import RedisSagaStore

__all__ = ["InMemorySagaStore", "RedisSagaStore"]
