"""The real Redis server for contract tests: found through REDIS_URL, or the test is skipped (fails in CI).

Usage in a test or fixture: ``url = require_redis_url()`` then ``prefix = unique_prefix("store")``
for keys nobody else uses, and ``delete_prefix(client, prefix)`` when done. Locally a missing or
silent server skips the real-Redis cases with the reason; when CI is "true" it fails them, so CI
can never pass by skipping the suite that needs a server (``.ci/run`` starts one and sets REDIS_URL).
"""

from __future__ import annotations

import functools
import itertools
import os

import pytest
import redis

_counter = itertools.count(1)


@functools.cache
def _probe() -> tuple[str | None, str]:
    """(url, "") if REDIS_URL names a server that answers PING, else (None, why not). Asked once per session."""
    url = os.environ.get("REDIS_URL", "").strip()
    if not url:
        return None, "REDIS_URL is not set (e.g. REDIS_URL=redis://127.0.0.1:6379/0)"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            if client.ping() is not True:
                return None, f"the Redis server at REDIS_URL={url} did not answer PING"
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as error:
        return None, f"the Redis server at REDIS_URL={url} did not answer PING: {type(error).__name__}: {error}"
    return url, ""


def require_redis_url() -> str:
    """REDIS_URL of a live server; otherwise skip the test, or fail it when CI is "true"."""
    url, reason = _probe()
    if url is not None:
        return url
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"real-Redis test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"no real Redis: {reason}")


def unique_prefix(name: str) -> str:
    """A key prefix no other test, run or concurrent process uses (pid + counter + random suffix)."""
    return f"sagalab-test:{name}:{os.getpid()}:{next(_counter)}:{os.urandom(4).hex()}"


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Delete every key under ``prefix`` (cleanup after a test)."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        client.delete(*keys)
