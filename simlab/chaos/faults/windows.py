"""When each fault family was at work in a run, how many faults it injected, and each one that struck."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple


class FaultWindow(NamedTuple):
    """When a fault family was at work: ``[start, end)`` in simulated seconds, and what it did."""

    family: str
    start: float
    end: float
    detail: str = ""


class Strike(NamedTuple):
    """One fault that struck: when, its family, its name (``FaultContext.strike``) and what it did."""

    t: float
    family: str
    label: str
    detail: str = ""


class FaultWindows(list[FaultWindow]):
    """A run's fault windows (growing while the run goes on), how many faults each family injected, and the
    strikes: every fault a family drew and let strike, in the order they struck (the run's fault schedule)."""

    def __init__(self) -> None:
        super().__init__()
        self.injected: Counter[str] = Counter()
        self.strikes: list[Strike] = []
