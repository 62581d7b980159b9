"""``fresh_redis``: a world's Redis is a dead world's, reset, and answers exactly as a new one would.

A core (the connections, fakeredis server and callbacks of a client) is lent again only once the client
that had it is gone, and only if the reset brings it back to the state it had when new; a run then
depends on nothing that ran before it in the process.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from simlab.batch.runner import run_once, run_seed
from simlab.batch.sweep import with_settings
from simlab.scenario import load_scenario
from simlab.sim import redis_spares
from simlab.sim.clocked_redis import SimulatedRedis
from simlab.sim.redis_spares import fresh_redis


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


_KEPT: list[Any] = []  # what a test keeps alive after the client that made it is gone


@pytest.fixture(autouse=True)
def _no_spares() -> Iterator[None]:
    """Each test starts and ends with no spare core, whatever ran before it in this process."""
    gc.collect()
    redis_spares._spares.clear()
    yield
    _KEPT.clear()
    gc.collect()
    redis_spares._spares.clear()


def _dirty(r: Any, clock: _Clock) -> None:
    """What a run leaves behind: keys with and without TTLs, a set, a pipeline's connection, a SCAN, time."""
    r.set("lock:c-1", "saga-a:1", nx=True, px=30_000)
    r.set("kept", "v")
    r.sadd("index", "a", "b")
    r.zadd("z", {"a": 1.0})
    pipe = r.pipeline(transaction=True)
    pipe.watch("fence:s")
    pipe.get("fence:s")
    pipe.multi()
    pipe.incr("fence:s")
    pipe.execute()
    pipe.reset()
    list(r.scan_iter(match="lock:*"))
    clock.now = 500.0


def _reused(after: Callable[[Any, _Clock], None] = _dirty) -> tuple[SimulatedRedis, Any, _Clock]:
    """A client lent a core that ``after`` dirtied, the core's connection, and the new client's clock."""
    first_clock = _Clock()
    first = fresh_redis(first_clock)
    connection = first.connection
    after(first, first_clock)
    del first
    gc.collect()
    clock = _Clock()
    return fresh_redis(clock), connection, clock


def _answers(r: Any, clock: _Clock) -> list[Any]:
    """A run's worth of commands, pipelines and client ids included, with their replies and errors."""
    seen: list[Any] = []

    def ask(call: Callable[[], Any]) -> None:
        try:
            seen.append(("ok", call()))
        except redis.RedisError as exc:
            seen.append(("raised", type(exc), str(exc)))

    ask(lambda: (r.dbsize(), r.keys("*"), r.time(), r.client_id()))
    ask(lambda: r.set("lock:c-1", "saga-b:1", nx=True, px=1500))
    ask(lambda: (r.get("lock:c-1"), r.get("kept"), r.smembers("index"), r.pttl("lock:c-1")))
    pipe = r.pipeline(transaction=True)
    ask(lambda: pipe.watch("fence:s"))
    ask(lambda: pipe.get("fence:s"))
    pipe.multi()
    pipe.incr("fence:s")
    pipe.client_id()
    ask(pipe.execute)
    pipe.reset()
    clock.now = 1.6
    ask(lambda: (r.get("lock:c-1"), r.scan(0, match="*"), r.incr("lock:c-1")))
    # CLIENT LIST: every connection, but its age and idle time, which fakeredis reads from the wall clock.
    ask(lambda: [{k: v for k, v in c.items() if k not in ("age", "idle")} for c in r.client_list()])
    return seen


def test_a_lent_core_answers_every_command_as_a_new_client() -> None:
    reused, connection, clock = _reused()
    assert reused.connection is connection  # the dirtied core itself, reset
    new_clock = _Clock()
    new = SimulatedRedis(clock=new_clock)
    got = _answers(reused, clock)
    assert got == _answers(new, new_clock)
    assert got[0] == ("ok", (0, [], (1_700_000_000, 0), 1))
    assert got[-2][1][0] is None  # the 1.5 s lock expired on the new clock
    assert [c["id"] for c in got[-1][1]] == ["1", "2"]  # the client's connection and its pipeline's


def test_two_live_clients_never_share_a_core() -> None:
    a, b = fresh_redis(_Clock()), fresh_redis(_Clock())
    assert a.connection is not b.connection
    a.set("k", "a")
    assert b.get("k") is None


def test_a_pipeline_keeps_its_client_and_so_its_core() -> None:
    client = fresh_redis(_Clock())
    connection = client.connection
    pipe = client.pipeline()
    del client
    gc.collect()
    assert fresh_redis(_Clock()).connection is not connection
    assert pipe.owner is not None and pipe.owner.connection is connection


def _select(r: Any, c: _Clock) -> None:
    r.execute_command("SELECT", 1)


def _subscribed_pubsub(r: Any, c: _Clock) -> None:
    pubsub = r.pubsub()
    pubsub.subscribe("ch")
    _KEPT.append(pubsub)


UNFIT: dict[str, Callable[[Any, _Clock], None]] = {
    "MULTI left open": lambda r, c: r.execute_command("MULTI"),
    "WATCH left": lambda r, c: r.execute_command("WATCH", "k"),
    "SELECT": _select,
    "CLIENT SETNAME": lambda r, c: r.client_setname("worker"),
    "CONFIG SET": lambda r, c: r.config_set("notify-keyspace-events", "KEA"),
    "ACL SETUSER": lambda r, c: r.acl_setuser("someone", enabled=True),
    "a response callback set": lambda r, c: r.set_response_callback("GET", lambda response, **options: 1),
    "a subscribed PubSub kept": _subscribed_pubsub,
    "closed": lambda r, c: r.close(),
}


@pytest.mark.parametrize("what", sorted(UNFIT))
def test_a_core_a_run_left_in_a_state_the_reset_cannot_undo_is_never_lent_again(what: str) -> None:
    reused, connection, clock = _reused(UNFIT[what])
    assert reused.connection is not connection
    new_clock = _Clock()
    assert _answers(reused, clock) == _answers(SimulatedRedis(clock=new_clock), new_clock)


_HASHES = """
import json, sys
from simlab.batch.runner import run_once, run_seed
from simlab.batch.sweep import with_settings
from simlab.scenario import load_scenario
keys = json.loads(sys.argv[1])
scenarios = {}
for name, side, run in keys:
    sc = scenarios.setdefault((name, side), with_settings(load_scenario(name), {
        f"sagas.variants.{v}": side for v in ("disconnect_lock", "child_wait", "purge")}))
    print(json.dumps([name, side, run, run_once(sc, run_seed(run, sc.seed)).trace_hash]))
"""


def test_a_run_depends_on_no_run_before_it_in_its_process() -> None:
    """Runs of scenarios that use Redis (locks, fenced locks, outages) in one order here, and in the reverse
    order in a fresh process with another hash seed: the same trace hashes."""
    keys = [
        (name, side, run) for name in ("reconnect_race", "chaos_swarm") for side in ("seed", "safe") for run in (0, 1)
    ]
    here = {}
    for name, side, run in keys:
        scenario = with_settings(
            load_scenario(name), {f"sagas.variants.{v}": side for v in ("disconnect_lock", "child_wait", "purge")}
        )
        here[(name, side, run)] = run_once(scenario, run_seed(run, scenario.seed)).trace_hash
    reverse = subprocess.run(
        [sys.executable, "-c", _HASHES, json.dumps(keys[::-1])],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert reverse.returncode == 0, reverse.stderr
    there = {tuple(row[:3]): row[3] for row in map(json.loads, reverse.stdout.splitlines())}
    assert there == here
