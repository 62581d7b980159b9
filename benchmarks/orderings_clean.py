"""Are the safe variants still clean when equal-time events run in other orders? One line per case.

Every shipped scenario, with every variant set to safe, runs ``--runs`` times under each strategy (default
``random`` and ``pct:3``), once as the scenario's clock gives it and once with a 10 ms quantum (so that
ties occur). A violation here is a bug in the safe design, or an ordering the simulator should not
produce: the exit status is 1 and the line names the first violating run's replay command.

    .venv/bin/python benchmarks/orderings_clean.py [--runs 200] [--strategies random,pct:3] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from simlab.batch.batches import run_batch_to
from simlab.batch.results import read_table
from simlab.batch.sweep import with_settings
from simlab.scenario import load_scenario
from simlab.scenario.loader import SCENARIOS_DIR
from simlab.scenario.model import Variants

VARIANTS = tuple(Variants.model_fields)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--strategies", default="random,pct:3")
    parser.add_argument("--quanta", default="0,10", help="quanta in ms, comma-separated (default 0,10)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    dirty = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(path.stem for path in SCENARIOS_DIR.glob("*.yaml")):
            for strategy in args.strategies.split(","):
                for quantum in (float(q) for q in args.quanta.split(",")):
                    dirty += _case(name, strategy, quantum, args, Path(tmp))
    print(f"\n{'CLEAN' if not dirty else 'NOT CLEAN'}: {dirty} case(s) with a violation on the safe variants")
    return 1 if dirty else 0


def _case(name: str, strategy: str, quantum: float, args: argparse.Namespace, tmp: Path) -> int:
    settings: dict[str, object] = {f"sagas.variants.{v}": "safe" for v in VARIANTS}
    settings.update({"orderings.strategy": strategy, "orderings.quantum_ms": quantum})
    scenario = with_settings(load_scenario(name), settings)
    out = tmp / f"{name}-{strategy.replace(':', '-')}-{quantum:g}"
    started = time.perf_counter()
    run_batch_to(scenario, args.runs, scenario.seed, out, workers=args.workers)
    violations = read_table(out, "violations", columns=["run", "invariant"])
    seconds = time.perf_counter() - started
    found = ", ".join(f"{k} in {v}" for k, v in violations.groupby("invariant")["run"].nunique().items())
    print(f"{name:<24} {strategy:<7} quantum {quantum:>4g} ms  {args.runs} runs  {seconds:6.1f} s  "
          f"{'clean' if violations.empty else 'VIOLATIONS: ' + found}", flush=True)  # fmt: skip
    return 0 if violations.empty else 1


if __name__ == "__main__":
    sys.exit(main())
