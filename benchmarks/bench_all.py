"""Every figure of issue 12's table ("Five times more runs per second"), judged, in one table.

Run it as a script (``make bench`` does; it is not a test)::

    .venv/bin/python benchmarks/bench_all.py            # the issue's sizes
    .venv/bin/python benchmarks/bench_all.py --quick    # smaller sizes, to see that it works
    .venv/bin/python benchmarks/bench_all.py --runs 5000 --chaos-runs 1000 --json

It runs the three benchmark scripts' measurements in this order: ``bench_engine`` (engine vs raw
simpy vs asyncio on virtual time, in this process), ``bench_cpu`` (CPU per scenario run, in this
process), then ``bench_runner`` (whole ``simlab run`` commands, fresh processes), and prints one
line per figure: what was measured and at which size, the figure, what it was computed from (the
two sides of a ratio measured in this same invocation), the target and PASS or FAIL ("PASS,
stretch too" when the stretch goal is met as well).

Exit status 0 whatever the verdicts (a benchmark reports; it does not gate), 1 if a measurement's
verification failed (a saga not completed, a run missing, a crashed simulated task, a command
that failed): then its line says so and its figure is not to be trusted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import bench_cpu
import bench_engine
import bench_runner
import simpy
from judging import Target

from simlab.sim.world import SimulationError

VERIFICATION_ERRORS = (AssertionError, SimulationError)
"""What a measurement raises when what it measured did not happen as it should (not a bug of the script)."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each measurement runs."""

    runs: int  # reconnect_race, whole command, 2 workers; also the large-memory run
    small: int  # reconnect_race, whole command, 2 workers: the small-memory run
    chaos_runs: int  # chaos_swarm, whole command, 2 workers
    cpu_runs: int  # reconnect_race runs timed in this process
    herd_runs: int  # thundering_herd runs timed in this process
    sagas: int  # bench_engine's concurrent sagas
    repeat: int  # bench_engine's repeats (best kept)


FULL = Sizes(runs=10_000, small=1_000, chaos_runs=2_000, cpu_runs=300, herd_runs=100, sagas=2_000, repeat=3)
"""The sizes of issue 12's table (the memory ratio is 10,000 runs over 1,000)."""
QUICK = Sizes(runs=1_000, small=200, chaos_runs=200, cpu_runs=50, herd_runs=10, sagas=500, repeat=1)
"""A check that everything works: smaller, noisier, and start-up weighs more in the whole-command figures."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    measure: str
    figure: str
    detail: str
    target: str
    verdict: str
    value: float | None = None  # the judged number, for --json


def _judged(measure: str, value: float, shown: str, detail: str, target: Target) -> Row:
    """A measured line: ``value`` judged against ``target``, shown as ``shown``."""
    return Row(measure, shown, detail, target.describe(), target.verdict(value), value)


def _failed(measure: str, target: Target, error: BaseException) -> Row:
    """A line whose measurement failed its verification: no figure, the reason instead."""
    return Row(measure, "-", f"{type(error).__name__}: {error}", target.describe(), "VERIFICATION FAILED")


def engine_rows(sizes: Sizes) -> list[Row]:
    """bench_engine's two judged ratios: engine / raw simpy, and SimRuntime / asyncio on virtual time."""
    ratio_name = f"bench_engine: engine / raw simpy steps/s ({sizes.sagas:,} sagas, best of {sizes.repeat})"
    runtimes_name = "same engine workload: SimRuntime / asyncio virtual time"
    try:
        r = bench_engine.run(sizes.sagas, sizes.repeat)
    except VERIFICATION_ERRORS as error:
        return [
            _failed(ratio_name, bench_engine.TARGET_RATIO, error),
            _failed(runtimes_name, bench_engine.TARGET_SIM_OVER_ASYNCIO, error),
        ]
    return [
        _judged(
            ratio_name,
            r.ratio,
            f"{r.ratio:.3f}",
            f"{r.engine_steps_per_s:,.0f} / {r.raw_steps_per_s:,.0f} steps/s",
            bench_engine.TARGET_RATIO,
        ),
        _judged(
            runtimes_name,
            r.sim_over_asyncio,
            f"{r.sim_over_asyncio:.2f}x",
            f"{r.engine_steps_per_s:,.0f} / {r.asyncio_steps_per_s:,.0f} saga-steps/s",
            bench_engine.TARGET_SIM_OVER_ASYNCIO,
        ),
    ]


def cpu_row(sizes: Sizes) -> Row:
    """CPU milliseconds per reconnect_race run, in this process."""
    name = f"CPU per {bench_cpu.CPU_SCENARIO} run ({sizes.cpu_runs:,} runs, one process)"
    target = bench_cpu.TARGET_MS_PER_RUN
    try:
        f = bench_cpu.time_runs(bench_cpu.CPU_SCENARIO, sizes.cpu_runs)
    except VERIFICATION_ERRORS as error:
        return _failed(name, target, error)
    return _judged(name, f.ms_per_run, f"{f.ms_per_run:.2f} ms", f"{f.cpu_s:.2f} CPU-s / {f.runs:,} runs", target)


