"""A ``SimulatedRedis`` for every world without building one every time: a dead world's Redis is reset and lent again.

Building a ``SimulatedRedis`` costs about as much as the rest of a world together: a fakeredis server
with its ACL, a redis-py client with its response callbacks and connection pool, and a connection whose
handshake sends HELLO and two CLIENT SETINFO through the RESP parser. ``fresh_redis(clock)`` builds those
parts (the client's "core": everything of it but its clock) once, and lends them to one client after
another. When a lent client dies (its world, wrappers, locks and pipelines gone: each pipeline holds its
client), its core goes back to the spares, and the next ``fresh_redis`` resets it to the state it had
when new and lends it to a new client on the new world's clock:

- the connections that pipelines opened and gave back to the pool are closed (the next pipeline
  reconnects one, with a new socket and handshake, as it would open a new connection);
- FLUSHALL runs on the new clock: every database empty, its expiry bookkeeping too, and sockets closed
  since then cleaned away;
- the server's next client id and its SCAN cursors are as when new.

Then the core's whole state is compared with the state it had when new: the client's attributes, those
of its connection pool, connection, socket and server, of the server's databases (their clocks aside),
the ACL users, containers by content, and the socket's reply queue. Whatever a run changed that the
reset does not restore (a transaction or a WATCH left open, a subscription, SELECT, CLIENT SETNAME,
CONFIG SET, a loaded script, a callback set, another connection still in use, a fork) makes the core
unfit: it is dropped and a new one built. So a world gets a Redis in the same state either way, and a
run depends only on its seed.

Only a dead client gives its core back, so two live worlds never share one, and a world kept alive
keeps its Redis. A ``PubSub`` or a connection taken from a client holds only the core: keep the client
as long as them.
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import Any

from simlab.sim.clocked_redis import Clock, SimulatedRedis, install_clocked_time

__all__ = ["fresh_redis"]

_SPARES_LIMIT = 4
"""Cores kept per process: one per world alive at once (worlds not yet collected included), within reason."""

# Appended to by finalizers (which may run at any allocation, in any thread) and popped by `fresh_redis`:
# both single list operations, atomic under the GIL, so no lock (a finalizer taking one could deadlock).
_spares: list[_Core] = []


def fresh_redis(clock: Clock) -> SimulatedRedis:
    """A ``SimulatedRedis`` on ``clock`` in the state of a new one: a spare core reset, or a new client."""
    while _spares:
        try:
            core = _spares.pop()
        except IndexError:  # another thread took the last one
            break
        client = _LentRedis.on(core, clock)
        if core.reset(client):
            weakref.finalize(client, _give_back, core)
            return client
        # Unfit: the core goes with this client, which no finalizer gives back.
    client = _LentRedis(clock=clock)
    weakref.finalize(client, _give_back, _Core(client))
    return client


def _give_back(core: _Core) -> None:
    if len(_spares) < _SPARES_LIMIT:
        _spares.append(core)


class _LentRedis(SimulatedRedis):
    """A ``SimulatedRedis`` whose core (connections, server, callbacks) outlives it, to be lent again."""

    @classmethod
    def on(cls, core: _Core, clock: Clock) -> _LentRedis:
        """A client made of ``core``'s parts, on ``clock``."""
        install_clocked_time()  # as SimulatedRedis() does: fakeredis modules imported since then see the clock
        client = cls.__new__(cls)
        vars(client).update(core.parts)
        client.clock = clock
        return client

    def __del__(self) -> None:
        # redis-py's Redis.__del__ closes the connection and its pool: here they are the core's, still in use.
        pass


class _Core:
    """The parts of a client that ``fresh_redis`` lends again, with the state they had when new."""

    def __init__(self, client: SimulatedRedis) -> None:
        # NOTE: the parts, never the client: a core must not keep its dead client alive.
        self.parts = {name: value for name, value in vars(client).items() if name != "_clock"}
        conn: Any = client.connection  # fakeredis's, whatever redis-py's annotations say
        sock = conn.get_socket()
        server = sock._server
        self._pool = client.connection_pool
        self._socket = sock
        self._fake_server = server
        self._first_client_id = server._next_client_id  # what the next connection's CLIENT ID is when new
        self._compared: tuple[tuple[Any, frozenset[str]], ...] = (
            # Closed connections left in the pool by pipelines are not compared: `reset` closes them all.
            (self._pool, frozenset({"_available_connections", "_created_connections"})),
            (conn, frozenset()),
            (sock, frozenset()),
            (server, frozenset()),
            *((db, frozenset({"time"})) for db in server.dbs.values()),  # stamped before every command
        )
        self._new = _copied(self._state())

    def reset(self, client: SimulatedRedis) -> bool:
        """Make the core of ``client`` (just lent it) as new, on its clock; False if it cannot be (it is unfit)."""
        self._pool.disconnect(inuse_connections=False)
        try:
            client.flushall()
        except Exception:  # noqa: BLE001 - a core in a state FLUSHALL cannot run in is unfit, whatever it raised
            return False
        self._fake_server._next_client_id = self._first_client_id
        self._fake_server.scan_cursors.clear()
        return self._state() == self._new  # containers compare by content, recursively; objects by identity

    def _state(self) -> list[Any]:
        """Everything of the core's state that a run can change, as live objects (``_copied`` keeps it as it is now)."""
        compared = []
        for part, skip in self._compared:
            fields = dict(vars(part))
            for name in skip:
                fields.pop(name, None)
            compared.append(fields)
        responses = self._socket.responses
        return [
            self.parts,
            *compared,
            self._fake_server.acl.as_rules(),
            None if responses is None else responses.qsize(),
        ]


def _copied(value: Any) -> Any:
    """``value`` as it is now: containers copied, recursively, so that later changes to them do not show in the copy;
    anything else as itself. The copy equals ``value`` (``==``) as long as ``value`` is unchanged: copies keep the
    container types whose equality differs (tuple, deque, WeakSet); a dict's subclass compares as a dict."""
    if isinstance(value, dict):
        # dict.items, not the subclass's: fakeredis's ClientInfo.items() adds an age read from the wall clock.
        return {key: _copied(item) for key, item in dict.items(value)}
    if isinstance(value, tuple):
        return tuple(_copied(item) for item in value)
    if isinstance(value, deque):
        return deque(_copied(item) for item in value)
    if isinstance(value, list):
        return [_copied(item) for item in value]
    if isinstance(value, weakref.WeakSet):
        return weakref.WeakSet(value)
    if isinstance(value, set | frozenset):
        return set(value)
    return value
