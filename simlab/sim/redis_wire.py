"""fakeredis's connection and socket without the RESP bytes between them: the wire under ``SimulatedRedis``.

redis-py packs every command into RESP bytes and fakeredis's socket parses them back into the very
fields redis-py started from; on fakeredis, that round trip is most of what a command costs outside the
command itself. ``DirectConnection`` is fakeredis's connection that hands the fields over instead:
``command_fields`` builds what the parser would have yielded for what redis-py's ``PythonRespSerializer``
would have packed, and the socket runs them through ``_process_command``, the call its parser makes.
Everything else is fakeredis's and redis-py's own: connecting, health checks, errors and disconnects
(as ``send_packed_command`` handles them), replies read from the socket's queue, pipelines, transactions.
A command whose name is neither str nor bytes, or HIMPORT (which redis-py prepares per connection),
still goes out as RESP bytes, and so does everything on a connection whose packer or encoder is not
redis-py's standard one.

``DirectSocket`` is fakeredis's socket that can also hand a command's one reply straight back to the
caller (``run_direct``) instead of through its thread-safe queue: ``SimulatedRedis``'s direct path. Its
queue's reader takes a waiting reply without the queue's lock (``_Replies``).
``tests/test_clocked_redis_fast_path.py`` holds that replies, errors and state are those of the RESP path.
"""

from __future__ import annotations

import queue
from typing import Any

import fakeredis
from fakeredis import _msgs as msgs
from fakeredis._socket import FakeSocket
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

__all__ = ["DirectConnection", "DirectSocket", "command_fields"]

# The fields of each command name seen (None: it goes out as RESP); names are few, so the map stays small.
_NAME_WORDS: dict[str | bytes, list[bytes] | None] = {}
_NAME_WORDS_LIMIT = 1024  # bounds the map if a caller makes up command names


def _name_words(name: Any) -> list[bytes] | None:
    """The fields redis-py's packer makes of a command name ('CONFIG GET' goes out as two), or None for a name
    that goes out as RESP bytes (not str or bytes; HIMPORT, which redis-py prepares per connection)."""
    if isinstance(name, str):
        words = name.encode().split()
    elif isinstance(name, bytes):
        words = name.split() if b" " in name else [name]
    else:
        return None
    if words and words[0].upper() == b"HIMPORT":
        return None
    return [bytes(word) for word in words]  # the parser yields plain bytes


def command_fields(args: tuple[Any, ...], encoder: Encoder) -> list[bytes] | None:
    """The fields fakeredis's parser yields for the RESP that redis-py's ``PythonRespSerializer.pack(*args)`` sends.

    None for a command name that goes out as RESP bytes (see ``_name_words``). Raises what ``pack`` raises for
    an argument it cannot encode.
    """
    name = args[0]
    if type(name) is str or type(name) is bytes:  # a subclass may split or encode its own way: not cached
        try:
            words = _NAME_WORDS[name]
        except KeyError:
            words = _name_words(name)
            if len(_NAME_WORDS) < _NAME_WORDS_LIMIT:
                _NAME_WORDS[name] = words
    else:
        words = _name_words(name)
    if words is None:
        return None
    fields = words.copy()
    encoding, errors = encoder.encoding, encoder.encoding_errors
    for arg in args[1:]:
        # NOTE: ``Encoder.encode`` inlined for the exact types it maps directly (every argument passes here).
        kind = type(arg)
        if kind is str:
            fields.append(arg.encode(encoding, errors))
        elif kind is bytes:
            fields.append(arg)
        elif kind is int or kind is float:
            fields.append(repr(arg).encode())
        else:
            value = encoder.encode(arg)
            fields.append(value if type(value) is bytes else bytes(value))
    return fields


