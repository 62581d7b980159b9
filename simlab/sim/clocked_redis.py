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

The direct path, for speed: a command through redis-py's client costs far
more than the command itself. redis-py packs it into RESP bytes, fakeredis's
socket parses those bytes back into the same fields, and the connection, retry
and timing machinery wraps both: about half of what a command costs here. So
``SimulatedRedis.execute_command`` builds the fields the parser would have
produced (``simlab.sim.redis_wire.command_fields``: the command name split on
whitespace as redis-py's packer splits it, every argument encoded as the
connection's encoder does, as ``bytes``) and hands them to the fakeredis
socket's ``_process_command``, the very call its parser makes; it takes the
reply straight from the socket when nothing older waits in the socket's queue
(``DirectSocket.run_direct``), raises or decodes it as fakeredis's connection
does and applies redis-py's ``parse_response`` options and response callback.
fakeredis still runs every command, so replies, errors and state are those of
the full path (``tests/test_clocked_redis_fast_path.py`` holds that).
Connection state (MULTI queueing, subscriptions, replies waiting in the queue)
lives in the socket, so it needs no special case: the reply read is the oldest
one, as redis-py's would be. The full path still sends a command when the
client's one connection is not open on a connected server (it reconnects or
raises), after CLIENT KILL, with health checks, for a command name that is
neither str nor bytes and for HIMPORT (which redis-py prepares per connection).
Differences, by design: the direct path records no redis-py OpenTelemetry
metrics (the lab enables none), and a command that sends no reply (after
CLIENT REPLY OFF) raises ``queue.Empty`` where the full path waits forever.
Pipelines, transactions and connection handshakes take the full path, on
connections (``redis_wire.DirectConnection``) that hand fakeredis the same
fields instead of RESP bytes.
"""

from __future__ import annotations

import importlib
import queue
import sys
import time as _real_time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import fakeredis
from fakeredis._typing import RaiseErrorTypes
from redis._parsers.encoders import Encoder
from redis.client import EMPTY_RESPONSE, NEVER_DECODE, Pipeline
from redis.exceptions import ResponseError

from simlab.sim.redis_wire import DirectConnection, DirectSocket

__all__ = ["EPOCH", "SimulatedPipeline", "SimulatedRedis", "install_clocked_time"]

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


def install_clocked_time() -> None:
    """Point every loaded fakeredis module's ``time`` at the shim (idempotent; every new client calls it).

    Scanning, rather than naming modules, also covers clock readers that a newer
    fakeredis adds; the shim is transparent to every caller without a clock.
    """
    global _installed_for
    loaded = len(sys.modules)
    if _installed_for == loaded:
        return  # NOTE: nothing was imported since the last scan; every run gets a client, so skip the scan
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


def _decoded_already(response: Any, encoder: Encoder) -> bool:
    """Whether fakeredis's connection would hand ``response`` over as it is (its ``_decode`` would return it)."""
    kind = type(response)
    return kind is int or response is None or (kind is bytes and not encoder.decode_responses)


