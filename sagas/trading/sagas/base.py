"""What every trading saga shares: its dependencies, its configured timeout, per-step overrides."""

from __future__ import annotations

from datetime import timedelta

from sagas.engine.saga import BaseSaga
from sagas.engine.step import SagaStep, validate_steps
from sagas.trading.deps import TradingDeps


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
