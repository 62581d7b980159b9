"""Keyed random draws: each shared stream split per entity (a user), so one user's draws never move another's.

A run's streams are named per component (``bus/command``, ``broker/alpaca``, ``ids/saga``...), but many
users draw from each of them, in the order they happen to call. Leaving one user out of a run (what
``simlab shrink`` does) would then shift every later user's draws: their latencies, ids and faults all
change, and the smaller run tells a different story. With keyed draws, a draw is keyed by (component,
entity, draw number): the component's stream is split into one stream per entity, and a draw comes
from the stream of the entity whose work makes it. (A smaller run can still differ through the state
users share: locks, Redis, projections, a restarted manager's incarnation.)

The entity is ambient: ``acting_for(user_id)`` marks the running simulated task, and every task it
spawns inherits the mark (the runtime copies the context at spawn, as asyncio does). A user's commands,
the sagas their events start, those sagas' steps, broker calls, Redis commands and id draws are then all
drawn from that user's streams. Work with no user (a recovery loop, a fault schedule, the orderings
strategy) draws from the component's own stream, as before. A long-lived task first spawned from a
user's task (a manager's lease keeper, a projection's drain) acts for that user too: none of them
draws today, and a draw added there would be charged to that user.

A saga resumed after a crash or taken over by another manager is spawned by a recovery loop, which
acts for no user; ``SagaEntities`` gives its task the user its trigger names, so a saga's draws come
from that user's streams whichever manager drives it.

The engine is not changed: it asks ``RandomStreams.stream(name)`` for a ``random.Random`` once, and
``KeyedStreams`` hands it a ``KeyedRandom``, a ``random.Random`` whose draws go to the current entity's
stream. Streams that are already per entity or shared state by nature (``workload/...``, the market's
price walks, ``orderings``) are handed out unkeyed.
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Callable
from typing import Any, NoReturn

from sagas.engine.randomness import RandomStreams

_entity: contextvars.ContextVar[str | None] = contextvars.ContextVar("simlab_keyed_entity", default=None)

UNKEYED_PREFIXES = ("workload/", "market/", "orderings")  # per entity already, or one shared walk by nature


def acting_for(entity: str) -> None:
    """Key every later draw of the running task, and of the tasks it spawns from now on, by ``entity``."""
    _entity.set(entity)


def current_entity() -> str | None:
    """The entity the running task draws for, or None (the component's own stream)."""
    return _entity.get()


def keyed_name(name: str, entity: str | None) -> str:
    """The name of ``entity``'s part of stream ``name`` (``name`` itself for no entity)."""
    return name if entity is None else f"{name}|{entity}"


class KeyedRandom(random.Random):
    """A ``random.Random`` whose every draw comes from the stream of the running task's entity.

    ``random`` and ``getrandbits`` are the two primitives every other method of ``random.Random``
    draws through (``_randbelow`` uses ``getrandbits`` once a subclass defines it); ``gauss`` keeps a
    cached second value, so it is delegated whole to keep that cache per entity.
    """

    def __init__(self, streams: RandomStreams, name: str) -> None:
        # NOTE: random.Random.__init__ is not called: seeding is most of what building one costs, and this
        # object's own generator is never drawn from (every draw goes to an entity's stream). It stays unseeded.
        self.gauss_next = None
        self._streams = streams
        self._name = name
        self._by_entity: dict[str | None, random.Random] = {}

    def _current(self) -> random.Random:
        entity = _entity.get()
        rng = self._by_entity.get(entity)
        if rng is None:
            rng = self._by_entity[entity] = RandomStreams.stream(self._streams, keyed_name(self._name, entity))
        return rng

    def random(self) -> float:
        """The next float in [0, 1) of the current entity's stream."""
        return self._current().random()

    def getrandbits(self, k: int, /) -> int:
        """``k`` random bits from the current entity's stream."""
        return self._current().getrandbits(k)

    def getstate(self) -> NoReturn:
        """Refused: the state is one per entity, not this object's (copying or pickling it would lose them)."""
        raise TypeError("a KeyedRandom holds one stream per entity: it has no single state to get or copy")

    def setstate(self, state: object) -> NoReturn:
        """Refused, as ``getstate``."""
        raise TypeError("a KeyedRandom holds one stream per entity: it has no single state to set")

    def gauss(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        """A normal draw from the current entity's stream (its cached second value stays with it)."""
        return self._current().gauss(mu, sigma)

    # The distributions the lab draws, handed whole to the entity's stream: the same values as drawing them
    # through ``random`` above, with one stream lookup per draw instead of one per underlying float.

    def uniform(self, a: float, b: float) -> float:
        """``random.Random.uniform`` from the current entity's stream."""
        return self._current().uniform(a, b)

    def lognormvariate(self, mu: float, sigma: float) -> float:
        """``random.Random.lognormvariate`` from the current entity's stream."""
        return self._current().lognormvariate(mu, sigma)

    def expovariate(self, lambd: float = 1.0) -> float:
        """``random.Random.expovariate`` from the current entity's stream."""
        return self._current().expovariate(lambd)

    def randint(self, a: int, b: int) -> int:
        """``random.Random.randint`` from the current entity's stream."""
        return self._current().randint(a, b)


class KeyedStreams(RandomStreams):
    """``RandomStreams`` whose shared streams are split per entity (see the module docstring)."""

    def __init__(self, root_seed: int) -> None:
        super().__init__(root_seed)
        self._keyed: dict[str, KeyedRandom] = {}

    def stream(self, name: str) -> random.Random:
        """A ``KeyedRandom`` for ``name`` (the same object on every call), or the plain stream if unkeyed."""
        if name.startswith(UNKEYED_PREFIXES):
            return super().stream(name)
        rng = self._keyed.get(name)
        if rng is None:
            rng = self._keyed[name] = KeyedRandom(self, name)
        return rng


class SagaEntities:
    """Gives a saga's task the user its trigger names, when no user's task spawned it (a resume, a takeover).

    Installed as the runtime's ``on_task_start``: it runs in each new task's context before its first step.
    ``user_of`` tells the user a task's saga acts for (from its trigger's data: the seed's enriched events
    carry ``user_id``), None for a task that drives no saga. A task spawned in a user's context keeps that
    user: a saga started by a user's event is that user's.
    """

    def __init__(self, user_of: Callable[[Any], str | None]) -> None:
        self._user_of = user_of

    def __call__(self, task: Any) -> None:
        if _entity.get() is None:
            user = self._user_of(task)
            if user is not None:
                _entity.set(user)
