"""An in-process saga store (first-class: tests, the lab, single-process services)."""

from __future__ import annotations

from typing import Any

from sagas.engine.state import SagaState


class InMemorySagaStore:
    """Keeps JSON-shaped snapshots of saga states in dicts; survives a manager, not the process.

    A snapshot holds only what JSON can (``SagaState.to_dict``), so a step result
    that the Redis store could not persist fails here too, and a loaded state
    never shares objects with the saga that saved it.
    """

    def __init__(self) -> None:
        self._states: dict[str, dict[str, Any]] = {}
        self._unfinished: dict[str, tuple[float, str]] = {}
        self._triggers: dict[str, str] = {}
        self.version = 0  # grows with every save: readers can tell whether anything changed

    async def create(self, state: SagaState, trigger_key: str) -> str:
        """Claim ``trigger_key`` for ``state`` and save it; return the owner's id."""
        owner = self._triggers.setdefault(trigger_key, state.saga_id)
        if owner == state.saga_id:
            await self.save(state)
        return owner

    async def save(self, state: SagaState) -> None:
        """Store a snapshot of ``state``."""
        saga_id = state.saga_id
        self.version += 1
        self._states[saga_id] = state.to_dict()
        if state.status.is_terminal:
            self._unfinished.pop(saga_id, None)
        elif saga_id not in self._unfinished:
            self._unfinished[saga_id] = (state.started_at, saga_id)

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
