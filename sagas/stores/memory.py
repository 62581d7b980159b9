"""An in-process saga store (first-class: tests, the lab, single-process services)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sagas.engine.errors import LeaseLost
from sagas.engine.state import SagaState, succeeds


class InMemorySagaStore:
    """Keeps JSON-shaped snapshots of saga states in dicts; survives a manager, not the process.

    A snapshot holds only what JSON can (``SagaState.to_dict``), so a step result
    that the Redis store could not persist fails here too, and a loaded state
    never shares objects with the saga that saved it. Leases expire on ``clock``
    (the runtime's ``now`` in a simulation; a monotonic clock by default).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, dict[str, Any]] = {}
        self._unfinished: dict[str, tuple[float, str]] = {}
        self._triggers: dict[str, str] = {}
        self._fences: dict[str, int] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # saga id -> (owner, expires at)
        self._incarnations = 0
        self._cancels: dict[str, str] = {}
        self.version = 0  # grows with every save: readers can tell whether anything changed

    async def create(self, state: SagaState, trigger_key: str, owner: str, lease_seconds: float) -> str:
        """Claim ``trigger_key`` for ``state``, save it and lease it to ``owner``; return the trigger's owner."""
        claimed = self._triggers.setdefault(trigger_key, state.saga_id)
        if claimed == state.saga_id:
            self._fences[state.saga_id] = 1
            self._leases[state.saga_id] = (owner, self._clock() + lease_seconds)
            self._write(state)
        return claimed

    async def save(self, state: SagaState, fence: int) -> None:
        """Store a snapshot of ``state``; ``LeaseLost`` if ``fence`` is stale."""
        saga_id = state.saga_id
        latest = self._fences.get(saga_id, 0)
        if fence != latest:
            raise LeaseLost(f"saga {saga_id}: write with fencing token {fence} refused, the latest is {latest}")
        self._write(state)
        if state.status.is_terminal:
            self._leases.pop(saga_id, None)

    def _write(self, state: SagaState) -> None:
        saga_id = state.saga_id
        self.version += 1
        self._states[saga_id] = state.to_dict()
        if state.status.is_terminal:
            self._unfinished.pop(saga_id, None)
        elif saga_id not in self._unfinished:
            self._unfinished[saga_id] = (state.started_at, saga_id)

    async def acquire_lease(self, saga_id: str, owner: str, lease_seconds: float) -> int | None:
        """Lease ``saga_id`` to ``owner`` unless another node holds an unexpired lease; return the new token."""
        now = self._clock()
        held = self._leases.get(saga_id)
        if held is not None and held[1] > now and not succeeds(owner, held[0]):
            return None
        self._fences[saga_id] = fence = self._fences.get(saga_id, 0) + 1
        self._leases[saga_id] = (owner, now + lease_seconds)
        return fence

    async def renew_lease(self, saga_id: str, owner: str, fence: int, lease_seconds: float) -> bool:
        """Extend ``owner``'s unexpired lease with token ``fence``; False if it is gone or someone else's."""
        now = self._clock()
        held = self._leases.get(saga_id)
        if held is None or held[0] != owner or held[1] <= now or self._fences.get(saga_id) != fence:
            return False
        self._leases[saga_id] = (owner, now + lease_seconds)
        return True

    async def new_incarnation(self) -> int:
        """1 for the first manager on this store, then 2, 3..."""
        self._incarnations += 1
        return self._incarnations

    async def request_cancel(self, saga_id: str, reason: str) -> None:
        """Record that ``saga_id`` must stop and compensate (the first reason stays)."""
        self._cancels.setdefault(saga_id, reason)

    async def cancel_requested(self, saga_id: str) -> str | None:
        """Why ``saga_id`` must stop, or None."""
        return self._cancels.get(saga_id)

    async def load(self, saga_id: str) -> SagaState | None:
        """The last snapshot of ``saga_id``, or None."""
        snapshot = self._states.get(saga_id)
        return SagaState.from_dict(snapshot) if snapshot is not None else None

    async def unfinished(self) -> list[SagaState]:
        """Unfinished sagas ordered by (started_at, saga_id)."""
        return [SagaState.from_dict(self._states[saga_id]) for _, saga_id in sorted(self._unfinished.values())]

    def all_states(self) -> list[SagaState]:
        """Every saga ever saved here, in the order first saved (for the lab's invariant checks)."""
        return [SagaState.from_dict(snapshot) for snapshot in self._states.values()]

    def __len__(self) -> int:
        return len(self._states)
