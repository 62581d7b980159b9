"""Targets and verdicts shared by the benchmark scripts (issue 12's table)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    """A threshold a figure must reach, an optional stretch goal beyond it, and which way is better."""

    threshold: float
    stretch: float | None = None
    higher_is_better: bool = True
    unit: str = ""
    """Written right after the number: ``" runs/s"``, ``"x"``."""

    def met(self, value: float, bound: float | None = None) -> bool:
        """Whether ``value`` reaches ``bound`` (by default the threshold) in the better direction."""
        limit = self.threshold if bound is None else bound
        return value >= limit if self.higher_is_better else value <= limit

    def verdict(self, value: float) -> str:
        """``PASS``, ``PASS, stretch too`` or ``FAIL``."""
        if not self.met(value):
            return "FAIL"
        if self.stretch is not None and self.met(value, self.stretch):
            return "PASS, stretch too"
        return "PASS"

    def describe(self) -> str:
        """The target as the issue writes it: ``>= 500 runs/s (stretch 1,000 runs/s)``."""
        sign = ">=" if self.higher_is_better else "<="
        text = f"{sign} {_number(self.threshold)}{self.unit}"
        return text if self.stretch is None else f"{text} (stretch {_number(self.stretch)}{self.unit})"


def _number(value: float) -> str:
    """Thousands separated; no trailing ``.0`` on whole numbers."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,g}"
