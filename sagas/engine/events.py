"""Event base class and the saga lifecycle events the manager publishes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """A fact that happened. Subclass it as a frozen, keyword-only dataclass.

    ``event_id`` identifies the occurrence (a redelivered event keeps its id);
    ``causation_id`` names the saga whose step caused it, which is how a saga
    started by this event learns its parent.
    """

    event_id: str
    causation_id: str | None = None

    @property
    def event_type(self) -> str:
        """The event's type name (its class name), used for routing."""
        return type(self).__name__


def event_data(event: Event) -> dict[str, Any]:
    """The event's fields as a dict (the data a triggered saga's steps receive)."""
    cls = type(event)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(event))
    return {name: getattr(event, name) for name in names}


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaLifecycleEvent(Event):
    """Base of the events a saga manager publishes about its sagas."""

    saga_id: str
    saga_type: str
    parent_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaStarted(SagaLifecycleEvent):
    """A saga instance started (or resumed after a restart)."""

    resumed: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaStepCompleted(SagaLifecycleEvent):
    """One step of a saga completed."""

    step: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaFinished(SagaLifecycleEvent):
    """Base of the terminal events; ``status`` is the saga's terminal status."""

    status: str
    compensation_outcome: str | None = None
    error: str | None = None
    TERMINAL: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaCompleted(SagaFinished):
    """The saga ran every step (status ``completed``) or ended early by design (``aborted``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaCompensated(SagaFinished):
    """A step failed and every compensation succeeded."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaFailed(SagaFinished):
    """A compensation failed, or the saga timed out (see ``compensation_outcome``)."""
