"""What every trading saga shares: its dependencies, its configured timeout, per-step overrides."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sagas import probes
from sagas.engine.retry import RetryConfig
from sagas.engine.saga import BaseSaga
from sagas.engine.step import SagaStep, validate_steps
from sagas.trading import commands as c
from sagas.trading.deps import TradingDeps

PATIENT_RETRY = RetryConfig(
    max_attempts=12, initial_delay_ms=500, max_delay_ms=8000, backoff_factor=2.0, jitter="equal"
)
"""Safe variants: steps on infrastructure that fails transiently (the lock and cache on Redis, the
broker adapter) ride out an outage, with about 30 to 60 s of retries.

With the seed's one or two quick retries, a Redis outage of a few seconds failed the step; and a
disconnection that fails is never retried: its connection stayed disconnected and unpurged for good."""


class TradingSaga(BaseSaga):
    """A ``BaseSaga`` configured by ``TradingDeps.config`` (the seed's ``saga_config``)."""

    def __init__(self, deps: TradingDeps) -> None:
        super().__init__()
        self.deps = deps

    def get_timeout(self) -> timedelta:
        """The saga-level timeout configured for this saga type."""
        return self.deps.config.get_timeout_for_saga(self.get_saga_type())

    def validated_steps(self) -> tuple[SagaStep, ...]:
        """The steps, with the configuration's per-step deadline and retry overrides applied."""
        saga_type = self.get_saga_type()
        return validate_steps(saga_type, self.deps.config.apply_step_overrides(saga_type, self.define_steps()))

    async def _nothing_to_undo(self, **context: object) -> None:
        """Read-only or irreversible steps: nothing to compensate."""

    # -- the per-connection lock of the safe variant ------------------------------------------

    @property
    def lock_wait_seconds(self) -> float:
        """How long a safe-variant saga waits for the connection lock (a little over its TTL)."""
        return self.deps.config.lock_ttl_seconds + 30.0

    async def acquire_connection_lock(self, context: dict[str, Any]) -> int:
        """Wait (polling) until this saga holds the connection's lock; fence the write model; return the token.

        Connection and disconnection sagas of one connection take turns this way, so a
        reconnect never interleaves with a disconnection's cleanup. Every write the saga then
        makes about the connection carries the returned fencing token; announcing it first
        (``FenceConnection``), before anything is read, shuts out a previous holder whose TTL ran
        out while it was frozen. A lock this saga already holds (an earlier attempt of the step
        took it, or a crash cut the step after it did) is released and taken afresh, so the
        token is one this attempt knows.
        """
        connection_id = context["broker_connection_id"]
        key = connection_lock_key(connection_id)
        owner = context["saga_id"]
        locks = self.deps.locks
        await locks.release(key, owner)
        waited = False
        while True:
            # NOTE: a plain read while the lock is taken; the transaction only when it looks free.
            if await locks.holder(key) is None:
                token = await locks.acquire_fenced(key, owner, self.deps.config.lock_ttl_seconds)
                if token is not None:
                    break
            waited = True
            await context["clock"].sleep(LOCK_POLL_SECONDS)
        probes.sometimes("connection lock: waited for another holder", waited, variant="disconnect_lock:safe")
        await context["command_bus"].send(c.FenceConnection(connection_id, token, owner))
        return token

    async def release_connection_lock(self, context: dict[str, Any]) -> None:
        """Release the connection's lock if this saga holds it (a no-op otherwise)."""
        await self.deps.locks.release(connection_lock_key(context["broker_connection_id"]), context["saga_id"])


LOCK_POLL_SECONDS = 0.25


CONNECTION_LOCK_PREFIX = "broker:disconnect:lock:"
"""The prefix of every connection lock key (what a reader of Redis traffic looks for)."""


def connection_lock_key(broker_connection_id: str) -> str:
    """The seed's disconnect lock key, which the safe variant also takes when connecting."""
    return f"{CONNECTION_LOCK_PREFIX}{broker_connection_id}"