def herd_row(sizes: Sizes) -> Row:
    """Simulated seconds per CPU second of thundering_herd runs, in this process."""
    name = f"{bench_cpu.HERD_SCENARIO}: simulated s per CPU s ({sizes.herd_runs:,} runs, one core)"
    target = bench_cpu.TARGET_SIM_S_PER_CPU_S
    try:
        f = bench_cpu.time_runs(bench_cpu.HERD_SCENARIO, sizes.herd_runs)
    except VERIFICATION_ERRORS as error:
        return _failed(name, target, error)
    detail = f"{f.simulated_s:,.0f} sim-s / {f.cpu_s:.2f} CPU-s"
    return _judged(name, f.sim_s_per_cpu_s, f"{f.sim_s_per_cpu_s:,.0f}", detail, target)


def whole_command_rows(sizes: Sizes) -> tuple[Row, Row, Row]:
    """reconnect_race runs/s, chaos_swarm runs/s (2 workers), and reconnect_race's peak memory ratio."""
    race, chaos = "reconnect_race", "chaos_swarm"
    race_name = f"simlab run {race}, {sizes.runs:,} runs, 2 workers"
    chaos_name = f"simlab run {chaos}, {sizes.chaos_runs:,} runs, 2 workers"
    memory_name = f"peak memory, {sizes.runs:,} runs / {sizes.small:,} runs ({race})"
    race_target, chaos_target = bench_runner.TARGET_RUNS_PER_S[race], bench_runner.TARGET_RUNS_PER_S[chaos]
    memory_target = bench_runner.TARGET_MEMORY_RATIO
    try:
        large = bench_runner.measure(race, sizes.runs, 2)  # the throughput run is the large-memory run too
        small = bench_runner.measure(race, sizes.small, 2)
    except VERIFICATION_ERRORS as error:
        race_row, memory_row = _failed(race_name, race_target, error), _failed(memory_name, memory_target, error)
    else:
        speed, ratio = large.runs_per_s, large.peak_mib / small.peak_mib
        race_row = _judged(race_name, speed, f"{speed:,.1f} runs/s", f"{large.seconds:.1f} s wall", race_target)
        memory_detail = f"{large.peak_mib:.1f} / {small.peak_mib:.1f} MiB"
        memory_row = _judged(memory_name, ratio, f"{ratio:.2f}", memory_detail, memory_target)
    try:
        swarm = bench_runner.measure(chaos, sizes.chaos_runs, 2)
    except VERIFICATION_ERRORS as error:
        chaos_row = _failed(chaos_name, chaos_target, error)
    else:
        speed = swarm.runs_per_s
        chaos_row = _judged(chaos_name, speed, f"{speed:,.1f} runs/s", f"{swarm.seconds:.1f} s wall", chaos_target)
    return race_row, chaos_row, memory_row


def _step(what: str, measure: Callable[[], Any]) -> Any:
    """Run one measurement, telling stderr what is running and how long it took (a full bench takes minutes)."""
    print(f"... {what}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = measure()
    print(f"    done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return result


def table(rows: list[Row]) -> str:
    """The rows as aligned text columns under a header."""
    header = Row("measure", "figure", "measured as", "target", "verdict")
    cells = [(r.measure, r.figure, r.detail, r.target, r.verdict) for r in [header, *rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(line.rstrip() for line in lines)


def _load() -> str:
    """The machine's load averages (1, 5, 15 min): a busy machine makes every figure worse."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=f"Sizes by default: {FULL}; with --quick: {QUICK}. Any size given overrides either.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, to check that it works")
    for field, what in [
        ("runs", "reconnect_race runs of the whole command (2 workers) and of the large-memory figure"),
        ("small", "reconnect_race runs of the small-memory figure"),
        ("chaos_runs", "chaos_swarm runs of the whole command (2 workers)"),
        ("cpu_runs", "reconnect_race runs timed in this process"),
        ("herd_runs", "thundering_herd runs timed in this process"),
        ("sagas", "bench_engine's concurrent sagas"),
        ("repeat", "bench_engine's repeats, the best kept"),
    ]:
        parser.add_argument(f"--{field.replace('_', '-')}", dest=field, type=int, metavar="N", help=what)
    parser.add_argument("--json", action="store_true", help="also print one machine-readable JSON line")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Measure everything, print the table; exit 1 only if a verification failed."""
    parser = _parser()
    args = parser.parse_args(argv)
    preset = asdict(QUICK if args.quick else FULL)
    given = {name: getattr(args, name) for name in preset if getattr(args, name) is not None}
    if any(value < 1 for value in given.values()):
        parser.error("every size must be >= 1")
    sizes = Sizes(**{**preset, **given})
    load_before = _load()

    engine = _step("bench_engine: raw simpy, SimRuntime, engine on both runtimes", lambda: engine_rows(sizes))
    cpu = _step("CPU per reconnect_race run", lambda: cpu_row(sizes))
    herd = _step("thundering_herd simulated seconds per CPU second", lambda: herd_row(sizes))
    race, chaos, memory = _step("simlab run: reconnect_race twice, chaos_swarm", lambda: whole_command_rows(sizes))
    rows = [race, cpu, *engine, chaos, memory, herd]  # the order

    print(f"Saga Lab, issue 12 benchmarks{' (--quick: not the issue sizes)' if args.quick else ''}")
    print(
        f"{datetime.date.today().isoformat()}  Python {platform.python_version()}  simpy {simpy.__version__}  "
        f"{os.cpu_count()} cores  load average {load_before} before, {_load()} after"
    )
    print(table(rows))
    if args.json:
        print(json.dumps({"sizes": asdict(sizes), "rows": [asdict(r) for r in rows]}, sort_keys=True))
    return 1 if any(r.verdict == "VERIFICATION FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
