"""``SimulatedRedis``'s direct path answers exactly as redis-py's full path does.

Every command runs on two clients on the same simulated clock, each with a server of its own: one
whose commands take the direct path (straight to the fakeredis socket's ``_process_command``) and
one forced onto redis-py's full path (RESP packing, fakeredis's byte parser, the connection). So do
pipelines and transactions, which take the full path on both, as fields on the first one's connections
(``simlab.sim.redis_wire``) and as RESP bytes on the other's.
Replies (values and their types, nested ones included), raised exceptions (type and message) and
connection state must be the same, with and without ``decode_responses``.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
import redis

from simlab.sim.clocked_redis import EPOCH, SimulatedRedis
from simlab.sim.redis_wire import DirectSocket


class _FullPathRedis(SimulatedRedis):
    """A ``SimulatedRedis`` that always sends its commands through redis-py's full path, as RESP bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # fakeredis's own connection: RESP bytes through its parser, where SimulatedRedis's hands over fields.
        super().__init__(*args, connection_class=fakeredis.FakeRedisConnection, **kwargs)

    def _direct_socket(self) -> Any:
        return None


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


Step = Callable[[Any, _Clock], Any]


def _advance(seconds: float) -> Step:
    def step(r: Any, clock: _Clock) -> None:
        clock.now += seconds

    return step


CAS_DELETE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

# Commands the lab sends (SET NX PX, GET, DEL, SMEMBERS, SCAN) and many more; none of them leaves the direct path.
CORPUS: list[Step] = [
    lambda r, c: r.ping(),
    lambda r, c: r.set("lock:c-1", "saga-a:1", nx=True, px=30_000),
    lambda r, c: r.set("lock:c-1", "saga-b:1", nx=True, px=30_000),
    lambda r, c: r.set("lock:c-1", "saga-a:2", xx=True, get=True),
    lambda r, c: r.set("absent", "v", xx=True),
    lambda r, c: r.set("n", 7, ex=100),
    lambda r, c: r.set("f", 1.5),
    lambda r, c: r.set("u", "snowman \u2603"),
    lambda r, c: r.set(b"raw", b"\x00\xff\r\n$3\r\n"),
    lambda r, c: r.set("mv", memoryview(b"view")),
    lambda r, c: r.set("ba", bytearray(b"array")),
    lambda r, c: r.get("lock:c-1"),
    lambda r, c: r.get("missing"),
    lambda r, c: r.mget("n", "missing", "u", "raw", "mv", "ba"),
    lambda r, c: r.mset({"m1": "1", "m2": "2"}),
    lambda r, c: r.ttl("n"),
    lambda r, c: r.pttl("lock:c-1"),
    lambda r, c: r.ttl("missing"),
    lambda r, c: r.expire("f", 10),
    lambda r, c: r.pexpire("u", 2500),
    lambda r, c: r.persist("u"),
    lambda r, c: r.expiretime("n"),
    _advance(2.0),
    lambda r, c: (r.ttl("n"), r.pttl("f"), r.ttl("u")),
    lambda r, c: r.time(),
    lambda r, c: r.sadd("index", "k1", "k2", "k3"),
    lambda r, c: r.sadd("index", "k2"),
    lambda r, c: r.srem("index", "k1", "nope"),
    lambda r, c: r.smembers("index"),
    lambda r, c: r.smembers("missing"),
    lambda r, c: r.sismember("index", "k2"),
    lambda r, c: r.scard("index"),
    lambda r, c: r.hset("h", mapping={"a": "1", "b": "2"}),
    lambda r, c: r.hgetall("h"),
    lambda r, c: r.hget("h", "a"),
    lambda r, c: r.hincrby("h", "a", 5),
    lambda r, c: r.incr("counter"),
    lambda r, c: r.incr("counter", 10),
    lambda r, c: r.incrbyfloat("counter", 0.5),
    lambda r, c: r.incr("u"),  # not an integer: a ResponseError
    lambda r, c: r.smembers("lock:c-1"),  # WRONGTYPE
    lambda r, c: r.lpush("index", "x"),  # WRONGTYPE on a set
    lambda r, c: r.set("k", "v", nx=True, xx=True),  # client-side DataError
    lambda r, c: r.set("k", True),  # client-side DataError: bool
    lambda r, c: r.execute_command("SET", "only-a-key"),  # wrong number of arguments
    lambda r, c: r.execute_command("NOSUCHCOMMAND", "x"),
    lambda r, c: r.eval(CAS_DELETE, 1, "lock:c-1", "saga-a:2"),
    lambda r, c: r.evalsha("0" * 40, 1, "lock:c-1", "saga-a:2"),
    lambda r, c: r.script_load(CAS_DELETE),
    lambda r, c: r.register_script(CAS_DELETE)(keys=["lock:c-1"], args=["saga-a:2"]),
    lambda r, c: r.rpush("list", "a", "b", "c"),
    lambda r, c: r.lrange("list", 0, -1),
    lambda r, c: r.zadd("z", {"a": 1.5, "b": 2}),
    lambda r, c: r.zrange("z", 0, -1, withscores=True),
    lambda r, c: r.zscore("z", "b"),
    lambda r, c: r.type("z"),
    lambda r, c: r.exists("z", "h", "missing"),
    lambda r, c: sorted(r.scan_iter(match="m*")),
    lambda r, c: r.scan(cursor=0, match="lock:*", count=100),
    lambda r, c: r.keys("*"),
    lambda r, c: r.dbsize(),
    lambda r, c: r.dump("n"),  # NEVER_DECODE
    lambda r, c: r.execute_command("MGET", EMPTY_RESPONSE=[]),  # the arity error answers the empty response
    lambda r, c: r.execute_command("CONFIG GET", "maxmemory"),  # a two-word name is two fields
    lambda r, c: r.execute_command(b"CONFIG GET", "maxmemory"),
    lambda r, c: r.execute_command("get", "n"),
    lambda r, c: r.execute_command(b"GET", "n"),
    lambda r, c: r.execute_command("ECHO", 12),
    lambda r, c: r.echo("\u00e9"),
    lambda r, c: r.delete("lock:c-1", "missing", "n"),
    lambda r, c: r.delete("lock:c-1"),
    lambda r, c: r.getdel("f"),
    lambda r, c: r.getex("m1", px=500),
    _advance(0.6),
    lambda r, c: (r.get("m1"), r.get("m2")),
    lambda r, c: r.client_id(),
    lambda r, c: r.flushdb(),
]


