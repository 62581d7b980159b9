"""Run the same test scenario on either runtime: the simulated clock or asyncio (virtual time)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sagas import EventBus, InMemorySagaStore, RandomStreams, SagaManager, SagaStore, Tracer, trace_hash
from sagas.engine.ports import Runtime
from sagas.runtime import AsyncioRuntime
from sagas.testing import VirtualTimeLoop
from simlab.sim.runtime import SimRuntime

Main = Callable[["World"], Coroutine[Any, Any, Any]]


@dataclass
class World:
    """What a test scenario sees, identical in shape on both runtimes."""

    runtime: Runtime
    streams: RandomStreams
    store: SagaStore
    tracer: Tracer
    manager: SagaManager = field(init=False)
    log: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.manager = SagaManager(
            runtime=self.runtime, store=self.store, random_streams=self.streams, tracer=self.tracer
        )

    def note(self, what: str) -> None:
        """Append ``(now, what)`` to the world's log (what steps did, when)."""
        self.log.append((self.runtime.now(), what))

    def new_manager(self) -> SagaManager:
        """A restarted manager: same store, clock and trace; fresh subscriptions."""
        self.manager = SagaManager(
            runtime=self.runtime,
            store=self.store,
            random_streams=self.streams,
            tracer=self.tracer,
            command_bus=self.manager.command_bus,
            query_bus=self.manager.query_bus,
            event_bus=EventBus(),
            ids=self.manager.ids,
        )
        return self.manager

    def trace_hash(self) -> str:
        return trace_hash(self.tracer.records)


def run_sim(main: Main, seed: int = 0, store: SagaStore | None = None) -> tuple[Any, World]:
    """Run ``main`` on the simulated runtime."""
    runtime = SimRuntime()
    world = World(runtime, RandomStreams(seed), store or InMemorySagaStore(), Tracer(runtime.now))
    task = runtime.spawn(main(world), name="main")
    runtime.run()
    assert runtime.unobserved_errors() == []
    assert task.done(), "main did not finish"
    return task.result(), world


def run_asyncio(main: Main, seed: int = 0, store: SagaStore | None = None) -> tuple[Any, World]:
    """Run ``main`` on the asyncio runtime, on a virtual-time loop."""
    loop = VirtualTimeLoop()
    runtime = AsyncioRuntime(clock=loop.time)
    world = World(runtime, RandomStreams(seed), store or InMemorySagaStore(), Tracer(runtime.now))
    try:
        result = loop.run_until_complete(main(world))
        pending = asyncio.all_tasks(loop)
        assert not pending, f"tasks still running: {pending}"
    finally:
        loop.close()
    return result, world


RUNNERS: dict[str, Callable[..., tuple[Any, World]]] = {"sim": run_sim, "asyncio": run_asyncio}
