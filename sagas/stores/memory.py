"""An in-process saga store (first-class: tests, the lab, single-process services)."""

from __future__ import annotations

from sagas.engine.state import SagaState, dumps_state, loads_state


class InMemorySagaStore:
    """Keeps saga states as JSON in dicts; survives a manager, not the process.

    States go through the same JSON encoding as the Redis store, so a step result
    that Redis could not store fails here too, and a loaded state never shares
    objects with the saga that saved it.
    """

    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._unfinished: dict[str, tuple[float, str]] = {}
        self._triggers: dict[str, str] = {}

    async def create(self, state: SagaState, trigger_key: str) -> str:
        """Claim ``trigger_key`` for ``state`` and save it; return the owner's id."""
        owner = self._triggers.setdefault(trigger_key, state.saga_id)
        if owner == state.saga_id:
            await self.save(state)
        return owner

    async def save(self, state: SagaState) -> None:
        """Store a snapshot of ``state``."""
        saga_id = state.saga_id
        self._states[saga_id] = dumps_state(state)
        if state.status.is_terminal:
            self._unfinished.pop(saga_id, None)
        else:
            self._unfinished[saga_id] = (state.started_at, saga_id)

    async def load(self, saga_id: str) -> SagaState | None:
        """The last snapshot of ``saga_id``, or None."""
        raw = self._states.get(saga_id)
        return loads_state(raw) if raw is not None else None

    async def unfinished(self) -> list[SagaState]:
        """Unfinished sagas ordered by (started_at, saga_id)."""
        return [loads_state(self._states[saga_id]) for _, saga_id in sorted(self._unfinished.values())]

    def __len__(self) -> int:
        return len(self._states)