def _typed(value: Any) -> Any:
    """``value`` with the type of every part spelled out (b"1" and "1", 1 and 1.0 and True differ)."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", sorted((repr(_typed(k)), repr(_typed(v))) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(repr(_typed(v)) for v in value))
    if isinstance(value, Exception):  # an error in a pipeline's replies: equal by type and message
        return (type(value).__name__, str(value))
    return (type(value).__name__, value)


def _outcome(step: Step, client: Any, clock: _Clock) -> Any:
    try:
        return ("ok", _typed(step(client, clock)))
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        return ("raised", type(exc), str(exc))


def _run(cls: type[SimulatedRedis], steps: list[Step], **kwargs: Any) -> tuple[list[Any], Any]:
    clock = _Clock()
    client = cls(clock=clock, **kwargs)
    return [_outcome(step, client, clock) for step in steps], client


def _direct_only(client: SimulatedRedis) -> None:
    """Make any command that leaves the direct path fail: fakeredis's byte parser must not see one."""

    def refuse(data: Any) -> None:
        raise AssertionError(f"sent through redis-py's full path: {data!r}")

    client.connection._sock.sendall = refuse  # type: ignore[union-attr]


@pytest.mark.parametrize("decode_responses", [False, True])
def test_the_direct_path_answers_every_command_as_the_full_path(decode_responses: bool) -> None:
    clock = _Clock()
    fast = SimulatedRedis(clock=clock, decode_responses=decode_responses)
    _direct_only(fast)
    fast_outcomes = [_outcome(step, fast, clock) for step in CORPUS]
    full_outcomes, _ = _run(_FullPathRedis, CORPUS, decode_responses=decode_responses)
    assert len(fast_outcomes) == len(CORPUS)
    for i, (got, want) in enumerate(zip(fast_outcomes, full_outcomes, strict=True)):
        assert got == want, f"step {i}"
    # The corpus does reach its error replies and its expiries.
    raised = {o[1] for o in full_outcomes if o[0] == "raised"}
    assert {redis.ResponseError, redis.DataError} <= raised


