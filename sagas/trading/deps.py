"""What the trading sagas need beyond their step context: brokers, cache, Redis, locks, configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sagas.engine.errors import InvalidEvent
from sagas.engine.ports import LockManager
from sagas.infra.cache import CacheManager
from sagas.trading.broker_port import BrokerApi
from sagas.trading.config import SagaConfig


@dataclass
class TradingDeps:
    """Injected into each trading saga (the seed reaches the same things through module globals)."""

    brokers: Mapping[str, BrokerApi]
    cache: CacheManager
    redis: Any
    locks: LockManager
    credentials: Callable[[str], str]
    config: SagaConfig = field(default_factory=SagaConfig)

    def broker(self, broker_id: str) -> BrokerApi:
        """The adapter of ``broker_id``."""
        try:
            return self.brokers[broker_id]
        except KeyError:
            raise InvalidEvent(f"no broker adapter for broker_id {broker_id!r}") from None


def require_fields(context: Mapping[str, Any], event_type: str, names: Sequence[str]) -> None:
    """Fail with one clear message if the trigger event lacks an enriched field a saga needs."""
    missing = [name for name in names if name not in context or context[name] is None]
    if missing:
        raise InvalidEvent(
            f"{event_type} event {context.get('event_id')!r} lacks enriched field(s) {', '.join(missing)}; "
            "the saga needs them from the event (TRUE SAGA: no queries for core data)"
        )
