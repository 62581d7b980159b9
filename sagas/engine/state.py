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
    compensation ran (it qualifies a ``timed_out`` status). ``attempts`` counts the
    attempts of each step (``{step}``) and compensation (``{step}:compensate``) made or
    about to be made, and ``attempts_since`` when the first one began, so a manager
    that resumes the saga goes on with the same retry budget instead of a fresh one.
    ``children`` lists the child sagas it started, so whichever manager compensates
    it can stop the ones still running.
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
    attempts: dict[str, int] = field(default_factory=dict)
    attempts_since: dict[str, float] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    _trigger_copy: tuple[dict[str, Any], dict[str, Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """Not state: ``trigger_data`` and its JSON copy, taken by the first snapshot and shared by the next ones."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot that shares no mutable containers with ``self``'s fields.

        ``trigger_data`` is the trigger event's data, never changed in place (steps get a copy of
        their own): successive snapshots share one copy of it, so they are to be read, not changed.
        Raises ``TypeError`` naming the saga and the path of any value JSON cannot
        hold, so every store rejects what a Redis store could not persist.
        """
        try:
            trigger_data = self._trigger_snapshot()
            results = json_copy(self.results, "results")
        except TypeError as error:
            problem = f"state of saga {self.saga_id} ({self.saga_type}) is not JSON-serializable: {error}"
            raise TypeError(problem) from None
        return {
            "saga_id": self.saga_id,
            "saga_type": self.saga_type,
            "trigger_type": self.trigger_type,
            "trigger_id": self.trigger_id,
            "trigger_data": trigger_data,
            "status": self.status.value,
            "parent_id": self.parent_id,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "deadline_at": self.deadline_at,
            "current_step": self.current_step,
            "results": results,
            # Tuples of strings: immutable, so snapshots can share them, and untracked by the GC.
            "completed_steps": tuple(self.completed_steps),
            "possibly_applied": tuple(self.possibly_applied),
            "compensated_steps": tuple(self.compensated_steps),
            "failed_compensations": tuple(self.failed_compensations),
            "compensation_outcome": self.compensation_outcome,
            "timed_out": self.timed_out,
            "error_type": self.error_type,
            "error": self.error,
            "transitions": self.transitions,
            "attempts": dict(self.attempts),
            "attempts_since": dict(self.attempts_since),
            "children": tuple(self.children),
        }

    def _trigger_snapshot(self) -> dict[str, Any]:
        # NOTE: the trigger data were copied at every write (more than the results); one copy per saga is
        # enough because they never change in place. A new dict assigned to the field gets a copy of its own.
        source = self.trigger_data
        cached = self._trigger_copy
        if cached is None or cached[0] is not source:
            cached = self._trigger_copy = (source, json_copy(source, "trigger_data"))
        return cached[1]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SagaState:
        """Rebuild a state from ``to_dict`` output (or its JSON round trip).

        Fields this version does not know (saved by a newer one) are ignored.
        """
        values = {key: value for key, value in data.items() if key in _FIELD_NAMES}
        values["status"] = SagaStatus(values["status"])
        for key in ("trigger_data", "results"):
            values[key] = json_copy(values[key], key)
        for key in ("completed_steps", "possibly_applied", "compensated_steps", "failed_compensations"):
            values[key] = list(values[key])
        if "children" in values:  # absent from states saved before children were recorded
            values["children"] = list(values["children"])
        for key in ("attempts", "attempts_since"):
            if key in values:
                values[key] = dict(values[key])
        return cls(**values)


_FIELD_NAMES = frozenset(f.name for f in fields(SagaState) if f.init)


_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)  # exact types: one hash lookup instead of a tuple scan


class _NotJSON(Exception):
    """Internal: ``_copy`` met a value JSON cannot hold; ``_explain`` then finds and names it."""


def json_copy(value: Any, path: str = "value") -> Any:
    """A deep copy of ``value`` as a JSON round trip would return it (tuples become lists).

    Raises ``TypeError`` naming the path of the first value JSON cannot hold
    (objects, sets, bytes, non-string keys). Much cheaper than encoding to text.
    """
    try:
        return _copy(value)
    except _NotJSON:
        pass
    _explain(value, path)
    raise AssertionError("unreachable: _explain raises on what _copy refused")  # pragma: no cover


def _copy(value: Any) -> Any:
    # NOTE: the hot path (every saved state copies its trigger data and results): no path strings are
    # built on the way down; only a refused value costs the second, explaining walk.
    kind = type(value)
    if kind is dict:
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotJSON
            copied[key] = item if type(item) in _SCALAR_TYPES else _copy(item)
        return copied
    if kind is list or kind is tuple:
        return [item if type(item) in _SCALAR_TYPES else _copy(item) for item in value]
    if kind in _SCALAR_TYPES or isinstance(value, _SCALARS):  # subclasses, such as str- or int-valued enums
        return value
    raise _NotJSON


def _explain(value: Any, path: str) -> None:
    """Raise ``TypeError`` naming the first value under ``value`` (in ``_copy``'s order) JSON cannot hold."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{path} has a non-string key {key!r}")
            _explain(item, f"{path}.{key}")
    elif kind is list or kind is tuple:
        for i, item in enumerate(value):
            _explain(item, f"{path}[{i}]")
    elif not isinstance(value, _SCALARS):
        raise TypeError(f"{path} is a {kind.__name__}, which JSON cannot hold: {value!r}")


def dumps_state(state: SagaState) -> str:
    """The state as compact JSON (what the Redis store persists)."""
    return json.dumps(state.to_dict(), separators=(",", ":"))


def loads_state(raw: str | bytes) -> SagaState:
    """A state from ``dumps_state`` output."""
    return SagaState.from_dict(json.loads(raw))


def succeeds(owner: str, holder: str) -> bool:
    """Whether lease owner ``owner`` (``{node}/{incarnation}``) is a later incarnation of ``holder``'s node.

    A restarted node may take over its dead predecessors' leases at once; never the other way
    round (a stopped incarnation must not take leases back), and never its own live lease.
    """
    node, _, incarnation = owner.rpartition("/")
    held_node, _, held_incarnation = holder.rpartition("/")
    if node != held_node or not incarnation.isdigit() or not held_incarnation.isdigit():
        return False
    return int(held_incarnation) < int(incarnation)
