"""Hostile input is refused: one line, exit status 2, nothing written (the corpus of ``tests/bad_inputs/``).

Every case runs ``simlab.cli.main`` in this process (a process each would cost a second per case);
the cases marked ``subprocess`` run as a real command too, so that what a user's terminal shows
(stderr of the process, its exit status) is checked end to end. How long each case takes, and how
much memory, is measured by ``benchmarks/hostile_inputs.py``, not here.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from simlab.cli import main
from simlab.scenario.loader import SCENARIOS_DIR
from tests.bad_inputs.corpus import Case, load_cases, make_results, prepare, problems

CASES = load_cases()


@pytest.fixture(scope="module")
def finished_batch(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """A finished batch of ``tiny.yaml``, made once (on first use) for the cases that damage a copy of it."""
    made: list[Path] = []

    def get() -> Path:
        if not made:
            made.append(make_results(tmp_path_factory.mktemp("batch") / "results"))
        return made[0]

    return get


def _in_process(argv: list[str]) -> tuple[int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status: int | None = main(argv)
        except SystemExit as exit_:  # argparse refuses by exiting
            status = exit_.code if isinstance(exit_.code, int) else None
    return status, out.getvalue(), err.getvalue()


def test_the_corpus_has_at_least_80_cases_of_every_command() -> None:
    commands = {case.command for case in CASES}
    assert len(CASES) >= 80
    assert {"validate", "run", "sweep", "report"} <= commands


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_hostile_input_is_refused_in_one_line(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finished_batch: Callable[[], Path]
) -> None:
    monkeypatch.chdir(tmp_path)  # a default output folder (results/...) would land here, and be seen
    prepared = prepare(case, tmp_path, finished_batch)
    status, stdout, stderr = _in_process(prepared.argv)
    assert problems(prepared, status, stdout, stderr) == []


@pytest.mark.parametrize("case", [c for c in CASES if c.subprocess], ids=[c.id for c in CASES if c.subprocess])
def test_a_hostile_input_is_refused_in_one_line_by_the_command(
    case: Case, tmp_path: Path, finished_batch: Callable[[], Path]
) -> None:
    prepared = prepare(case, tmp_path, finished_batch)
    done = subprocess.run(
        [sys.executable, "-m", "simlab", *prepared.argv], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert problems(prepared, done.returncode, done.stdout, done.stderr) == []


def test_the_checks_of_a_refusal_can_fail(tmp_path: Path, finished_batch: Callable[[], Path]) -> None:
    """The corpus's judge itself: a traceback, two lines, a long quoted value, a file left behind."""
    case = next(c for c in CASES if c.id == "lock_ttl_inf")
    prepared = prepare(case, tmp_path, finished_batch)
    line = f"simlab validate: {prepared.input}: sagas.lock_ttl_s: Input should be a finite number (got inf)\n"
    assert problems(prepared, 2, "", line) == []
    assert problems(prepared, 1, "", line) == ["exit status 1, not 2"]
    assert "a traceback on stderr" in problems(prepared, 2, "", "Traceback (most recent call last):\n" + line)
    long = line.replace("(got inf)", f"(got {'x' * 81!r})")
    assert any(p.startswith("a quoted value of 83 characters") for p in problems(prepared, 2, "", long))
    (tmp_path / "batch.txt").write_text("left behind")
    assert any(p.startswith("files written or changed") for p in problems(prepared, 2, "", line))


def test_validate_lists_every_problem_of_a_scenario_and_run_counts_them(tmp_path: Path) -> None:
    """With three problems, `simlab validate` prints the three, one line each; `simlab run` names the first."""
    scenario = yaml.safe_load((SCENARIOS_DIR / "reconnect_race.yaml").read_text())
    scenario["runs"] = -5
    scenario["sagas"]["lock_ttl_s"] = -1
    scenario["bogus"] = 1
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(scenario))
    status, stdout, stderr = _in_process(["validate", str(path)])
    assert (status, stdout) == (2, "")
    assert stderr.splitlines() == [
        f"simlab validate: {path}: runs: Input should be greater than or equal to 1 (got -5)",
        f"simlab validate: {path}: sagas.lock_ttl_s: Input should be greater than 0 (got -1)",
        f"simlab validate: {path}: bogus: unknown key (not part of the scenario schema)",
    ]
    status, stdout, stderr = _in_process(["run", str(path), "--out", str(tmp_path / "out")])
    assert (status, stdout) == (2, "")
    assert stderr == (
        f"simlab run: {path}: runs: Input should be greater than or equal to 1 (got -5) "
        "[and 2 more problem(s): simlab validate lists each]\n"
    )
    assert not (tmp_path / "out").exists()


def test_validate_keeps_a_problem_of_a_key_whose_name_begins_another_key(tmp_path: Path) -> None:
    """``brokers.alpaca`` and ``brokers.alpaca2`` are two fields: a problem in the second hides none of the first."""
    scenario = yaml.safe_load((SCENARIOS_DIR / "reconnect_race.yaml").read_text())
    scenario["brokers"] = {"alpaca": 5, "alpaca2": {"profile": "nope"}}
    path = tmp_path / "brokers.yaml"
    path.write_text(yaml.safe_dump(scenario))
    status, stdout, stderr = _in_process(["validate", str(path)])
    assert (status, stdout) == (2, "")
    lines = stderr.splitlines()
    assert len(lines) == 2, stderr
    assert lines[0].startswith(f"simlab validate: {path}: brokers.alpaca: ") and "(got 5)" in lines[0]
    assert lines[1].startswith(f"simlab validate: {path}: brokers.alpaca2.profile: ")
