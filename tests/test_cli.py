"""The ``simlab`` command as a user meets it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def simlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simlab", *args], capture_output=True, text=True, timeout=120)


def test_demo_prints_an_outcome_table_of_seeded_runs():
    result = simlab("sample", "--runs", "200", "--seed", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Sample saga") and "200 runs, seeds 3..202" in lines[0]
    header = next(line for line in lines if line.lstrip().startswith("count"))
    assert header.split() == ["count", "share", "p50_s", "p95_s", "max_s", "mean_retries"]
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["completed"], ["compensated"])}
    assert set(rows) == {"completed", "compensated"}
    counted = sum(int(line.split()[1]) for line in lines if line.split()[:1] and line.split()[0] in STATUSES)
    assert counted == 200


STATUSES = {"completed", "compensated", "compensation_failed", "timed_out", "aborted"}


def test_demo_output_is_the_same_for_the_same_seed():
    first = simlab("sample", "--runs", "50", "--seed", "11").stdout.splitlines()
    second = simlab("sample", "--runs", "50", "--seed", "11").stdout.splitlines()
    # the second line reports wall time; everything else must match exactly
    assert first[0] == second[0] and first[2:] == second[2:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample", "--runs", "zero"], "argument --runs: expected a positive integer, got 'zero'"),
        (["sample", "--runs", "0"], "argument --runs: expected a positive integer, got '0'"),
        (["sample", "--seed", "-4"], "argument --seed: expected a non-negative integer seed, got '-4'"),
        (["explode"], "invalid choice: 'explode'"),
    ],
)
def test_bad_arguments_get_one_clear_line_and_exit_code_2(args, message):
    result = simlab(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1  # the usage is one --help away, not printed above the error
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