class SimulatedPipeline(Pipeline):
    """A pipeline (or MULTI/EXEC transaction) whose commands run on the simulated clock."""

    def __init__(self, *args: Any, clock: Clock, owner: SimulatedRedis | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock
        self.owner = owner
        """The client this pipeline came from. It shares that client's connections, so it keeps the client
        alive: ``simlab.sim.redis_spares`` lends a client's connections again only once the client is gone."""

    # NOTE: each sets the clock inline, not through a context manager: a fenced transaction passes here ten times.
    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # Queues the command, or runs it at once while WATCHing (WATCH, then reads before MULTI).
        token = _current_clock.set(self._clock)
        try:
            return super().execute_command(*args, **kwargs)
        finally:
            _current_clock.reset(token)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        token = _current_clock.set(self._clock)
        try:
            return super().execute(raise_on_error)
        finally:
            _current_clock.reset(token)

    # redis-py's Pipeline.reset shadows the RESET command's typed signature; the ignore mirrors that clash.
    def reset(self) -> None:  # type: ignore[override]
        # Sends UNWATCH when a WATCH is pending.
        token = _current_clock.set(self._clock)
        try:
            super().reset()
        finally:
            _current_clock.reset(token)


class SimulatedRedis(fakeredis.FakeRedis):
    """A synchronous fakeredis client whose "now" is ``EPOCH + clock()``.

    ``SimulatedRedis(clock=runtime.now)``; pass ``server=`` to share a
    ``fakeredis.FakeServer`` with other clients on the same clock (without one,
    each client gets a fresh server of its own). Any other keyword argument
    goes to ``fakeredis.FakeRedis``.
    """

    def __init__(self, *args: Any, clock: Clock, server: fakeredis.FakeServer | None = None, **kwargs: Any) -> None:
        install_clocked_time()
        # Set before the base class runs, in case it issues a command through execute_command.
        self._clock = clock
        # A server of its own, not fakeredis's default: without `server`, fakeredis registers a new
        # server under a random key in a process-wide map that is never emptied, so every simulated
        # run would leak its whole Redis dataset (memory grew with the number of runs).
        # NOTE: one connection held for the client's life: no pool checkout and release per command (a
        # fifth of a command's cost). Commands run one at a time under simpy; pipelines still use the pool.
        kwargs.setdefault("single_connection_client", True)
        kwargs.setdefault("connection_class", DirectConnection)  # commands reach fakeredis as fields, not RESP
        super().__init__(*args, server=server if server is not None else fakeredis.FakeServer(), **kwargs)

    @property
    def clock(self) -> Clock:
        """The simulated clock (seconds) this client's commands see, offset by ``EPOCH``.

        Setting it moves the client's later commands, and its later pipelines, to another clock (pipelines
        made before keep theirs).
        """
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._clock = clock

    def execute_command(self, *args: Any, **options: Any) -> Any:
        # NOTE: the clock set inline, not through a context manager (every command of every run passes here).
        token = _current_clock.set(self._clock)
        try:
            direct = self._direct_socket()
            fields = None if direct is None else direct[0].direct_fields(args)
            if direct is None or fields is None:
                return super().execute_command(*args, **options)
            return self._execute_directly(*direct, fields, args[0], options)
        finally:
            _current_clock.reset(token)

    def _direct_socket(self) -> tuple[Any, Any] | None:
        """The connection and its fakeredis socket that can take a command directly, or None: the full path sends it."""
        conn = self.connection
        if (
            type(conn) is not DirectConnection
            or conn.health_check_interval  # the full path would PING first
            or conn.should_reconnect()
            or not conn.is_connected  # the full path (re)connects
        ):
            return None
        sock = conn.get_socket()
        # What fakeredis's FakeSocket.sendall checks before it takes a command: else the full path's ConnectionError.
        return (conn, sock) if type(sock) is DirectSocket and sock._server.connected and not sock._killed else None

    def _execute_directly(
        self, conn: Any, sock: DirectSocket, fields: list[bytes], command_name: Any, options: dict[str, Any]
    ) -> Any:
        """Run ``fields`` on ``conn``'s socket ``sock``; answer as ``Redis.execute_command`` would (see module doc)."""
        with self.single_connection_lock:
            try:
                response = sock.run_direct(fields)
            except queue.Empty:
                raise  # the command sent no reply (CLIENT REPLY OFF): the full path would wait forever
            except BaseException:
                conn.disconnect()  # as redis-py's send_packed_command does when the socket raises
                raise
            # From here on: fakeredis's FakeBaseConnection.read_response, then redis-py's Redis.parse_response.
            if isinstance(response, RaiseErrorTypes):
                if EMPTY_RESPONSE in options and isinstance(response, ResponseError):
                    return options[EMPTY_RESPONSE]
                raise response
            if NEVER_DECODE in options:
                del options[NEVER_DECODE]
            elif not _decoded_already(response, conn.encoder):
                response = conn._decode(response)
            options.pop(EMPTY_RESPONSE, None)
            options.pop("keys", None)
            callback = self.response_callbacks.get(command_name)
            return response if callback is None else callback(response, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> SimulatedPipeline:
        """A pipeline on this client's connections and clock (``transaction=True``: MULTI/EXEC)."""
        return SimulatedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint, clock=self._clock, owner=self
        )
