"""The Dask path's overhead: `simlab run` on the process pool and on a LocalCluster, same workers (a benchmark).

Runs `simlab run SCENARIO --runs N --workers W` and the same command with `--dask local` (a
LocalCluster of W single-threaded worker processes, started by the command), alternating them
`--repeat` times, each a fresh process writing to a temporary folder, and prints the runs per wall
second of each (the median), and their ratio, from this one invocation. Target (issue 14): the
cluster path reaches at least 0.9 of the process pool on one machine, so that adding machines
multiplies throughput. Verified: both commands exit 0 and store runs 0..N-1 with identical
trace hashes.

    .venv/bin/python benchmarks/bench_cluster.py                    # reconnect_race, 10,000 runs, 2 workers
    .venv/bin/python benchmarks/bench_cluster.py --runs 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from judging import Target  # a sibling script: run as a script, its folder is on the path

from simlab.batch.results import hashes

TARGET_RATIO = Target(0.9, unit="x")


def timed(scenario: str, runs: int, workers: int, out: Path, dask: bool) -> float:
    """Wall seconds of one whole `simlab run` command (on the cluster if ``dask``); it must exit 0."""
    command = [sys.executable, "-m", "simlab", "run", scenario, "--runs", str(runs), "--workers", str(workers),
               "--seed", "1", "--out", str(out)]  # fmt: skip
    if dask:
        command += ["--dask", "local"]
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise AssertionError(f"`simlab {' '.join(command[3:])}` failed: {done.stderr.strip()[-500:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="reconnect_race")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="pairs of commands, alternated (default 1)")
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {"process pool": [], "LocalCluster": []}
    stored: dict[str, list[tuple[int, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        for attempt in range(args.repeat):
            for label, dask in (("process pool", False), ("LocalCluster", True)):
                out = Path(tmp) / f"{label.replace(' ', '-')}-{attempt}"
                print(f"{label}, pass {attempt + 1} of {args.repeat} ...", file=sys.stderr, flush=True)
                seconds[label].append(timed(args.scenario, args.runs, args.workers, out, dask))
                stored.setdefault(label, hashes(out))
    pool, cluster = stored["process pool"], stored["LocalCluster"]
    if [index for index, _ in pool] != list(range(args.runs)) or cluster != pool:
        print("VERIFICATION FAILED: the two backends did not store the same runs with the same trace hashes")
        return 1
    rate = {label: args.runs / statistics.median(found) for label, found in seconds.items()}
    ratio = rate["LocalCluster"] / rate["process pool"]
    print(f"simlab run {args.scenario} --runs {args.runs} --workers {args.workers} (whole command, "
          f"median of {args.repeat}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f})")  # fmt: skip
    for label, value in rate.items():
        print(f"  {label:<13} {value:10.1f} runs/s   ({', '.join(f'{s:.1f} s' for s in seconds[label])})")
    print(f"  ratio         {ratio:10.2f}   target {TARGET_RATIO.describe()}   {TARGET_RATIO.verdict(ratio)}")
    print(f"  trace hashes  identical for all {args.runs:,} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
