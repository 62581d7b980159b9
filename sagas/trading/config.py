"""Saga configuration: per-saga-type timeouts, and the switches between the seed's choices and safer ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

from sagas.engine.errors import SagaDefinitionError
from sagas.engine.retry import RetryConfig
from sagas.engine.step import SagaStep

Variant = Literal["seed", "safe"]

DEFAULT_TIMEOUTS_SECONDS: Mapping[str, float] = {
    "BrokerConnectionSaga": 120.0,
    "BrokerDisconnectionSaga": 300.0,
    "ConnectionRecoverySaga": 120.0,
    "UserDeletionSaga": 600.0,
    "OrderExecutionSaga": 300.0,
    "PositionManagementSaga": 86_400.0,
}

SEED_CONSISTENCY_RETRY = RetryConfig(
    max_attempts=5, initial_delay_ms=500, max_delay_ms=2000, backoff_factor=1.5, jitter=True
)
"""The seed's eventual-consistency poll: 5 attempts, 0.5 s growing by 1.5x to at most 2 s, jittered."""

PRICE_READ_RETRY = RetryConfig(
    max_attempts=5, initial_delay_ms=1000, max_delay_ms=8000, backoff_factor=2.0, jitter="equal"
)
"""Each price read of a position's monitor loop: a transient broker error (5xx, 429, a timeout) is retried
about 1, 2, 4 and 8 s later, so one error in a watch of hundreds of reads does not end the watch."""


@dataclass(frozen=True, slots=True)
class SagaVariants:
    """Where the seed makes a fragile choice, which behaviour to run.

    - ``disconnect_lock``: ``seed`` takes the lock with ``safe_set`` and, if it is
      not acquired, sleeps 3 s and goes on anyway, releasing it after step 1;
      ``safe`` waits for an owner-token lock (retrying through Redis errors) and
      holds it for the whole saga; connection sagas of the same connection take
      turns on the same lock. The safe lock hands out a fencing token, which the
      saga announces to the write model at once and sends with every write it
      makes under the lock, so a holder frozen past the TTL cannot write once the
      next holder has started.
    - ``child_wait``: ``seed`` waits for child sagas with ``sleep(min(5 + 2n, 30))``;
      ``safe`` waits for their completion events with a deadline.
    - ``purge``: ``seed`` re-validates with queries, then purges unconditionally;
      ``safe`` lets the write model judge, atomically: the purge (and the account
      deletions) happen only while the connection is still disconnected and holds
      no account; accounts are linked only into a connected connection; a connection
      saga's compensation unlinks only the accounts it linked itself; and when the
      account read model still lags after the consistency poll's budget, the write
      model says whether accounts remain (the poll delays the purge, never strands it);
      and a disconnection saga that fails or times out hands the cleanup over to a
      fresh saga (a re-published ``BrokerDisconnected``), at most three times in a row.
    """

    disconnect_lock: Variant = "seed"
    child_wait: Variant = "seed"
    purge: Variant = "seed"

    @classmethod
    def all_safe(cls) -> SagaVariants:
        """Every switch on its safer side."""
        return cls("safe", "safe", "safe")


@dataclass(frozen=True, slots=True)
class SagaConfig:
    """Timeouts per saga type, variant switches, and the eventual-consistency poll's policy."""

    timeouts_seconds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS_SECONDS))
    variants: SagaVariants = field(default_factory=SagaVariants)
    consistency_retry: RetryConfig = SEED_CONSISTENCY_RETRY
    lock_ttl_seconds: float = 300.0
    child_wait_timeout_seconds: float = 120.0
    max_order_quantity: float = 10_000.0
    position_poll_seconds: float = 5.0
    position_price_retry: RetryConfig = PRICE_READ_RETRY
    step_overrides: Mapping[str, tuple[float | None, RetryConfig | None]] = field(default_factory=dict)
    """Per-step (deadline, retry policy) overrides keyed ``"SagaType.step_name"``; None keeps the step's own."""

    def __post_init__(self) -> None:
        for saga_type, seconds in self.timeouts_seconds.items():
            if not seconds > 0:
                raise SagaDefinitionError(f"timeouts_seconds[{saga_type!r}] must be > 0, got {seconds!r}")

    def get_timeout_for_saga(self, saga_type: str) -> timedelta:
        """The saga-level timeout of ``saga_type`` (the seed's ``saga_config.get_timeout_for_saga``)."""
        try:
            return timedelta(seconds=self.timeouts_seconds[saga_type])
        except KeyError:
            known = ", ".join(sorted(self.timeouts_seconds))
            raise SagaDefinitionError(f"no timeout configured for saga type {saga_type!r} (known: {known})") from None

    def apply_step_overrides(self, saga_type: str, steps: Sequence[SagaStep]) -> list[SagaStep]:
        """``steps`` with this configuration's overrides for ``saga_type`` applied.

        An override naming a step the saga does not have is an error, so a typo
        in a scenario cannot silently leave a step unconfigured.
        """
        prefix = f"{saga_type}."
        wanted = {key[len(prefix) :]: value for key, value in self.step_overrides.items() if key.startswith(prefix)}
        if not wanted:
            return list(steps)
        names = {step.name for step in steps}
        unknown = sorted(set(wanted) - names)
        if unknown:
            raise SagaDefinitionError(
                f"step override(s) {', '.join(prefix + u for u in unknown)} name no step of {saga_type} "
                f"(its steps: {', '.join(step.name for step in steps)})"
            )
        result = []
        for step in steps:
            override = wanted.get(step.name)
            if override is not None:
                timeout, retry = override
                if retry is not None and not retry.non_retryable:
                    # A configured policy (scenario files cannot name exception types) keeps the errors
                    # the step itself never retries, such as revoked credentials.
                    retry = replace(retry, non_retryable=step.policy.non_retryable)
                step = replace(
                    step,
                    timeout_seconds=timeout if timeout is not None else step.timeout_seconds,
                    retry=retry if retry is not None else step.retry,
                )
            result.append(step)
        return result

    def with_changes(self, **changes: Any) -> SagaConfig:
        """A copy with some fields replaced."""
        return replace(self, **changes)
