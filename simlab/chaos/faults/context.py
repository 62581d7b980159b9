"""What the fault wrappers of one run share: its clock and streams, the plan, the windows, and who is running.

``Activity`` tells which saga the running simulated task drives and what that saga is doing (from
the trace); ``FaultContext`` holds the rest, and the verdicts every wrapped port consults: whether
faults strike now, whether the calling task belongs to a crashed manager, and whether this call is
the one that fails a compensation attempt (``failing_compensations``: every wrapped port asks, so
the verdict lives here rather than in one wrapper).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from simlab.chaos.faults.plan import FaultPlan
from simlab.chaos.faults.windows import FaultWindows, Strike
from simlab.evidence.trace_tables import CurrentAttempts
from simlab.sim.keyed import current_entity
from simlab.sim.runtime import SimTask
from simlab.sim.world import SimWorld


class Activity:
    """Which saga the running simulated task drives, and what that saga is doing (from the trace)."""

    def __init__(self, sim: SimWorld) -> None:
        self._runtime = sim.runtime
        self._sim = sim
        self._attempts = CurrentAttempts(sim.tracer.records)

    def saga(self) -> str | None:
        """The id of the saga whose task is running now, or None (the workload, a projection...)."""
        task = self._runtime.current_task()
        return None if task is None else self._sim.saga_of(task)

    def compensation_attempt(self) -> tuple[str, str, int] | None:
        """(saga, step, attempt) if the running task is a saga inside a compensation attempt."""
        saga_id = self.saga()
        if saga_id is None:
            return None
        inside = self._attempts.compensating(saga_id)
        return None if inside is None else (saga_id, *inside)


class FaultContext:
    """The clock, streams, windows and verdicts the wrappers of one run share."""

    def __init__(self, sim: SimWorld, plan: FaultPlan, windows: FaultWindows) -> None:
        self.runtime = sim.runtime
        self.streams = sim.streams
        self.plan = plan
        self.start = plan.start_after_s
        self.heal = plan.heal_after_s
        self.windows = windows
        self.activity = Activity(sim)
        self.dying: set[SimTask] = set()  # tasks of a crashed manager's sagas, still unwinding
        self._compensation_p = plan.faults.failing_compensations.probability * plan.scale("failing_compensations")
        self._compensation_rng = self.stream("failing_compensations")
        self._verdicts: dict[tuple[str, str, int], bool] = {}
        strikes = plan.faults.strikes
        self._allowed = None if strikes is None else frozenset(strikes)
        self._drawn: Counter[str] = Counter()

    def stream(self, family: str, part: str | None = None) -> random.Random:
        """The stream of ``family`` (and of one ``part`` of it, e.g. a broker): ``faults/<family>[/<part>]``."""
        return self.streams.stream(f"faults/{family}" if part is None else f"faults/{family}/{part}")

    def active(self) -> bool:
        """Whether faults strike now (from the start, before the heal)."""
        return self.start <= self.runtime.now() < self.heal

    def check_alive(self) -> None:
        """A dead task reaches no port: its call is cancelled, as the task itself was."""
        if self.dying and self.runtime.current_task() in self.dying:
            raise asyncio.CancelledError()

    def injected(self, family: str) -> None:
        """Count one injected fault."""
        self.windows.injected[family] += 1

    def strike(self, family: str, part: str = "", detail: str = "") -> bool:
        """Whether a fault ``family`` has just drawn (on ``part``: a broker, a kind of fault) strikes.

        Every drawn fault is numbered per family, part and user (``broker_errors/alpaca@user-2#3``, the user
        whose task drew it from its part of the stream: ``simlab.sim.keyed``); it strikes unless
        the scenario's ``faults.strikes`` names others only. A fault that strikes is counted and recorded
        (``FaultWindows.strikes``). The caller has made its draws either way, so leaving a fault out moves
        none of its own stream's later draws (the call it lets through may still meet other families' draws).
        """
        key = f"{family}/{part}" if part else family
        entity = current_entity()
        if entity is not None:
            key = f"{key}@{entity}"  # its draw came from the entity's part of the stream (simlab.sim.keyed)
        self._drawn[key] += 1
        label = f"{key}#{self._drawn[key]}"
        if not self.allows(label):
            return False
        self.struck(family, label, detail)
        return True

    def allows(self, label: str) -> bool:
        """Whether the scenario lets the drawn fault ``label`` strike (``faults.strikes``; None: all)."""
        return self._allowed is None or label in self._allowed

    def struck(self, family: str, label: str, detail: str = "") -> None:
        """Count and record a fault that strikes now (a scheduled one: its label is its place in the schedule)."""
        self.windows.injected[family] += 1
        self.windows.strikes.append(Strike(self.runtime.now(), family, label, detail))

    def compensation_fails(self) -> bool:
        """Whether this port call is the one that fails the compensation attempt making it."""
        if self._compensation_p <= 0 or not self.active():
            return False
        attempt = self.activity.compensation_attempt()
        if attempt is None:
            return False
        verdict = self._verdicts.get(attempt)
        if verdict is None:
            verdict = self._compensation_rng.random() < self._compensation_p
        self._verdicts[attempt] = False  # the attempt's first port call decides; later ones go through
        return verdict and self.strike("failing_compensations", detail=f"{attempt[1]} attempt {attempt[2]}")

    async def frozen_until(self, until: float) -> None:
        """Freeze the running task until ``until``: deadlines fall due only when it thaws.

        A deadline's cancellation (it carries its deadline) is held back and raised at the thaw; a
        task cancellation (a crash: it carries nothing) ends the freeze at once.
        """
        runtime = self.runtime
        overdue: asyncio.CancelledError | None = None
        while runtime.now() < until:
            try:
                await runtime.sleep(until - runtime.now())
            except asyncio.CancelledError as cancelled:
                if not cancelled.args:
                    raise
                overdue = cancelled
        if overdue is not None:
            raise overdue
