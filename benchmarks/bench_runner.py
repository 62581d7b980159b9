"""Whole-command throughput and memory of `simlab run` (a benchmark, not a test).

Measures, each as a fresh `python -m simlab run` process writing to a temporary folder:
runs per second for a scenario at 1 and 2 workers, and peak resident memory at a small and
a large number of runs (memory must stay flat as N grows). Targets (issue 4, 2-core machine):
`reconnect_race` at >= 1,000 runs/s with 2 workers over 10,000 runs; peak memory at 10,000
runs within 1.2x of that at 1,000.

    .venv/bin/python benchmarks/bench_runner.py                       # reconnect_race, full sizes
    .venv/bin/python benchmarks/bench_runner.py --runs 2000 --small 200 --scenario chaos_swarm
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_RUNS_PER_S = 1000.0
TARGET_MEMORY_RATIO = 1.2


# Run in a fresh interpreter so that the peak it reports belongs to this one command alone
# (RUSAGE_CHILDREN keeps the largest child ever waited for, across all earlier measurements).
_WRAPPER = """
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(scenario: str, runs: int, workers: int) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB of the largest process) of one `simlab run`."""
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as out:
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
            str(Path(out) / "r"),
        ]
        wrapped = subprocess.run([sys.executable, "-c", _WRAPPER, *command], check=True, capture_output=True, text=True)
        seconds, peak_kib = wrapped.stdout.split()
    return float(seconds), int(peak_kib) / 1024.0


def report(scenario: str, runs: int, small: int, as_json: bool) -> None:
    """Measure one scenario and print its figures next to the targets."""
    figures: dict[str, float] = {}
    for workers in (1, 2):
        elapsed, _ = measure(scenario, runs, workers)
        figures[f"runs_per_s_{workers}w"] = runs / elapsed
    _, small_mib = measure(scenario, small, 2)
    _, large_mib = measure(scenario, runs, 2)
    figures["peak_mib_small"], figures["peak_mib_large"] = small_mib, large_mib
    ratio = large_mib / small_mib
    speed = figures["runs_per_s_2w"]
    print(f"simlab run {scenario}: {runs} runs (whole command, 2-core machine)")
    print(f"  1 worker    {figures['runs_per_s_1w']:10.1f} runs/s")
    verdict = "PASS" if speed >= TARGET_RUNS_PER_S else "FAIL"
    print(f"  2 workers   {speed:10.1f} runs/s   target >= {TARGET_RUNS_PER_S:g}   {verdict}")
    print(f"  peak memory {small_mib:8.1f} MiB at {small} runs, {large_mib:8.1f} MiB at {runs} runs")
    mem_verdict = "PASS" if ratio <= TARGET_MEMORY_RATIO else "FAIL"
    print(f"  ratio       {ratio:10.2f}   target <= {TARGET_MEMORY_RATIO}   {mem_verdict}")
    if as_json:
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
