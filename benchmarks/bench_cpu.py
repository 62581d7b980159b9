"""CPU per scenario run, in one process, as a worker spends it (a benchmark, not a test).

Run it as a script::

    .venv/bin/python benchmarks/bench_cpu.py                    # both figures, default sizes
    .venv/bin/python benchmarks/bench_cpu.py --runs 100 --herd-runs 20 --json

Two figures of issue 12, both from ``simlab.batch.runner.run_once`` (what a ``simlab run``
worker calls for each run: build the scenario's world, inject its faults, drive its workload to
the horizon, check its invariants), without the batch around it (processes, Parquet shards):

- **CPU per reconnect_race run**: a few warm-up runs (imports, first-call caches), then
  ``time.process_time()`` over N runs (seeds of runs 0..N-1 of the scenario's own batch).
  Target <= 4 ms, stretch 2 ms.
- **simulated seconds per CPU second, thundering_herd**: N runs of the scenario, the simulated
  seconds they covered divided by the process's CPU seconds (CPU seconds of one process are
  seconds of one core, hence "per core"). Target >= 100,000.

Process CPU time rather than wall time, so that other work on the machine does not count
(it still slows a run down through shared caches: compare figures from an idle machine).

Verified (else it raises): every run started sagas and no simulated task died of an unhandled
error (the runs did the scenario's work, not a crash), nothing happened past the horizon, and
run 0 run again gives the same trace hash (the runs are the deterministic ones the lab makes).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from judging import Target  # a sibling script: run as a script, its folder is on the path

from simlab.batch.runner import RunResult, run_once, run_seed
from simlab.scenario.loader import load_scenario
from simlab.scenario.model import Scenario

CPU_SCENARIO = "reconnect_race"
HERD_SCENARIO = "thundering_herd"
TARGET_MS_PER_RUN = Target(4.0, stretch=2.0, higher_is_better=False, unit=" ms")
TARGET_SIM_S_PER_CPU_S = Target(100_000.0)  # simulated seconds per CPU second
WARMUP_RUNS = 5


@dataclass(frozen=True, slots=True)
class CpuFigures:
    """CPU seconds that ``runs`` runs of one scenario took in this process, and what they simulated."""

    scenario: str
    runs: int
    cpu_s: float
    horizon_s: float

    @property
    def ms_per_run(self) -> float:
        """CPU milliseconds per run."""
        return 1000.0 * self.cpu_s / self.runs

    @property
    def simulated_s(self) -> float:
        """Simulated seconds the runs covered.

        ``run_once`` runs the simulation with ``runtime.run(until=horizon)``, and simpy's ``until``
        is an event of its own: the clock always reaches the horizon, an idle stretch costing one
        jump. So each run covers exactly its horizon (``run_once`` does not expose the clock).
        """
        return self.runs * self.horizon_s

    @property
    def sim_s_per_cpu_s(self) -> float:
        """Simulated seconds per CPU second (of one core)."""
        return self.simulated_s / self.cpu_s

    def as_json(self) -> dict[str, Any]:
        """The figures as one flat, machine-readable mapping."""
        return {
            "scenario": self.scenario,
            "runs": self.runs,
            "cpu_s": round(self.cpu_s, 4),
            "ms_per_run": round(self.ms_per_run, 3),
            "sim_s_per_cpu_s": round(self.sim_s_per_cpu_s),
        }


def _verify(scenario: Scenario, results: list[RunResult]) -> None:
    """Fail loudly unless every run did the scenario's work within its horizon."""
    for result in results:
        if not result.sagas:
            raise AssertionError(f"{scenario.name} run with seed {result.seed} started no saga")
        crashed = [v for v in result.violations if v.invariant == "task_failed"]
        if crashed:
            raise AssertionError(f"{scenario.name} run with seed {result.seed}: a simulated task died: {crashed[0]}")
        late = [s for s in result.sagas if max(s.started_at, s.ended_at or 0.0) > scenario.horizon_s]
        if late:
            raise AssertionError(f"{scenario.name} run with seed {result.seed} went past its horizon: {late[0]}")


def time_runs(name: str, runs: int, warmup: int = WARMUP_RUNS) -> CpuFigures:
    """Process CPU seconds of runs ``0 .. runs-1`` of scenario ``name`` after ``warmup`` other runs; verified."""
    scenario = load_scenario(name)
    # Warm-up seeds lie after the timed ones, so that the timed runs are exactly runs 0..N-1 of the batch.
    for index in range(runs, runs + warmup):
        run_once(scenario, run_seed(index, scenario.seed))
    gc.collect()  # garbage from the warm-up is not billed to the timed runs
    started = time.process_time()
    results = [run_once(scenario, run_seed(index, scenario.seed)) for index in range(runs)]
    cpu_s = time.process_time() - started
    _verify(scenario, results)
    again = run_once(scenario, run_seed(0, scenario.seed))
    if again.trace_hash != results[0].trace_hash:
        raise AssertionError(f"{name} run 0 gave another trace the second time: the runs are not deterministic")
    return CpuFigures(name, runs, cpu_s, scenario.horizon_s)


def main(argv: list[str] | None = None) -> int:
    """Measure both figures and print them next to their targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=300, help=f"timed runs of {CPU_SCENARIO} (default 300)")
    parser.add_argument("--herd-runs", type=int, default=100, help=f"timed runs of {HERD_SCENARIO} (default 100)")
    parser.add_argument("--warmup", type=int, default=WARMUP_RUNS, help=f"untimed runs first (default {WARMUP_RUNS})")
    parser.add_argument("--json", action="store_true", help="also print one machine-readable JSON line")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.herd_runs < 1 or args.warmup < 0:
        parser.error("--runs and --herd-runs must be >= 1, --warmup >= 0")
    cpu = time_runs(CPU_SCENARIO, args.runs, args.warmup)
    herd = time_runs(HERD_SCENARIO, args.herd_runs, args.warmup)
    print(f"CPU per run, in one process ({cpu.runs} runs of {cpu.scenario}, {herd.runs} of {herd.scenario})")
    print(
        f"  {cpu.scenario:<16} {cpu.ms_per_run:>10.2f} ms/run        target {TARGET_MS_PER_RUN.describe()}   "
        f"{TARGET_MS_PER_RUN.verdict(cpu.ms_per_run)}"
    )
    print(
        f"  {herd.scenario:<16} {herd.sim_s_per_cpu_s:>10,.0f} sim-s/CPU-s  target "
        f"{TARGET_SIM_S_PER_CPU_S.describe()}   {TARGET_SIM_S_PER_CPU_S.verdict(herd.sim_s_per_cpu_s)}"
        f"   ({herd.ms_per_run:.1f} ms/run, {herd.horizon_s:g} s horizon)"
    )
    if args.json:
        print(json.dumps({"cpu_per_run": cpu.as_json(), "sim_seconds": herd.as_json()}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
