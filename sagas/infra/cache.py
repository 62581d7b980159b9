"""The broker cache on Redis: per-connection entries, and the seed's "nuclear" clear of a user's data.

Layout, under ``prefix`` (default ``cache``): every entry lives at
``{prefix}:user:{user_id}:broker:{broker_id}:conn:{connection_id}:{item}``.
``put`` also adds the entry's key to three index sets, under ``{prefix}-index``
(outside the entries' namespace): one per connection, one per user and broker,
one per user. A clear reads one index set (SMEMBERS) instead of SCANning the
whole keyspace with a pattern: it costs what the connection or user has cached,
not what the server holds, and it is one round trip as before. Entries must
therefore be written through ``put``. An index may name entries that expired or
were cleared through another index; DEL skips those, and its count is what was
really deleted.
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
        """Cache ``value`` for a connection (optionally expiring), and index it (one transaction)."""
        px = None if ttl_seconds is None else max(1, round(ttl_seconds * 1000))
        key = self.key(user_id, broker_id, connection_id, item)
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(key, value, px=px)
        for index in self._indexes(user_id, broker_id, connection_id):
            pipe.sadd(index, key)
        await resolve(pipe.execute())

    async def get(self, user_id: str, broker_id: str, connection_id: str, item: str) -> str | None:
        """A cached value, or None."""
        value = await resolve(self._redis.get(self.key(user_id, broker_id, connection_id, item)))
        return text(value) if value is not None else None

    async def clear_connection_cache(self, broker_connection_id: str) -> int:
        """Delete every entry of one connection; return how many were deleted."""
        return await self._clear(f"{self._index_prefix}:conn:{broker_connection_id}")

    async def clear_all_user_broker_data(self, user_id: str, broker_id: str | None = None) -> int:
        """The nuclear option: every entry of ``user_id`` at ``broker_id`` (or at every broker)."""
        if broker_id is None:
            return await self._clear(f"{self._index_prefix}:user:{user_id}")
        return await self._clear(f"{self._index_prefix}:user:{user_id}:broker:{broker_id}")

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

    @property
    def _index_prefix(self) -> str:
        return f"{self._prefix}-index"

    def _indexes(self, user_id: str, broker_id: str, connection_id: str) -> tuple[str, str, str]:
        """The index sets that list an entry of this connection."""
        index = self._index_prefix
        return (
            f"{index}:conn:{connection_id}",
            f"{index}:user:{user_id}:broker:{broker_id}",
            f"{index}:user:{user_id}",
        )

    def _owner(self, key: str) -> tuple[str, str, str] | None:
        """(user, broker, connection) of an entry key, or None if it does not follow the layout."""
        head = f"{self._prefix}:user:"
        if not key.startswith(head):
            return None
        user, sep, rest = key[len(head) :].partition(":broker:")
        broker, sep2, rest = rest.partition(":conn:")
        connection, sep3, _ = rest.rpartition(":")
        return (user, broker, connection) if sep and sep2 and sep3 else None

    async def _clear(self, index: str) -> int:
        keys = sorted({text(k) for k in await resolve(self._redis.smembers(index))})  # sorted for a stable order
        if not keys:
            return 0
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(*keys)
        for key in keys:  # drop the cleared keys from the other indexes too, so indexes do not fill with dead names
            owner = self._owner(key)
            for other in self._indexes(*owner) if owner is not None else ():
                if other != index:
                    pipe.srem(other, key)
        pipe.delete(index)
        return int((await resolve(pipe.execute()))[0])
