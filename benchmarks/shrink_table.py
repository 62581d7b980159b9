"""How small ``simlab shrink`` makes violating runs: the before/after table of issue 15, section 2.

For each scenario (seed variants, as shipped) it takes the first violating runs of its batch (run i has
the seed ``run_seed(i, scenario.seed)``), one per failure signature up to ``--per-scenario``, shrinks each
with ``--budget`` seconds, replays the repro to check it still shows the signature, and prints one
markdown row per run: sagas, faults injected, trace records and the simulated seconds of the last record,
before -> after, with the candidates run and the wall time. The target: the repro has at most a third of
the original's sagas and faults, and at most 5 of each where the bug allows it.

    python -m benchmarks.shrink_table [--scenarios reconnect_race chaos_swarm] [--budget 120]
"""

from __future__ import annotations

import argparse
import time

from simlab.batch.runner import run_once, run_seed
from simlab.batch.shrink import RunSize, ShrinkResult, Signature, shrink, signatures
from simlab.scenario import load_scenario

SCENARIOS = ("reconnect_race", "user_deletion_cascade", "chaos_swarm")


def violating_runs(name: str, wanted: int, scan: int) -> list[tuple[int, int, Signature]]:
    """Up to ``wanted`` (run, seed, signature) of the first ``scan`` runs, each with a new first signature."""
    scenario = load_scenario(name)
    found: list[tuple[int, int, Signature]] = []
    seen: set[Signature] = set()
    for index in range(scan):
        seed = run_seed(index, scenario.seed)
        first = signatures(run_once(scenario, seed, keep_trace=True))
        if first and first[0] not in seen:
            seen.add(first[0])
            found.append((index, seed, first[0]))
            if len(found) == wanted:
                break
    return found


def _cell(before: int, after: int) -> str:
    return f"{before} -> {after}"


def row(name: str, index: int, result: ShrinkResult, seconds: float) -> str:
    """One markdown row of the table."""
    b, a = result.original_size, result.best_size
    replayed = result.target in signatures(run_once(result.best, result.seed, keep_trace=True))
    met = a.sagas <= max(b.sagas / 3, 0) and a.faults <= b.faults / 3
    cells = [
        name,
        str(index),
        str(result.target),
        _cell(b.sagas, a.sagas),
        _cell(b.faults, a.faults),
        _cell(b.windows, a.windows),
        _cell(b.records, a.records),
        f"{b.last_t:.1f} -> {a.last_t:.1f}",
        f"{result.candidates} ({result.stopped})",
        f"{seconds:.1f}",
        "yes" if replayed else "NO",
        "yes" if met else "no",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| scenario | run | signature | sagas | faults injected | fault windows | trace records | last record (s) "
    "| candidates | wall s | repro replays | <= 1/3 |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument("--per-scenario", type=int, default=2, help="violating runs per scenario (distinct signatures)")
    parser.add_argument("--scan", type=int, default=200, help="runs scanned per scenario for violating ones")
    parser.add_argument("--budget", type=float, default=120.0, help="wall-clock seconds per shrink")
    args = parser.parse_args()
    print(HEADER)
    sizes: list[tuple[RunSize, RunSize]] = []
    for name in args.scenarios:
        scenario = load_scenario(name)
        for index, seed, _signature in violating_runs(name, args.per_scenario, args.scan):
            started = time.perf_counter()
            result = shrink(scenario, seed, budget_s=args.budget)
            print(row(name, index, result, time.perf_counter() - started), flush=True)
            sizes.append((result.original_size, result.best_size))
    small = sum(1 for _b, a in sizes if a.sagas <= 5 and a.faults <= 5)
    print(f"\n{small} of {len(sizes)} repros have at most 5 sagas and at most 5 faults injected.")


if __name__ == "__main__":
    main()
