"""Which of the events due at one simulated instant runs first: simpy's FIFO, or a strategy's choice.

simpy keeps its queue as a heap of ``(time, priority, insertion number, event)``, so of the events due at
the same instant with the same priority the one scheduled first always runs first. A run therefore only
ever tries one interleaving of simultaneous events, and a race that needs the other order stays invisible
unless a latency draw happens to separate the two. ``OrderedEnvironment`` lets a strategy choose instead:

- At each step it looks at the head of the queue. If no other event has the same time and priority, it
  runs that one (the common case, at the cost of one comparison). Otherwise the tied events (the
  "ready set", listed in FIFO order) form a *choice point*, and the strategy picks the index of the one
  that runs now; the others go back into the queue with their insertion numbers, so their own order is
  untouched and the choice is asked again at the next step.
- Choice points are numbered from 1 in the order they occur. The run keeps every non-FIFO choice as a
  ``(point, index)`` pair (``choices``): following those pairs (``Replayed``) replays the run exactly,
  and dropping pairs pushes it back toward FIFO, which is how ``simlab shrink`` reduces an ordering.
- ``quantum`` rounds every future due time up to a multiple of a grain (never earlier than asked, up to a
  billionth of a grain), so that events from different sources actually meet at one instant. Off (0)
  unless a scenario sets it.

Strategies (``strategy_of`` builds one from its name):

- ``fifo``: index 0 everywhere, which is simpy's own order (a run with it has today's trace hash; the lab
  uses plain ``simpy.Environment`` for it, and this class only to count choice points).
- ``random``: a uniform choice at every choice point, drawn from the run's stream ``orderings``.
- ``pct:D`` (or ``pct:D:K``): probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010) per
  simpy process. Each process gets a random priority of at least D when first seen at a choice point;
  the ready event of the highest-priority process runs; at D-1 change points drawn uniformly from choice
  points 1..K the process that runs has its priority dropped below every initial one. A bug of depth D
  (D ordering constraints) is then hit with probability at least ``1 / (n * k**(D-1))`` for n processes
  and k choice points (``pct_bound``). K is the expected number of choice points; without it the lab
  counts them in the FIFO run of the same seed first.

Why this reads simpy's ``_queue``, ``_now`` and ``_eid`` on itself: simpy has no seam to choose among tied
events (its ``step`` pops the heap's head), and subclassing its ``Environment`` with the heap's documented
layout is the one place that needs it. Everything else still goes through simpy's own ``step``.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import Any, Protocol

import simpy
from simpy.core import NORMAL
from simpy.events import Event, Interruption, Process

STRATEGY_FORMAT = "fifo, random, pct:D or pct:D:K (D the bug depth, 1-10; K the expected choice points)"
_PCT = re.compile(r"^pct:(\d+)(?::(\d+))?$")
MAX_PCT_DEPTH = 10


class Strategy(Protocol):
    """Chooses, at one choice point, which of the tied events runs now."""

    def choose(self, point: int, ready: Sequence[Any]) -> int:
        """The index in ``ready`` (FIFO order, at least two) of the event that runs now; each entry is the
        process that event resumes (``owner_of``), which is all a strategy needs to know of it."""
        ...


class Fifo:
    """simpy's own order: the event scheduled first runs first."""

    def choose(self, point: int, ready: Sequence[Any]) -> int:
        return 0