@pytest.mark.parametrize("decode_responses", [False, True])
def test_unusual_states_go_the_full_way_and_answer_the_same(decode_responses: bool) -> None:
    """MULTI queueing, a lost and regained server, CLIENT KILL, HIMPORT, a subscription with a message waiting."""

    def server(r: Any) -> Any:
        return r.connection_pool.connection_kwargs["server"]

    def set_connected(up: bool) -> Step:
        def step(r: Any, c: _Clock) -> None:
            server(r).connected = up

        return step

    steps: list[Step] = [
        lambda r, c: r.set("a", "1"),
        lambda r, c: r.execute_command("MULTI"),
        lambda r, c: r.set("a", "2"),  # QUEUED
        lambda r, c: r.incr("a"),
        lambda r, c: r.execute_command("EXEC"),
        lambda r, c: r.get("a"),
        set_connected(False),
        lambda r, c: r.get("a"),  # a ConnectionError
        lambda r, c: r.connection._sock,
        set_connected(True),
        lambda r, c: r.get("a"),  # reconnects
        lambda r, c: r.get("a"),
        lambda r, c: r.execute_command("CLIENT KILL", "ID", r.client_id(), "SKIPME", "no"),
        lambda r, c: r.get("a"),  # a ConnectionError: the connection was killed
        lambda r, c: (r.get("a"), r.client_id()),  # on a new connection
        lambda r, c: r.execute_command("HIMPORT", "SET", "k", "fs", "v"),  # redis-py's own HIMPORT handling
        lambda r, c: r.execute_command("SUBSCRIBE", "ch"),
        lambda r, c: r.get("a"),  # refused while subscribed
        lambda r, c: type(r)(clock=c, server=server(r)).publish("ch", "hello"),
        lambda r, c: r.get("a"),  # answered by the message waiting in the reply queue
        lambda r, c: r.execute_command("UNSUBSCRIBE", "ch"),  # answered by GET's refusal: one reply behind
        lambda r, c: r.get("a"),  # answered by UNSUBSCRIBE's reply
        lambda r, c: r.get("a"),
    ]
    fast, _ = _run(SimulatedRedis, steps, decode_responses=decode_responses)
    full, _ = _run(_FullPathRedis, steps, decode_responses=decode_responses)
    assert fast == full
    assert fast[7][:2] == ("raised", redis.ConnectionError)


def test_a_command_that_raises_in_fakeredis_drops_the_connection_on_both_paths() -> None:
    """As redis-py's send_packed_command does: the next command runs on a fresh connection."""

    def boom(fields: list[bytes]) -> None:
        raise RuntimeError("fakeredis broke")

    seen = []
    for cls in (SimulatedRedis, _FullPathRedis):
        client = cls(clock=lambda: 0.0)
        client.set("k", "v")
        client.connection._sock._process_command = boom  # type: ignore[union-attr]
        with pytest.raises(RuntimeError, match="fakeredis broke"):
            client.get("k")
        seen.append((client.connection._sock, client.get("k"), client.client_id()))  # type: ignore[union-attr]
    assert seen == [(None, b"v", 2), (None, b"v", 2)]


def test_ttl_expiry_follows_the_simulated_clock_on_the_direct_path() -> None:
    clock = _Clock()
    r = SimulatedRedis(clock=clock)
    _direct_only(r)
    assert r.set("lock", "owner", nx=True, px=1500) is True
    assert r.time() == (int(EPOCH), 0)
    clock.now = 1.499
    assert (r.get("lock"), r.pttl("lock")) == (b"owner", 1)
    assert r.set("lock", "other", nx=True, px=1500) is None
    clock.now = 1.501
    assert (r.get("lock"), r.pttl("lock")) == (None, -2)
    assert r.set("lock", "other", nx=True, px=1500) is True
    clock.now = 1000.0
    assert r.time() == (int(EPOCH) + 1000, 0)


