"""``simlab shrink``'s search: from a violating run to the smallest scenario that still shows the same failure.

How this works: the run (a scenario and a run seed) is replayed once and its failure's *signature* read
(``Signature``: the invariant, and from the trace of the sagas the violation names, their saga types, the
step and the error). Then reducers (``REDUCERS``, in order) propose simpler scenarios: fault families
switched off (ddmin), fewer counted faults, fewer of the faults that struck (ddmin over the run's recorded
strikes, ``shrink_schedule``), fault windows earlier and shorter, fault intensities toward zero, a smaller
workload, and the run's equal-time choices back toward FIFO (ddmin over its recorded choices). Each
candidate is one ``run_once(candidate, seed)`` with the *same* seed, and is
kept only if one of its violations has the same signature; the reducers run again until none finds more.

A candidate that shows a violation of another signature (one the original run did not show) is not kept,
but remembered (``Finding``) and reported at the end: a new bug met on the way, never silently accepted as
the one being shrunk. The search stops when its wall-clock budget is spent, or on Ctrl-C; either way the
last kept candidate is the result (``ShrinkResult.stopped`` says why it ended).

Limits: a fault can be left out but not moved: ``faults.strikes`` names which drawn faults strike, so a
candidate's faults are always a subset of what the streams draw (moving one earlier is the fault window's
and the intensities' job, for a whole family). Other draws (latencies, the workload's) are keyed by
component and entity (a broker, a user), not by call, so removing a user or a fault can still move the
draws that follow in a stream they share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sagas.engine.trace import Outcome, Phase, TraceRecord
from simlab.batch.runner import RunResult, run_once
from simlab.batch.shrink_reducers import (
    Reducer,
    fault_counts,
    fault_events,
    fault_intensities,
    fault_window,
    workload,
)
from simlab.batch.shrink_schedule import fault_strikes, orderings_toward_fifo
from simlab.evidence.invariants import Violation
from simlab.scenario.model import Scenario

REDUCERS: list[tuple[str, Reducer]] = [
    ("fault events", fault_events),
    ("fault counts", fault_counts),
    ("fault window", fault_window),
    ("fault intensities", fault_intensities),
    ("workload", workload),
    ("fault strikes", fault_strikes),
    ("orderings toward FIFO", orderings_toward_fifo),
]
"""The reducers, in the order each pass of the search runs them: which fault families, how many counted
faults, the fault window, the intensities, the workload, which of the faults that struck, then the
equal-time choices toward FIFO.

Why the faults that struck come after the workload (issue 15 lists them first): a schedule names faults
by their number in a stream, so once it is pinned, a smaller workload moves which calls those numbers
fall on and loses the failure more often. Measured on chaos_swarm run 4: pinned first, the repro kept
28 of 41 sagas; pinned after the workload, 12 (and 1 fault instead of 3)."""

FAILED_ATTEMPT = frozenset(
    o.value for o in (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.CANCELLED, Outcome.ABORTED, Outcome.INVALID_RESULT)
)
ATTEMPTS = frozenset((Phase.EXECUTE.value, Phase.COMPENSATE.value))


class ShrinkError(ValueError):
    """A run that cannot be shrunk as asked; ``str()`` is the one-line message for the user."""


class BudgetSpent(Exception):
    """The search's wall-clock budget ran out (raised before a candidate would run)."""


@dataclass(frozen=True, order=True)
class Signature:
    """What identifies a failure across scenarios: (invariant, saga types, step, error type).

    Read from the trace records, up to the violation's time, of the sagas the violation names: the saga
    types are theirs (sorted, joined by ``+``); the step and the error are those of their first failed
    attempt (of a step or of a compensation; the error is the outcome, ``timed_out`` say, when the attempt
    raised nothing); when none failed, the step is the last one the last named saga recorded (the step that
    closed the race) and the error is empty.
    """

    invariant: str
    saga_type: str
    step: str
    error_type: str

    def __str__(self) -> str:
        return f"{self.invariant} ({self.saga_type or 'no saga'} / {self.step or '-'} / {self.error_type or '-'})"


