"""fakeredis on the simulated clock: a 300 s TTL expires after 300 simulated seconds.

How this works: fakeredis reads the wall clock through the ``time`` module that
its own modules imported (``_socket/_base.py`` stamps ``db.time = time.time()``
on every database before each command, and every key TTL is judged against
that stamp; ``_helpers.current_time()`` drives hash-field TTLs and stream
idle times; TIME, XADD ``*`` ids and CLIENT ages read ``time.time()`` directly).
The first ``SimulatedRedis`` built replaces, once, the ``time`` name inside
each fakeredis module that bound it with ``_CLOCKED_TIME``, a small shim
whose ``time()`` returns ``EPOCH + clock()`` for the clock installed for the
command running right now, and the real ``time.time()`` when none is; every
other attribute (``monotonic``, ``sleep``, ...) is the real ``time`` module's.
A ``SimulatedRedis`` installs its clock (in a ``ContextVar``) around each
``execute_command`` and around its pipelines' ``execute`` (MULTI/EXEC
included), ``execute_command`` (WATCH and the reads after it) and ``reset``
(UNWATCH), and restores the previous value afterwards, exceptions included.
fakeredis runs a command synchronously inside those calls, so the command sees
the simulated time and nothing else does: an ordinary ``fakeredis.FakeRedis``
(or any other code reading ``time.time()``) keeps the wall clock.

Limits, by design:

- Clients on different clocks must not share a ``FakeServer``: key expiry is
  judged against the time of whichever client ran the latest command, so a
  wall-clock client would see simulated keys (TTLs near ``EPOCH``) as long
  expired. Share a server only between ``SimulatedRedis`` on the same clock.
- Pub/sub and MONITOR connections are not clocked (they read no time).
- A blocking command (BLPOP with a timeout) waits in real time: nothing else
  can run during it under simpy anyway, so the lab must not use one.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time as _real_time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import fakeredis
from redis.client import Pipeline

__all__ = ["EPOCH", "SimulatedPipeline", "SimulatedRedis"]

Clock = Callable[[], float]

EPOCH = 1_700_000_000.0
"""The epoch time fakeredis sees at simulated t=0, so TTL arithmetic looks like real epoch time."""

# The clock of the SimulatedRedis command running right now (None: a wall-clock caller).
# A ContextVar rather than a global so another thread's fakeredis commands never see it.
_current_clock: ContextVar[Clock | None] = ContextVar("simlab_redis_clock", default=None)

# fakeredis modules without which no simulated time reaches a command; fail loudly if they stop reading `time`.
_REQUIRED_MODULES = ("fakeredis._socket._base", "fakeredis._helpers")


class _ClockedTime:
    """Stands in for the ``time`` module inside fakeredis: only ``time()`` differs."""

    def time(self) -> float:
        clock = _current_clock.get()
        if clock is None:
            return _real_time.time()
        return EPOCH + clock()

    def __getattr__(self, name: str) -> Any:
        # Everything else (monotonic for fakeredis's selector timeouts, sleep, struct_time, ...) stays real.
        return getattr(_real_time, name)


_CLOCKED_TIME = _ClockedTime()
_installed_for = -1  # len(sys.modules) at the last scan
_TIME_ATTRIBUTE = "time"


def _install_clocked_time() -> None:
    """Point every loaded fakeredis module's ``time`` at the shim (idempotent).

    Scanning, rather than naming modules, also covers clock readers that a newer
    fakeredis adds; the shim is transparent to every caller without a clock.
    """
    global _installed_for
    loaded = len(sys.modules)
    if _installed_for == loaded:
        return  # NOTE: nothing was imported since the last scan; every run builds a client, so skip the scan
    for name in _REQUIRED_MODULES:
        module = importlib.import_module(name)
        if getattr(module, _TIME_ATTRIBUTE, None) not in (_real_time, _CLOCKED_TIME):
            raise RuntimeError(
                f"{name} no longer reads the clock through `time`; simlab.sim.clocked_redis needs updating"
            )
    for name, module in list(sys.modules.items()):
        if name.startswith("fakeredis") and getattr(module, _TIME_ATTRIBUTE, None) is _real_time:
            setattr(module, _TIME_ATTRIBUTE, _CLOCKED_TIME)
    _installed_for = len(sys.modules)


@contextlib.contextmanager
def _clocked(clock: Clock) -> Iterator[None]:
    """Make fakeredis see ``clock`` for the duration of the block, then restore what was there."""
    token = _current_clock.set(clock)
    try:
        yield
    finally:
        _current_clock.reset(token)


class SimulatedPipeline(Pipeline):
    """A pipeline (or MULTI/EXEC transaction) whose commands run on the simulated clock."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # Queues the command, or runs it at once while WATCHing (WATCH, then reads before MULTI).
        with _clocked(self._clock):
            return super().execute_command(*args, **kwargs)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        with _clocked(self._clock):
            return super().execute(raise_on_error)

    # redis-py's Pipeline.reset shadows the RESET command's typed signature; the ignore mirrors that clash.
    def reset(self) -> None:  # type: ignore[override]
        # Sends UNWATCH when a WATCH is pending.
        with _clocked(self._clock):
            super().reset()


class SimulatedRedis(fakeredis.FakeRedis):
    """A synchronous fakeredis client whose "now" is ``EPOCH + clock()``.

    ``SimulatedRedis(clock=runtime.now)``; pass ``server=`` to share a
    ``fakeredis.FakeServer`` with other clients on the same clock (without one,
    each client gets a fresh server of its own). Any other keyword argument
    goes to ``fakeredis.FakeRedis``.
    """

    def __init__(self, *args: Any, clock: Clock, server: fakeredis.FakeServer | None = None, **kwargs: Any) -> None:
        _install_clocked_time()
        # Set before the base class runs, in case it issues a command through execute_command.
        self._clock = clock
        # A server of its own, not fakeredis's default: without `server`, fakeredis registers a new
        # server under a random key in a process-wide map that is never emptied, so every simulated
        # run would leak its whole Redis dataset (memory grew with the number of runs).
        # NOTE: one connection held for the client's life: no pool checkout and release per command (a
        # fifth of a command's cost). Commands run one at a time under simpy; pipelines still use the pool.
        kwargs.setdefault("single_connection_client", True)
        super().__init__(*args, server=server if server is not None else fakeredis.FakeServer(), **kwargs)

    @property
    def clock(self) -> Clock:
        """The simulated clock (seconds) this client's commands see, offset by ``EPOCH``."""
        return self._clock

    def execute_command(self, *args: Any, **options: Any) -> Any:
        # NOTE: `_clocked` inlined for performance (every command of every run passes here).
        token = _current_clock.set(self._clock)
        try:
            return super().execute_command(*args, **options)
        finally:
            _current_clock.reset(token)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> SimulatedPipeline:
        """A pipeline on this client's connections and clock (``transaction=True``: MULTI/EXEC)."""
        return SimulatedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint, clock=self._clock
        )
