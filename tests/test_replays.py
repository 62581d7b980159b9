"""simlab replay by a batch's folder and run number: the run the batch ran, from the scenario it kept.

A run number means nothing outside its batch (run 11 of a batch rooted at seed 1 has the seed
``run_seed(11, 1)``), so it is only taken with a folder, and a seed given with a folder must be
one of that batch's; a replay of a finished run says whether it reproduced the recorded trace.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from simlab import lab
from simlab.batch import replays
from simlab.batch.replays import ReplayError, resolve_replay
from simlab.batch.results import hashes, load_results
from simlab.batch.runner import run_seed
from simlab.cli import main
from simlab.present.commands import simlab_command

ROOT = 1  # reconnect_race's root seed: its run 1 loses data, its run 5 orphans accounts (the first to)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("replays") / "race"
    lab.run("reconnect_race", runs=12, out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("replays") / "sweep"
    lab.sweep("reconnect_race", {"bus_latency.sigma": [0.2, 0.6]}, runs_per_point=3, out=out, progress=False)
    return out


def _replay(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["replay", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_run_number_of_a_batch_folder_replays_that_run_and_says_it_reproduced(batch, capsys):
    status, out, err = _replay(capsys, str(batch), "--run", "5")
    assert (status, err) == (0, "")
    assert out.startswith(f"Replaying run 5 of {batch} (seed {run_seed(5, ROOT)}), from the scenario the batch kept")
    recorded = dict(hashes(batch))[5]
    assert f"trace sha256: {recorded}\n" in out
    assert "VIOLATION no_orphans" in out
    assert out.endswith("Reproduced: the trace hash is the one the batch recorded for run 5.\n")


def test_a_folder_alone_replays_its_first_violating_run(batch, capsys, tmp_path):
    status, out, _ = _replay(capsys, str(batch))
    first = int(load_results(batch).violations["run"].min())
    assert status == 0 and out.startswith(f"Replaying run {first} of {batch} (seed {run_seed(first, ROOT)})")
    assert first == 1  # reconnect_race's first violating run (it loses data), as its summary says
    clean = tmp_path / "clean"
    lab.run("reconnect_race", runs=3, seed=7, out=clean, progress=False)  # root seed 7: runs 0 to 2 violate nothing
    assert _replay(capsys, str(clean)) == (
        2,
        "",
        f"simlab replay: no finished run of {clean} violated an invariant: give --run N (runs 0 to 2) or a --seed\n",
    )


def test_a_seed_is_found_among_finished_runs_and_the_gaps_between_them(batch, tmp_path):
    copy = tmp_path / "race"
    shutil.copytree(batch, copy)
    (copy / "shard-00005.done").unlink()  # 12 runs, 12 shards: run 5's is unfinished, between finished ones
    for run in (4, 5, 6, 11):
        assert resolve_replay(str(copy), seed=run_seed(run, ROOT), run=None, point=None).run == run
    with pytest.raises(ReplayError, match="--seed 11: no run of "):
        resolve_replay(str(copy), seed=11, run=None, point=None)


def test_a_seed_with_a_folder_must_be_one_of_its_runs(batch, capsys):
    status, out, _ = _replay(capsys, str(batch), "--seed", str(run_seed(4, ROOT)))
    assert status == 0 and out.startswith(f"Replaying run 4 of {batch} (seed {run_seed(4, ROOT)})")
    # The mistake the issue reports: the report's "run 11" typed as a seed.
    status, out, err = _replay(capsys, str(batch), "--seed", "11")
    assert (status, out) == (2, "")
    assert err == (
        f"simlab replay: --seed 11: no run of {batch} has that seed (its 12 runs are seeded from root seed 1); "
        "to replay its run number 11, use --run 11\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{batch}", "--run", "12"], "--run 12: {batch} holds runs 0 to 11"),
        (["{batch}", "--run", "3", "--seed", "5"], "--seed 5 is not the seed of run 3 of {batch} ({seed3})"),
        (["{batch}", "--point", "0", "--run", "1"], "--point 0: {batch} is not a sweep folder (it has no sweep.json)"),
        (
            ["reconnect_race", "--run", "3"],
            "--run 3: run numbers belong to a batch, so name its results folder "
            "(simlab replay results/FOLDER --run 3); with a scenario, give --seed",
        ),
        (["reconnect_race"], "'reconnect_race': give the run's --seed (or a results folder and --run N)"),
        (["{parent}/typo", "--run", "3"], "'{parent}/typo': no such results folder or scenario file"),
        (["{parent}", "--run", "1"], "{parent} is not a results folder (it has no batch.txt): give a folder of "
         "`simlab run` or `simlab sweep`, or a scenario"),
    ],
)  # fmt: skip
def test_a_replay_that_names_no_run_of_its_batch_is_refused_in_one_line(batch, capsys, argv, message):
    fill = {"batch": batch, "parent": batch.parent, "seed3": run_seed(3, ROOT)}
    status, out, err = _replay(capsys, *(a.format(**fill) for a in argv))
    assert (status, out, err) == (2, "", f"simlab replay: {message.format(**fill)}\n")


def test_a_sweep_folder_replays_a_point_from_that_points_own_scenario(sweep, capsys):
    status, out, err = _replay(capsys, str(sweep), "--run", "1")
    assert (status, out) == (2, "")
    assert err == (
        f"simlab replay: {sweep} is a sweep of 2 points: name one with --point K (0 to 1), "
        f"or give its folder ({sweep / 'point-000'})\n"
    )
    target = resolve_replay(str(sweep), seed=None, run=1, point=1)
    assert target.folder == sweep / "point-001" and target.scenario.bus_latency.sigma == 0.6
    status, out, _ = _replay(capsys, str(sweep), "--point", "1", "--run", "1")
    assert status == 0 and out.endswith("Reproduced: the trace hash is the one the batch recorded for run 1.\n")
    assert _replay(capsys, str(sweep), "--point", "2", "--run", "1")[2] == (
        f"simlab replay: --point 2: {sweep} has points 0 to 1\n"
    )


def test_a_replay_that_differs_from_the_recorded_trace_says_so_and_fails(batch, capsys, monkeypatch):
    monkeypatch.setattr(replays, "_recorded_hash", lambda folder, run, finished: "0" * 64)
    status, out, err = _replay(capsys, str(batch), "--run", "2")
    assert status == 1 and "Reproduced" not in out
    assert err.startswith(f"simlab replay: NOT reproduced: the batch recorded trace hash {'0' * 64} for run 2, ")


def test_a_run_of_an_unfinished_shard_replays_without_a_verdict_and_an_edited_scenario_is_refused(
    batch, tmp_path, capsys
):
    copy = tmp_path / "race"
    shutil.copytree(batch, copy)
    for marker in copy.glob("shard-*.done"):  # the batch was cut before any shard was sealed
        marker.unlink()
    target = resolve_replay(str(copy), seed=None, run=5, point=None)
    assert (target.seed, target.recorded_hash) == (run_seed(5, ROOT), None)
    assert resolve_replay(str(copy), seed=run_seed(7, ROOT), run=None, point=None).run == 7  # seeds computed
    status, out, _ = _replay(capsys, str(copy), "--run", "5")
    assert status == 0 and "trace sha256: " in out and "Reproduced" not in out

    kept = copy / "scenario.yaml"
    kept.write_text(kept.read_text().replace("  sigma: 0.5\n", "  sigma: 0.7\n", 1))
    with pytest.raises(ReplayError, match=r"scenario.yaml is not the scenario the batch ran \(config hash "):
        resolve_replay(str(copy), seed=None, run=5, point=None)
    kept.unlink()  # the scenario kept by the batch is named as such, not blamed on the manifest
    with pytest.raises(ReplayError) as missing:
        resolve_replay(str(copy), seed=None, run=5, point=None)
    assert str(missing.value) == f"{kept}: no such scenario file (the scenario kept by the batch)"
    (copy / "batch.txt").write_bytes(b"runs=\xff\n")
    with pytest.raises(ReplayError, match=r"batch.txt: unreadable \(.*\); it was not written by simlab$"):
        resolve_replay(str(copy), seed=None, run=5, point=None)


def test_the_lab_replays_by_folder_and_run_as_the_command_does(batch):
    run = lab.replay(str(batch), run=11)
    assert run.trace_hash == dict(hashes(batch))[11]
    with pytest.raises(ReplayError, match="give no settings"):
        lab.replay(str(batch), run=11, settings={"bus_latency.sigma": 0.2})


def test_hints_spell_simlab_as_this_shell_finds_it(monkeypatch, tmp_path):
    script = Path(sys.prefix) / "bin" / "simlab"
    if not script.exists():
        pytest.skip("simlab is not installed as a script in this environment")
    monkeypatch.setenv("PATH", str(script.parent) + os.pathsep + os.environ.get("PATH", ""))
    assert simlab_command() == "simlab"  # an activated environment
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(script.parents[2])
    assert simlab_command() == str(script.relative_to(script.parents[2]))  # .venv/bin/simlab from the project
    monkeypatch.chdir(tmp_path)
    assert simlab_command() == str(script)


def test_the_replay_text_names_every_connection_sagas_connection_so_violations_link_to_sagas(batch):
    from simlab.present.summary import format_timeline

    run = lab.replay(str(batch), run=5)
    about_connections = {r.saga_id for r in run.sagas if r.saga_type.startswith("Broker")}
    assert about_connections and set(run.connections) == about_connections  # from each saga's trigger
    text = format_timeline(run)
    for record in run.trace:
        if record.saga_id in about_connections:
            assert f" {record.saga_id[:8]} conn {run.connections[record.saga_id][:8]}  " in text
    (orphaned,) = {v.explanation.split("outlived its connection ")[1][:36] for v in run.violations}
    assert orphaned in run.connections.values()  # the sagas of the connection the violation names
    assert lab.replay(str(batch), run=5).connections == run.connections  # replays exactly


def test_the_timeline_figure_labels_each_lane_with_its_connection_as_the_text_does(batch):
    from simlab.present.timeline import replay_figure

    run = lab.replay(str(batch), run=11)
    labels = {t.get_text() for t in replay_figure(run).axes[0].get_yticklabels()}
    for row in run.sagas:
        short_type = row.saga_type.removesuffix("Saga")
        assert f"{short_type} {row.saga_id[:8]} conn {run.connections[row.saga_id][:8]}" in labels