def signature_of(violation: Violation, by_saga: dict[str, list[TraceRecord]]) -> Signature:
    """The signature of ``violation``, read from the trace records of the sagas it names (``by_saga``)."""
    # NOTE: only what happened up to the violation: a named saga's later records (an order failing after
    # its connection was purged) are consequences, and would tie the signature to the rest of the run.
    named = [[r for r in by_saga[s] if r.t <= violation.t] for s in violation.saga_ids if s in by_saga]
    named = [records for records in named if records]
    types = "+".join(sorted({records[0].saga_type for records in named}))
    failed = [r for records in named for r in records if r.phase in ATTEMPTS and r.outcome in FAILED_ATTEMPT]
    if failed:
        first = min(failed, key=lambda r: r.t)
        return Signature(violation.invariant, types, first.step or "", first.error_type or first.outcome)
    steps = [r.step for r in named[-1] if r.step] if named else []
    return Signature(violation.invariant, types, steps[-1] if steps else "", "")


def signatures(result: RunResult) -> list[Signature]:
    """The distinct signatures of a run's violations, in the order of its violations (it must keep its trace)."""
    by_saga: dict[str, list[TraceRecord]] = {}
    for record in result.trace:
        by_saga.setdefault(record.saga_id, []).append(record)
    return list(dict.fromkeys(signature_of(v, by_saga) for v in result.violations))


@dataclass(frozen=True)
class RunSize:
    """How big a run is: what ``simlab shrink`` compares before and after."""

    sagas: int
    faults: int  # faults injected (``FaultWindows.injected``, all families)
    windows: int  # fault windows
    records: int  # trace records
    last_t: float  # simulated seconds of the last trace record

    @classmethod
    def of(cls, result: RunResult) -> RunSize:
        """The size of ``result`` (which must keep its trace)."""
        last = result.trace[-1].t if result.trace else 0.0
        injected = sum(result.faults_injected.values())
        return cls(len(result.sagas), injected, len(result.fault_windows), len(result.trace), last)

    def __str__(self) -> str:
        return (
            f"{self.sagas} sagas, {self.faults} faults injected ({self.windows} fault windows), "
            f"{self.records} trace records, last at {self.last_t:.1f} s"
        )


@dataclass
class Finding:
    """A violation of another signature met on the way, and the smallest candidate that showed it."""

    signature: Signature
    scenario: Scenario
    size: RunSize


@dataclass
class ShrinkResult:
    """What a search found: the original and the smallest reproduction kept, and how it ended."""

    seed: int
    target: Signature
    original: Scenario
    original_size: RunSize
    best: Scenario
    best_result: RunResult
    others: list[Finding] = field(default_factory=list)
    candidates: int = 0  # runs made, the original's replay not counted
    kept: int = 0  # candidates kept (each one a step of the search)
    stopped: str = "done"  # "done" (a pass kept nothing), "passes" (max_passes ran), "budget" or "interrupted"
    exit_status: int = 0  # when interrupted: the shell's status for the signal (130: SIGINT, 143: SIGTERM)

    @property
    def best_size(self) -> RunSize:
        """The size of the kept reproduction's run."""
        return RunSize.of(self.best_result)


Step = Callable[[str, str, RunSize], None]
"""Told of every kept candidate: (the reducer's name, what it changed, the candidate run's size)."""