@pytest.mark.parametrize("decode_responses", [False, True])
def test_a_command_with_several_replies_is_answered_by_the_first_the_rest_wait_in_order(decode_responses: bool) -> None:
    """SUBSCRIBE of two channels sends two replies: the direct path, which takes a lone reply straight from the
    socket, queues them as fakeredis does, so the next command reads the second one, as on the full path."""
    steps: list[Step] = [
        lambda r, c: r.set("a", "1"),
        lambda r, c: r.execute_command("SUBSCRIBE", "x", "y"),
        lambda r, c: r.get("a"),  # answered by SUBSCRIBE's second reply
        lambda r, c: r.execute_command("UNSUBSCRIBE"),  # answered by GET's refusal; sends two replies too
        lambda r, c: r.ping(),
        lambda r, c: r.ping(),
        lambda r, c: r.get("a"),
    ]
    fast, fast_client = _run(SimulatedRedis, steps, decode_responses=decode_responses)
    full, full_client = _run(_FullPathRedis, steps, decode_responses=decode_responses)
    assert fast == full
    second = (
        "list",
        [
            _typed("subscribe" if decode_responses else b"subscribe"),
            _typed("y" if decode_responses else b"y"),
            ("int", 2),
        ],
    )
    assert fast[2] == ("ok", second)
    waiting = [client.connection._sock.responses.qsize() for client in (fast_client, full_client)]  # type: ignore[union-attr]
    assert waiting == [2, 2]


def _watched_counter(r: Any, c: _Clock) -> Any:
    """A fenced write, as the lab's locks and saga store make them: WATCH, read, MULTI, writes, EXEC."""
    pipe = r.pipeline(transaction=True)
    try:
        pipe.watch("fence")
        latest = int(pipe.get("fence") or 0)
        pipe.multi()
        pipe.set("fence", latest + 1)
        pipe.set("lock:c-1", f"saga:{latest}", nx=True, px=30_000)
        pipe.incr("lock:c-1")  # a WRONGTYPE-free error at EXEC: not an integer
        return pipe.execute(raise_on_error=False)
    finally:
        pipe.reset()


def _conflict(r: Any, c: _Clock) -> Any:
    """Another client writes the watched key between WATCH and EXEC: a WatchError."""
    pipe = r.pipeline(transaction=True)
    try:
        pipe.watch("fence")
        type(r)(clock=c, server=r.connection_pool.connection_kwargs["server"]).set("fence", 99)
        pipe.multi()
        pipe.incr("fence")
        return pipe.execute()
    finally:
        pipe.reset()


PIPELINES: list[Step] = [
    _watched_counter,
    _watched_counter,
    _conflict,
    lambda r, c: r.pipeline(transaction=False).set("a", 1).get("a").incr("a").smembers("a").execute(False),
    lambda r, c: r.pipeline().set("b", 2).execute_command("NOSUCH").get("b").execute(),  # EXECABORT
    lambda r, c: r.pipeline().set("c", True).execute(),  # a DataError while packing
    lambda r, c: r.pipeline().set("d", "v", px=500).pttl("d").execute(),
    _advance(0.6),
    lambda r, c: r.pipeline(transaction=False).get("d").execute_command("CONFIG GET", "maxmemory").execute(),
    lambda r, c: r.transaction(lambda pipe: (pipe.multi(), pipe.incr("fence")), "fence"),
    lambda r, c: r.pipeline().client_id().execute(),  # the pipeline's own connection
]


@pytest.mark.parametrize("decode_responses", [False, True])
def test_pipelines_and_transactions_answer_as_on_resp_bytes(
    monkeypatch: pytest.MonkeyPatch, decode_responses: bool
) -> None:
    full, _ = _run(_FullPathRedis, PIPELINES, decode_responses=decode_responses)

    def refuse(sock: Any, data: Any) -> None:
        raise AssertionError(f"sent as RESP bytes: {data!r}")

    monkeypatch.setattr(DirectSocket, "sendall", refuse)  # handshakes of new connections included
    fields, _ = _run(SimulatedRedis, PIPELINES, decode_responses=decode_responses)
    for i, (got, want) in enumerate(zip(fields, full, strict=True)):
        assert got == want, f"step {i}"
    raised = [o[1] for o in full if o[0] == "raised"]
    assert raised == [redis.WatchError, redis.ResponseError, redis.DataError, redis.ResponseError]


def test_a_reply_queue_answers_as_a_queue_whether_a_reply_waits_or_not() -> None:
    """The sockets' reply queues take a waiting reply without their lock; empty, they wait or raise as a Queue."""
    replies = SimulatedRedis(clock=_Clock()).connection._sock.responses  # type: ignore[union-attr]
    with pytest.raises(queue.Empty):
        replies.get_nowait()
    with pytest.raises(queue.Empty):
        replies.get(timeout=0.01)
    replies.put(b"a")
    replies.put(b"b")
    assert [replies.qsize(), replies.get(), replies.get_nowait(), replies.empty()] == [2, b"a", b"b", True]
