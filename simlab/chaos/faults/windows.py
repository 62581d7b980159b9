"""When each fault family was at work in a run, and how many faults it injected."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple


class FaultWindow(NamedTuple):
    """When a fault family was at work: ``[start, end)`` in simulated seconds, and what it did."""

    family: str
    start: float
    end: float
    detail: str = ""


class FaultWindows(list[FaultWindow]):
    """A run's fault windows (growing while the run goes on), and how many faults each family injected."""

    def __init__(self) -> None:
        super().__init__()
        self.injected: Counter[str] = Counter()
