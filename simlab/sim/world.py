"""One simulated world: a simpy clock, seeded streams, a saga manager, run to the end."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import simpy

from sagas.engine.buses import CommandBus, EventBus, QueryBus
from sagas.engine.manager import SagaManager
from sagas.engine.ports import SagaStore
from sagas.engine.randomness import RandomStreams
from sagas.engine.trace import Tracer, trace_hash
from sagas.stores.memory import InMemorySagaStore
from simlab.sim.runtime import SimRuntime, SimTask

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
    tracer: Tracer
    store: SagaStore
    manager: SagaManager
    others: list[SagaManager] = field(default_factory=list)
    """Managers started beside ``manager`` (the ``overlapping_managers`` fault), still running."""
    made: list[SagaManager] = field(default_factory=list)
    """Every manager this world has had, restarted and stopped ones included (their sagas may still unwind)."""

    def __post_init__(self) -> None:
        if not self.made:
            self.made.append(self.manager)

    def saga_of(self, task: SimTask) -> str | None:
        """The id of the saga ``task`` drives, whichever of this world's managers started it, or None."""
        for manager in self.made:
            saga_id = manager.saga_of(task)
            if saga_id is not None:
                return saga_id
        return None

    def manager_like(self, like: SagaManager, *, node: str, event_bus: EventBus) -> SagaManager:
        """A new manager process ``node`` on this world's runtime, store, streams and trace.

        It shares ``like``'s command and query buses and locks, and takes its settings (finished
        tasks kept, lease and children's grace), subscribing to ``event_bus``. It runs no saga types
        until they are registered on it.
        """
        manager = SagaManager(
            runtime=self.runtime,
            store=self.store,
            random_streams=self.streams,
            command_bus=like.command_bus,
            query_bus=like.query_bus,
            event_bus=event_bus,
            locks=like.locks,
            tracer=self.tracer,
            retain_finished=like.retain_finished,
            lease_seconds=like.lease_seconds,
            children_grace_seconds=like.children_grace_seconds,
            node=node,
        )
        self.made.append(manager)
        return manager

    def restart_manager(self, event_bus: EventBus | None = None) -> SagaManager:
        """Replace the running manager by its node's next incarnation (a restart), and return it.

        Its subscriptions died with the old one: the new one subscribes to ``event_bus``, by default
        a fresh bus of the old bus's type. It runs no saga types until they are registered on it.
        """
        old = self.manager
        bus = event_bus if event_bus is not None else type(old.event_bus)()
        self.manager = self.manager_like(old, node=old.node, event_bus=bus)
        return self.manager

    def new_manager(self) -> SagaManager:
        """``restart_manager()`` on a fresh bus (the test harness's name for a restart)."""
        return self.restart_manager()

    def trace_hash(self) -> str:
        """sha256 of this run's canonical trace."""
        return trace_hash(self.tracer.records)


def build_world(
    seed: int | RandomStreams,
    store: SagaStore | None = None,
    *,
    command_bus: Callable[[SimRuntime], CommandBus] | None = None,
    query_bus: Callable[[SimRuntime], QueryBus] | None = None,
    env: simpy.Environment | None = None,
) -> SimWorld:
    """A world whose every random draw and id derives from ``seed`` (or from the run's ``RandomStreams``).

    ``command_bus`` and ``query_bus`` build the manager's buses on the world's runtime (default:
    the engine's in-process buses). ``env`` is the simpy environment to run on (default: a new plain one;
    ``simlab.sim.orderings.OrderedEnvironment`` for another order of equal-time events).
    """
    streams = RandomStreams.of(seed)
    runtime = SimRuntime(env)
    tracer = Tracer(runtime.now)
    store = store if store is not None else InMemorySagaStore(runtime.now)
    manager = SagaManager(
        runtime=runtime,
        store=store,
        random_streams=streams,
        command_bus=command_bus(runtime) if command_bus is not None else None,
        query_bus=query_bus(runtime) if query_bus is not None else None,
        tracer=tracer,
    )
    return SimWorld(streams.root_seed, runtime, streams, tracer, store, manager)


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