class Search:
    """The state of one search: the candidate kept last, the runs made, the other findings, the deadline."""

    def __init__(self, result: ShrinkResult, known: Iterable[Signature], deadline: float, on_step: Step) -> None:
        self.result = result
        self.known = set(known)  # the original run's signatures: not news when a candidate shows one
        self.deadline = deadline
        self.on_step = on_step
        self.reducer = ""
        # A run that ended with every saga finished must shrink to one that does too: cut short (a shorter
        # horizon, say), a saga still under way can look like the failure (an account that "outlived" a
        # connection whose purge had not run yet) without being it.
        self.settled = settled(result.best_result)  # (the original run, when the search starts)

    def test(self, candidate: Scenario, what: str) -> bool:
        """Run ``candidate`` with the run's seed; keep it if it shows the target signature."""
        if time.monotonic() >= self.deadline:
            raise BudgetSpent()
        run = run_once(candidate, self.result.seed, keep_trace=True)
        self.result.candidates += 1
        found = signatures(run)
        for other in found:
            if other != self.result.target and other not in self.known:
                self._remember(other, candidate, run)
        if self.result.target not in found or (self.settled and not settled(run)):
            return False
        self.result.best, self.result.best_result = candidate, run
        self.result.kept += 1
        self.on_step(self.reducer, what, RunSize.of(run))
        return True

    def _remember(self, signature: Signature, candidate: Scenario, run: RunResult) -> None:
        size = RunSize.of(run)
        kept = next((f for f in self.result.others if f.signature == signature), None)
        if kept is None:
            self.result.others.append(Finding(signature, candidate, size))
        elif (size.sagas, size.faults) < (kept.size.sagas, kept.size.faults):
            kept.scenario, kept.size = candidate, size


def settled(run: RunResult) -> bool:
    """Whether every saga of ``run`` had ended by its horizon."""
    return all(row.ended_at is not None for row in run.sagas)


def target_signature(found: Sequence[Signature], invariant: str | None) -> Signature:
    """The signature to shrink: the first of the run's, or the first of ``invariant``; ``ShrinkError`` if none."""
    if not found:
        raise ShrinkError("the run violated no invariant: there is nothing to shrink")
    if invariant is None:
        return found[0]
    chosen = next((s for s in found if s.invariant == invariant), None)
    if chosen is None:
        names = ", ".join(dict.fromkeys(s.invariant for s in found))
        raise ShrinkError(f"--invariant {invariant}: the run did not violate it (it violated {names})")
    return chosen


def shrink(
    scenario: Scenario,
    seed: int,
    *,
    budget_s: float,
    invariant: str | None = None,
    on_step: Step | None = None,
    on_start: Callable[[Signature, RunSize], None] | None = None,
    reducers: Sequence[tuple[str, Reducer]] | None = None,
    max_passes: int = 3,
) -> ShrinkResult:
    """Shrink the failure of run ``seed`` of ``scenario`` within ``budget_s`` wall-clock seconds.

    ``ShrinkError`` if the run shows no violation (of ``invariant``, when given). ``on_start`` hears the
    signature and the run's size once the run is replayed, ``on_step`` every candidate kept. Ctrl-C ends the
    search early, keeping what it found (``stopped == "interrupted"``); so does the budget (``"budget"``).
    """
    deadline = time.monotonic() + budget_s
    original = run_once(scenario, seed, keep_trace=True)
    found = signatures(original)
    target = target_signature(found, invariant)
    result = ShrinkResult(seed, target, scenario, RunSize.of(original), scenario, original)
    if on_start is not None:
        on_start(target, result.original_size)
    search = Search(result, found, deadline, on_step or (lambda _r, _w, _s: None))
    try:
        for _ in range(max_passes):  # until a whole pass of every reducer keeps nothing
            kept = result.kept
            for name, reducer in reducers if reducers is not None else REDUCERS:
                search.reducer = name
                reducer(result.best, search.test, result.best_result)
            if result.kept == kept:
                break
        else:
            result.stopped = "passes"
    except BudgetSpent:
        result.stopped = "budget"
    except KeyboardInterrupt as stop:  # a BatchInterrupted (SIGINT, SIGTERM) under stop_on_signals
        result.stopped = "interrupted"
        result.exit_status = int(getattr(stop, "exit_status", 130))
    return result
