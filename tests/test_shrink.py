"""simlab shrink: signatures, the search under a budget and Ctrl-C, and a shipped scenario's run shrunk end to end.

The end-to-end test shrinks run 5 of a 6-run batch of reconnect_race (its seed variants: the run loses a
connection's accounts), a run of ~20 ms: the whole search takes well under a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sagas.engine.trace import TraceRecord
from simlab.batch.batches import run_batch_to
from simlab.batch.results import load_results
from simlab.batch.runner import run_once, run_seed
from simlab.batch.shrink import (
    REDUCERS,
    BudgetSpent,
    RunSize,
    ShrinkError,
    Signature,
    settled,
    shrink,
    signature_of,
    signatures,
)
from simlab.batch.shrink_reducers import workload
from simlab.cli import main
from simlab.evidence.invariants import Violation
from simlab.present.report import build_report
from simlab.present.shrunk import shrunk_examples
from simlab.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
RACE_RUN = 5  # the first run of reconnect_race from its root seed 1 to violate no_orphans (it violates nothing else)


def _record(t: float, saga: str, kind: str, step: str | None, phase: str, outcome: str, error: str | None = None):
    return TraceRecord(t, saga, kind, None, step, 1, phase, outcome, error)


def test_a_signature_is_the_first_failed_attempt_of_the_named_sagas_up_to_the_violation() -> None:
    by_saga = {
        "a": [_record(1, "a", "Connect", "link", "execute", "completed")],
        "b": [
            _record(2, "b", "Disconnect", "purge", "execute", "timed_out"),
            _record(3, "b", "Disconnect", "purge", "execute", "failed", "BrokerUnavailable"),
        ],
        "c": [_record(9, "c", "Order", "place", "execute", "failed", "Late")],  # after the violation
    }
    found = signature_of(Violation("no_orphans", 5.0, ("a", "b", "c"), ""), by_saga)
    assert found == Signature("no_orphans", "Connect+Disconnect", "purge", "timed_out")
    clean = {"a": by_saga["a"], "b": [_record(2, "b", "Disconnect", "purge", "execute", "completed")]}
    race = signature_of(Violation("no_orphans", 5.0, ("a", "b"), ""), clean)
    assert race == Signature("no_orphans", "Connect+Disconnect", "purge", "")  # the last named saga's last step
    assert signature_of(Violation("task_failed", 1.0, (), "boom"), by_saga) == Signature("task_failed", "", "", "")


@pytest.fixture(scope="module")
def race_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("race") / "batch"
    run_batch_to(load_scenario("reconnect_race"), RACE_RUN + 1, 1, folder, workers=1, shard_size=RACE_RUN + 1)
    return folder


def test_a_run_without_a_violation_or_without_the_invariant_asked_for_is_refused() -> None:
    race = load_scenario("reconnect_race")
    with pytest.raises(ShrinkError, match="violated no invariant"):
        shrink(race, run_seed(0, 1), budget_s=10)
    with pytest.raises(ShrinkError, match=r"--invariant lock_hygiene: the run did not violate it \(it violated no_"):
        shrink(race, run_seed(RACE_RUN, 1), budget_s=10, invariant="lock_hygiene")


def test_a_spent_budget_keeps_the_run_itself_as_its_own_reproduction() -> None:
    race = load_scenario("reconnect_race")
    result = shrink(race, run_seed(RACE_RUN, 1), budget_s=1e-9)
    assert (result.stopped, result.candidates, result.kept) == ("budget", 0, 0)
    assert result.best is race and result.best_size == result.original_size


def test_ctrl_c_keeps_the_smallest_reproduction_found_so_far() -> None:
    race, seed = load_scenario("reconnect_race"), run_seed(RACE_RUN, 1)
    kept: list[int] = []

    def interrupted_after_two(scenario, test, made):  # the real workload reducer, cut by a Ctrl-C after 2 kept
        def counting(candidate, what):
            if len(kept) == 2:
                raise KeyboardInterrupt
            found = test(candidate, what)
            kept.extend([1] if found else [])
            return found

        return workload(scenario, counting, made)

    result = shrink(race, seed, budget_s=60, reducers=[("workload", interrupted_after_two)])
    assert (result.stopped, result.kept, result.exit_status) == ("interrupted", 2, 130)
    assert result.best is not race
    assert result.target in signatures(run_once(result.best, seed, keep_trace=True))
    assert result.best_size.sagas < result.original_size.sagas


def test_the_search_never_keeps_a_candidate_without_the_signature() -> None:
    race, seed = load_scenario("reconnect_race"), run_seed(RACE_RUN, 1)
    verdicts: list[tuple[object, bool]] = []

    def watched(name, reducer):
        def run(scenario, test, made):
            def recording(candidate, what):
                found = test(candidate, what)
                verdicts.append((candidate, found))
                return found

            return reducer(scenario, recording, made)

        return name, run

    result = shrink(race, seed, budget_s=60, reducers=[watched(n, r) for n, r in REDUCERS])
    assert result.stopped == "done" and result.kept > 0
    assert [c for c, found in verdicts if found][-1] is result.best
    refused = [c for c, found in verdicts if not found]
    assert refused and result.best not in refused
    for candidate in refused[:5]:  # without the signature, or cut short with a saga still under way
        run = run_once(candidate, seed, keep_trace=True)
        assert result.target not in signatures(run) or not settled(run)


def test_a_candidate_cut_short_with_a_saga_under_way_is_not_a_reproduction() -> None:
    from simlab.batch.shrink import Search, ShrinkResult

    race, seed = load_scenario("reconnect_race"), run_seed(RACE_RUN, 1)
    original = run_once(race, seed, keep_trace=True)
    assert settled(original)
    target = signatures(original)[0]
    search = Search(ShrinkResult(seed, target, race, RunSize.of(original), race, original), [target], 1e18,
                    lambda *_: None)  # fmt: skip
    cut = race.model_copy(update={"horizon_s": 6.5})
    run = run_once(cut, seed, keep_trace=True)
    assert target in signatures(run) and not settled(run)  # the "failure", judged while a purge still runs
    assert search.test(cut, "horizon_s 6.5") is False
    assert search.result.best is race


def test_budget_spent_is_raised_before_a_candidate_runs() -> None:
    from simlab.batch.shrink import Search, ShrinkResult

    race = load_scenario("reconnect_race")
    original = run_once(race, run_seed(RACE_RUN, 1), keep_trace=True)
    result = ShrinkResult(original.seed, signatures(original)[0], race, RunSize.of(original), race, original)
    search = Search(result, [], time.monotonic() - 1, lambda *_: None)
    with pytest.raises(BudgetSpent):
        search.test(race, "anything")
    assert result.candidates == 0


def test_a_violating_run_of_a_shipped_scenario_shrinks_to_a_repro_that_replays_and_fails_its_test(
    race_batch: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seed = run_seed(RACE_RUN, 1)
    original = run_once(load_scenario("reconnect_race"), seed, keep_trace=True)
    assert main(["shrink", str(race_batch), "--run", str(RACE_RUN), "--budget", "60"]) == 0
    printed = capsys.readouterr().out
    out = race_batch / "shrunk" / f"no_orphans-run{RACE_RUN}"
    assert "Replay it: " in printed and "kept (workload)" in printed
    repro = load_scenario(str(out / "repro.yaml"))
    replayed = run_once(repro, seed, keep_trace=True)
    assert signatures(original)[0] in signatures(replayed)  # the repro shows the original's first failure
    before, after = RunSize.of(original), RunSize.of(replayed)
    assert after.sagas < before.sagas and after.records < before.records and after.last_t < before.last_t
    assert settled(replayed)  # it ends, as the original did, with every saga finished
    header = (out / "repro.yaml").read_text().splitlines()[:3]
    assert any(line.endswith(f"replay {out / 'repro.yaml'} --seed {seed}") for line in header)
    assert main(["replay", str(out / "repro.yaml"), "--seed", str(seed)]) == 0
    assert "VIOLATION no_orphans" in capsys.readouterr().out
    # The repro names its run (run_seeds): replayed without --seed, or run as a batch, it is that run.
    assert repro.run_seeds == (seed,) and repro.runs == 1
    assert main(["replay", str(out / "repro.yaml")]) == 0
    text = capsys.readouterr().out
    assert f"trace sha256: {replayed.trace_hash}\n" in text and "VIOLATION no_orphans" in text
    status = main(["run", str(out / "repro.yaml"), "--out", str(tmp_path / "again"), "--workers", "1"])
    capsys.readouterr()
    again = load_results(tmp_path / "again")
    assert again.runs[["run", "seed", "trace_hash"]].values.tolist() == [[0, seed, replayed.trace_hash]]
    assert status == 0 and "no_orphans" in set(again.violations["invariant"])
    assert main(["run", str(out / "repro.yaml"), "--runs", "2", "--out", str(tmp_path / "two")]) == 2
    assert "--runs 2: scenario 'reconnect_race' lists 1 run seed(s) (run_seeds)" in capsys.readouterr().err
    assert main(["run", str(out / "repro.yaml"), "--seed", "3", "--out", str(tmp_path / "two")]) == 2
    assert "--seed 3: scenario 'reconnect_race' lists its runs' own seeds (run_seeds)" in capsys.readouterr().err
    assert main(["check-determinism", str(out / "repro.yaml"), "--runs", "3", "--workers", "1"]) == 2
    assert "--runs 3: scenario 'reconnect_race' lists 1 run seed(s) (run_seeds)" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"runs 2: scenario 'reconnect_race' lists 1 run seed\(s\)"):
        run_batch_to(repro, 2, 0, tmp_path / "two")
    assert not (tmp_path / "two").exists()
    assert (out / "timeline.png").stat().st_size > 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    test = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out / "test_repro.py")],
        capture_output=True, text=True, timeout=120, cwd=out, env=env,
    )  # fmt: skip
    assert test.returncode == 1 and "1 failed" in test.stdout, test.stdout[-2000:]
    examples = shrunk_examples(race_batch)
    assert [(e.invariant, e.size.sagas) for e in examples] == [("no_orphans", after.sagas)]
    assert "Smallest reproductions" in build_report(race_batch)


def test_simlab_shrink_stopped_by_sigint_writes_what_it_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real SIGINT, sent to this process once the search kept its second candidate (in-process: a
    subprocess would spend seconds importing the lab)."""
    import simlab.cli_shrink

    seed, kept = run_seed(RACE_RUN, 1), []
    say = simlab.cli_shrink._say_step

    def say_then_interrupt(reducer: str, what: str, size: RunSize) -> None:
        say(reducer, what, size)
        kept.append(size)
        if len(kept) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(simlab.cli_shrink, "_say_step", say_then_interrupt)
    out = tmp_path / "out"
    assert main(["shrink", "reconnect_race", "--seed", str(seed), "--budget", "600", "--out", str(out)]) == 130
    assert "stopped: interrupted" in capsys.readouterr().out
    repro = load_scenario(str(out / "repro.yaml"))
    replayed = run_once(repro, seed, keep_trace=True)
    assert RunSize.of(replayed) == kept[-1]  # the second candidate kept: the search went no further
    assert signatures(run_once(load_scenario("reconnect_race"), seed, keep_trace=True))[0] in signatures(replayed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
