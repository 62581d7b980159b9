"""The timeline's time axis: the sagas' activity, and after a break the violations found long after it.

An invariant checked at the end of a run is found at the horizon (600 s), while the sagas it
judges may all have finished within 25 s. A linear axis to 600 s would squeeze them into a
corner; an axis that stops at 25 s would leave the violating moment off the chart. So the
axis breaks: the activity keeps its scale, a short hatched gap stands for the time skipped,
and a narrow segment after it shows the late violations (at the activity's scale when they
are close together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FormatStrFormatter, MaxNLocator

GAP = 0.03  # width of the break, as a share of the activity's width
LATE = 0.08  # width of the segment after the break, likewise
EXTEND = 0.25  # violations this close after the activity (share of its width) just extend the axis
BREAK_SHARE = 1 / (1 + GAP + LATE)  # the share of the axis the activity keeps when there is a break


@dataclass(frozen=True)
class TimeAxis:
    """From ``start`` to ``end`` (simulated seconds) linearly; then, if ``late`` is set, a break and that range."""

    start: float
    end: float
    late: tuple[float, float] | None = None
    late_ticks: tuple[float, ...] = ()

    @classmethod
    def of(cls, span: tuple[float, float], times: Sequence[float]) -> TimeAxis:
        """The axis for the activity ``span`` that also shows every time of ``times`` (violations)."""
        start, end = span
        width = end - start
        later = sorted({float(t) for t in times if t > end})
        if not later:
            return cls(start, end)
        if later[-1] <= end + EXTEND * width:
            return cls(start, later[-1] + 0.02 * width)
        low, high = later[0], later[-1]
        if high - low < LATE * width:  # the activity's scale fits them: show them at it
            centre, half = (low + high) / 2, LATE * width / 2
            late = (centre - half, centre + half)
        else:
            pad = 0.06 * (high - low)
            late = (low - pad, high + pad)
        ticks = tuple(later) if len(later) <= 3 else (low, high)
        return cls(start, end, late, ticks)

    @property
    def stop(self) -> float:
        """The last time the axis shows."""
        return self.late[1] if self.late else self.end

    def forward(self, t: np.ndarray) -> np.ndarray:
        """Simulated time to the axis's own (linear) coordinate."""
        t = np.asarray(t, dtype=float)
        if self.late is None:
            return t
        gap, late, (low, high) = self._widths()
        in_gap = self.end + (t - self.end) * gap / (low - self.end)
        after = self.end + gap + (t - low) * late / (high - low)
        return np.where(t <= self.end, t, np.where(t <= low, in_gap, after))

    def inverse(self, u: np.ndarray) -> np.ndarray:
        """The axis's coordinate back to simulated time."""
        u = np.asarray(u, dtype=float)
        if self.late is None:
            return u
        gap, late, (low, high) = self._widths()
        in_gap = self.end + (u - self.end) * (low - self.end) / gap
        after = low + (u - self.end - gap) * (high - low) / late
        return np.where(u <= self.end, u, np.where(u <= self.end + gap, in_gap, after))

    def _widths(self) -> tuple[float, float, tuple[float, float]]:
        assert self.late is not None
        width = self.end - self.start
        return GAP * width, LATE * width, self.late

    def apply(self, axes: Sequence[Axes]) -> None:
        """Set the (shared) time axis of ``axes``: its scale, limits and ticks, and the break shown on each panel."""
        bottom = axes[-1]
        bottom.set_xlim(self.start, self.stop)
        if self.late is None:
            return
        bottom.set_xscale("function", functions=(self.forward, self.inverse))
        ticks = [t for t in MaxNLocator(8).tick_values(self.start, self.end) if self.start <= t <= self.end * 0.97]
        bottom.set_xticks([*ticks, *self.late_ticks])
        bottom.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        for ax in axes:  # the time skipped: hatched, over whatever would run through it
            ax.axvspan(self.end, self.late[0], facecolor="white", edgecolor="#9e9e9e", hatch="///", lw=0, zorder=4.5)
