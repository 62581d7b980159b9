"""A saga whose every attempt follows a script carried by its trigger event.

Each step's script is a sequence of attempt outcomes: ``("ok", seconds)``,
``("fail", seconds)``, ``("hang", 0)`` (sleeps far past any deadline) or
``("abort", 0)``. Attempts past the end of a script succeed at once. Compensations
have their own scripts. Every action is noted with its time, so tests can
assert exact timestamps and order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sagas import BaseSaga, Event, RetryConfig, SagaAborted, SagaStep

Script = Mapping[str, Sequence[tuple[str, float]]]
STEPS = ("reserve", "charge", "ship", "notify")


class ScriptedFailure(RuntimeError):
    """The failure a script asks for."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Go(Event):
    order_id: str = "order-1"
    script: Script = field(default_factory=dict)
    compensation_script: Script = field(default_factory=dict)


class ScriptedSaga(BaseSaga):
    """Four steps (reserve, charge, ship, notify), each following the event's script."""

    def __init__(
        self,
        note: Callable[[str], None],
        *,
        steps: Sequence[str] = STEPS,
        saga_timeout: float = 300.0,
        step_timeout: float = 5.0,
        retry_count: int = 2,
        retry_delay_base: float = 1.0,
        retry: RetryConfig | None = None,
    ) -> None:
        super().__init__()
        self._note = note
        self._names = tuple(steps)
        self._saga_timeout = saga_timeout
        self._step_timeout = step_timeout
        self._retry_count = retry_count
        self._retry_delay_base = retry_delay_base
        self._retry = retry
        self._attempts: dict[str, int] = {}

    def get_saga_type(self) -> str:
        return "ScriptedSaga"

    def get_timeout(self) -> float:
        return self._saga_timeout

    def define_steps(self) -> list[SagaStep]:
        return [
            SagaStep(
                name,
                self._action(name, "script", name),
                self._action(name, "compensation_script", f"undo {name}"),
                timeout_seconds=self._step_timeout,
                retry_count=self._retry_count,
                retry_delay_base=self._retry_delay_base,
                retry=self._retry,
            )
            for name in self._names
        ]

    def _action(self, name: str, script_key: str, label: str) -> Callable[..., Any]:
        async def act(**context: Any) -> dict[str, Any]:
            key = f"{script_key}:{name}"
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            outcomes = context[script_key].get(name, ())
            kind, seconds = outcomes[attempt] if attempt < len(outcomes) else ("ok", 0.0)
            clock = context["clock"]
            self._note(f"{label} #{attempt + 1}")
            if kind == "hang":
                try:
                    await clock.sleep(10_000)
                finally:
                    self._note(f"{label} #{attempt + 1} cancelled")
            if seconds:
                await clock.sleep(seconds)
            if kind == "fail":
                raise ScriptedFailure(f"{label} attempt {attempt + 1} failed as scripted")
            if kind == "abort":
                raise SagaAborted(f"{label} found nothing to do")
            return {f"{name}_done": True}

        return act
