"""Keyed draws: a shared stream is split per user, so leaving a user out leaves other users' draws in place."""

from __future__ import annotations

import contextvars
import copy
import random

import pytest

from sagas.engine.randomness import RandomStreams
from simlab.batch.runner import run_once, run_seed
from simlab.batch.sweep import with_settings
from simlab.scenario import load_scenario
from simlab.sim.keyed import KeyedRandom, KeyedStreams, acting_for, current_entity
from simlab.sim.runtime import SimRuntime


def test_a_draw_comes_from_the_stream_of_the_entity_whose_task_makes_it():
    keyed = KeyedStreams(7).stream("bus/command")
    plain = RandomStreams(7)
    runtime = SimRuntime()
    drawn: dict[str, list[float]] = {}

    async def child(label: str) -> None:
        await runtime.sleep(1)
        drawn[label] = [keyed.random(), keyed.lognormvariate(0.0, 0.5), keyed.gauss(0.0, 1.0)]

    async def user(entity: str) -> None:
        acting_for(entity)
        await runtime.spawn(child(entity)).join()  # a task it spawns draws for it too

    async def main() -> None:
        for entity in ("user-0", "user-1"):
            runtime.spawn(user(entity))
        await runtime.sleep(2)
        drawn["none"] = [keyed.random()]
        assert current_entity() is None

    runtime.spawn(main())
    runtime.run()
    for entity in ("user-0", "user-1"):
        reference = plain.stream(f"bus/command|{entity}")
        expected = [reference.random(), reference.lognormvariate(0.0, 0.5), reference.gauss(0.0, 1.0)]
        assert drawn[entity] == expected
    assert drawn["user-0"] != drawn["user-1"]
    assert drawn["none"] == [plain.stream("bus/command").random()]  # no entity: the component's own stream


def _every_draw(rng: random.Random) -> list[object]:
    items = list(range(10))
    rng.shuffle(items)
    return [
        rng.random(),
        rng.getrandbits(70),
        rng.randrange(1000),
        rng.randint(1, 6),
        rng.choice("abcdef"),
        rng.choices("abc", k=3),
        rng.sample(range(100), 3),
        items,
        rng.uniform(1.0, 2.0),
        rng.triangular(),
        rng.betavariate(2.0, 3.0),
        rng.expovariate(1.5),
        rng.gammavariate(2.0, 1.0),
        rng.gauss(0.0, 1.0),
        rng.lognormvariate(0.0, 0.5),
        rng.normalvariate(0.0, 1.0),
        rng.vonmisesvariate(1.0, 2.0),
        rng.paretovariate(3.0),
        rng.weibullvariate(1.0, 2.0),
        rng.randbytes(5),
    ]


def test_every_kind_of_draw_comes_from_the_entitys_stream_never_from_the_keyed_objects_own():
    keyed = KeyedStreams(3).stream("broker/alpaca")
    assert isinstance(keyed, KeyedRandom)

    def for_user_4() -> list[object]:
        acting_for("user-4")
        return _every_draw(keyed)

    drawn = contextvars.copy_context().run(for_user_4)  # the test's own context keeps no entity
    assert current_entity() is None
    assert drawn == _every_draw(RandomStreams(3).stream("broker/alpaca|user-4"))


def test_streams_that_are_per_user_already_or_one_shared_walk_are_not_split():
    streams = KeyedStreams(7)
    assert isinstance(streams.stream("ids/saga"), KeyedRandom)
    assert isinstance(streams.stream("faults/broker_errors/alpaca"), KeyedRandom)
    for name in ("workload/user-1", "workload/starts", "market/alpaca/AAPL", "orderings"):
        rng = streams.stream(name)
        assert type(rng) is random.Random
        assert rng.random() == RandomStreams(7).stream(name).random()
    assert streams.stream("ids/saga") is streams.stream("ids/saga")
    with pytest.raises(TypeError, match="one stream per entity"):
        copy.copy(streams.stream("ids/saga"))  # its one state would not be the entities' streams


def _records_of(result, saga_ids):
    return [record for record in result.trace if record.saga_id in saga_ids]


def test_a_user_left_out_moves_no_draw_of_another_user():
    # broker_connection, run 0: five users against brokers that fail, time out and spike, a Redis outage
    # and a manager crash. User 2 alone makes exactly the trace records (sagas, ids, steps, attempts,
    # errors, instants) it made among the others: its latencies, faults and ids come from its own streams.
    scenario = load_scenario("broker_connection")
    seed = run_seed(0, scenario.seed)
    full = run_once(scenario, seed, keep_trace=True)
    alone = run_once(with_settings(scenario, {"workload.only_users": [2]}), seed, keep_trace=True)
    mine = {r.saga_id for r in alone.trace if r.saga_id}
    assert len(mine) == 2 and len({r.saga_id for r in full.trace if r.saga_id}) == 10
    assert len(_records_of(alone, mine)) == 32
    assert _records_of(alone, mine) == _records_of(full, mine)


def test_a_drawn_fault_is_named_for_the_user_whose_call_drew_it():
    scenario = load_scenario("broker_connection")
    seed = run_seed(0, scenario.seed)
    full = run_once(scenario, seed)
    alone = run_once(with_settings(scenario, {"workload.only_users": [2]}), seed)
    drawn = [s for s in full.strikes if s.family == "broker_errors"]
    assert drawn and all("@user-" in s.label for s in drawn)
    # The faults user 2 met alone are the ones it met among the others, by name and instant.
    of_user_2 = [(s.t, s.label) for s in full.strikes if "@user-2#" in s.label]
    assert of_user_2 and [(s.t, s.label) for s in alone.strikes if "@user-" in s.label] == of_user_2


def test_a_saga_resumed_after_a_crash_still_draws_for_its_user(monkeypatch):
    # broker_connection, run 1: the manager crashes while user 1's connection saga runs; the restarted manager's
    # recovery loop (no user's task) resumes it at 16.549 s. The saga acts for the user its trigger names, so
    # user 1 alone still makes exactly the records it made among the others.
    scenario = load_scenario("broker_connection")
    seed = run_seed(1, scenario.seed)
    only_1 = with_settings(scenario, {"workload.only_users": [1]})

    def user_1_alone_and_among_others() -> tuple[list, list]:
        alone = run_once(only_1, seed, keep_trace=True)
        mine = {r.saga_id for r in alone.trace if r.saga_id}
        return _records_of(alone, mine), _records_of(run_once(scenario, seed, keep_trace=True), mine)

    alone, among = user_1_alone_and_among_others()
    assert [(round(r.t, 3), r.saga_type) for r in alone if r.outcome == "resumed"] == [(16.549, "BrokerConnectionSaga")]
    assert alone == among
    # Without giving the resumed saga its user, it draws from the component's own stream, which the other
    # users' resumed sagas draw from too: user 1 alone is no longer the same story.
    monkeypatch.setattr("simlab.chaos.workload.SagaEntities", lambda user_of: None)
    alone, among = user_1_alone_and_among_others()
    assert alone != among
