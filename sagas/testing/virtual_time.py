"""An asyncio event loop on virtual time, for testing production code without waiting.

How this works: asyncio asks its selector to block until the next timer is
due; this selector instead advances the loop's clock by that timeout and
returns at once. Everything else (tasks, cancellation, ``asyncio.timeout``) is
real asyncio, so sagas tested here behave as in production, at simulated
speed. Real sockets still work: the selector polls them without blocking.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.next_due: Callable[[], float | None] = lambda: None
        self.on_jump: Callable[[float], None] = lambda now: None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Nothing scheduled: only real I/O can wake the loop, so wait for it for real.
            return super().select(None)
        # Jump to the next timer's own time rather than adding the timeout, so rounding
        # never accumulates (0.67 + 1.28 must be 1.95, as on the simulated clock).
        due = self.next_due()
        self.now = due if due is not None and due > self.now else self.now + timeout
        self.on_jump(self.now)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual, starting at 0.0."""

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)
        self._virtual.next_due = self._next_timer
        self._virtual.on_jump = self._narrow_resolution
        self._narrow_resolution(0.0)

    def _narrow_resolution(self, now: float) -> None:
        # asyncio runs every timer due within `_clock_resolution` of now in one batch; with a real
        # clock that is its tick, here it would merge times one rounding step apart. One float step
        # keeps exactly the timers due now.
        self._clock_resolution = math.ulp(now)

    def _next_timer(self) -> float | None:
        # NOTE: asyncio keeps its timers in the private heap `_scheduled`; its head is the next one due.
        scheduled = getattr(self, "_scheduled", None)
        return scheduled[0].when() if scheduled else None

    def time(self) -> float:
        """Virtual seconds since the loop was created."""
        return self._virtual.now


def run_virtual(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on a fresh ``VirtualTimeLoop``."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