class DirectSocket(FakeSocket):
    """fakeredis's socket, which also takes commands as parsed fields and can hand a reply straight back.

    Every reply but those ``run_direct`` hands back goes through the socket's queue as fakeredis's own
    socket sends it, so a reader of the queue sees no difference.
    """

    direct_replies: list[Any] | None
    """Replies taken instead of queued while ``run_direct`` runs a command (None the rest of the time)."""

    def put_response(self, msg: Any) -> None:
        """Queue ``msg`` as fakeredis does, or hand it to the ``run_direct`` running now."""
        replies = self.direct_replies
        if replies is None:
            super().put_response(msg)
        else:
            replies.append(msg)

    def send_fields(self, fields: list[bytes]) -> None:
        """Take one command as its parsed ``fields``: what ``sendall`` does with its RESP bytes, parser aside."""
        if not self._server.connected or self._killed:
            raise self._connection_error_class(msgs.CONNECTION_ERROR_MSG)
        self._process_command(fields)

    def run_direct(self, fields: list[bytes]) -> Any:
        """Run a command from its parsed ``fields``, as the socket's parser would, and return its reply.

        The reply is the oldest one waiting, as a reader of the queue would get; ``queue.Empty`` when
        there is none (the command sent none, after CLIENT REPLY OFF).
        """
        responses = self.responses
        # NOTE: the queue's deque is read without the queue's lock (a tenth of a command's cost otherwise). The
        # GIL makes the read atomic; a reply another thread queues meanwhile races the command on either path.
        if responses is None or responses.queue:  # closed, or an older reply answers: the queue's order
            self._process_command(fields)
            return self._oldest_reply()
        replies = self.direct_replies = []
        try:
            self._process_command(fields)
        finally:
            self.direct_replies = None
        if len(replies) == 1:
            return replies[0]
        for reply in replies:  # none (CLIENT REPLY OFF), or several (SUBSCRIBE to several channels)
            super().put_response(reply)
        return self._oldest_reply()

    def _oldest_reply(self) -> Any:
        responses = self.responses
        if responses is None:
            raise queue.Empty
        return responses.get_nowait()


class _Replies(queue.Queue[Any]):
    """A socket's reply queue whose reader takes a waiting reply without the queue's lock and condition."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The oldest reply; when none waits, as ``queue.Queue.get`` (wait for one, or ``queue.Empty``)."""
        # NOTE: a third of reading a reply otherwise. deque.popleft is atomic; a connection has one reader, and the
        # queue is unbounded, so no writer waits for the room a get would notify.
        try:
            return self.queue.popleft()
        except IndexError:
            return super().get(block, timeout)


class _PackedFields(list[list[bytes]]):
    """What ``DirectConnection.pack_commands`` returns instead of RESP bytes: each command's fields."""


class DirectConnection(fakeredis.FakeRedisConnection):
    """fakeredis's connection whose commands reach its socket (a ``DirectSocket``) as fields, not RESP bytes."""

    def _connect(self) -> FakeSocket:
        sock = super()._connect()
        # NOTE: fakeredis has no seam to choose its socket class; re-classing the socket it built keeps
        # its construction (server registration, client id, state) exactly fakeredis's. Only methods differ.
        sock.__class__ = DirectSocket
        assert isinstance(sock, DirectSocket)  # for the type checker
        sock.direct_replies = None
        sock.responses = _Replies()  # nothing was sent yet: fakeredis's queue is empty
        return sock

    def direct_fields(self, args: tuple[Any, ...]) -> list[bytes] | None:
        """``command_fields(args)`` with this connection's encoder, or None where the command must go out as RESP."""
        if type(self._command_packer) is not PythonRespSerializer or type(self.encoder) is not Encoder:
            return None  # the fields are those of the standard packer, with the encoding `command_fields` inlines
        return command_fields(args, self.encoder)

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        """Send a command, as fields when it can go so."""
        fields = self.direct_fields(args)
        if fields is None:
            super().send_command(*args, **kwargs)
        else:
            self.send_packed_command(_PackedFields([fields]), check_health=kwargs.get("check_health", True))

    def pack_commands(self, commands: Any) -> Any:
        """The commands of a pipeline or transaction, as fields when they can all go so."""
        commands = list(commands)
        packed = _PackedFields()
        for args in commands:
            fields = self.direct_fields(tuple(args))
            if fields is None:
                return super().pack_commands(commands)
            packed.append(fields)
        return packed

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """Send packed commands: fields to the socket at once, RESP bytes as redis-py does."""
        if type(command) is not _PackedFields:
            super().send_packed_command(command, check_health)
            return
        # redis-py's send_packed_command, with DirectSocket.send_fields for FakeSocket.sendall.
        if not self._sock:
            self.connect_check_health(check_health=False)
        if check_health:
            self.check_health()
        sock: Any = self._sock  # a DirectSocket: `_connect` made it
        try:
            for fields in command:
                sock.send_fields(fields)
        except BaseException:
            # As redis-py's: fakeredis's errors are redis ConnectionErrors (no socket.timeout or OSError here).
            self.disconnect()
            raise
