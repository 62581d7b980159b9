"""The seed's ``safe_set`` / ``safe_get`` / ``safe_delete``: Redis calls that degrade instead of raising.

They keep the seed's semantics on purpose: a Redis failure is logged and turned
into a falsy result, so a saga that takes a lock with ``safe_set(..., nx=True)``
cannot tell "someone holds it" from "Redis is down", and ``safe_delete`` removes
a key whoever holds it. The lab shows where that is fragile;
``RedisLockManager`` is the safer lock beside it.
"""

from __future__ import annotations

import logging
from typing import Any

from sagas.infra.redis_io import resolve

log = logging.getLogger("sagas.infra")


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError  # redis is an optional extra of `sagas`

    return (RedisError, OSError)


async def safe_set(client: Any, key: str, value: str, ttl_seconds: float | None = None, nx: bool = False) -> bool:
    """SET ``key``; True if it was set. With ``nx=True``, False if the key exists. False on a Redis error."""
    try:
        px = None if ttl_seconds is None else max(1, round(ttl_seconds * 1000))
        return bool(await resolve(client.set(key, value, px=px, nx=nx)))
    except _redis_errors() as error:
        log.warning("safe_set(%s) failed: %s: %s", key, type(error).__name__, error)
        return False


async def safe_get(client: Any, key: str) -> Any:
    """GET ``key``; None if absent or on a Redis error."""
    try:
        return await resolve(client.get(key))
    except _redis_errors() as error:
        log.warning("safe_get(%s) failed: %s: %s", key, type(error).__name__, error)
        return None


async def safe_delete(client: Any, *keys: str) -> int:
    """DEL ``keys`` whoever set them; the number deleted, 0 on a Redis error."""
    try:
        return int(await resolve(client.delete(*keys)))
    except _redis_errors() as error:
        log.warning("safe_delete(%s) failed: %s: %s", ", ".join(keys), type(error).__name__, error)
        return 0
