"""An in-process saga store (first-class: tests, the lab, single-process services)."""

from __future__ import annotations

from typing import Any

from sagas.engine.state import SagaState


class InMemorySagaStore:
    """Keeps snapshots of saga states in dicts; survives a manager, not the process."""

    def __init__(self) -> None:
        self._states: dict[str, dict[str, Any]] = {}
        self._unfinished: dict[str, tuple[float, str]] = {}
        self._triggers: dict[str, str] = {}

    async def save(self, state: SagaState) -> None:
        """Store a snapshot of ``state``."""
        saga_id = state.saga_id
        self._states[saga_id] = state.to_dict()
        if state.status.is_terminal:
            self._unfinished.pop(saga_id, None)
        else:
            self._unfinished[saga_id] = (state.started_at, saga_id)

    async def load(self, saga_id: str) -> SagaState | None:
        """The last snapshot of ``saga_id``, or None."""
        data = self._states.get(saga_id)
        return SagaState.from_dict(data) if data is not None else None

    async def unfinished(self) -> list[SagaState]:
        """Unfinished sagas ordered by (started_at, saga_id)."""
        order = sorted(self._unfinished.values())
        return [SagaState.from_dict(self._states[saga_id]) for _, saga_id in order]

    async def claim_trigger(self, trigger_key: str, saga_id: str) -> str:
        """Claim ``trigger_key`` for ``saga_id``; return the owner's id."""
        return self._triggers.setdefault(trigger_key, saga_id)

    def __len__(self) -> int:
        return len(self._states)
