"""One simulated world: a simpy clock, seeded streams, a saga manager, run to the end."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sagas.engine.manager import SagaManager
from sagas.engine.ports import SagaStore
from sagas.engine.randomness import IdSource, RandomStreams
from sagas.engine.trace import Tracer, trace_hash
from sagas.stores.memory import InMemorySagaStore
from simlab.sim.runtime import SimRuntime

T = TypeVar("T")


@contextlib.contextmanager
def relaxed_gc() -> Iterator[None]:
    """Collect garbage less often while a simulation runs.

    A run keeps thousands of coroutines, events and records alive at once; the
    default thresholds make the collector rescan them every few hundred
    allocations (about a third of a run's time). Nothing in a simulation depends
    on when collection happens, so this changes speed only.
    """
    previous = gc.get_threshold()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


class SimulationError(RuntimeError):
    """A simulated task died with an exception nobody handled (an engine or saga bug)."""


@dataclass
class SimWorld:
    """The parts of one simulated run that a scenario drives and inspects."""

    seed: int
    runtime: SimRuntime
    streams: RandomStreams
    ids: IdSource
    tracer: Tracer
    store: SagaStore
    manager: SagaManager
    others: list[SagaManager] = field(default_factory=list)
    """Managers started beside ``manager`` (the ``overlapping_managers`` fault), still running."""

    def new_manager(self) -> SagaManager:
        """A fresh manager on the same runtime, store, buses and trace (a restart of the same node)."""
        old = self.manager
        self.manager = SagaManager(
            runtime=self.runtime,
            store=self.store,
            random_streams=self.streams,
            command_bus=old.command_bus,
            query_bus=old.query_bus,
            event_bus=type(old.event_bus)(),
            locks=old.locks,
            tracer=self.tracer,
            node=old.node,
        )
        return self.manager

    def trace_hash(self) -> str:
        """sha256 of this run's canonical trace."""
        return trace_hash(self.tracer.records)


def build_world(seed: int, store: SagaStore | None = None) -> SimWorld:
    """A world whose every random draw and id derives from ``seed``."""
    runtime = SimRuntime()
    streams = RandomStreams(seed)
    ids = IdSource(streams)
    tracer = Tracer(runtime.now)
    store = store if store is not None else InMemorySagaStore(runtime.now)
    manager = SagaManager(runtime=runtime, store=store, random_streams=streams, tracer=tracer)
    return SimWorld(seed, runtime, streams, ids, tracer, store, manager)


def simulate(
    main: Callable[[SimWorld], Coroutine[Any, Any, T]],
    seed: int = 0,
    *,
    until: float | None = None,
    world: SimWorld | None = None,
) -> tuple[T, SimWorld]:
    """Run ``main(world)`` as a simulated task until nothing is left to do (or ``until``).

    Returns main's result and the world. Raises ``SimulationError`` if any task
    died with an exception that nobody joined.
    """
    world = world if world is not None else build_world(seed)
    task = world.runtime.spawn(main(world), name="main")
    with relaxed_gc():
        world.runtime.run(until=until)
    errors = world.runtime.unobserved_errors()
    if errors:
        name, error = errors[0]
        raise SimulationError(f"task {name!r} failed: {type(error).__name__}: {error}") from error
    if not task.done():
        raise SimulationError(f"main task still running at t={world.runtime.now():g} s")
    return task.result(), world