class Uniform:
    """A uniform choice at every choice point."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choose(self, point: int, ready: Sequence[Any]) -> int:
        return self.rng.randrange(len(ready))


class Replayed:
    """Recorded choices: ``index`` at each listed choice point, FIFO elsewhere (and where it no longer fits)."""

    def __init__(self, choices: Mapping[int, int]) -> None:
        self.choices = dict(choices)

    def choose(self, point: int, ready: Sequence[Any]) -> int:
        index = self.choices.get(point, 0)
        return index if index < len(ready) else 0


class Pct:
    """Probabilistic concurrency testing with bug depth ``depth`` over ``steps`` expected choice points."""

    def __init__(self, rng: random.Random, depth: int, steps: int) -> None:
        self.rng = rng
        self.depth = depth
        self.steps = max(steps, 1)  # K: the choice points its change points are drawn over (PCT's bound uses it)
        # change point -> the priority its process drops to (1 .. depth-1, all below every initial one)
        points = [rng.randint(1, self.steps) for _ in range(depth - 1)]
        self.change_points: dict[int, int] = {}
        for rank, point in enumerate(points, start=1):
            self.change_points.setdefault(point, rank)
        self.priority: dict[Any, float] = {}  # keyed by identity; looked up, never iterated

    def choose(self, point: int, ready: Sequence[Any]) -> int:
        for owner in ready:
            if owner not in self.priority:  # first seen: a random priority above every change point's
                self.priority[owner] = self.depth + self.rng.random()
        best = max(range(len(ready)), key=lambda i: self.priority[ready[i]])
        dropped = self.change_points.get(point)
        if dropped is not None:
            self.priority[ready[best]] = float(dropped)
        return best


def owner_of(event: Event) -> Any:
    """The simpy process an event resumes (the first one waiting on it), or the event itself if none does.

    A timeout a process sleeps on, a process's start and an interrupt all resume one process: that process
    is the "thread" PCT prioritises. An event nobody waits on in a process (a timer's callback) is its own.
    """
    if isinstance(event, Interruption):  # its callback is its own method: the process is an attribute
        return event.process
    for callback in event.callbacks or ():
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, Process):
            return owner
    if isinstance(event, Process):
        return event
    return event


@dataclass(frozen=True)
class StrategySpec:
    """A parsed strategy name: ``kind`` fifo, random or pct, with PCT's depth and expected steps."""

    kind: str
    depth: int = 0
    steps: int | None = None


def parse_strategy(text: str) -> StrategySpec:
    """``fifo``, ``random``, ``pct:D`` or ``pct:D:K``; ``ValueError`` (naming the format) otherwise."""
    if text in ("fifo", "random"):
        return StrategySpec(text)
    match = _PCT.match(text)
    if match is not None:
        depth = int(match.group(1))
        steps = int(match.group(2)) if match.group(2) is not None else None
        if 1 <= depth <= MAX_PCT_DEPTH and (steps is None or steps >= 1):
            return StrategySpec("pct", depth, steps)
    raise ValueError(f"expected {STRATEGY_FORMAT}, got {text!r}")


def strategy_of(spec: StrategySpec, rng: random.Random, choices: Mapping[int, int] | None = None) -> Strategy:
    """The strategy ``spec`` names; recorded ``choices`` (with ``fifo``) replay a run's choices instead."""
    if spec.kind == "random":
        return Uniform(rng)
    if spec.kind == "pct":
        return Pct(rng, spec.depth, spec.steps or 1)
    return Replayed(choices) if choices else Fifo()


def pct_bound(depth: int, processes: int, points: int, steps: int | None = None) -> float:
    """PCT's guaranteed probability of hitting a given bug of depth ``depth`` in one run: 1 / (n k^(d-1)).

    k is ``steps``, PCT's K: its change points are drawn over the first K choice points, so the guarantee
    is for a bug whose events fall among them (a run that meets more points has no guarantee past K, one
    that meets fewer wastes the change points drawn past its end). Without K (a batch written before it
    was recorded), k is the choice points the run met, ``points``.
    """
    if processes <= 0:
        return 1.0
    k = steps if steps is not None else points
    return 1.0 / (processes * max(k, 1) ** (depth - 1))


class OrderedEnvironment(simpy.Environment):
    """A simpy environment whose ties between equal-time, equal-priority events a ``Strategy`` breaks.

    After a run: ``points`` is how many choice points it met, ``choices`` every non-FIFO choice as
    ``(point, index)``, ``processes`` how many distinct processes were ready at a choice point.
    """

    def __init__(self, strategy: Strategy, quantum: float = 0.0) -> None:
        super().__init__()
        self.strategy = strategy
        self.quantum = quantum
        self.points = 0
        self.choices: list[tuple[int, int]] = []
        self._owners: dict[Any, None] = {}  # insertion-ordered: the processes met at choice points

    @property
    def processes(self) -> int:
        """How many distinct processes (or lone events) were ready at some choice point."""
        return len(self._owners)

    def schedule(self, event: Event, priority: Any = NORMAL, delay: Any = 0) -> None:
        """simpy's ``schedule``; with a quantum, a future due time is rounded up to the next multiple of it."""
        if self.quantum and delay > 0:
            grains = math.ceil((self._now + delay) / self.quantum - 1e-9)  # 1e-9: k*q itself stays k*q
            at = grains * self.quantum  # the same grain count always gives the same float, so ties are exact
            if at <= self._now:  # a wait of a hair's breadth: the next grain, or a loop of them would never advance
                at = (grains + 1) * self.quantum
                if at <= self._now:  # a grain too fine to move this clock at all: the wait as asked
                    at = self._now + delay
            heappush(self._queue, (at, priority, next(self._eid), event))
            return
        super().schedule(event, priority, delay)

    def step(self) -> None:
        """Process the next event: the head of the queue, or the strategy's choice among its ties."""
        queue = self._queue
        if len(queue) > 1:
            head = queue[0]
            second = queue[1] if len(queue) == 2 else min(queue[1], queue[2])
            if second[0] == head[0] and second[1] == head[1]:
                self._choose(head[0], head[1])
        super().step()

    def _choose(self, at: Any, priority: Any) -> None:
        """Pop every event tied with the head, put the chosen one at the head, the rest back as they were."""
        queue = self._queue
        ready = []
        while queue and queue[0][0] == at and queue[0][1] == priority:
            ready.append(heappop(queue))
        self.points += 1
        owners = [owner_of(entry[3]) for entry in ready]  # once per tie: the strategy and the count share them
        index = self.strategy.choose(self.points, owners)
        if index:
            self.choices.append((self.points, index))
        for owner in owners:
            self._owners.setdefault(owner, None)
        chosen = ready.pop(index)
        for entry in ready:
            heappush(queue, entry)
        # The chosen entry goes back with a key that sorts before its ties: same time and priority, and an
        # insertion number below every other entry's (its own ties keep theirs, so their order is FIFO).
        heappush(queue, (chosen[0], chosen[1], -1, chosen[3]))
