"""The batch runner: Parquet shards, identical tables on any number of workers, resumption."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simlab.batch import batches
from simlab.batch.batches import config_hash, load_results, resumed_shard_size, run_batch_to, shard_size_for
from simlab.batch.runner import run_once
from simlab.batch.shards import plan_shards, scan_folder
from simlab.scenario import load_scenario

RUNS = 12
SHARD = 4


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("reconnect_race")


def test_tables_are_identical_on_one_and_two_workers(scenario, tmp_path: Path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_batch_to(scenario, RUNS, 1, one, workers=1, shard_size=SHARD)
    run_batch_to(scenario, RUNS, 1, two, workers=2, shard_size=SHARD)
    a, b = load_results(one), load_results(two)
    for name in ("runs", "sagas", "attempts", "violations", "faults"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert a.runs["run"].tolist() == list(range(RUNS))
    assert {"scenario", "config_hash", "seed", "run"} <= set(a.sagas.columns)
    assert (a.sagas["scenario"] == "reconnect_race").all()


def test_an_interrupted_batch_keeps_its_shards_and_a_rerun_completes_only_what_is_missing(scenario, tmp_path: Path):
    out = tmp_path / "batch"
    run_batch_to(scenario, RUNS, 1, out, workers=1, shard_size=SHARD)
    before = load_results(out)
    # as if interrupted during the last shard: its marker (and one of its tables) never got written
    (out / "shard-00002.done").unlink()
    (out / "shard-00002.sagas.parquet").unlink()
    assert set(scan_folder(out).finished) == {0, 1}
    assert len(load_results(out).runs) == 8  # the finished shards are usable as they are
    ran, _ = run_batch_to(scenario, RUNS, 1, out, workers=1, shard_size=SHARD)
    assert ran == 4
    after = load_results(out)
    assert after.runs.equals(before.runs) and after.sagas.equals(before.sagas)


def test_a_folder_holding_another_batch_is_refused(scenario, tmp_path: Path):
    out = tmp_path / "batch"
    run_batch_to(scenario, 4, 1, out, workers=1, shard_size=SHARD)
    with pytest.raises(ValueError, match="holds a different batch"):
        run_batch_to(scenario, 4, 2, out, workers=1, shard_size=SHARD)


def test_an_invalid_scenario_creates_no_output_folder(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nworkload: {users: -1}\n")
    out = tmp_path / "never"
    result = subprocess.run(
        [sys.executable, "-m", "simlab", "run", str(bad), "--out", str(out)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"simlab run: {bad}: workload.users: Input should be greater than or equal to 1 (got -1)"
    )
    assert not out.exists()


def test_check_determinism_passes_for_reconnect_race():
    result = subprocess.run(
        [sys.executable, "-m", "simlab", "check-determinism", "reconnect_race", "--runs", "8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical tables twice on 1 worker and on 2 workers" in result.stdout


def test_a_batch_folder_keeps_the_exact_scenario_it_ran_so_any_run_replays_from_it(tmp_path):
    scenario = load_scenario("reconnect_race")
    out = tmp_path / "batch"
    run_batch_to(scenario, 3, 5, out, workers=1)
    kept = load_scenario(str(out / "scenario.yaml"))
    assert config_hash(kept) == config_hash(scenario)
    results = load_results(out)
    seed = int(results.runs["seed"].iloc[2])
    assert run_once(kept, seed).trace_hash == results.runs["trace_hash"].iloc[2]


def test_seeds_come_back_exact_whichever_shards_hold_them(tmp_path):
    """Seeds are unsigned 64-bit: a shard of seeds below 2**63 and one above must not meet as floats."""
    from simlab.batch.runner import run_seed

    seeds = [run_seed(i, 5) for i in range(6)]
    assert min(seeds) < 2**63 <= max(seeds)  # both kinds of shard occur below
    run_batch_to(load_scenario("reconnect_race"), 6, 5, tmp_path / "b", workers=1, shard_size=1)
    loaded = load_results(tmp_path / "b").runs["seed"].tolist()
    assert loaded == seeds and all(isinstance(s, int) for s in loaded)


@pytest.mark.parametrize(
    ("runs", "size", "shards"),
    [(1, 1, 1), (5, 1, 5), (17, 1, 17), (33, 2, 17), (200, 12, 17), (250, 15, 17), (4000, 250, 16), (10_000, 250, 40)],
)
def test_a_small_batch_is_cut_into_enough_shards_for_every_worker(runs, size, shards):
    assert shard_size_for(runs) == size
    assert len(plan_shards(runs, size)) == shards >= min(runs, 16)


def test_the_progress_bar_counts_every_run_not_only_finished_shards(scenario, tmp_path: Path, monkeypatch):
    # One worker: a call per run. Two: the workers' shared count of runs, read while shards run (here
    # every millisecond, so that one shard of 12 runs cannot finish unseen); both end at the total.
    monkeypatch.setattr(batches, "LIVE_PROGRESS_SECONDS", 0.001)
    for workers, shard_size in ((1, 6), (2, RUNS)):
        calls: list[tuple[int, int, int]] = []
        out = tmp_path / f"w{workers}"
        ran, found = run_batch_to(
            scenario, RUNS, 1, out, workers=workers, shard_size=shard_size, progress=_recorder(calls)
        )
        done = [call[0] for call in calls]
        assert done == sorted(set(done)) and done[0] == 0 and calls[-1] == (RUNS, RUNS, found)
        assert (ran, len(load_results(out).violations)) == (RUNS, found)
        if workers == 1:
            assert done == list(range(RUNS + 1))
        else:  # the bar moved before the batch's only shard was written
            assert any(0 < count < RUNS for count in done), done


def _recorder(calls: list[tuple[int, int, int]]):
    return lambda done, total, violations: calls.append((done, total, violations))


def test_a_resumed_batch_keeps_the_shard_size_it_was_started_with(scenario, tmp_path: Path):
    out = tmp_path / "batch"
    run_batch_to(scenario, RUNS, 1, out, workers=1, shard_size=5)  # not the default size of 12 runs (1)
    (out / "shard-00002.done").unlink()
    ran, _ = run_batch_to(scenario, RUNS, 1, out, workers=1)  # the same command without --shard-size
    assert ran == 2 and set(scan_folder(out).finished) == {0, 1, 2}
    # Another batch in the folder lends it no shard size: it is refused as another batch, not for its shards.
    assert resumed_shard_size(out, RUNS, 1) == 5 and resumed_shard_size(out, RUNS + 1, 1) is None
    assert resumed_shard_size(out, RUNS, 2) is None
    with pytest.raises(ValueError, match="holds a different batch"):
        run_batch_to(scenario, 200_000, 1, out, workers=1)
