"""Batches and sweeps on a real Dask cluster (a ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1).

What must hold: the same tables as the process pool, row for row; a worker killed mid-batch changes
nothing in them; a batch resumes across backends without running a shard twice; a worker with other
code, or one that cannot write the folder, is refused before anything is written; a shard that kills
every worker it meets is named, not retried forever; the audit catches a worker that is not deterministic.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client

from simlab import lab
from simlab.batch.batches import run_batch_to
from simlab.batch.cluster import AuditMismatch, DaskRunner, connect, parse_address
from simlab.batch.determinism import difference
from simlab.batch.interrupts import WorkerDied
from simlab.batch.results import load_results
from simlab.batch.runner import run_seed
from simlab.cli import main
from simlab.scenario import load_scenario
from tests.dask_cluster import DaskProcesses, free_port

pytestmark = pytest.mark.xdist_group("dask")  # one test process starts the clusters and runs all of these

ROOT = Path(__file__).resolve().parents[1]
PLANTED = Path(__file__).with_name("dask_planted.py")
SCENARIO = load_scenario("reconnect_race")
KILL_RUN = 5  # the run whose seed kills every worker of the faulty cluster (root seed 1)


# Session-scoped: the test process that runs this group may run other modules' tests between these,
# and a module-scoped cluster would then be stopped and started again.
@pytest.fixture(scope="session")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DaskProcesses]]:
    """Three clusters started together: clean; faulty (planted kill and skew, and its workers may not override
    file permissions, as root elsewhere may and this test's process does); and one with drifted code."""
    base = tmp_path_factory.mktemp("dask")
    drifted = _drifted_copy(base / "drifted-code")
    kill = {"SIMLAB_PLANT_KILL_SEED": str(run_seed(KILL_RUN, 1))}
    started = {
        "clean": DaskProcesses.start(base / "clean", [{}, {}]),
        "faulty": DaskProcesses.start(
            base / "faulty",
            [{**kill, "SIMLAB_PLANT_SKEW": "1"}, kill],
            preload=PLANTED,
            scheduler_env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"},
            prefix=["setpriv", "--bounding-set", "-dac_override,-dac_read_search"],
        ),
        "drifted": DaskProcesses.start(base / "drifted", [{"PYTHONPATH": str(drifted)}]),
    }
    _running.extend(started.values())
    try:
        for name, cluster in started.items():
            cluster.wait(1 if name == "drifted" else 2)
        yield started
    finally:
        for cluster in started.values():
            cluster.stop()


# Idle, the clusters' processes take about a seventh of a core each three: the last test of this module
# stops them, rather than the end of the session (all of this module's tests run in one test process).
_running: list[DaskProcesses] = []
_finished: set[str] = set()


@pytest.fixture(autouse=True)
def _the_last_test_stops_the_clusters(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    _finished.add(request.node.nodeid)
    ours = {item.nodeid for item in request.session.items if item.path == request.node.path}
    if _finished >= ours:
        for cluster in _running:
            cluster.stop()


def _drifted_copy(folder: Path) -> Path:
    """The lab's code with one comment added to the engine: another code hash, the same behaviour."""
    for package in ("sagas", "simlab"):
        shutil.copytree(ROOT / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    engine = folder / "sagas" / "__init__.py"
    engine.write_text(engine.read_text() + "\n# a local edit on one machine\n")
    return folder


@pytest.fixture
def clean(clusters: dict[str, DaskProcesses]) -> Iterator[Client]:
    with connect(clusters["clean"].address) as client:
        client.wait_for_workers(2, timeout=30)  # (a test may have killed one: its nanny starts it again)
        yield client


RUNS, SHARD = 40, 4  # the batch most tests run: 10 shards, 2 of them with violations


@pytest.fixture(scope="session")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The batch as the process pool writes it (the reference every cluster batch is compared with)."""
    out = tmp_path_factory.mktemp("pool") / "batch"
    run_batch_to(SCENARIO, RUNS, 1, out, workers=2, shard_size=SHARD)
    return out


def _same_tables(expected: Path, found: Path) -> None:
    reference, got = load_results(expected), load_results(found)
    assert difference(reference, got) == ""
    assert len(got.runs) == len(reference.runs) > 0
    markers = sorted(expected.glob("shard-*.done"))  # and the files themselves: each shard's digests, as sealed
    assert [m.name for m in markers] == sorted(m.name for m in found.glob("shard-*.done"))
    for marker in markers:
        assert (found / marker.name).read_text() == marker.read_text()


def test_a_batch_on_the_cluster_writes_the_process_pools_tables_bit_for_bit(
    clean: Client, pool: Path, tmp_path: Path
) -> None:
    from distributed import get_task_stream

    shown: list[tuple[int, int, int]] = []
    with get_task_stream(clean) as stream:
        kept = run_batch_to(SCENARIO, RUNS, 1, tmp_path / "dask", shard_size=SHARD, runner=DaskRunner(clean),
                            progress=lambda *counts: shown.append(counts))  # fmt: skip
    _same_tables(pool, tmp_path / "dask")
    violations = len(load_results(pool).violations)
    assert violations > 0 and kept == (RUNS, violations)
    assert shown[0] == (0, RUNS, 0) and shown[-1] == (RUNS, RUNS, violations)  # the bar, from none to all runs
    ran = [task for task in stream.data if str(task["key"]).startswith("simlab-shard-")]
    assert (
        len(ran) == RUNS // SHARD and len({task["worker"] for task in ran}) == 2
    )  # the shards ran there, on both workers


def test_a_sweep_on_the_cluster_gives_the_process_pools_tables(clean: Client, tmp_path: Path) -> None:
    grid = {"sagas.consistency_retry.max_attempts": [2, 5]}
    pool = lab.sweep("broker_disconnection", grid, runs_per_point=10, out=tmp_path / "pool", workers=2,
                     progress=False)  # fmt: skip
    dask = lab.sweep("broker_disconnection", grid, runs_per_point=10, out=tmp_path / "dask", client=clean,
                     progress=False)  # fmt: skip
    assert difference(pool, dask) == ""
    assert (tmp_path / "pool" / "sweep.json").read_text() == (tmp_path / "dask" / "sweep.json").read_text()
    assert sorted(dask.runs["sagas.consistency_retry.max_attempts"].unique().tolist()) == [2, 5]


def test_a_worker_killed_mid_batch_costs_only_its_shard(clean: Client, pool: Path, tmp_path: Path) -> None:
    out = tmp_path / "dask"
    pids = clean.run(os.getpid)
    finished: list[tuple[int, int]] = []
    batch = threading.Thread(target=lambda: finished.append(
        run_batch_to(SCENARIO, RUNS, 1, out, shard_size=SHARD, runner=DaskRunner(clean))
    ))  # fmt: skip
    batch.start()
    deadline = time.monotonic() + 60
    while not list(out.glob("shard-*.done")) and time.monotonic() < deadline:
        time.sleep(0.02)
    busy = [address for address, keys in clean.processing().items() if keys]
    assert busy, "no worker was running a shard when the first one finished"
    os.kill(pids[busy[0]], signal.SIGKILL)
    batch.join(120)
    assert finished and finished[0][0] == RUNS
    _same_tables(pool, out)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []


def test_ctrl_c_on_a_cluster_keeps_whole_shards_and_the_same_command_completes_them(
    clusters: dict[str, DaskProcesses], clean: Client, pool: Path, tmp_path: Path
) -> None:
    out = tmp_path / "dask"
    command = [sys.executable, "-m", "simlab", "run", "reconnect_race", "--runs", str(RUNS), "--shard-size", str(SHARD),
               "--seed", "1", "--dask", clusters["clean"].address, "--out", str(out)]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("shard-*.done")) and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.send_signal(signal.SIGINT)
    _, said = driver.communicate(timeout=30)
    assert driver.returncode == 130, said
    assert "the shards already running on the cluster's workers finish there and are kept whole" in said
    assert "interrupted by SIGINT" in said.strip().splitlines()[-1] and "Traceback" not in said
    while any(clean.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the shards that were running finish on their workers
    kept = sorted(p.name for p in out.glob("shard-*.done"))
    assert 0 < len(kept) < 10
    assert run_batch_to(SCENARIO, RUNS, 1, out, runner=DaskRunner(clean))[0] == RUNS - SHARD * len(kept)
    _same_tables(pool, out)


def test_a_batch_resumes_across_backends_without_running_a_shard_twice(
    clean: Client, pool: Path, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    shutil.copytree(pool, out)  # as the process pool left it
    for lost, backend in (((1, 5, 8), "dask"), ((5, 6, 9), "pool")):  # then shard 5, which the cluster wrote
        for index in lost:
            for path in out.glob(f"shard-{index:05d}.*"):
                path.unlink()
        runner = DaskRunner(clean) if backend == "dask" else None
        assert run_batch_to(SCENARIO, RUNS, 1, out, workers=2, runner=runner)[0] == len(lost) * SHARD  # only those
        _same_tables(pool, out)
    assert run_batch_to(SCENARIO, RUNS, 1, out, runner=DaskRunner(clean))[0] == 0  # nothing once all is there


def test_a_worker_with_other_code_is_refused_before_anything_is_written(
    clusters: dict[str, DaskProcesses], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    status = main(["run", "reconnect_race", "--runs", "4", "--dask", clusters["drifted"].address, "--out", str(out)])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not out.exists()
    assert len(error) == 1 and "differs from this machine: lab code hash" in error[0], error


def test_a_worker_that_cannot_write_the_folder_is_refused(
    clusters: dict[str, DaskProcesses], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip(
            "needs root: the driver must be able to write where the worker (root without CAP_DAC_OVERRIDE) cannot"
        )
    (tmp_path / "shared").mkdir(mode=0o555)
    out = tmp_path / "shared" / "results"
    status = main(["run", "reconnect_race", "--runs", "4", "--dask", clusters["faulty"].address,
                   "--out", str(out)])  # fmt: skip
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not out.exists()
    assert len(error) == 1 and "cannot write the results" in error[0] and str(tmp_path) in error[0], error


def test_a_shard_that_keeps_killing_its_worker_is_named_not_retried_forever(
    clusters: dict[str, DaskProcesses], tmp_path: Path
) -> None:
    out = tmp_path / "dask"
    with connect(clusters["faulty"].address) as client:
        client.wait_for_workers(2, timeout=30)
        with pytest.raises(WorkerDied) as died:
            run_batch_to(SCENARIO, 12, 1, out, shard_size=4, runner=DaskRunner(client))
    message = str(died.value)
    assert "\n" not in message
    assert f"shard 1 (runs 4..7, seeds {run_seed(4, 1)}, {run_seed(5, 1)}" in message
    assert "each of the 2 times Dask ran it, and again alone" in message
    assert sorted(p.name for p in out.glob("*.done")) == ["shard-00000.done", "shard-00002.done"]


def test_the_audit_catches_a_worker_that_is_not_deterministic(
    clusters: dict[str, DaskProcesses], tmp_path: Path
) -> None:
    with connect(clusters["faulty"].address) as client:
        client.wait_for_workers(2, timeout=30)
        with pytest.raises(AuditMismatch) as mismatch:  # runs 8.. never meet the planted kill
            run_batch_to(SCENARIO, 4, 2, tmp_path / "dask", shard_size=2, runner=DaskRunner(client, audit=1.0))
    assert "runs table(s)" in str(mismatch.value) and "shard 0 of" in str(mismatch.value)


def test_check_determinism_on_the_cluster_audits_every_shard(
    clusters: dict[str, DaskProcesses], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    status = main(["check-determinism", "broker_connection", "--runs", "8", "--dask", clusters["clean"].address])
    said = capsys.readouterr()
    assert status == 0, said.err
    assert "identical tables twice on 1 worker and on the Dask cluster" in said.out
    assert "determinism audit: 4 shard(s) run again (4 on another worker), identical" in said.err
    assert list(tmp_path.iterdir()) == []  # the passes' folder is removed


@pytest.mark.parametrize(
    ("address", "expected"),
    [("tcp//10.0.0.5:8786", "expected 'local' or a scheduler address"), ("tcp://host:99999", "expected 'local'")],
)
def test_a_malformed_address_is_refused_by_the_parser(
    address: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_address(address)
    assert parse_address("10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    with pytest.raises(SystemExit) as exited:
        main(["run", "reconnect_race", "--dask", address, "--out", str(tmp_path / "never")])
    error = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and not (tmp_path / "never").exists()
    assert len(error) == 1 and error[0].startswith("simlab run: error: argument --dask: expected 'local'"), error


def test_an_unreachable_scheduler_is_one_line_and_exit_2_within_10_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    started = time.monotonic()
    status = main(["run", "reconnect_race", "--runs", "4", "--dask", f"tcp://127.0.0.1:{free_port()}", "--out",
                   str(out)])  # fmt: skip
    elapsed = time.monotonic() - started
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not out.exists() and elapsed < 10
    assert len(error) == 1 and error[0].startswith("simlab run: no Dask scheduler answered at tcp://127.0.0.1:")


def test_something_else_listening_at_the_address_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as server:  # a web server, say: it answers anything with a page
        server.bind(("127.0.0.1", 0))
        server.listen()
        threading.Thread(target=_answer_http, args=(server,), daemon=True).start()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        status = main(["run", "reconnect_race", "--dask", address, "--out", str(tmp_path / "never")])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not (tmp_path / "never").exists()
    assert len(error) == 1 and f"what answered at {address} is not a Dask scheduler" in error[0], error


def _answer_http(server: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while True:
            connection, _ = server.accept()
            with connection:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" * 4)


def test_a_listener_that_never_answers_is_refused_within_10_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as server:  # accepts, then says nothing: Dask's own timeout would wait on it for a minute
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        status = main(["run", "reconnect_race", "--dask", address, "--out", str(tmp_path / "never")])
        elapsed = time.monotonic() - started
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and elapsed < 10 and not (tmp_path / "never").exists()
    assert error == [f"simlab run: no Dask scheduler answered at {address} within 5 s"]
