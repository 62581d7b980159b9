"""Interrupting a batch: nothing cut off is kept, every worker stops, and a resume completes it exactly.

The end-to-end cases run ``simlab run`` in a process group of its own, signal it at a point
drawn from a seeded generator (after 0, 1 or 2 shards are finished, plus a little), resume the
batch, and compare every table with an uninterrupted run of the same batch.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sagas.engine.errors import DeadlineExceeded
from simlab.batch.batches import run_batch_to
from simlab.batch.interrupts import BatchInterrupted
from simlab.batch.results import Results, load_results
from simlab.batch.shards import TABLES, scan_folder
from simlab.scenario import load_scenario
from simlab.sim.runtime import SimRuntime

SCENARIO = "reconnect_race"
RUNS = 120
SHARD = 10
ROOT = 7


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """The same batch, never interrupted."""
    out = tmp_path_factory.mktemp("reference") / "batch"
    run_batch_to(load_scenario(SCENARIO), RUNS, ROOT, out, workers=1, shard_size=SHARD)
    return load_results(out)


def _assert_same_tables(found: Results, reference: Results) -> None:
    assert found.runs["run"].tolist() == list(range(RUNS))  # none missing, none twice
    for name in TABLES:
        assert getattr(found, name).equals(getattr(reference, name)), name


def _live_members(group: int) -> list[str]:
    """Processes of a process group that still run (zombies left to an init that does not reap are dead)."""
    listed = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(group)], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.split() and not line.split()[1].startswith("Z")]


def _wait_for_markers(out: Path, count: int, process: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list(out.glob("shard-*.done"))) < count and process.poll() is None:
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.02)


CASES = [
    (1, "SIGINT", "group"),
    (1, "SIGTERM", "parent"),
    (1, "SIGKILL", "parent"),
    (2, "SIGINT", "group"),
    (2, "SIGTERM", "parent"),
    (2, "SIGTERM", "group"),
    (2, "SIGKILL", "parent"),
    (2, "SIGKILL", "group"),
]


@pytest.mark.parametrize(("workers", "signal_name", "target"), CASES)
def test_an_interrupted_batch_resumes_to_exactly_the_uninterrupted_tables(
    workers: int, signal_name: str, target: str, reference: Results, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    rng = random.Random(f"{workers}/{signal_name}/{target}")
    command = [sys.executable, "-m", "simlab", "run", SCENARIO, "--runs", str(RUNS), "--seed", str(ROOT)]
    command += ["--workers", str(workers), "--shard-size", str(SHARD), "--out", str(out)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _wait_for_markers(out, rng.choice([0, 1, 2]), process)
        time.sleep(rng.uniform(0.0, 0.3))
        assert process.poll() is None, "the batch finished before it could be interrupted"
        number = getattr(signal, signal_name)
        if target == "group":
            os.killpg(process.pid, number)
        else:
            os.kill(process.pid, number)
        # Generous bounds against a hang only: how fast it stops is benchmarks/interrupt_stop.py's to measure.
        _, stderr = process.communicate(timeout=30)
        deadline = time.monotonic() + 30.0
        while _live_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _live_members(process.pid) == [], "a worker outlived the batch"
    finally:
        if process.poll() is None or _live_members(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
    kept = scan_folder(out).runs
    if signal_name == "SIGKILL":
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 128 + getattr(signal, signal_name)
        assert stderr.strip().splitlines()[-1] == (
            f"simlab run: interrupted by {signal_name}: {kept} of {RUNS} runs are kept in {out}; "
            "run the same command again to complete it"
        )
    ran, _ = run_batch_to(load_scenario(SCENARIO), RUNS, ROOT, out, workers=workers, shard_size=SHARD)
    assert ran == RUNS - kept
    _assert_same_tables(load_results(out), reference)


# -- in one process ----------------------------------------------------------------------------


def test_a_keyboard_interrupt_inside_a_simulated_task_stops_the_simulation_instead_of_failing_the_task() -> None:
    runtime = SimRuntime()

    async def interrupted() -> None:
        await runtime.sleep(1.0)
        raise KeyboardInterrupt

    async def bystander() -> None:
        await runtime.sleep(5.0)

    runtime.spawn(interrupted(), name="interrupted")
    runtime.spawn(bystander(), name="bystander")
    with pytest.raises(KeyboardInterrupt):
        runtime.run()
    assert runtime.now() == 1.0
    assert runtime.unobserved_errors() == []  # not a task failure that a run would report as a violation


def test_an_interrupt_while_a_cut_off_step_cleans_up_is_not_turned_into_a_timeout() -> None:
    runtime = SimRuntime()
    seen: list[str] = []

    async def step() -> None:
        try:
            await runtime.sleep(10.0)
        finally:
            raise KeyboardInterrupt  # arrives while the step unwinds from its deadline

    async def main() -> None:
        try:
            await runtime.run_with_deadline(step(), 2.0)
        except DeadlineExceeded:
            seen.append("timeout")

    runtime.spawn(main(), name="main")
    with pytest.raises(KeyboardInterrupt):
        runtime.run()
    assert seen == [] and runtime.now() == 2.0


def test_a_cancelled_task_is_still_a_cancellation_not_an_error() -> None:
    runtime = SimRuntime()

    async def sleeper() -> None:
        await runtime.sleep(10.0)

    task = runtime.spawn(sleeper(), name="sleeper")

    async def canceller() -> None:
        await runtime.sleep(1.0)
        task.cancel()

    runtime.spawn(canceller(), name="canceller")
    runtime.run()
    assert task.done() and isinstance(task.exception, asyncio.CancelledError)
    assert runtime.unobserved_errors() == []


def test_a_shard_cut_off_in_process_is_not_marked_finished_and_a_resume_completes_it(
    reference: Results, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simlab.batch.batches as batch

    real_run_once = batch.run_once
    calls = {"n": 0}

    def run_once_then_ctrl_c(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 25:  # in the middle of the third shard (runs 20..29)
            os.kill(os.getpid(), signal.SIGINT)
        return real_run_once(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "run_once", run_once_then_ctrl_c)
    out = tmp_path / "batch"
    with pytest.raises(BatchInterrupted) as raised:
        run_batch_to(load_scenario(SCENARIO), RUNS, ROOT, out, workers=1, shard_size=SHARD)
    assert str(raised.value) == (
        f"interrupted by SIGINT: 20 of {RUNS} runs are kept in {out}; run the same command again to complete it"
    )
    assert sorted(scan_folder(out).finished) == [0, 1]
    monkeypatch.setattr(batch, "run_once", real_run_once)
    assert run_batch_to(load_scenario(SCENARIO), RUNS, ROOT, out, workers=1, shard_size=SHARD)[0] == RUNS - 20
    _assert_same_tables(load_results(out), reference)


def test_a_stop_whose_exception_was_swallowed_still_names_its_signal(tmp_path: Path) -> None:
    # The handler's exception can land where it is dropped (a weakref finalizer run by the collector prints
    # and ignores it); the shard that notices the stop afterwards must still say which signal it was.
    from simlab.batch.batches import run_shard
    from simlab.batch.interrupts import stop_on_signals, stop_requested, stop_signal
    from simlab.batch.shards import Shard

    with stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)  # the handler runs in this thread, between two bytecodes of this sleep's caller
        except BatchInterrupted:
            pass  # swallowed, as a finalizer would
        assert stop_requested() and stop_signal() == "SIGTERM"
        with pytest.raises(BatchInterrupted) as stopped:
            run_shard(load_scenario(SCENARIO), ROOT, Shard(0, 0, 1), tmp_path)
    assert stopped.value.signal_name == "SIGTERM" and stopped.value.exit_status == 128 + signal.SIGTERM
    assert not list(tmp_path.iterdir())  # nothing written for the shard it stopped
