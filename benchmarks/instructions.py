"""CPU instructions per scenario run, counted under callgrind: the figure machine load does not move.

Run it as a script (it needs ``valgrind``; it is not a test)::

    .venv/bin/python benchmarks/instructions.py                         # this checkout
    .venv/bin/python benchmarks/instructions.py --vs /tmp/before        # paired: another checkout too
    .venv/bin/python benchmarks/instructions.py --scenarios chaos_swarm --runs 2 6

Wall-clock ratios near 1 drown in a shared machine's noise (±15% between invocations here), so
levers worth a few percent each are compared by the instructions a run executes. For each tree
and scenario, ``run_once`` runs the scenario's runs ``0..N-1`` and then ``0..M-1`` in two
processes under ``valgrind --tool=callgrind`` with ``PYTHONHASHSEED=0``; the difference of the
two counts divided by ``M - N`` is the cost of runs ``N..M-1``, start-up and imports cancelled.
Under ``setarch -R`` (address randomisation off, where ``setarch`` exists) counts of one tree repeat to
about 0.01%; without it, identity-hashed objects land differently each time and counts vary by 1-2%.
A change that allocates differently still moves the moment of a run's collection, and with it 1-2 M
instructions of a reconnect_race run: judge a lever under about 2% with ``--collector-off`` as well.
That count compares two trees fairly but is not a run's cost without a collector: with it off, dead
worlds are never freed, so every world builds a new Redis client (``redis_spares`` gets none back).

Verified (else it stops): both processes of a tree report the same trace hashes for the runs they
share, and with ``--vs`` both trees report the same trace hashes for every run, so the ratio
compares the same work (a lever that changed an outcome is not a speed-up). Both trees run on
this checkout's virtual environment, each with its own code first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SCENARIOS = ("reconnect_race", "chaos_swarm", "thundering_herd")
RUNS = {"reconnect_race": (3, 13), "chaos_swarm": (2, 6), "thundering_herd": (1, 3)}
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")
_PROGRAM = """
import gc, sys
if sys.argv[3] == "off":
    gc.disable()  # no automatic collection at all (relaxed_gc only moves the thresholds)
from simlab.batch.runner import run_once, run_seed
from simlab.scenario.loader import load_scenario
scenario = load_scenario(sys.argv[1])
hashes = []
for i in range(int(sys.argv[2])):
    result = run_once(scenario, run_seed(i, scenario.seed))
    assert result.sagas, f"run {i} started no saga"
    hashes.append(result.trace_hash)
print("HASHES", ",".join(hashes))
"""


@dataclass(frozen=True, slots=True)
class Count:
    """Instructions per run of one scenario on one tree, and the trace hashes of the runs counted."""

    tree: Path
    scenario: str
    per_run: int
    hashes: tuple[str, ...]


def callgrind(tree: Path, program: list[str]) -> tuple[int, str]:
    """Instructions ``python PROGRAM...`` executes on ``tree``'s code under callgrind, and what it printed."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree)}
    # NOTE: setarch -R turns address randomisation off: object addresses then repeat, and so does the
    # order of everything hashed by identity; counts of one tree agree to about 0.01% instead of 1-2%.
    pinned = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []
    command = [*pinned, "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *program]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{tree}: {' '.join(program[-4:])} under callgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1)), done.stdout


def _counted(tree: Path, scenario: str, runs: int, collector: str) -> tuple[int, list[str]]:
    instructions, printed = callgrind(tree, ["-c", _PROGRAM, scenario, str(runs), collector])
    lines = [line for line in printed.splitlines() if line.startswith("HASHES ")]
    if not lines:
        raise SystemExit(f"{tree}: {scenario} x{runs} under callgrind printed no hashes")
    return instructions, lines[0].removeprefix("HASHES ").split(",")


def count(tree: Path, scenario: str, first: int, last: int, collector: str = "on") -> Count:
    """Instructions per run of runs ``first..last-1`` of ``scenario`` on ``tree`` (``collector`` on or off)."""
    few, few_hashes = _counted(tree, scenario, first, collector)
    many, many_hashes = _counted(tree, scenario, last, collector)
    if many_hashes[:first] != few_hashes:
        raise SystemExit(f"{tree}: {scenario} is not deterministic: the two processes' runs differ")
    return Count(tree, scenario, (many - few) // (last - first), tuple(many_hashes))


def _digest(hashes: tuple[str, ...]) -> str:
    return hashlib.sha256(",".join(hashes).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), metavar="NAME")
    parser.add_argument("--runs", nargs=2, type=int, metavar=("N", "M"), help="count runs N..M-1")
    parser.add_argument("--vs", type=Path, metavar="TREE", help="another checkout to count and compare with")
    parser.add_argument(
        "--collector-off", action="store_true", help="count with garbage collection off (see the module doc)"
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.runs is not None and not 0 <= args.runs[0] < args.runs[1]:
        parser.error(f"--runs {args.runs[0]} {args.runs[1]}: expected 0 <= N < M")
    if args.vs is not None and not (args.vs / "simlab").is_dir():
        parser.error(f"--vs {args.vs}: not a Saga Lab checkout (no simlab/ in it)")
    print(f"Instructions per run (callgrind, PYTHONHASHSEED=0{', collector off' if args.collector_off else ''})")
    for scenario in args.scenarios:
        first, last = args.runs or RUNS.get(scenario, (2, 6))
        collector = "off" if args.collector_off else "on"
        here = count(HERE, scenario, first, last, collector)
        line = f"  {scenario:18s} runs {first}..{last - 1}  {here.per_run / 1e6:8.2f} M"
        if args.vs is not None:
            other = count(args.vs.resolve(), scenario, first, last, collector)
            if other.hashes != here.hashes:
                raise SystemExit(f"{scenario}: the two trees' runs differ (outcomes changed): no ratio")
            line += f"  vs {other.per_run / 1e6:8.2f} M ({args.vs})  ratio {here.per_run / other.per_run:.3f}"
        print(f"{line}  [traces {_digest(here.hashes)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
