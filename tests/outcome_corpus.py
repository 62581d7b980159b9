"""The outcome corpus: what runs 0-199 of every shipped scenario produce, in seed and in safe variants.

A refactor or a speed-up changes no outcome. This module computes one line per run -- its trace
hash, the invariants it violated (with a digest of their explanations) and a digest of its sagas'
types and statuses -- and ``tests/data/outcome_corpus.csv`` holds the lines recorded before the
lab was restructured. ``tests/test_outcome_corpus.py`` re-runs a sample of them in ``make test``;
``python -m tests.outcome_corpus --check`` re-runs them all (``--write`` re-records, in its own
commit, with the reason, when a trace hash changes legitimately: violations and outcomes never may).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from simlab.batch.runner import run_once, run_seed
from simlab.batch.sweep import with_settings
from simlab.scenario import load_scenario
from simlab.scenario.loader import SCENARIOS_DIR

CORPUS = Path(__file__).parent / "data" / "outcome_corpus.csv"
RUNS = 200
SIDES = ("seed", "safe")
VARIANTS = ("disconnect_lock", "child_wait", "purge")
FIELDS = ("scenario", "side", "run", "trace_hash", "violations", "violation_digest", "saga_digest")

Row = tuple[str, str, int, str, str, str, str]


def scenario_names() -> list[str]:
    """Every shipped scenario, by name, in a fixed order."""
    return sorted(path.stem for path in SCENARIOS_DIR.glob("*.yaml"))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def outcome(scenario_name: str, side: str, run: int) -> Row:
    """Run ``run`` of ``scenario_name`` with every variant set to ``side``, as one corpus line."""
    scenario = with_settings(load_scenario(scenario_name), {f"sagas.variants.{name}": side for name in VARIANTS})
    result = run_once(scenario, run_seed(run, scenario.seed))
    violations = [(v.invariant, v.explanation) for v in result.violations]
    sagas = [(s.saga_id, s.saga_type, s.status, s.attempts, s.retries) for s in result.sagas]
    return (
        scenario_name,
        side,
        run,
        result.trace_hash[:16],
        ";".join(sorted({name for name, _ in violations})),
        _digest(repr(violations)),
        _digest(repr(sagas)),
    )


def _outcomes(keys: list[tuple[str, str, int]]) -> list[Row]:
    return [outcome(*key) for key in keys]


def compute(keys: Iterable[tuple[str, str, int]], workers: int = 2) -> list[Row]:
    """The corpus lines of ``keys``, in their order, computed on ``workers`` processes."""
    keys = list(keys)
    if workers <= 1:
        return _outcomes(keys)
    chunks = [keys[i : i + 50] for i in range(0, len(keys), 50)]
    with ProcessPoolExecutor(workers) as pool:
        return [row for rows in pool.map(_outcomes, chunks) for row in rows]


def recorded() -> dict[tuple[str, str, int], Row]:
    """The recorded corpus, by (scenario, side, run)."""
    with CORPUS.open(newline="") as handle:
        rows = [
            (
                r["scenario"],
                r["side"],
                int(r["run"]),
                r["trace_hash"],
                r["violations"],
                r["violation_digest"],
                r["saga_digest"],
            )
            for r in csv.DictReader(handle)
        ]
    return {row[:3]: row for row in rows}  # type: ignore[misc]


def all_keys() -> list[tuple[str, str, int]]:
    """Every (scenario, side, run) of the corpus."""
    return [(name, side, run) for name in scenario_names() for side in SIDES for run in range(RUNS)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record the corpus anew")
    parser.add_argument("--check", action="store_true", help="re-run every line and compare")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    rows = compute(all_keys(), args.workers)
    if args.write:
        with CORPUS.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(FIELDS)
            writer.writerows(rows)
        print(f"recorded {len(rows)} runs into {CORPUS}")
        return 0
    expected = recorded()
    differing = [row for row in rows if expected.get(row[:3]) != row]
    for row in differing[:20]:
        print(f"differs: {row[:3]}: recorded {expected.get(row[:3])}, now {row}")
    print(f"{len(rows)} runs, {len(differing)} differ from the recorded corpus")
    return 1 if differing or len(expected) != len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
