"""``ExecutionServices``: what a saga execution needs from the manager that runs it, and nothing more."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sagas.engine.events import Event
from sagas.engine.ports import Runtime, TaskHandle
from sagas.engine.state import SagaState
from sagas.engine.trace import Tracer


@dataclass(frozen=True, slots=True)
class ExecutionServices:
    """What an execution needs from the manager that runs it, and nothing more.

    Holding this instead of the manager keeps ``execution`` from importing ``manager``:
    the manager knows executions, an execution knows only these. The manager builds it
    once. Its clock, trace and generators are fixed for the manager's life; its store and
    event bus are reached through callables that read the manager's port at each call,
    because a port may be swapped while sagas run (the lab cuts a manager off its store
    that way) and every execution of that manager must see the swap at once.
    """

    runtime: Runtime
    tracer: Tracer
    jitter_rng: random.Random
    """Draws the jitter of step and compensation retries."""
    retry_rng: random.Random
    """Draws the jitter of ``retry_async`` polls inside steps."""
    save_state: Callable[[SagaState, int], Awaitable[None]]
    """Write a saga's state to the manager's store under a fencing token."""
    publish: Callable[[Event], Awaitable[None]]
    """Publish an event on the manager's event bus."""
    has_subscribers: Callable[[type[Event]], bool]
    """Whether anyone on the manager's event bus listens to an event type."""
    step_services: Callable[[str, str, str | None], dict[str, Any]]
    """``(saga_id, saga_type, parent_id)`` -> the services every step of that saga finds in its context."""
    stop_children: Callable[[SagaState], Awaitable[None]]
    """Stop the unfinished child sagas of the saga in this state and wait for them (before its own
    compensations). It takes the state, not the execution, so this module needs no ``execution``."""
    task_of: Callable[[str], TaskHandle[SagaState] | None]
    """The task running a saga in the manager, if any."""
