"""The real Redis server for contract tests: found through REDIS_URL, or the test is skipped (fails in CI).

Usage in a test or fixture: ``url = require_redis_url()`` then ``prefix = unique_prefix("store")``
for keys nobody else uses, and ``delete_prefix(client, prefix)`` when done. Locally a missing or
silent server skips the real-Redis cases with the reason; when CI is "true" it fails them, so CI
can never pass by skipping the suite that needs a server (``.ci/run`` starts one and sets REDIS_URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

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


ClientBody = Callable[[Any, str], Awaitable[None]]  # (client, key prefix)
ClientRunner = Callable[[ClientBody], None]

REDIS_KINDS = [
    "fakeredis",
    "simulated",
    pytest.param("redis-sync", marks=pytest.mark.redis),
    pytest.param("redis-asyncio", marks=pytest.mark.redis),
]
"""The Redis clients a contract suite runs against: fakeredis, fakeredis on the simulated clock, real Redis."""


@contextlib.contextmanager
def redis_runner(kind: str, name: str) -> Iterator[ClientRunner]:
    """A function running ``body(client, prefix)`` with a fresh client of ``kind`` and keys nobody else uses."""
    # Imported here: simlab is the lab under test, not a dependency of this helper's other users.
    from simlab.sim.clocked_redis import SimulatedRedis
    from simlab.sim.world import SimWorld, simulate

    if kind == "fakeredis":
        yield lambda body: asyncio.run(body(fakeredis.FakeRedis(), name))
        return
    if kind == "simulated":

        def run_simulated(body: ClientBody) -> None:
            async def main(world: SimWorld) -> None:
                await body(SimulatedRedis(clock=world.runtime.now), name)

            simulate(main, seed=3)

        yield run_simulated
        return
    url = require_redis_url()
    prefix = unique_prefix(name)
    cleanup = redis.Redis.from_url(url)
    try:
        if kind == "redis-sync":
            yield lambda body: asyncio.run(body(cleanup, prefix))
        else:

            def run_asyncio(body: ClientBody) -> None:
                # The asyncio client belongs to the loop it was made on: build and close it inside the run.
                async def main() -> None:
                    client = redis.asyncio.Redis.from_url(url)
                    try:
                        await body(client, prefix)
                    finally:
                        await client.aclose()

                asyncio.run(main())

            yield run_asyncio
    finally:
        delete_prefix(cleanup, prefix)
        cleanup.close()
