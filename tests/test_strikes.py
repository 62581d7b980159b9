"""A run's fault schedule: every fault that struck is recorded, and ``faults.strikes`` replays or thins it."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from simlab.batch.batches import run_batch_to
from simlab.batch.results import load_results
from simlab.batch.runner import RunResult, run_once, run_seed
from simlab.batch.shards import LATER_TABLES, marker_path, table_path
from simlab.lab import scenario
from simlab.scenario import ScenarioError, load_scenario


def _with_strikes(name: str, labels: list[str] | None):
    return scenario(name, {"faults.strikes": labels})


@pytest.fixture(scope="module")
def swarm_run() -> tuple[int, RunResult]:
    """A chaos_swarm run in which at least three families struck."""
    swarm = scenario("chaos_swarm")
    for index in range(40):
        seed = run_seed(index, swarm.seed)
        result = run_once(swarm, seed)
        if len({strike.family for strike in result.strikes}) >= 3:
            return seed, result
    raise AssertionError("no chaos_swarm run among 40 had three families strike")


def test_every_strike_is_counted_once_and_named_in_draw_order(swarm_run):
    _seed, result = swarm_run
    labels = [strike.label for strike in result.strikes]
    assert len(labels) == len(set(labels))
    times = [strike.t for strike in result.strikes]
    assert times == sorted(times)
    by_key: dict[str, list[int]] = {}
    for label in labels:
        key, number = label.rsplit("#", 1)
        by_key.setdefault(key, []).append(int(number))
    for key, numbers in by_key.items():
        assert numbers == sorted(numbers), key  # each family's (and part's) faults strike in their drawn order


def test_the_recorded_schedule_replays_the_run_exactly(swarm_run):
    seed, result = swarm_run
    replayed = run_once(_with_strikes("chaos_swarm", [s.label for s in result.strikes]), seed)
    assert replayed.trace_hash == result.trace_hash
    assert replayed.strikes == result.strikes
    assert [v.invariant for v in replayed.violations] == [v.invariant for v in result.violations]


def test_an_empty_schedule_strikes_nothing_and_a_one_fault_schedule_strikes_that_one(swarm_run):
    seed, result = swarm_run
    quiet = run_once(_with_strikes("chaos_swarm", []), seed)
    assert quiet.strikes == []
    assert sum(quiet.faults_injected.values()) == 0  # nothing acted at all, Redis outages included
    first = result.strikes[0]
    alone = run_once(_with_strikes("chaos_swarm", [first.label]), seed)
    # Up to the first fault both runs are the same run, so it strikes at the same instant, the same way.
    assert alone.strikes == [first]


def test_leaving_a_fault_out_changes_the_run_only_from_that_fault_on(swarm_run):
    seed, result = swarm_run
    counts = Counter(label.rsplit("#", 1)[0] for label in (s.label for s in result.strikes))
    key = next(key for key, count in counts.items() if count >= 2)
    mine = [s for s in result.strikes if s.label.startswith(key + "#")]
    dropped = mine[0].label
    kept = [s.label for s in result.strikes if s.label != dropped]
    thinned = run_once(_with_strikes("chaos_swarm", kept), seed)
    before = [s for s in result.strikes if s.t < mine[0].t]
    assert thinned.strikes[: len(before)] == before  # the same run up to the fault left out
    assert dropped not in {s.label for s in thinned.strikes}
    assert len(thinned.strikes) < len(result.strikes) or thinned.strikes != result.strikes


def test_the_strikes_table_holds_every_run_s_schedule(tmp_path):
    swarm = scenario("chaos_swarm")
    run_batch_to(swarm, 4, swarm.seed, tmp_path / "b", workers=1)
    table = load_results(tmp_path / "b").strikes
    expected = [run_once(swarm, run_seed(i, swarm.seed)).strikes for i in range(4)]
    assert len(table) == sum(len(s) for s in expected)
    for run, strikes in enumerate(expected):
        rows = table[table["run"] == run]
        assert rows["strike"].tolist() == [s.label for s in strikes]
        assert rows["t"].tolist() == [s.t for s in strikes]


@pytest.mark.parametrize(
    ("labels", "problem"),
    [(["broker_errors"], "a strike is named FAMILY[/PART][@USER]#N"), (["redis@u@v#1"], "a strike is named"),
     (["bogus#1"], "unknown fault family 'bogus'"),
     (["redis#0"], "a strike is named"), (["redis#1", "redis#1"], "each strike is named once")],
)  # fmt: skip
def test_a_bad_strike_name_is_refused_naming_the_field(tmp_path, labels, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nfaults:\n  strikes: {labels!r}\n")
    with pytest.raises(ScenarioError, match=r"faults\.strikes") as refused:
        load_scenario(str(path))
    assert problem in str(refused.value)


def test_every_form_a_run_names_its_strikes_in_is_accepted(tmp_path):
    # A family with or without a part, drawn in a user's call (keyed: simlab.sim.keyed) or in no user's.
    labels = ["failing_compensations@user-2#1", "broker_errors/alpaca@user-0#3", "redis/outage#1", "event_delivery#2"]
    path = tmp_path / "repro.yaml"
    path.write_text(f"name: repro\nfaults:\n  strikes: {labels!r}\n")
    assert list(load_scenario(str(path)).faults.strikes or ()) == labels


def test_a_shard_written_before_strikes_and_probes_is_whole(tmp_path):
    # As the lab before issue 15 wrote it: no strikes or probes file, no entry for either in the marker,
    # and no ordering columns in its runs table.
    swarm = scenario("chaos_swarm")
    out = tmp_path / "b"
    run_batch_to(swarm, 4, swarm.seed, out, workers=1, shard_size=2)
    marker = marker_path(out, 0)
    sealed = json.loads(marker.read_text())
    for name in LATER_TABLES:
        del sealed["tables"][name]
        table_path(out, 0, name).unlink()
    marker.write_text(json.dumps(sealed))
    results = load_results(out)
    assert results.problems == [] and results.complete
    assert results.runs["run"].tolist() == [0, 1, 2, 3]
    assert set(results.strikes["run"]) <= {2, 3}
    assert len(results.strikes) == sum(len(run_once(swarm, run_seed(i, swarm.seed)).strikes) for i in (2, 3))
    assert sorted(LATER_TABLES) == ["probes", "strikes"]


def test_a_redis_outage_is_a_strike_of_its_own_and_can_be_left_out():
    swarm = scenario("chaos_swarm")
    for index in range(40):
        seed = run_seed(index, swarm.seed)
        result = run_once(swarm, seed)
        outages = [s for s in result.strikes if s.label.startswith("redis/outage#")]
        if outages:
            break
    else:
        raise AssertionError("no chaos_swarm run among 40 had a Redis outage refuse a command")
    assert result.faults_injected["redis"] >= len(outages)  # the first refusal strikes, later ones are counted
    others = [s.label for s in result.strikes if s not in outages]
    without = run_once(_with_strikes("chaos_swarm", others), seed)
    assert not [s for s in without.strikes if s.label.startswith("redis/")]
    assert without.faults_injected.get("redis", 0) == 0


def test_a_scenario_that_leaves_the_later_settings_alone_keeps_its_earlier_config_hash():
    from simlab.batch.batches import config_hash

    # Recorded with the lab of 41dc866, before orderings, faults.strikes and workload.only_users existed:
    # a batch written then is still recognised as run from its scenario.yaml (replay and shrink by folder).
    assert config_hash(scenario("reconnect_race")) == "fbff57a71a724f63"
    assert config_hash(scenario("chaos_swarm")) == "64a74d6d9c909992"
    assert config_hash(scenario("reconnect_race", {"sagas.variants.purge": "safe"})) == "c034ac61f01e0dd5"
    used = [
        scenario("reconnect_race", {"orderings.strategy": "random"}),
        scenario("reconnect_race", {"faults.strikes": []}),
        scenario("reconnect_race", {"workload.only_users": [0]}),
    ]
    assert len({config_hash(s) for s in used} | {"fbff57a71a724f63"}) == 4
