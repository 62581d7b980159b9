"""What a broken invariant reports, and how a check says it cannot judge a run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant."""

    invariant: str
    t: float
    saga_ids: tuple[str, ...]
    explanation: str


class CannotCheck(Exception):
    """A check lacks the independent source it judges by (e.g. a broker without ground truth).

    The runner lists the invariant as not checked rather than calling the run clean.
    """
