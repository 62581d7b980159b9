"""Whole-command throughput and memory of `simlab run` (a benchmark, not a test).

Measures, each as a fresh `python -m simlab run` process writing to a temporary folder: runs per
second for a scenario at 1 and 2 workers (the whole command: start-up, workers, Parquet shards),
and peak resident memory of its largest process at a small and a large number of runs (memory
must stay flat as N grows). Targets (issue 12, 2-core machine): `reconnect_race` at >= 500 runs/s,
stretch 1,000, with 2 workers over 10,000 runs; `chaos_swarm` at >= 250 runs/s with 2 workers;
peak memory at 10,000 runs within 1.2x of that at 1,000. Every command is verified: it exits 0 and
its folder holds every run, indices 0..N-1.

    .venv/bin/python benchmarks/bench_runner.py                       # reconnect_race and chaos_swarm
    .venv/bin/python benchmarks/bench_runner.py --runs 2000 --small 200 --scenario chaos_swarm
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from judging import Target  # a sibling script: run as a script, its folder is on the path

from simlab.batch.results import hashes

TARGET_RUNS_PER_S = {
    "reconnect_race": Target(500.0, stretch=1000.0, unit=" runs/s"),
    "chaos_swarm": Target(250.0, unit=" runs/s"),
}
"""Issue 12's targets for the whole command with 2 workers; other scenarios are measured, not judged."""
TARGET_MEMORY_RATIO = Target(1.2, higher_is_better=False)


# Run in a fresh interpreter so that the peak it reports belongs to this one command alone
# (RUSAGE_CHILDREN keeps the largest child ever waited for, across all earlier measurements, and
# a child forked straight from this process would start from this process's own size).
_WRAPPER = """
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One `simlab run` command: its size, wall seconds and the peak memory of its largest process."""

    scenario: str
    runs: int
    workers: int
    seconds: float
    peak_mib: float

    @property
    def runs_per_s(self) -> float:
        """Runs per wall second of the whole command."""
        return self.runs / self.seconds


def measure(scenario: str, runs: int, workers: int) -> Measurement:
    """Run `simlab run SCENARIO --runs RUNS --workers WORKERS` in a temporary folder; verified."""
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        out = Path(tmp) / "r"
        command = [
            sys.executable,
            "-m",
            "simlab",
            "run",
            scenario,
            "--runs",
            str(runs),
            "--workers",
            str(workers),
            "--seed",
            "1",
            "--out",
            str(out),
        ]
        wrapped = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True)
        if wrapped.returncode != 0:
            # simlab's own output went to /dev/null (its progress bar); the command line is enough to see why.
            raise AssertionError(f"`simlab {' '.join(command[3:])}` failed: run it alone to see why")
        seconds, peak_kib = wrapped.stdout.split()
        found = [index for index, _ in hashes(out)]
        if found != list(range(runs)):
            raise AssertionError(f"simlab run {scenario} --runs {runs} stored {len(found)} runs, not 0..{runs - 1}")
    return Measurement(scenario, runs, workers, float(seconds), int(peak_kib) / 1024.0)


def report(scenario: str, runs: int, small: int, as_json: bool) -> None:
    """Measure one scenario and print its figures next to the targets."""
    one = measure(scenario, runs, 1)
    two = measure(scenario, runs, 2)  # also the large-memory figure: the same command
    little = measure(scenario, small, 2)
    ratio = two.peak_mib / little.peak_mib
    print(f"simlab run {scenario}: {runs} runs (whole command, 2-core machine)")
    print(f"  1 worker    {one.runs_per_s:10.1f} runs/s")
    target = TARGET_RUNS_PER_S.get(scenario)
    judged = f"target {target.describe()}   {target.verdict(two.runs_per_s)}" if target else "(no target)"
    print(f"  2 workers   {two.runs_per_s:10.1f} runs/s   {judged}")
    print(f"  peak memory {little.peak_mib:8.1f} MiB at {small} runs, {two.peak_mib:8.1f} MiB at {runs} runs")
    print(
        f"  ratio       {ratio:10.2f}   target {TARGET_MEMORY_RATIO.describe()}   {TARGET_MEMORY_RATIO.verdict(ratio)}"
    )
    if as_json:
        figures = {
            "runs_per_s_1w": one.runs_per_s,
            "runs_per_s_2w": two.runs_per_s,
            "peak_mib_small": little.peak_mib,
            "peak_mib_large": two.peak_mib,
        }
        print(json.dumps({"scenario": scenario, "runs": runs, **figures, "memory_ratio": ratio}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenario", action="append", help="scenario(s) to measure (default: reconnect_race and chaos_swarm)"
    )
    parser.add_argument("--runs", type=int, default=10_000, help="runs of the throughput and large-memory runs")
    parser.add_argument("--small", type=int, default=1_000, help="runs of the small-memory run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for scenario in args.scenario or ["reconnect_race", "chaos_swarm"]:
        report(scenario, args.runs, args.small, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
