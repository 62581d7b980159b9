"""A sample saga with random latencies, failures and hangs, for the demo and the tests.

``simlab sample`` runs it: four steps, free of the trading domain, whose latency,
failure and hang odds come from ``SampleProfile`` and whose draws come from the
run's seeded stream (``context['rng']``), so every run is a function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sagas import BaseSaga, Event, RetryConfig, SagaStep


class SampleStepFailure(RuntimeError):
    """A step failure drawn by the sample profile."""


@dataclass(frozen=True, slots=True)
class SampleProfile:
    """Odds and latencies of the sample saga's steps (simulated seconds)."""

    median_latency_s: float = 0.2
    latency_sigma: float = 1.0
    failure_probability: float = 0.25
    hang_probability: float = 0.05
    compensation_failure_probability: float = 0.1
    step_timeout_s: float = 2.0
    saga_timeout_s: float = 8.0
    retry: RetryConfig = field(
        default_factory=lambda: RetryConfig(max_attempts=3, initial_delay_ms=500, max_delay_ms=4000, jitter="full")
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderRequested(Event):
    """Trigger of the sample saga."""

    order_id: str


class SampleOrderSaga(BaseSaga):
    """Reserve funds, submit, confirm, notify; each step may be slow, fail or hang."""

    STEPS = ("reserve_funds", "submit_order", "confirm_order", "notify_user")

    def __init__(self, profile: SampleProfile | None = None) -> None:
        super().__init__()
        self.profile = profile or SampleProfile()

    def get_saga_type(self) -> str:
        return "SampleOrderSaga"

    def get_timeout(self) -> float:
        return self.profile.saga_timeout_s

    def define_steps(self) -> list[SagaStep]:
        p = self.profile
        return [
            SagaStep(name, self._act, self._undo, timeout_seconds=p.step_timeout_s, retry=p.retry)
            for name in self.STEPS
        ]

    async def _act(self, **context: Any) -> None:
        p = self.profile
        rng = context["rng"]
        draw = rng.random()
        if draw < p.hang_probability:
            await context["clock"].sleep(p.saga_timeout_s * 10)  # cancelled by the step deadline
        await context["clock"].sleep(rng.lognormvariate(0.0, p.latency_sigma) * p.median_latency_s)
        if draw < p.hang_probability + p.failure_probability:
            raise SampleStepFailure("broker said no")

    async def _undo(self, **context: Any) -> None:
        p = self.profile
        rng = context["rng"]
        await context["clock"].sleep(rng.lognormvariate(0.0, p.latency_sigma) * p.median_latency_s / 2)
        if rng.random() < p.compensation_failure_probability:
            raise SampleStepFailure("refund rejected")
