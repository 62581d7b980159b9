"""Fault families: each one observably does what it says, heals on time, and replays exactly from its seed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from sagas.engine.errors import DeadlineExceeded
from sagas.engine.events import Event
from sagas.engine.randomness import RandomStreams
from sagas.engine.trace import Outcome, Phase
from sagas.infra.redis_io import resolve
from sagas.infra.safe_ops import safe_set
from sagas.trading import commands as c
from sagas.trading.broker_port import BrokerTimeout, BrokerUnavailable, StreamDisconnected
from sagas.trading.sagas.base import connection_lock_key
from simlab.batch.batches import load_results
from simlab.batch.runner import run_once, run_seed
from simlab.chaos.faults import (
    FAMILIES,
    FaultWindows,
    FaultyBroker,
    FaultyEventBus,
    FaultyRedis,
    PlatformUnavailable,
    crash_schedule,
    install_faults,
    plan_faults,
)
from simlab.chaos.faults.family import PORTS
from simlab.chaos.faults.registry import REGISTRY
from simlab.chaos.workload import build_scenario_world, drive
from simlab.evidence.checks.endings import terminal_by_horizon
from simlab.evidence.sources import Evidence
from simlab.scenario import load_scenario
from simlab.scenario.faults import Faults
from simlab.scenario.model import Scenario
from simlab.sim.brokers import REAL, VirtualBroker
from simlab.sim.trading_world import TradingWorld

# A broker that never fails on its own, so every fault seen is an injected one.
CLEAN = dataclasses.replace(
    REAL,
    name="clean",
    unavailable_probability=0.0,
    rate_limited_probability=0.0,
    timeout_probability=0.0,
    timeout_after_success_probability=0.0,
    tail_probability=0.0,
    rate_limit_per_second=None,
    stream_disconnect_probability=0.0,
)


def _scenario(faults: dict[str, Any], **extra: Any) -> Scenario:
    return Scenario.model_validate({"name": "faults", "horizon_s": 1000, "faults": faults, **extra})


def _world(faults: dict[str, Any], seed: int = 0, **extra: Any) -> tuple[TradingWorld, FaultWindows, Scenario]:
    scenario = _scenario(faults, **extra)
    world = build_scenario_world(scenario, seed)
    for broker in world.brokers.values():
        assert isinstance(broker, VirtualBroker)
        broker.profile = CLEAN
    return world, install_faults(world, plan_faults(scenario, seed)), scenario


def _run(world: TradingWorld, *mains: Callable[[], Coroutine[Any, Any, Any]], until: float | None = None) -> list[Any]:
    runtime = world.sim.runtime
    tasks = [runtime.spawn(main(), name=f"probe {i}") for i, main in enumerate(mains)]
    runtime.run(until=until)
    return [task.result() for task in tasks]


async def _command(call: Callable[[], Any]) -> Any:
    """A Redis command as callers make it: a sync client may raise at once or reply, or hand back an awaitable."""
    return await resolve(call())


async def _outcome(awaitable: Any) -> str:
    try:
        await awaitable
    except Exception as error:  # noqa: BLE001 - the outcome is what the test looks at
        return type(error).__name__
    return "ok"


# -- the plan ----------------------------------------------------------------------------------


def test_families_are_the_schema_s():
    settings = ("swarm", "start_after_s", "heal_after_s", "strikes")
    assert set(FAMILIES) == {n for n in Faults.model_fields if n not in settings}


def test_every_family_of_the_schema_is_registered_once_with_its_own_schema_and_known_ports():
    assert sorted(family.name for family in REGISTRY) == sorted(FAMILIES)
    for family in REGISTRY:
        assert Faults.model_fields[family.name].annotation is family.schema, family.name
        assert set(family.ports) <= set(PORTS), family.name
        assert all(stream.startswith(f"faults/{family.name}") for stream in family.streams), family.name


def test_a_plan_is_the_same_from_a_seed_or_from_the_run_s_streams():
    scenario = load_scenario("chaos_swarm")
    for index in range(10):
        seed = run_seed(index, 0)
        assert plan_faults(scenario, seed) == plan_faults(scenario, RandomStreams(seed))


def test_without_swarm_enabled_families_are_on_at_their_configured_intensity():
    scenario = _scenario({"broker_errors": {"enabled": True}, "redis": {"enabled": True}})
    assert plan_faults(scenario, 1).intensity == {"broker_errors": 1.0, "redis": 1.0}
    assert plan_faults(_scenario({}), 1).intensity == {}


def test_swarm_switches_families_per_seed_and_replays_them_per_seed():
    scenario = load_scenario("chaos_swarm")
    plans = [plan_faults(scenario, run_seed(i, 0)).intensity for i in range(40)]
    assert plans == [plan_faults(scenario, run_seed(i, 0)).intensity for i in range(40)]
    assert len({tuple(sorted(p)) for p in plans}) > 20  # different combinations for different seeds
    swarmed = [f for f in FAMILIES if getattr(scenario.faults, f).enabled]
    assert set(swarmed) == set(FAMILIES)  # every family, overlapping managers included since leases exist
    for family in swarmed:  # every family is sometimes on, sometimes off, at varying intensity
        levels = [p[family] for p in plans if family in p]
        assert 0 < len(levels) < 40 and all(0 <= x < 1 for x in levels) and len(set(levels)) == len(levels)
    disabled = scenario.model_copy(
        update={"faults": scenario.faults.model_copy(update={"redis": Faults().redis})}
    )  # switching one family off leaves the others' draws alone
    for i in range(40):
        expected = {f: x for f, x in plans[i].items() if f != "redis"}
        assert plan_faults(disabled, run_seed(i, 0)).intensity == expected


def test_a_run_without_active_faults_is_exactly_the_run_without_faults():
    scenario = load_scenario("chaos_swarm")
    quiet = scenario.model_copy(update={"faults": Faults()})
    healed_at_once = scenario.model_copy(update={"faults": scenario.faults.model_copy(update={"heal_after_s": 0.0})})
    for index in range(3):
        seed = run_seed(index, 9)
        assert run_once(quiet, seed).trace_hash == run_once(healed_at_once, seed).trace_hash


# -- brokers -----------------------------------------------------------------------------------


def test_broker_errors_refuse_calls_before_they_reach_the_broker_until_the_heal():
    world, windows, _ = _world({"heal_after_s": 10, "broker_errors": {"enabled": True, "error_rate": 1.0}})
    broker, inner = world.deps.brokers["alpaca"], world.brokers["alpaca"]
    assert isinstance(broker, FaultyBroker) and isinstance(inner, VirtualBroker)
    runtime = world.sim.runtime

    async def main() -> list[tuple[float, str]]:
        seen = [(runtime.now(), await _outcome(broker.connect("c1", "secret")))]
        seen.append((runtime.now(), await _outcome(broker.next_order_update("c1", "o1", 0))))
        await runtime.sleep(10 - runtime.now())
        seen.append((runtime.now(), await _outcome(broker.connect("c1", "secret"))))
        return seen

    [seen] = _run(world, main)
    assert seen[0] == (0.0, BrokerUnavailable.__name__)
    assert seen[1] == (0.0, StreamDisconnected.__name__)
    assert seen[2][1] == "ok"  # healed at 10 s: the call goes through
    # The refused request is logged as load at the broker's door (what the lab's load plots count),
    # with nothing applied: the one session is the healed call's.
    assert [(c.started_at, c.operation, c.outcome) for c in inner.calls] == [
        (0.0, "connect", "BrokerUnavailable"),
        (10.0, "connect", "ok"),
    ]
    assert windows.injected["broker_errors"] == 2
    assert [(w.family, w.start, w.end) for w in windows] == [("broker_errors", 0.0, 10.0)]


def test_faults_strike_only_from_their_start_until_the_heal():
    faults = {"start_after_s": 5, "heal_after_s": 10, "broker_errors": {"enabled": True, "error_rate": 1.0}}
    world, windows, _ = _world(faults)
    broker, inner = world.deps.brokers["alpaca"], world.brokers["alpaca"]
    assert isinstance(inner, VirtualBroker)
    runtime = world.sim.runtime

    async def main() -> list[tuple[float, str]]:
        seen = []
        for at in (0.0, 4.5, 5.0, 9.5, 10.0):
            await runtime.sleep(at - runtime.now())
            seen.append((at, await _outcome(broker.disconnect("c1"))))
        return seen

    [seen] = _run(world, main)
    assert seen == [(0.0, "ok"), (4.5, "ok"), (5.0, "BrokerUnavailable"), (9.5, "BrokerUnavailable"), (10.0, "ok")]
    assert [(w.family, w.start, w.end) for w in windows] == [("broker_errors", 5.0, 10.0)]


def test_crashes_and_stalls_are_drawn_between_the_start_and_the_heal():
    crashes = {"enabled": True, "crashes": 3}
    stalls = {"enabled": True, "probability": 0.5, "stall_s": {"dist": "fixed", "value": 1.0}}
    for seed in range(5):
        plan = plan_faults(_scenario({"start_after_s": 20, "heal_after_s": 40, "manager_crashes": crashes}), seed)
        schedule = crash_schedule(plan)
        assert schedule and all(20 <= at < up <= 40 for at, up in schedule)
        world, windows, _ = _world({"start_after_s": 20, "heal_after_s": 40, "projection_stalls": stalls}, seed)
        world.sim.runtime.run(until=40)  # the stalls play out (nothing else runs)
        stalled = [(w.start, w.end) for w in windows if w.family == "projection_stalls"]
        assert stalled and all(20 <= start < end <= 40 for start, end in stalled)


def test_a_start_at_or_after_the_heal_is_refused_with_both_values():
    with pytest.raises(ValueError, match=r"start_after_s \(30\.0\) must be < heal_after_s \(30\.0\)"):
        Faults.model_validate({"start_after_s": 30, "heal_after_s": 30})
    assert Faults.model_validate({"heal_after_s": 0}).start_after_s == 0  # no faults, no start needed


def test_latency_spikes_multiply_the_call_s_duration_and_apply_the_effect_on_time():
    world, _, _ = _world({"latency_spikes": {"enabled": True, "probability": 1.0, "multiplier": 5.0}})
    broker, inner = world.deps.brokers["alpaca"], world.brokers["alpaca"]
    assert isinstance(inner, VirtualBroker)
    runtime = world.sim.runtime

    async def main() -> float:
        await broker.connect("c1", "secret")
        return runtime.now()

    [ended] = _run(world, main)
    [call] = inner.calls
    assert ended == pytest.approx(5 * (call.ended_at - call.started_at))
    assert call.started_at == 0.0 and call.outcome == "ok" and inner.has_session("c1")


@pytest.mark.parametrize("after_success", [False, True])
def test_broker_timeouts_look_the_same_whether_or_not_the_call_took_effect(after_success):
    share = 1.0 if after_success else 0.0
    world, _, _ = _world({"broker_timeouts": {"enabled": True, "probability": 1.0, "after_success_share": share}})
    broker, inner = world.deps.brokers["alpaca"], world.brokers["alpaca"]
    assert isinstance(inner, VirtualBroker)
    runtime = world.sim.runtime

    async def main() -> tuple[float, str]:
        try:
            await broker.connect("c1", "secret")
        except BrokerTimeout as timeout:
            return runtime.now(), str(timeout)
        raise AssertionError("no timeout")

    [(at, message)] = _run(world, main)
    assert (at, message) == (CLEAN.timeout_after_s, f"alpaca: no answer within {CLEAN.timeout_after_s:g} s")
    assert inner.has_session("c1") is after_success  # applied, or never reached the broker
    assert [call.outcome for call in inner.calls] == (["ok"] if after_success else ["BrokerTimeout"])


# -- Redis -------------------------------------------------------------------------------------


def test_redis_outages_fail_commands_exactly_inside_the_window():
    world, windows, _ = _world({"redis": {"enabled": True, "outages": [{"start_s": 5.0, "duration_s": 3.0}]}})
    redis, runtime = world.deps.redis, world.sim.runtime
    assert isinstance(redis, FaultyRedis)

    async def main() -> dict[float, tuple[str, str, str, bool]]:
        seen = {}
        for at in (4.999, 5.0, 6.0, 7.999, 8.0):
            await runtime.sleep(at - runtime.now())
            seen[at] = (
                await _outcome(_command(lambda: redis.set("k", "v"))),
                await _outcome(world.deps.locks.acquire(f"lock:{at}", "me", 300)),
                await _outcome(world.deps.cache.get("u", "b", "c", "item")),
                await safe_set(redis, f"seed:{at}", "me", ttl_seconds=300, nx=True),  # the seed cannot tell
            )
        return seen

    [seen] = _run(world, main)
    down = ("ConnectionError", "ConnectionError", "ConnectionError", False)
    assert seen == {4.999: ("ok", "ok", "ok", True), 5.0: down, 6.0: down, 7.999: down, 8.0: ("ok", "ok", "ok", True)}
    assert [(w.family, w.start, w.end) for w in windows] == [("redis", 5.0, 8.0)]
    assert world.redis.get("k") == b"v"  # the client underneath never saw the failed commands


def test_redis_latency_is_awaited_and_a_command_landing_in_an_outage_fails_there():
    latency = {"dist": "fixed", "value": 0.5}
    world, _, _ = _world(
        {"redis": {"enabled": True, "latency_s": latency, "outages": [{"start_s": 5, "duration_s": 3}]}}
    )
    redis, runtime = world.deps.redis, world.sim.runtime

    async def at(t: float) -> tuple[float, float, str]:
        await runtime.sleep(t - runtime.now())
        outcome = await _outcome(_command(lambda: redis.set(f"k{t}", "v")))
        return t, runtime.now(), outcome

    results = _run(world, *(lambda t=t: at(t) for t in (1.0, 4.6, 7.7, 8.0)))
    assert results == [
        (1.0, 1.5, "ok"),
        (4.6, 5.1, RedisConnectionError.__name__),  # sent before the outage, arrived inside it
        (7.7, 7.7, RedisConnectionError.__name__),  # refused at once
        (8.0, 8.5, "ok"),
    ]


# -- process pauses ----------------------------------------------------------------------------


def test_a_process_pause_outlasts_the_lock_s_ttl_and_its_deadline_fires_only_when_it_thaws():
    pause = {"enabled": True, "probability": 1.0, "pause_s": {"dist": "fixed", "value": 400.0}}
    world, windows, _ = _world({"heal_after_s": 600, "process_pauses": pause})
    locks, runtime = world.deps.locks, world.sim.runtime

    async def holder() -> tuple[float, bool]:
        acquired = await locks.acquire("L", "A", 300)  # frozen for 400 s right after taking the lock
        return runtime.now(), acquired

    async def intruder() -> bool:
        await runtime.sleep(350)  # the TTL ran out at 300 s: anyone can take it
        return bool(world.redis.set("L", "B", nx=True, px=300_000))

    async def seed_style() -> tuple[float, bool]:
        acquired = await safe_set(world.deps.redis, "S", "D", ttl_seconds=300, nx=True)
        return runtime.now(), acquired

    async def fenced() -> tuple[float, int | None, int | None]:
        token = await locks.acquire_fenced("F", "G", 300)  # SET NX PX and INCR in one transaction
        refused = await locks.acquire_fenced("L", "H", 300)  # held by A: no token, and no pause
        return runtime.now(), token, refused

    async def deadline_at() -> tuple[float, str]:
        outcome = await _outcome(runtime.run_with_deadline(locks.acquire("N", "E", 300), 10))
        return runtime.now(), outcome

    held, intruded, seed, timed, fenced_at = _run(world, holder, intruder, seed_style, deadline_at, fenced)
    assert held == (400.0, True) and intruded is True and world.redis.get("L") == b"B"  # two holders believe
    assert seed == (400.0, True)  # the seed's safe_set lock freezes alike
    assert timed == (400.0, DeadlineExceeded.__name__)  # due at 10 s, delivered at the thaw
    assert fenced_at == (400.0, 1, None)  # the fenced acquisition freezes alike; a refused one does not
    pauses = [w for w in windows if w.family == "process_pauses" and w.start == 0.0 and w.end == 400.0]
    assert len(pauses) == 4 and windows.injected["process_pauses"] == 4


def test_a_crash_ends_a_pause_at_once():
    pause = {"enabled": True, "probability": 1.0, "pause_s": {"dist": "fixed", "value": 400.0}}
    world, _, _ = _world({"process_pauses": pause})
    runtime = world.sim.runtime
    frozen = runtime.spawn(world.deps.locks.acquire("L", "A", 300), name="frozen")

    async def crash() -> float:
        await runtime.sleep(20)
        frozen.cancel()
        await runtime.sleep(0)
        return runtime.now()

    assert _run(world, crash) == [20.0] and frozen.done()


# -- event delivery ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Ping(Event):
    n: int = 0


def test_duplicated_events_keep_their_id_and_start_no_second_saga():
    world, windows, _ = _world({"event_delivery": {"enabled": True, "duplicate_probability": 1.0}})
    bus = world.manager.event_bus
    assert isinstance(bus, FaultyEventBus)
    seen: list[str] = []

    async def listen(event: Ping) -> None:
        seen.append(event.event_id)

    bus.subscribe(Ping, listen)

    async def main() -> None:
        await bus.publish(Ping(event_id="p1"))
        await world.manager.command_bus.send(c.CreateUser("u1"))
        await world.manager.command_bus.send(c.ConnectBroker("u1", "alpaca"))

    _run(world, main, until=200)
    assert seen == ["p1", "p1"]
    records = world.sim.tracer.records
    started = [r for r in records if r.phase == "saga" and r.outcome == "started"]
    assert [r.saga_type for r in started] == ["BrokerConnectionSaga"]
    assert any(r.outcome == "duplicate_trigger" for r in records)
    assert windows.injected["event_delivery"] >= 2


def test_delayed_events_arrive_late_and_out_of_order_and_nothing_is_delayed_after_the_heal():
    delay = {"dist": "fixed", "value": 0.5}
    delivery = {"enabled": True, "duplicate_probability": 0.0, "delay_probability": 1.0, "delay_s": delay}
    world, _, _ = _world({"heal_after_s": 1.0, "event_delivery": delivery})
    bus, runtime = world.manager.event_bus, world.sim.runtime
    seen: list[tuple[float, int]] = []

    async def listen(event: Ping) -> None:
        seen.append((runtime.now(), event.n))

    bus.subscribe(Ping, listen)

    async def main() -> None:
        await runtime.sleep(0.9)
        await bus.publish(Ping(event_id="a", n=1))  # delayed to 1.4
        await runtime.sleep(0.1)
        await bus.publish(Ping(event_id="b", n=2))  # healed: delivered at once

    _run(world, main)
    assert seen == [(1.0, 2), (pytest.approx(1.4), 1)]


# -- projection stalls -------------------------------------------------------------------------


def test_projections_stall_in_the_planned_windows_and_catch_up_after():
    stalls = {"enabled": True, "probability": 0.2, "stall_s": {"dist": "fixed", "value": 3.0}}
    workload = {"users": 4, "cycles": {"count": 3}}
    world, windows, scenario = _world({"heal_after_s": 30, "projection_stalls": stalls}, workload=workload)
    world.sim.runtime.spawn(drive(world, scenario), name="workload")
    world.sim.runtime.run(until=scenario.horizon_s)
    stalled = [(w.start, w.end) for w in windows if w.family == "projection_stalls"]
    assert stalled and all(end <= 30 for _, end in stalled)
    applied = [a for a in world.projections.applied if a.projection == "accounts"]
    assert applied and world.projections.backlog("accounts") == 0
    for a in applied:
        assert not any(start + 1e-9 < a.applied_at < end - 1e-9 for start, end in stalled), a
    assert any(abs(a.applied_at - end) < 1e-9 for a in applied for _, end in stalled)  # held back until it ended


# -- failing compensations ---------------------------------------------------------------------


def test_a_compensation_attempt_fails_at_its_first_port_call_and_nothing_else_does():
    world, windows, _ = _world({"failing_compensations": {"enabled": True, "probability": 1.0}})
    runtime, tracer = world.sim.runtime, world.sim.tracer
    broker, bus, redis = world.deps.brokers["alpaca"], world.manager.command_bus, world.deps.redis
    ports: dict[str, Callable[[], Any]] = {
        "broker": lambda: broker.connect("c1", "secret"),
        "command": lambda: bus.send(c.CreateUser("u1")),
        "redis": lambda: _command(lambda: redis.get("k")),
    }

    async def calls(order: list[str]) -> list[str]:
        return [await _outcome(ports[name]()) for name in order]

    async def attempt(saga_id: str, phase: Phase, number: int, order: list[str]) -> list[str]:
        tracer.record(saga_id, "T", step="step", attempt=number, phase=phase, outcome=Outcome.STARTED)
        return await calls(order)

    driving: dict[object, str] = {}  # stands in for the manager: which saga each task drives
    world.sim.saga_of = driving.get  # type: ignore[method-assign]

    async def as_saga(saga_id: str, phase: Phase, number: int, order: list[str]) -> list[str]:
        task = runtime.spawn(attempt(saga_id, phase, number, order), name="attempt")
        driving[task] = saga_id
        return await task.join()

    async def main() -> list[list[str]]:
        seen = []
        for number, order in enumerate((["broker", "command"], ["command", "redis"], ["redis", "broker"]), 1):
            seen.append(await as_saga("s1", Phase.COMPENSATE, number, order))
        seen.append(await as_saga("s2", Phase.EXECUTE, 1, ["broker"]))
        seen.append(await calls(["broker", "command", "redis"]))  # not a saga at all (the workload)
        return seen

    [seen] = _run(world, main)
    assert seen == [
        [BrokerUnavailable.__name__, "ok"],  # one failure per attempt: its first port call
        [PlatformUnavailable.__name__, "ok"],
        [RedisConnectionError.__name__, "ok"],
        ["ok"],
        ["ok", "ok", "ok"],
    ]
    assert windows.injected["failing_compensations"] == 3


def test_failing_compensations_show_up_as_failed_compensation_attempts_in_a_run():
    scenario = load_scenario("chaos_swarm")
    faults = Faults.model_validate(
        {"heal_after_s": 600, "failing_compensations": {"enabled": True, "probability": 1.0}}
    )
    faulty = scenario.model_copy(update={"faults": faults})
    injected = {"BrokerUnavailable", "PlatformUnavailable", "ConnectionError"}
    failed = 0
    for index in range(5):  # runs 0-3 compensate only steps that call no port; in run 4, 10 attempts fail
        result = run_once(faulty, run_seed(index, 0), keep_trace=True)
        failed += sum(1 for r in result.trace if r.phase == "compensate" and r.error_type in injected)
        assert not [r for r in result.trace if r.phase == "compensate" and r.error_type in injected and r.t >= 600]
    assert failed == 10


# -- manager crashes ---------------------------------------------------------------------------


def _crash_world() -> tuple[TradingWorld, FaultWindows, float, float]:
    """A world (safe variants, 0.5 s buses, 5 s lock TTL) whose one crash falls between 30 and 150 s."""
    faults = {
        "heal_after_s": 200,
        "manager_crashes": {"enabled": True, "restart_after_s": {"dist": "fixed", "value": 2}},
    }
    extra = {
        "brokers": {"alpaca": {"profile": "virtual"}},
        "bus_latency": {"command_median_s": 0.5, "query_median_s": 0.5, "sigma": 0.0},
        "sagas": {"variants": {"disconnect_lock": "safe", "child_wait": "safe", "purge": "safe"}, "lock_ttl_s": 5},
    }
    for seed in range(100):
        [(crash, up)] = crash_schedule(plan_faults(_scenario(faults, **extra), seed))
        if 30 < crash < 150:
            world, windows, _ = _world(faults, seed, **extra)
            assert [(w.start, w.end) for w in windows if w.family == "manager_crashes"] == [(crash, up)]
            return world, windows, crash, up
    raise AssertionError("no seed puts the crash between 30 and 150 s")


def test_a_crashed_manager_restarts_resumes_its_sagas_and_gets_the_events_it_missed():
    world, _, crash, up = _crash_world()
    assert up == pytest.approx(crash + 2)
    runtime, first_manager = world.sim.runtime, world.manager
    bus = world.manager.command_bus
    seen: dict[str, Any] = {}

    async def flow() -> None:
        await bus.send(c.CreateUser("u1"))
        seen["connection"] = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await runtime.sleep(crash - 0.75 - runtime.now())
        await bus.send(c.DisconnectBroker(seen["connection"]))  # its saga's first query is in flight at the crash
        await runtime.sleep(crash + 0.5 - runtime.now())
        await bus.send(c.CreateUser("u2"))
        await bus.send(c.ConnectBroker("u2", "alpaca"))  # its event is published while the manager is down

    async def look_at_the_lock() -> None:
        await runtime.sleep(crash + 0.1)
        value = world.redis.get(connection_lock_key(seen["connection"]))
        seen["holder"] = value.decode() if value is not None else None

    _run(world, flow, look_at_the_lock, until=1000)
    assert world.manager is not first_manager

    records = world.sim.tracer.records
    started = [r for r in records if r.phase == "saga" and r.outcome == "started"]
    [disconnection] = [r.saga_id for r in started if r.saga_type == "BrokerDisconnectionSaga"]
    mine = [r for r in records if r.saga_id == disconnection]
    assert any(r.outcome == "cancelled" and r.t == crash for r in mine)
    assert any(r.outcome == "resumed" and r.t == pytest.approx(up) for r in mine)
    # The dead process's except-block release never reached Redis: the lock stayed until its TTL.
    assert seen["holder"] == disconnection
    # The second user's connection event waited for the new manager.
    connections = [r.t for r in started if r.saga_type == "BrokerConnectionSaga"]
    assert len(connections) == 2 and connections[1] == pytest.approx(up)
    assert terminal_by_horizon(Evidence.gather(world, 1000)) == []
    ends = {r.saga_id: r.outcome for r in records if r.phase == "saga" and r.outcome in ("completed", "aborted")}
    assert set(ends) == {r.saga_id for r in started} and ends[disconnection] == "completed"


def test_every_saga_still_reaches_a_terminal_status_after_crashes():
    scenario = _scenario(
        {"heal_after_s": 60, "manager_crashes": {"enabled": True, "crashes": 3}},
        workload={"users": 4, "cycles": {"count": 3}, "user_deletions": {"probability": 0.5}},
        invariants=["terminal_by_horizon", "compensation_exact", "no_data_loss", "no_orphans"],
        horizon_s=900,
    )
    resumed = 0
    for index in range(6):
        result = run_once(scenario, run_seed(index, 0), keep_trace=True)
        assert [w.family for w in result.fault_windows] == ["manager_crashes"] * 3
        assert not [v for v in result.violations if v.invariant in ("terminal_by_horizon", "task_failed")]
        resumed += sum(1 for r in result.trace if r.outcome == "resumed")
    assert resumed > 0


# -- the heal ----------------------------------------------------------------------------------


def test_at_the_heal_every_family_stops_and_every_wrapper_passes_calls_through():
    always = {"enabled": True, "probability": 1.0}
    faults = {
        "heal_after_s": 10,
        "broker_errors": {"enabled": True, "error_rate": 1.0},
        "latency_spikes": {**always, "multiplier": 50},
        "broker_timeouts": always,
        "redis": {
            "enabled": True,
            "latency_s": {"dist": "fixed", "value": 1.0},
            "outages": [{"start_s": 5, "duration_s": 95}],
        },
        "process_pauses": always,
        "manager_crashes": {"enabled": True, "crashes": 3, "restart_after_s": {"dist": "fixed", "value": 30}},
        "event_delivery": {"enabled": True, "duplicate_probability": 1.0, "delay_probability": 1.0},
        "projection_stalls": {**always, "stall_s": {"dist": "fixed", "value": 100}},
        "failing_compensations": always,
        "overlapping_managers": {"enabled": True},
    }
    world, windows, _ = _world(faults)
    assert {w.family for w in windows} == set(FAMILIES)
    assert all(w.end <= 10 for w in windows)  # outages, downtime and stalls all end by the heal
    runtime, tracer = world.sim.runtime, world.sim.tracer
    broker, inner = world.deps.brokers["alpaca"], world.brokers["alpaca"]
    assert isinstance(inner, VirtualBroker)
    seen: list[int] = []

    async def listen(event: Ping) -> None:
        seen.append(event.n)

    world.manager.event_bus.subscribe(Ping, listen)

    async def compensation() -> list[str]:
        tracer.record("s1", "T", step="step", attempt=1, phase=Phase.COMPENSATE, outcome=Outcome.STARTED)
        return [
            await _outcome(world.manager.command_bus.send(c.CreateUser("u1"))),
            await _outcome(_command(lambda: world.deps.redis.get("k"))),
        ]

    async def main() -> dict[str, Any]:
        await runtime.sleep(10)
        started = runtime.now()
        await broker.connect("c1", "secret")
        [call] = inner.calls
        reply = world.deps.redis.set("k", "v")  # no latency: a plain reply again
        acquired = await world.deps.locks.acquire("L", "me", 300)  # no pause
        await world.manager.event_bus.publish(Ping(event_id="p", n=1))  # once, at once
        return {
            "broker": (call.started_at == started, runtime.now() - started == call.ended_at - call.started_at),
            "redis": (reply, acquired),
            "events": list(seen),
            "compensation": await runtime.spawn(compensation(), name="saga s1").join(),
            "stalled_until": world.projections._stalled_until.get("accounts", 0.0),
        }

    [result] = _run(world, main, until=500)
    assert result == {
        "broker": (True, True),
        "redis": (True, True),
        "events": [1],
        "compensation": ["ok", "ok"],
        "stalled_until": 10.0,
    }
    assert windows.injected["manager_crashes"] == len([w for w in windows if w.family == "manager_crashes"]) >= 1


# -- determinism and the command line ----------------------------------------------------------


def test_chaos_swarm_replays_exactly_and_runs_from_the_command_line(tmp_path):
    scenario = load_scenario("chaos_swarm")
    seeds = [run_seed(index, scenario.seed) for index in range(20)]
    hashes = {seed: run_once(scenario, seed).trace_hash for seed in seeds[:6]}
    assert hashes == {seed: run_once(scenario, seed).trace_hash for seed in seeds[:6]}
    out = tmp_path / "chaos"
    run = subprocess.run(
        [sys.executable, "-m", "simlab", "run", "chaos_swarm", "--runs", "20", "--workers", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = load_results(out)
    from_cli = dict(zip(results.runs["seed"].tolist(), results.runs["trace_hash"].tolist(), strict=True))
    assert {seed: from_cli[seed] for seed in hashes} == hashes  # other processes, same traces
    assert len(results.faults) > 0 and set(results.faults["family"]) <= set(FAMILIES)
