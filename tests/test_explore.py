"""``simlab explore``: the same seeds under each strategy, each a batch folder; the table agrees with the runs."""

from __future__ import annotations

import contextlib
import io

import pytest

from simlab.batch.results import load_results
from simlab.batch.runner import count_choice_points, run_once, run_seed
from simlab.cli import main
from simlab.lab import scenario
from simlab.present.explore import explore_table
from simlab.scenario import load_scenario

RUNS = 6
ROOT = 3


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("explore") / "race"
    argv = ["explore", "reconnect_race", "--strategies", "fifo,random,pct:2", "--runs", str(RUNS), "--seed",
            str(ROOT), "--workers", "1", "--out", str(out)]  # fmt: skip
    return out, *_cli(argv)


def test_each_strategy_is_a_batch_of_the_same_seeds_ordered_its_way(explored):
    out, status, stdout, _stderr = explored
    assert status == 0
    folders = {"fifo": out / "fifo", "random": out / "random", "pct:2": out / "pct-2"}
    for strategy, folder in folders.items():
        results = load_results(folder)
        assert results.complete
        assert results.runs["seed"].tolist() == [run_seed(i, ROOT) for i in range(RUNS)]
        assert set(results.runs["config_hash"]) == {results.manifest["config_hash"]}
        assert int(results.manifest["runs"]) == RUNS
        assert load_scenario(str(folder / "scenario.yaml")).orderings.strategy == strategy
    table = explore_table(folders)
    assert table["strategy"].tolist() == ["fifo", "random", "pct:2"]
    assert table["runs"].tolist() == [RUNS] * 3
    assert "strategy    runs  violating" in stdout


def test_the_table_counts_what_the_runs_themselves_found(explored):
    out, *_ = explored
    for strategy, folder in (("random", out / "random"), ("pct:2", out / "pct-2")):
        ordered = scenario("reconnect_race", {"orderings.strategy": strategy})
        results = [run_once(ordered, run_seed(i, ROOT)) for i in range(RUNS)]
        row = explore_table({strategy: folder}).iloc[0]
        assert row["violating_runs"] == sum(1 for r in results if r.violations)
        points = sorted(r.ties.points for r in results if r.ties is not None)
        assert row["choice_points_p50"] == float(points[RUNS // 2 - 1] + points[RUNS // 2]) / 2
        if strategy.startswith("pct"):
            # K, the choice points PCT drew its change point over: the FIFO run's count, for each seed
            counts = [count_choice_points(ordered, run_seed(i, ROOT)) for i in range(RUNS)]
            assert [r.ties.pct_steps for r in results if r.ties is not None] == counts
            bounds = [1.0 / (r.ties.processes * k) for r, k in zip(results, counts, strict=True) if r.ties]
            expected = 1.0
            for p in bounds:
                expected *= 1.0 - p
            assert row["pct_bound_all"] == pytest.approx(1.0 - expected, rel=1e-12)
    fifo = explore_table({"fifo": out / "fifo"}).iloc[0]
    assert fifo["choice_points_p50"] is None  # plain FIFO counts nothing
    assert fifo["pct_bound_run"] is None


def test_an_explored_run_replays_exactly_from_its_folder(explored):
    out, *_ = explored
    status, stdout, stderr = _cli(["replay", str(out / "random"), "--run", "2"])
    assert status == 0, stderr
    assert "Reproduced: the trace hash is the one the batch recorded for run 2." in stdout
    status, _stdout, stderr = _cli(["replay", str(out / "random"), "--run", "2", "--schedule", "fifo"])
    assert status == 2
    assert "replays as its batch ran it, with random" in stderr


def test_run_and_replay_take_a_schedule(tmp_path):
    status, stdout, stderr = _cli(["run", "reconnect_race", "--runs", "2", "--workers", "1", "--schedule", "pct:2",
                                   "--out", str(tmp_path / "b")])  # fmt: skip
    assert status == 0, stderr
    kept = load_results(tmp_path / "b")
    assert kept.runs["choice_points"].notna().all()
    seed = int(kept.runs["seed"].iloc[1])
    status, stdout, _ = _cli(["replay", "reconnect_race", "--seed", str(seed), "--schedule", "pct:2"])
    assert status == 0
    assert kept.runs["trace_hash"].iloc[1] in stdout
