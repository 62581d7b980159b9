"""The broker cache on Redis: per-connection entries, and the seed's "nuclear" clear of a user's data.

Layout, under ``prefix`` (default ``cache``): every entry lives at
``{prefix}:user:{user_id}:broker:{broker_id}:conn:{connection_id}:{item}``, so
one connection's entries and everything a user has at one broker (or at all
brokers) are each one SCAN pattern away.
"""

from __future__ import annotations

from typing import Any

from sagas.infra.redis_io import resolve, text

CRITICAL_DISCONNECT_REASONS = frozenset(
    {"duplicate_accounts", "data_corruption", "cache_corruption", "sync_failure", "nuclear_cleanup"}
)
"""Disconnect reasons that call for the nuclear cleanup (the seed's list)."""


def is_critical_disconnect_reason(reason: str | None) -> bool:
    """Whether a disconnect ``reason`` calls for clearing all of the user's broker data."""
    return (reason or "").strip().lower() in CRITICAL_DISCONNECT_REASONS


class CacheManager:
    """Writes and clears cached broker data for users and their connections."""

    def __init__(self, client: Any, prefix: str = "cache", scan_count: int = 500) -> None:
        self._redis = client
        self._prefix = prefix
        self._scan_count = scan_count

    def key(self, user_id: str, broker_id: str, connection_id: str, item: str) -> str:
        """The key of one cached ``item`` of a connection."""
        return f"{self._prefix}:user:{user_id}:broker:{broker_id}:conn:{connection_id}:{item}"

    async def put(
        self, user_id: str, broker_id: str, connection_id: str, item: str, value: str, ttl_seconds: float | None = None
    ) -> None:
        """Cache ``value`` for a connection (optionally expiring)."""
        px = None if ttl_seconds is None else max(1, round(ttl_seconds * 1000))
        await resolve(self._redis.set(self.key(user_id, broker_id, connection_id, item), value, px=px))

    async def get(self, user_id: str, broker_id: str, connection_id: str, item: str) -> str | None:
        """A cached value, or None."""
        value = await resolve(self._redis.get(self.key(user_id, broker_id, connection_id, item)))
        return text(value) if value is not None else None

    async def clear_connection_cache(self, broker_connection_id: str) -> int:
        """Delete every entry of one connection; return how many were deleted."""
        return await self._clear(f"{self._prefix}:user:*:broker:*:conn:{broker_connection_id}:*")

    async def clear_all_user_broker_data(self, user_id: str, broker_id: str | None = None) -> int:
        """The nuclear option: every entry of ``user_id`` at ``broker_id`` (or at every broker)."""
        broker = broker_id if broker_id is not None else "*"
        return await self._clear(f"{self._prefix}:user:{user_id}:broker:{broker}:*")

    async def entries(self, pattern_suffix: str = "*") -> list[str]:
        """Keys under this cache's prefix (sorted), for tests and invariant checks."""
        return sorted(await self._scan(f"{self._prefix}:{pattern_suffix}"))

    async def _scan(self, pattern: str) -> list[str]:
        keys: list[str] = []
        cursor: Any = 0
        while True:
            cursor, batch = await resolve(self._redis.scan(cursor=cursor, match=pattern, count=self._scan_count))
            keys.extend(text(k) for k in batch)
            if int(cursor) == 0:
                return keys

    async def _clear(self, pattern: str) -> int:
        keys = sorted(set(await self._scan(pattern)))  # SCAN may repeat a key; sorted for a stable order
        if not keys:
            return 0
        return int(await resolve(self._redis.delete(*keys)))
