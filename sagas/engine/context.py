"""What a saga's steps find in their context besides the trigger's data: the names the engine
reserves (``SERVICE_KEYS``), the trigger data as steps see it, and ``ChildSagas``, a step's handle
on the sagas it composes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from sagas import probes
from sagas.engine.errors import ChildSagasTimeout, DeadlineExceeded, InvalidEvent
from sagas.engine.events import Event, event_data
from sagas.engine.execution import SagaExecution
from sagas.engine.ports import Runtime
from sagas.engine.state import json_copy
from sagas.engine.trace import Outcome, Phase, Tracer

SERVICE_KEYS = frozenset(
    {"saga_id", "saga_type", "parent_id", "command_bus", "query_bus", "event_bus"}
    | {"clock", "rng", "ids", "locks", "sagas", "attempt"}
)
"""Names the engine puts in every step's context; a trigger event may not use them for its data."""


def checked_trigger_data(event: Event) -> dict[str, Any]:
    """The event's data as steps will see it (JSON-shaped), or ``InvalidEvent`` naming the problem."""
    data = event_data(event)
    clashes = sorted(SERVICE_KEYS.intersection(data))
    if clashes:
        raise InvalidEvent(
            f"{event.event_type} {event.event_id}: field(s) {', '.join(clashes)} would shadow the saga "
            "context's services of the same name; rename them"
        )
    try:
        copied: dict[str, Any] = json_copy(data, event.event_type)
    except TypeError as error:
        raise InvalidEvent(f"{event.event_type} {event.event_id} cannot start a saga: {error}") from None
    return copied


class SagaHost(Protocol):
    """What ``ChildSagas`` uses of the manager running the parent saga (``SagaManager`` is one)."""

    runtime: Runtime
    tracer: Tracer

    async def handle_event(self, event: Event, parent_id: str | None = None) -> list[str]: ...

    def children_of(self, parent_id: str) -> list[str]: ...

    async def wait_for_sagas(self, saga_ids: Iterable[str], statuses: dict[str, str]) -> None: ...

    def execution_of(self, saga_id: str) -> SagaExecution | None: ...


class ChildSagas:
    """A step's handle on the sagas it composes (``context['sagas']``)."""

    def __init__(
        self, manager: SagaHost, parent_id: str, saga_type: str = "", grandparent_id: str | None = None
    ) -> None:
        self._manager = manager
        self._parent_id = parent_id
        self._saga_type = saga_type
        self._grandparent_id = grandparent_id

    async def start(self, event: Event) -> list[str]:
        """Start the sagas ``event`` triggers as children of this saga; return their ids."""
        return await self._manager.handle_event(event, parent_id=self._parent_id)

    def children(self) -> list[str]:
        """Ids of every child started so far (directly or by events this saga caused)."""
        return list(self._manager.children_of(self._parent_id))

    async def wait(self, saga_ids: Iterable[str] | None = None, *, timeout_seconds: float) -> dict[str, str]:
        """Wait for the children's completion events; return ``{saga_id: status}``.

        Waits for ``saga_ids`` (default: every child so far). Raises
        ``ChildSagasTimeout`` if they have not all finished within ``timeout_seconds``.
        """
        ids = list(saga_ids) if saga_ids is not None else self.children()
        statuses: dict[str, str] = {}
        self._trace(Outcome.WAITING, f"{len(ids)} child saga(s), {timeout_seconds:g} s")
        try:
            await self._manager.runtime.run_with_deadline(self._manager.wait_for_sagas(ids, statuses), timeout_seconds)
        except DeadlineExceeded:
            missing = [i for i in ids if i not in statuses]
            probes.reachable("engine: child wait timed out")
            self._trace(Outcome.TIMED_OUT, f"{len(missing)} of {len(ids)} unfinished", "ChildSagasTimeout")
            raise ChildSagasTimeout(
                timeout_seconds, f"waiting for {len(missing)} of {len(ids)} child saga(s) of {self._parent_id}"
            ) from None
        self._trace(Outcome.COMPLETED, f"{len(ids)} child saga(s) finished")
        return statuses

    def _trace(self, outcome: Outcome, detail: str, error_type: str | None = None) -> None:
        """A ``children`` record in the waiting saga's trace (its step is the one running now)."""
        execution = self._manager.execution_of(self._parent_id)
        step = execution.state.current_step if execution is not None else None
        self._manager.tracer.record(
            self._parent_id,
            self._saga_type,
            parent_id=self._grandparent_id,
            step=step,
            phase=Phase.CHILDREN,
            outcome=outcome,
            error_type=error_type,
            detail=detail,
        )
