"""The one loader: nothing hidden in a late shard, nothing damaged used, empty tables with their columns.

Every reader of a batch — the CLI summary, ``load_results``, the report, ``check-determinism`` —
must see the same runs and violations, however they are spread over the shards.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simlab.batch.batches import run_batch_to
from simlab.batch.results import load_results, read_table
from simlab.batch.runner import run_once, run_seed
from simlab.batch.shards import SCHEMAS, TABLES, marker_path, scan_folder, table_path
from simlab.cli import _check_determinism, main
from simlab.present.report import ReportError, build_report
from simlab.present.summary import batch_summary
from simlab.scenario import load_scenario
from simlab.scenario.model import Faults

ROOT = 1


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("reconnect_race")  # the seed's variants: some runs break an invariant


@pytest.fixture(scope="module")
def first_violation(scenario) -> tuple[int, list[tuple[int, str]]]:
    """The first run of root seed 1 that violates an invariant, and its (run, invariant) pairs."""
    for index in range(200):
        result = run_once(scenario, run_seed(index, ROOT))
        if result.violations:
            return index, sorted({(index, v.invariant) for v in result.violations})
    pytest.fail("200 runs of reconnect_race with the seed's variants showed no violation")


def _violations_by_run(scenario, runs: int) -> list[tuple[int, str]]:
    """Every violation of runs 0..runs-1 as (run, invariant), each run replayed on its own."""
    found = []
    for index in range(runs):
        found += [(index, v.invariant) for v in run_once(scenario, run_seed(index, ROOT)).violations]
    return sorted(found)


@pytest.mark.parametrize("layout", ["later shards", "last shard only"])
def test_violations_outside_the_first_shard_are_seen_by_every_reader(
    layout: str, scenario, first_violation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k, _ = first_violation
    # later shards: the first shard (runs 0..k-1) is clean, violations may sit in any shard after it;
    # last shard only: the batch ends with the first violating run.
    runs, shard = (3 * k, k) if layout == "later shards" else (k + 1, max(1, (k + 1) // 3))
    expected = _violations_by_run(scenario, runs)
    assert expected and min(run for run, _ in expected) >= shard  # the first shard holds none
    out = tmp_path / "batch"
    run_batch_to(scenario, runs, ROOT, out, workers=1, shard_size=shard)
    invariants = sorted({name for _, name in expected})

    results = load_results(out)
    assert sorted(zip(results.violations["run"], results.violations["invariant"], strict=True)) == expected

    summary = batch_summary(out)
    assert "Invariant violations: none" not in summary
    for name in invariants:
        assert f"  {name}: " in summary

    args = ["run", "reconnect_race", "--runs", str(runs), "--seed", str(ROOT), "--workers", "1"]
    assert main([*args, "--shard-size", str(shard), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert summary in printed

    html = build_report(out)
    seeds = {int(s) for s in results.violations["seed"]}
    for name in invariants:
        assert name in html
    for seed in seeds:
        assert f"simlab replay reconnect_race --seed {seed}" in html

    assert _check_determinism(scenario, runs, 2) == 0
    checked = capsys.readouterr().out
    by_invariant = {name: len({run for run, n in expected if n == name}) for name in invariants}
    listed = ", ".join(f"{name} in {count} run(s)" for name, count in by_invariant.items())
    assert f"Invariant violations, identical in every pass: {listed}" in checked


def test_a_batch_without_violations_keeps_every_table_with_its_columns(tmp_path: Path) -> None:
    clean = load_scenario("reconnect_race").model_copy(
        update={"invariants": ("terminal_by_horizon",), "faults": Faults()}
    )
    out = tmp_path / "clean"
    run_batch_to(clean, 4, ROOT, out, workers=1, shard_size=2)
    results = load_results(out)
    for name in TABLES:
        assert list(getattr(results, name).columns) == SCHEMAS[name].names, name
    assert results.violations.empty and results.faults.empty
    assert "Invariant violations: none" in batch_summary(out)


def test_a_folder_with_no_finished_run_loads_as_empty_tables_and_the_report_says_so(tmp_path: Path) -> None:
    out = tmp_path / "nothing"
    run_batch_to(load_scenario("reconnect_race"), 4, ROOT, out, workers=1, shard_size=2)
    for shard in (0, 1):
        marker_path(out, shard).unlink()  # as if interrupted before any shard was finished
    results = load_results(out)
    assert results.runs.empty and list(results.violations.columns) == SCHEMAS["violations"].names
    assert not results.complete and results.expected_runs == 4
    assert batch_summary(out).splitlines()[0] == "reconnect_race: 0 of 4 runs from root seed 1 (the rest are missing)"
    with pytest.raises(ReportError, match="holds no finished runs yet"):
        build_report(out)


# -- damaged shards ----------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def _alter(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte different
    path.write_bytes(bytes(data))


def _reseal(out: Path, table: str, data: bytes | None = None, file: str | None = None) -> None:
    """Rewrite a table of shard 1 (or only what its marker names) and make the marker vouch for it, as a hand
    that knows the format would: the digest then matches, and only the contents can tell."""
    marker = marker_path(out, 1)
    sealed = json.loads(marker.read_text())
    entry = sealed["tables"][table]
    if data is not None:
        table_path(out, 1, table).write_bytes(data)
        entry["sha256"] = hashlib.sha256(data).hexdigest()
    if file is not None:
        entry["file"] = file
    marker.write_text(json.dumps(sealed))


DAMAGES = {
    "a truncated table": (lambda out: _truncate(table_path(out, 1, "sagas")), "does not match its marker"),
    "an altered table": (lambda out: _alter(table_path(out, 1, "attempts")), "does not match its marker"),
    "a missing table": (lambda out: table_path(out, 1, "violations").unlink(), "is missing"),
    "a garbled marker": (lambda out: marker_path(out, 1).write_text('{"start": 4'), "is not a shard marker"),
    "a table resealed over garbage": (lambda out: _reseal(out, "faults", b"PAR1 not really"), "is not a Parquet file"),
    "a marker naming another file": (lambda out: _reseal(out, "runs", file="../runs.parquet"), "names '../runs"),
    "a marker that is JSON nested deep": (
        lambda out: marker_path(out, 1).write_text("[" * 100_000 + "]" * 100_000),
        "is not a shard marker",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_shard_is_named_left_out_and_run_again(damage: str, scenario, tmp_path: Path) -> None:
    out, reference = tmp_path / "batch", tmp_path / "reference"
    run_batch_to(scenario, 12, ROOT, reference, workers=1, shard_size=4)
    run_batch_to(scenario, 12, ROOT, out, workers=1, shard_size=4)
    harm, problem = DAMAGES[damage]
    harm(out)

    with pytest.warns(UserWarning, match=f"shard-00001 \\(runs 4..7\\): .*{problem}"):
        results = load_results(out)
    assert results.runs["run"].tolist() == [0, 1, 2, 3, 8, 9, 10, 11]  # the whole shard is out, from every table
    assert set(results.sagas["run"]) == {0, 1, 2, 3, 8, 9, 10, 11}
    assert len(results.problems) == 1 and "shard-00001" in results.problems[0]
    summary = batch_summary(out)
    assert summary.splitlines()[0] == "reconnect_race: 8 of 12 runs from root seed 1 (the rest are missing)"
    assert summary.splitlines()[1].startswith(f"Left out: {out / 'shard-00001'} (runs 4..7)")

    notices: list[str] = []
    ran, _ = run_batch_to(scenario, 12, ROOT, out, workers=1, shard_size=4, notice=notices.append)
    assert ran == 4
    assert len(notices) == 1 and notices[0].endswith("; running it again") and problem in notices[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repaired, expected = load_results(out), load_results(reference)
    for name in TABLES:
        assert getattr(repaired, name).equals(getattr(expected, name)), name


def test_debris_of_an_interruption_is_removed_before_a_resume(scenario, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    run_batch_to(scenario, 8, ROOT, out, workers=1, shard_size=4)
    marker_path(out, 1).unlink()  # shard 1's tables were written, its marker never was
    (out / ".shard-00001.runs.parquet.tmp").write_bytes(b"half a file")
    run_batch_to(scenario, 8, ROOT, out, workers=1, shard_size=4)
    assert not list(out.glob(".*.tmp"))
    assert sorted(scan_folder(out).finished) == [0, 1]


def test_shards_of_an_older_lab_are_read_with_the_union_of_columns(scenario, tmp_path: Path) -> None:
    """Shards written before a column existed, with plain-text markers and seeds stored as pandas did
    (int64 when they all fit, uint64 otherwise), load beside new ones: nulls where a column is missing,
    seeds exact."""
    out = tmp_path / "batch"
    run_batch_to(scenario, 8, ROOT, out, workers=1, shard_size=1)
    seeds = [run_seed(i, ROOT) for i in range(8)]
    assert min(seeds[:4]) < 2**63 <= max(seeds[:4])  # both kinds of older shard below
    for index in range(4):
        runs = pq.read_table(table_path(out, index, "runs")).drop_columns(["unchecked"])
        if seeds[index] < 2**63:
            runs = runs.set_column(runs.schema.get_field_index("seed"), "seed", runs.column("seed").cast(pa.int64()))
        pq.write_table(runs, table_path(out, index, "runs"))
        marker_path(out, index).write_text(f"{index} {index + 1}\n")  # the older marker: runs only, no digests

    table = read_table(out, "runs")
    assert list(table.columns) == SCHEMAS["runs"].names
    assert table["unchecked"].isna().tolist() == [True] * 4 + [False] * 4
    assert table["seed"].tolist() == seeds  # exact, not floats
    assert json.loads(marker_path(out, 5).read_text())["tables"]["runs"]["rows"] == 1


def test_a_shard_of_an_older_lab_with_an_unreadable_table_is_damaged(scenario, tmp_path: Path) -> None:
    """Older markers carry no digests: every table must at least be Parquet, not only the runs table."""
    out = tmp_path / "batch"
    run_batch_to(scenario, 4, ROOT, out, workers=1, shard_size=2)
    marker_path(out, 1).write_text("2 4\n")  # the older marker
    assert sorted(scan_folder(out).finished) == [0, 1]
    table_path(out, 1, "broker_calls").write_bytes(b"not parquet")
    scan = scan_folder(out)
    assert sorted(scan.finished) == [0]
    assert [d.describe(out) for d in scan.damaged] == [
        f"{out / 'shard-00001'} (runs 2..3): its broker_calls table shard-00001.broker_calls.parquet is missing or "
        "unreadable"
    ]
