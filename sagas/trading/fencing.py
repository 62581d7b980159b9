"""The write model's side of fencing: the newest lock token accepted per connection, and who wrote what.

How this works: a saga that holds a connection's lock sends its fencing token with every write
about the connection. ``WriteFence.check`` accepts a token at least as new as the newest it has
seen for that connection (and remembers it) and refuses an older one with ``StaleFencingToken``,
before anything changes. ``WriteFence.record`` keeps every write a saga made, in the order they
took effect: with the lock ledger, the ground truth of which holder changed a connection when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sagas.engine.errors import InvalidEvent, NonRetryableError


class DomainError(InvalidEvent):
    """A command that the write model refuses (unknown aggregate, wrong state)."""


class StaleFencingToken(DomainError, NonRetryableError):
    """A write carrying a lock token older than one the write model already accepted for the connection."""


@dataclass(frozen=True, slots=True)
class ConnectionWrite:
    """A write about a connection that a saga sent: when, by whom, under which token, what it was."""

    t: float
    broker_connection_id: str
    saga_id: str
    fencing_token: int | None
    command: str


class WriteFence:
    """Fencing tokens accepted per connection, the writes sagas made and the stale ones refused."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.fences: dict[str, int] = {}  # connection id -> newest fencing token accepted
        self.writes: list[ConnectionWrite] = []  # writes sagas made, in the order they took effect
        self.stale_writes: list[ConnectionWrite] = []  # writes refused for a stale token

    def _write(self, connection_id: str, command: Any) -> ConnectionWrite:
        saga_id = getattr(command, "saga_id", None) or "?"
        token = getattr(command, "fencing_token", None)
        return ConnectionWrite(self._clock(), connection_id, saga_id, token, type(command).__name__)

    def check(self, connection_id: str, command: Any) -> None:
        """Refuse ``command`` if its fencing token is older than the connection's newest; else remember it."""
        token = getattr(command, "fencing_token", None)
        if token is None:
            return
        newest = self.fences.get(connection_id, 0)
        if token < newest:
            self.stale_writes.append(self._write(connection_id, command))
            raise StaleFencingToken(
                f"{type(command).__name__} for connection {connection_id} carries lock token {token}, "
                f"older than token {newest} already accepted: its sender no longer holds the lock"
            )
        self.fences[connection_id] = token

    def record(self, connection_id: str, command: Any) -> None:
        """Record a write a saga made (commands without a ``saga_id`` are the user's own)."""
        if getattr(command, "saga_id", None) is not None:
            self.writes.append(self._write(connection_id, command))
