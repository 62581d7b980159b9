"""Lagging projections: drawn delays, in order per projection, stalls, and a quiet end."""

from __future__ import annotations

from dataclasses import dataclass

from sagas import Event
from simlab.sim.projections import LaggingProjectionWorker, LagProfile
from simlab.sim.world import simulate


@dataclass(frozen=True, kw_only=True, slots=True)
class Tick(Event):
    n: int


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.event_types = (Tick,)
        self.seen: list[int] = []

    async def apply(self, event: Event) -> None:
        assert isinstance(event, Tick)
        self.seen.append(event.n)


def _run(profile: LagProfile, stall_until: float | None = None, seed: int = 1):
    async def main(world):
        worker = LaggingProjectionWorker(world.runtime, world.streams, default=profile)
        projection = Recorder("accounts")
        for n in range(20):
            worker.enqueue(projection, Tick(event_id=f"t{n}", n=n))
            await world.runtime.sleep(0.01)
        if stall_until is not None:
            worker.stall("accounts", stall_until)
        return worker, projection

    (worker, projection), world = simulate(main, seed)
    return worker, projection, world


def test_a_fixed_lag_delays_every_event_by_exactly_that_much():
    worker, projection, _ = _run(LagProfile(median_lag_s=2.0, lag_sigma=0.0))
    assert projection.seen == list(range(20))
    assert [round(a.applied_at - a.published_at, 9) for a in worker.applied] == [2.0] * 20


def test_drawn_lags_never_reorder_a_projections_events():
    worker, projection, _ = _run(LagProfile(median_lag_s=0.5, lag_sigma=1.5))
    assert projection.seen == list(range(20))
    applied = [a.applied_at for a in worker.applied]
    assert applied == sorted(applied)
    lags = [a.applied_at - a.published_at for a in worker.applied]
    assert len({round(x, 6) for x in lags}) > 10  # really drawn, not constant


def test_lags_are_a_function_of_the_seed():
    first = [a.applied_at for a in _run(LagProfile(median_lag_s=0.5), seed=7)[0].applied]
    again = [a.applied_at for a in _run(LagProfile(median_lag_s=0.5), seed=7)[0].applied]
    other = [a.applied_at for a in _run(LagProfile(median_lag_s=0.5), seed=8)[0].applied]
    assert first == again and first != other


def test_a_stall_holds_everything_back_until_it_ends_then_the_backlog_drains():
    worker, projection, world = _run(LagProfile(median_lag_s=0.1, lag_sigma=0.0), stall_until=30.0)
    assert projection.seen == list(range(20))
    late = [a for a in worker.applied if a.applied_at >= 30.0]
    assert [a.applied_at for a in late] == [30.0] * len(late) and len(late) >= 1
    assert world.runtime.now() == 30.0  # the worker's task ended with its queue: the run finished
