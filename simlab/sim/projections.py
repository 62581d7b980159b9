"""Lagging asynchronous projections: each event reaches its read model after a drawn delay.

How this works: ``LaggingProjectionWorker.enqueue`` stamps an event with a due
time (now plus a lag drawn from the projection's ``LagProfile``) and a task per
projection applies its queue in order, never before an event's due time and
never before the event ahead of it (in order per stream, as a real projection
consumer). A projection can stall (drawn per event, or imposed by a fault)
and then catches up. The worker's task ends when its queue is empty, so a
quiet world lets the simulation finish.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from sagas.engine.events import Event
from sagas.engine.randomness import RandomStreams
from sagas.trading.read_models import Projection
from simlab.sim.runtime import SimRuntime


@dataclass(frozen=True, slots=True)
class LagProfile:
    """Delay of one projection: lognormal around ``median_lag_s``, plus occasional stalls."""

    median_lag_s: float = 0.05
    lag_sigma: float = 0.8
    stall_probability: float = 0.0
    stall_s: float = 5.0

    def draw(self, rng: random.Random) -> float:
        """One event's lag in seconds."""
        if self.median_lag_s <= 0:
            return 0.0
        lag = self.median_lag_s * rng.lognormvariate(0.0, self.lag_sigma) if self.lag_sigma > 0 else self.median_lag_s
        if self.stall_probability and rng.random() < self.stall_probability:
            lag += self.stall_s
        return lag


@dataclass(frozen=True, slots=True)
class AppliedEvent:
    """When an event was published and when its projection applied it."""

    projection: str
    event_type: str
    event_id: str
    published_at: float
    applied_at: float


class LaggingProjectionWorker:
    """Applies each projection's events after drawn lags, in order per projection."""

    def __init__(
        self,
        runtime: SimRuntime,
        streams: RandomStreams,
        profiles: Mapping[str, LagProfile] | None = None,
        default: LagProfile | None = None,
    ) -> None:
        self._runtime = runtime
        self._streams = streams
        self._profiles = dict(profiles or {})
        self._default = default or LagProfile()
        self._queues: dict[str, deque[tuple[Projection, Event, float, float]]] = {}
        self._running: set[str] = set()
        self._stalled_until: dict[str, float] = {}
        self.applied: list[AppliedEvent] = []

    def _rng(self, name: str) -> random.Random:
        return self._streams.stream(f"projection/{name}")

    def enqueue(self, projection: Projection, event: Event) -> None:
        """Queue ``event`` for ``projection``, due after a drawn lag."""
        name = projection.name
        now = self._runtime.now()
        lag = self._profiles.get(name, self._default).draw(self._rng(name))
        self._queues.setdefault(name, deque()).append((projection, event, now, now + lag))
        if name not in self._running:
            self._running.add(name)
            self._runtime.spawn(self._drain(name), name=f"projection {name}")

    def stall(self, projection_name: str, until: float) -> None:
        """Stop applying ``projection_name``'s events until simulated time ``until`` (a fault)."""
        self._stalled_until[projection_name] = max(until, self._stalled_until.get(projection_name, 0.0))

    def backlog(self, projection_name: str) -> int:
        """Events queued and not yet applied."""
        return len(self._queues.get(projection_name, ()))

    async def _drain(self, name: str) -> None:
        queue = self._queues[name]
        runtime = self._runtime
        try:
            while queue:
                projection, event, published_at, due = queue[0]
                wake = max(due, self._stalled_until.get(name, 0.0))
                if wake > runtime.now():
                    await runtime.sleep(wake - runtime.now())
                    continue  # a stall may have been imposed meanwhile
                queue.popleft()
                await projection.apply(event)
                self.applied.append(AppliedEvent(name, event.event_type, event.event_id, published_at, runtime.now()))
        finally:
            self._running.discard(name)
