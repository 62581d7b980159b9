"""Probes: no-ops outside the lab, counted per run inside it (never in the trace), catalogued from the source,
stored in the probes table, and reported per scenario as k of N runs with a status."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import textwrap
from pathlib import Path

import pytest

from sagas import probes
from sagas.probes import recording
from sagas.trading.sagas.disconnection import BrokerDisconnectionSaga
from simlab.batch import runner
from simlab.batch.batches import run_batch_to
from simlab.batch.results import load_results, read_table
from simlab.batch.runner import run_once, run_seed
from simlab.batch.shards import SCHEMAS, marker_path, read_manifest, scan_folder, table_path
from simlab.batch.sweep import with_settings
from simlab.cli import main
from simlab.cli_probes import first_runs, run_until_probes
from simlab.evidence.probes import Probe, ProbeCatalogueError, ProbeRecorder, probe_catalogue
from simlab.present import probes as present_probes
from simlab.present.probe_report import report_rows
from simlab.present.probes import NEVER, never_reached_bound, probe_table
from simlab.present.report import build_report
from simlab.present.summary import batch_summary
from simlab.scenario import load_scenario
from simlab.scenario.faults import FAMILIES
from simlab.sim.runtime import SimRuntime

ROOT = 1
RECONNECTED = "disconnection: re-validation found the connection reconnected before purge"
POLL_EXHAUSTED = "disconnection: account poll budget exhausted"
SAFE = {f"sagas.variants.{name}": "safe" for name in ("disconnect_lock", "child_wait", "purge")}


def _all_kinds() -> None:
    probes.sometimes("s", True)
    probes.reachable("r")
    probes.always("a", False)
    probes.unreachable("u")


# -- the API -----------------------------------------------------------------------------------


def test_outside_the_lab_every_probe_is_a_no_op() -> None:
    _all_kinds()  # no sink: nothing recorded, nothing raised, even for a false always and an unreachable line
    recorder = ProbeRecorder()
    with recording(recorder):
        pass
    _all_kinds()  # the sink is gone again once its block ends
    assert recorder.counts() == []


def test_a_recorder_sees_probes_in_simulated_tasks_and_only_its_own_run() -> None:
    async def task() -> None:
        _all_kinds()
        probes.sometimes("s", False)  # a false sometimes is not a hit

    first, second = ProbeRecorder(), ProbeRecorder()
    for recorder in (first, second):
        with recording(recorder):
            runtime = SimRuntime()
            runtime.spawn(task())
            runtime.run()
    expected = [("always", "a", 1, 1), ("reachable", "r", 1, 0), ("sometimes", "s", 1, 0), ("unreachable", "u", 1, 1)]
    for recorder in (first, second):
        assert [(c.kind, c.name, c.hits, c.failures) for c in recorder.counts()] == expected


def test_probes_stay_out_of_the_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = load_scenario("reconnect_race")
    recorded = run_once(scenario, run_seed(0, ROOT))
    assert recorded.probes  # this run hits a probe...
    monkeypatch.setattr(runner, "recording", lambda _sink: contextlib.nullcontext())
    unrecorded = run_once(scenario, run_seed(0, ROOT))
    assert unrecorded.probes == []
    assert unrecorded.trace_hash == recorded.trace_hash  # ...and its trace is the same without the recorder


# -- the catalogue -----------------------------------------------------------------------------


def _package(tmp_path: Path, body: str) -> Path:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "saga.py").write_text(textwrap.dedent(body))
    return package


def test_the_catalogue_lists_a_probe_that_never_fires(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        """
        from sagas import probes

        class Cleanup:
            def get_saga_type(self):
                return "CleanupSaga"

            def never_called(self):
                probes.sometimes("cleanup: rare path", True, needs="redis")

        def helper():
            probes.unreachable("helper: impossible")
        """,
    )
    found = [(p.kind, p.name, p.needs, p.saga_type, p.where) for p in probe_catalogue(package)]
    assert found == [
        ("sometimes", "cleanup: rare path", "redis", "CleanupSaga", "pkg/saga.py:9"),
        ("unreachable", "helper: impossible", None, None, "pkg/saga.py:12"),
    ]


@pytest.mark.parametrize(
    "call",
    ['probes.reachable(f"step {n}")', "probes.always(NAME, True)", 'probes.sometimes("x", True, needs=FAMILY)'],
)
def test_a_probe_name_that_is_not_a_string_literal_is_a_clear_error(tmp_path: Path, call: str) -> None:
    package = _package(tmp_path, f"from sagas import probes\n\n\ndef f(n):\n    {call}\n")
    with pytest.raises(ProbeCatalogueError, match=r"^pkg/saga\.py:5: probes\.\w+('s needs=)? .*string literal"):
        probe_catalogue(package)


def test_a_probe_imported_by_its_function_name_is_refused(tmp_path: Path) -> None:
    package = _package(tmp_path, "from sagas.probes import recording, reachable\n\nreachable('hidden')\n")
    with pytest.raises(ProbeCatalogueError, match=r"^pkg/saga\.py:1: import the module .* probes\.reachable"):
        probe_catalogue(package)


@pytest.mark.parametrize("variant", ['"purge"', '"purge:unsafe"', '"lock:safe"', "SAFE"])
def test_a_probe_variant_must_name_a_switch_and_seed_or_safe(tmp_path: Path, variant: str) -> None:
    package = _package(tmp_path, f"from sagas import probes\n\nprobes.reachable('x', variant={variant})\n")
    with pytest.raises(ProbeCatalogueError, match=r"^pkg/saga\.py:3: variant= must be a string literal SWITCH:seed"):
        probe_catalogue(package)


def test_a_probe_variant_is_read_as_switch_and_value(tmp_path: Path) -> None:
    package = _package(tmp_path, "from sagas import probes\n\nprobes.reachable('x', variant='purge:safe')\n")
    assert [p.variant for p in probe_catalogue(package)] == [("purge", "safe")]


def test_the_saga_code_s_probes_are_all_literal_and_need_only_known_fault_families() -> None:
    catalogue = probe_catalogue()
    assert {RECONNECTED, POLL_EXHAUSTED} <= {p.name for p in catalogue}
    assert {p.needs for p in catalogue} - {None} <= set(FAMILIES)


# -- a scenario's probes, stored and reported ------------------------------------------------


def test_a_batch_stores_each_run_s_probe_counts_and_the_table_reports_them(tmp_path: Path) -> None:
    out = tmp_path / "batch"
    scenario = load_scenario("reconnect_race")
    run_batch_to(scenario, 6, ROOT, out, workers=1, shard_size=3)
    results = load_results(out)
    stored = results.probes[["run", "kind", "probe", "hits", "failures"]].values.tolist()
    assert stored == [
        [0, "reachable", POLL_EXHAUSTED, 2, 0],
        [0, "reachable", RECONNECTED, 3, 0],
        [1, "reachable", RECONNECTED, 7, 0],
        [2, "reachable", RECONNECTED, 5, 0],
        [3, "reachable", POLL_EXHAUSTED, 1, 0],
        [3, "reachable", RECONNECTED, 3, 0],
        [4, "reachable", POLL_EXHAUSTED, 1, 0],
        [4, "reachable", RECONNECTED, 3, 0],
        [5, "reachable", RECONNECTED, 4, 0],
    ]
    for index in range(6):  # each run's row is what the run alone records
        alone = run_once(scenario, run_seed(index, ROOT)).probes
        assert [(p.probe, p.hits) for p in results.probes.itertuples() if p.run == index] == [
            (p.name, p.hits) for p in alone
        ]
    table = probe_table(results.runs, results.probes, results.sagas, results.faults).set_index("probe")
    assert (table.loc[RECONNECTED, "status"], table.loc[RECONNECTED, "runs_hit"], table.loc[RECONNECTED, "runs"]) == (
        "met",
        6,
        6,
    )
    assert (table.loc[POLL_EXHAUSTED, "runs_hit"], table.loc[POLL_EXHAUSTED, "runs"]) == (3, 6)
    assert table.loc[POLL_EXHAUSTED, "low"] < 3 / 6 < table.loc[POLL_EXHAUSTED, "high"]
    never = table.loc["engine: child wait timed out"]  # in the catalogue, never fired: still reported
    assert (never["status"], never["runs"], never["upper_bound"]) == (NEVER, 6, pytest.approx(1 - 0.05 ** (1 / 6)))
    # no run of reconnect_race starts a user deletion, and it switches failing compensations off
    assert table.loc["user deletion: a child disconnection did not complete", "status"] == "not applicable"
    assert table.loc["engine: a compensation given up", "status"] == "not applicable"
    # reconnect_race runs the seed variants: a path of the safe purge or the safe lock does not exist there
    for safe_only in ("disconnection: unfinished cleanup handed to a fresh saga",
                      "disconnection: the safe lock came with a fencing token"):  # fmt: skip
        assert table.loc[safe_only, "status"] == "not applicable"
    assert table.loc["disconnection: lock not acquired, carried on after 3 s", "runs"] == 6  # a seed-lock path
    older = results.runs.drop(columns=[c for c in results.runs.columns if c.startswith("variant_")])
    unknown = probe_table(older, results.probes, results.sagas, results.faults).set_index("probe")
    assert (
        unknown.loc["disconnection: unfinished cleanup handed to a fresh saga", "status"] == NEVER
    )  # no variants kept
    summary = batch_summary(out)
    assert "unfinished cleanup handed to a fresh saga  " in summary
    assert re.search(r"fresh saga +not applicable \(no run of purge:safe started a BrokerDisconnectionSaga\)$",
                     summary, re.M)  # fmt: skip
    deletion = r"user deletion: a child disconnection did not complete +not applicable \(no UserDeletionSaga ran\)$"
    assert re.search(deletion, summary, re.M)
    assert re.search(
        r"engine: a compensation given up +not applicable \(failing_compensations never on\)$", summary, re.M
    )
    assert re.search(rf"^  reachable +{re.escape(POLL_EXHAUSTED)} +3 of 6 +50\.0% \[", summary, re.M)
    assert re.search(r"^  reachable +engine: child wait timed out +0 of 6 .*NEVER REACHED \(rate < 39\.30% at 95%\)$",
                     summary, re.M)  # fmt: skip


def test_an_always_probe_that_fails_is_reported_with_its_first_run_to_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = BrokerDisconnectionSaga._check_not_reconnected

    async def planted(self, context):  # a broken fact, planted: false whenever the connection is checked
        probes.always("planted: the connection was never checked", False)
        return await real(self, context)

    monkeypatch.setattr(BrokerDisconnectionSaga, "_check_not_reconnected", planted)
    out = tmp_path / "batch"
    run_batch_to(with_settings(load_scenario("reconnect_race"), SAFE), 3, ROOT, out, workers=1, shard_size=3)
    summary = batch_summary(out)
    line = next(line for line in summary.splitlines() if "planted:" in line)
    assert line.startswith("  always ") and line.endswith(
        "3 of 3     100.0% [43.9%, 100.0%]  FAILED in 3 run(s), first run 0"
    )
    folder = shlex.quote(str(out))
    assert f"      Replay it: {_simlab()} replay {folder} --run 0" in summary
    assert f"        (run 0 is seed {run_seed(0, ROOT)}: {_simlab()} replay " in summary
    row = next(row for row in report_rows(out, load_results(out)) if row["probe"].startswith("planted:"))
    assert row["replays"] == (
        f"simlab replay {folder} --run 0",
        f"simlab replay {out / 'scenario.yaml'} --seed {run_seed(0, ROOT)}",
    )
    assert "Probes failed: planted: the connection was never checked" in summary
    html = build_report(out)
    assert f"<code>simlab replay {folder} --run 0</code>" in html


def _simlab() -> str:
    from simlab.present.commands import simlab_command

    return simlab_command()


# -- the loader --------------------------------------------------------------------------------


def test_a_batch_with_no_probe_rows_loads_an_empty_table_with_its_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "recording", lambda _sink: contextlib.nullcontext())
    out = tmp_path / "batch"
    run_batch_to(load_scenario("reconnect_race"), 4, ROOT, out, workers=1, shard_size=2)
    results = load_results(out)
    assert results.probes.empty and list(results.probes.columns) == SCHEMAS["probes"].names
    table = probe_table(results.runs, results.probes, results.sagas, results.faults)
    assert set(table["status"]) <= {NEVER, "not applicable"}


def test_shards_without_a_probes_table_are_whole_and_an_interrupted_shard_is_left_out(tmp_path: Path) -> None:
    out = tmp_path / "batch"
    scenario = load_scenario("reconnect_race")
    run_batch_to(scenario, 6, ROOT, out, workers=1, shard_size=2)
    reference = read_table(out, "probes")
    # shard 0 as a lab before probes wrote it: no probes file, no entry in its marker
    marker = marker_path(out, 0)
    sealed = json.loads(marker.read_text())
    del sealed["tables"]["probes"]
    marker.write_text(json.dumps(sealed))
    table_path(out, 0, "probes").unlink()
    marker_path(out, 2).unlink()  # shard 2 interrupted: its tables written, its marker never
    scan = scan_folder(out)
    assert sorted(scan.finished) == [0, 1] and scan.damaged == []
    probes_now = load_results(out).probes
    assert probes_now["run"].tolist() == reference.loc[reference["run"].isin([2, 3]), "run"].tolist()
    run_batch_to(scenario, 6, ROOT, out, workers=1, shard_size=2)  # the resume runs shard 2 again, probes included
    resumed = read_table(out, "probes").loc[lambda f: f["run"] >= 2].reset_index(drop=True)
    assert resumed.equals(reference.loc[lambda f: f["run"] >= 2].reset_index(drop=True))


def test_the_never_reached_bound_is_the_rule_of_three() -> None:
    assert never_reached_bound(300) == pytest.approx(3 / 300, rel=0.01)
    assert never_reached_bound(0) != never_reached_bound(0)  # NaN without runs


# -- --until-probes ----------------------------------------------------------------------------


def _only(monkeypatch: pytest.MonkeyPatch, *catalogue: Probe) -> None:
    monkeypatch.setattr(present_probes, "probe_catalogue", lambda: list(catalogue))


def test_until_probes_stops_at_the_first_step_that_reaches_every_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only(monkeypatch, Probe("reachable", RECONNECTED, None, None, "x.py:1"))  # every run of reconnect_race hits it
    said: list[str] = []
    out = tmp_path / "batch"
    runs, unmet = run_until_probes(
        load_scenario("reconnect_race"), 64, ROOT, out, shard_size=4, notice=said.append, workers=1
    )
    assert (runs, unmet) == (8, []) and read_manifest(out)["runs"] == "8"
    assert said == ["--until-probes: stopped after 8 runs: every probe reached"]


def test_until_probes_grows_the_batch_to_the_limit_and_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only(monkeypatch, Probe("sometimes", "never fires", None, None, "x.py:1"))
    scenario = load_scenario("reconnect_race")
    out, plain = tmp_path / "grown", tmp_path / "plain"
    said: list[str] = []
    assert run_until_probes(scenario, 16, ROOT, out, shard_size=2, notice=said.append, workers=1) == (
        16,
        ["never fires"],
    )
    assert said == [
        "1 probe(s) not reached in 2 runs: growing the batch to 4",
        *(f"1 probe(s) not reached in {n} runs: growing the batch to {n + 2}" for n in range(4, 16, 2)),
        "--until-probes: stopped after 16 runs: 1 probe(s) still not reached at the limit",
    ]
    run_batch_to(scenario, 16, ROOT, plain, workers=1, shard_size=2)
    grown, reference = load_results(out), load_results(plain)
    for name in ("runs", "sagas", "probes", "violations"):  # the same runs as one batch of 16, each run once
        assert getattr(grown, name).equals(getattr(reference, name)), name
    # a later call (after an interruption, say) starts from the runs the folder holds
    assert first_runs(out, 32, ROOT, 2) == 16 and first_runs(out, 32, ROOT + 1, 2) == 4


def test_simlab_run_until_probes_runs_to_the_limit_and_prints_the_probe_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "batch"
    argv = ["run", "reconnect_race", "--runs", "4", "--seed", "1", "--workers", "1", "--out", str(out)]
    assert main([*argv, "--until-probes"]) == 0
    captured = capsys.readouterr()
    # 4 runs in shards of 1: steps of 1 run, and probes this scenario never reaches keep it going to the limit
    assert "--until-probes: stopped after 4 runs:" in captured.err
    assert read_manifest(out)["runs"] == "4" and "\nProbes (runs that hit each" in captured.out
