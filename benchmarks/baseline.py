"""The safe baseline (a benchmark script, not a test): every shipped scenario, all-seed and all-safe.

For each scenario in ``scenarios/`` and each side (every variant switch on ``seed``, then every one
on ``safe``), it runs the scenario ``--runs`` times (default 1,000) from the scenario's own root
seed and prints, read back through ``load_results``: how many runs violated each invariant, the
saga types that never completed, and whether the batch met the scenario's ``expect``. The issue's
target: ``safe`` is clean everywhere; ``seed`` fails where the seed is fragile.

    .venv/bin/python benchmarks/baseline.py                          # 1,000 runs each, 2 workers
    .venv/bin/python benchmarks/baseline.py --runs 200 --only chaos_swarm reconnect_race

Batches are written under ``--out`` (default ``results/baseline-RUNS``) and resumed if interrupted.
Exit status 1 if any batch missed its expectation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from simlab import lab
from simlab.present.summary import expectation_verdict, goal_notes
from simlab.scenario.loader import SCENARIOS_DIR

SWITCHES = ("disconnect_lock", "child_wait", "purge")
SIDES = ("seed", "safe")


def all_variants(side: str) -> dict[str, str]:
    """Settings that put every variant switch on ``side``."""
    return {f"sagas.variants.{switch}": side for switch in SWITCHES}


def baseline(name: str, side: str, runs: int, out: Path, workers: int) -> tuple[bool, list[str]]:
    """Run one scenario on one side; return (expectation met, the lines to print)."""
    scenario = lab.scenario(name, all_variants(side))
    started = time.perf_counter()
    results = lab.run(scenario, runs=runs, out=out / f"{name}-{side}", workers=workers, progress=False)
    seconds = time.perf_counter() - started
    violations = results.violations
    per_invariant = violations.groupby("invariant", observed=True)["run"].nunique() if len(violations) else {}
    verdict = expectation_verdict(scenario, list(dict(per_invariant)), len(results.runs))
    lines = [f"{name} [{side}] {len(results.runs)} runs in {seconds:.0f} s"]
    if len(per_invariant):
        lines += [f"    {invariant}: {count} violating run(s)" for invariant, count in dict(per_invariant).items()]
    else:
        lines.append("    no invariant violated")
    lines += [f"    note: {note}" for note in goal_notes(results.sagas)]
    lines.append(f"    {verdict.describe()}")
    return verdict.status != "not met", lines


def main(argv: list[str] | None = None) -> int:
    """Run the baseline and print it; 1 if any batch missed its expectation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per scenario and side (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="where batches go (default results/baseline-RUNS)")
    parser.add_argument("--only", nargs="*", default=None, help="scenario names (default: every shipped one)")
    parser.add_argument("--sides", nargs="*", choices=SIDES, default=list(SIDES), help="seed, safe or both")
    args = parser.parse_args(argv)
    names = args.only or sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml"))
    out = args.out or Path("results") / f"baseline-{args.runs}"
    all_met = True
    for name in names:
        for side in args.sides:
            met, lines = baseline(name, side, args.runs, out, args.workers)
            all_met &= met
            print("\n".join(lines), flush=True)
    print("\nEvery expectation met." if all_met else "\nSome expectations were NOT met (see above).")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
