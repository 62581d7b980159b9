"""Latency around the buses: every command and query takes simulated time, as a database round trip does.

Wrappers around ports, never branches in domain code: ``DelayedCommandBus`` and
``DelayedQueryBus`` sleep a drawn delay before handing the message to the real
bus. Without them the in-process buses answer instantly, and windows such as
the one between the seed's re-validation and its purge could never open.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sagas.engine.buses import CommandBus, QueryBus
from sagas.engine.ports import Runtime

Delay = Callable[[Any], float]


def lognormal_delay(rng: random.Random, median_s: float, sigma: float = 0.5) -> Delay:
    """Delays drawn lognormally around ``median_s`` from ``rng``."""

    def draw(_message: Any) -> float:
        return median_s * rng.lognormvariate(0.0, sigma) if median_s > 0 else 0.0

    return draw


def fixed_delay(seconds: float) -> Delay:
    """The same delay for every message (tests)."""
    return lambda _message: seconds


class DelayedCommandBus(CommandBus):
    """A command bus whose every ``send`` first waits ``delay(command)`` simulated seconds."""

    def __init__(self, runtime: Runtime, delay: Delay) -> None:
        super().__init__()
        self._runtime = runtime
        self._delay = delay

    async def send(self, command: Any) -> Any:
        """Wait, then run the command's handler."""
        seconds = self._delay(command)
        if seconds > 0:
            await self._runtime.sleep(seconds)
        return await super().send(command)


class DelayedQueryBus(QueryBus):
    """A query bus whose every ``query`` first waits ``delay(query)`` simulated seconds."""

    def __init__(self, runtime: Runtime, delay: Delay) -> None:
        super().__init__()
        self._runtime = runtime
        self._delay = delay

    async def query(self, query: Any) -> Any:
        """Wait, then run the query's handler."""
        seconds = self._delay(query)
        if seconds > 0:
            await self._runtime.sleep(seconds)
        return await super().query(query)
