"""Redis-backed infrastructure for sagas: distributed locks, the cache manager, the seed's helpers.

Everything here talks to Redis through the redis-py API and accepts either a
synchronous client (``redis.Redis``, or the lab's fakeredis on the simulated
clock) or an asyncio one (``redis.asyncio.Redis`` in production).
"""

from sagas.infra.cache import CRITICAL_DISCONNECT_REASONS, CacheManager, is_critical_disconnect_reason
from sagas.infra.locks import InMemoryLockManager, RedisLockManager
from sagas.infra.redis_io import resolve
from sagas.infra.safe_ops import safe_delete, safe_get, safe_set

__all__ = [
    "CRITICAL_DISCONNECT_REASONS",
    "CacheManager",
    "InMemoryLockManager",
    "RedisLockManager",
    "is_critical_disconnect_reason",
    "resolve",
    "safe_delete",
    "safe_get",
    "safe_set",
]
