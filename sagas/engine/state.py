"""Saga statuses and the persisted state of one saga instance."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, fields
from typing import Any


class SagaStatus(enum.StrEnum):
    """Where a saga instance stands. The last five are terminal."""

    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    ABORTED = "aborted"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        """Whether no further transition can follow."""
        return self not in (SagaStatus.RUNNING, SagaStatus.COMPENSATING)


@dataclass(slots=True)
class SagaState:
    """Everything needed to resume or compensate a saga after a restart.

    ``results`` holds the merged results of completed steps. ``possibly_applied``
    lists steps with an attempt cancelled in flight (a timeout): they may have
    taken effect, so they are compensated like completed ones.
    ``compensation_outcome`` is ``compensated`` or ``compensation_failed`` once
    compensation ran (it qualifies a ``timed_out`` status).
    """

    saga_id: str
    saga_type: str
    trigger_type: str
    trigger_id: str
    trigger_data: dict[str, Any]
    status: SagaStatus = SagaStatus.RUNNING
    parent_id: str | None = None
    started_at: float = 0.0
    updated_at: float = 0.0
    deadline_at: float = 0.0
    current_step: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    completed_steps: list[str] = field(default_factory=list)
    possibly_applied: list[str] = field(default_factory=list)
    compensated_steps: list[str] = field(default_factory=list)
    failed_compensations: list[str] = field(default_factory=list)
    compensation_outcome: str | None = None
    timed_out: bool = False
    error_type: str | None = None
    error: str | None = None
    transitions: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot that shares no mutable containers with ``self``."""
        return {
            "saga_id": self.saga_id,
            "saga_type": self.saga_type,
            "trigger_type": self.trigger_type,
            "trigger_id": self.trigger_id,
            "trigger_data": dict(self.trigger_data),
            "status": self.status.value,
            "parent_id": self.parent_id,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "deadline_at": self.deadline_at,
            "current_step": self.current_step,
            "results": dict(self.results),
            "completed_steps": list(self.completed_steps),
            "possibly_applied": list(self.possibly_applied),
            "compensated_steps": list(self.compensated_steps),
            "failed_compensations": list(self.failed_compensations),
            "compensation_outcome": self.compensation_outcome,
            "timed_out": self.timed_out,
            "error_type": self.error_type,
            "error": self.error,
            "transitions": self.transitions,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SagaState:
        """Rebuild a state from ``to_dict`` output (or its JSON round trip).

        Fields this version does not know (saved by a newer one) are ignored.
        """
        values = {key: value for key, value in data.items() if key in _FIELD_NAMES}
        values["status"] = SagaStatus(values["status"])
        for key in ("trigger_data", "results"):
            values[key] = dict(values[key])
        for key in ("completed_steps", "possibly_applied", "compensated_steps", "failed_compensations"):
            values[key] = list(values[key])
        return cls(**values)


_FIELD_NAMES = frozenset(f.name for f in fields(SagaState))


def dumps_state(state: SagaState) -> str:
    """The state as compact JSON (what the stores persist).

    Raises ``TypeError`` naming the saga if a step result is not JSON-serializable.
    """
    try:
        return json.dumps(state.to_dict(), separators=(",", ":"))
    except TypeError as error:
        raise TypeError(
            f"state of saga {state.saga_id} ({state.saga_type}) is not JSON-serializable: {error}"
        ) from None


def loads_state(raw: str | bytes) -> SagaState:
    """A state from ``dumps_state`` output."""
    return SagaState.from_dict(json.loads(raw))
