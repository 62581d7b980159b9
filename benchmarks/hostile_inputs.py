"""How long, and how much memory, `simlab` takes to refuse each hostile input (a benchmark).

Issue 10's targets: every case of the corpus (``tests/bad_inputs/cases.yaml``) refused in under
5 s and under 300 MB. The test suite (``tests/test_bad_inputs.py``) checks what each refusal
says and that nothing is written; this script runs every case as its own process, as a user
would, and measures its wall time and peak resident memory, then prints one line per case and
the worst figures against the targets. It exits 1 if a case was not refused (exit status other
than 2) or missed a target.

How memory is measured: ``os.wait4`` gives the child's own peak RSS. Linux carries the peak of
the process that forked it into the child (the copy it was before ``exec``), so the children are
started by a small measuring process that imports nothing but the standard library (its own
peak is printed: the figures can be at most that much too high); the cases are laid out first,
by this script's main process, which imports the lab.

    .venv/bin/python benchmarks/hostile_inputs.py                  # every case
    .venv/bin/python benchmarks/hostile_inputs.py --only alias_bomb_horizon deep_flow_lists
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 5.0
TARGET_MB = 300.0


def measure(plan: list[dict[str, object]]) -> list[dict[str, object]]:
    """Run every planned command (``argv``, ``cwd``); its exit status, wall seconds and peak RSS in MB."""
    measured = []
    for item in plan:
        folder = Path(str(item["cwd"]))
        with open(folder / ".stdout", "wb") as out, open(folder / ".stderr", "wb") as err:
            started = time.perf_counter()
            process = subprocess.Popen(item["argv"], stdout=out, stderr=err, cwd=folder)  # type: ignore[arg-type]
            _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
            elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # (so that Popen does not wait for it again)
        measured.append({**item, "status": process.returncode, "seconds": elapsed, "mb": usage.ru_maxrss / 1024})
    return measured


def _own_peak_mb() -> float:
    """This process's own peak RSS (``VmHWM``: its ``ru_maxrss`` would include its heavy parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    """Lay out every case (or ``--only`` some), measure them from a small process, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", metavar="ID", help="only these case ids")
    parser.add_argument("--measure", metavar="PLAN.json", help=argparse.SUPPRESS)  # the measuring process
    args = parser.parse_args()
    if args.measure:
        plan = json.loads(Path(args.measure).read_text())
        own = _own_peak_mb()
        print(json.dumps({"measured": measure(plan), "measurer_mb": own}))
        return 0

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))  # the corpus lives with the tests
    from tests.bad_inputs.corpus import load_cases, make_results, prepare

    cases = [c for c in load_cases() if not args.only or c.id in args.only]
    with tempfile.TemporaryDirectory(prefix="simlab-hostile-") as tmp:
        batch = make_results(Path(tmp) / "batch")  # what the damaged-shard cases copy
        plan = []
        for index, case in enumerate(cases):
            folder = Path(tmp) / f"case-{index:03d}"
            folder.mkdir()
            prepared = prepare(case, folder, lambda: batch)
            argv = [sys.executable, "-m", "simlab", *prepared.argv]
            plan.append({"id": case.id, "command": case.command or "simlab", "argv": argv, "cwd": str(folder)})
        (Path(tmp) / "plan.json").write_text(json.dumps(plan))
        done = subprocess.run(
            [sys.executable, __file__, "--measure", str(Path(tmp) / "plan.json")],
            capture_output=True, text=True, check=True, cwd=root,
        )  # fmt: skip
    report = json.loads(done.stdout)
    rows = report["measured"]
    for row in rows:
        figures = f"exit {row['status']}  {row['seconds']:6.2f} s  {row['mb']:7.1f} MB"
        print(f"{row['id']:<36} {row['command']:<18} {figures}")
    refused = all(row["status"] == 2 for row in rows)
    slowest = max(rows, key=lambda row: row["seconds"])
    largest = max(rows, key=lambda row: row["mb"])
    within = slowest["seconds"] < TARGET_S and largest["mb"] < TARGET_MB
    print()
    print(f"{len(rows)} cases, {'all' if refused else 'NOT all'} refused with exit status 2")
    print(f"worst time:   {slowest['seconds']:.2f} s ({slowest['id']}); target < {TARGET_S:.0f} s")
    print(f"worst memory: {largest['mb']:.1f} MB ({largest['id']}); target < {TARGET_MB:.0f} MB")
    print(f"(the measuring process's own peak, which a child's figure may include: {report['measurer_mb']:.1f} MB)")
    print("PASS" if refused and within else "FAIL")
    return 0 if refused and within else 1


if __name__ == "__main__":
    sys.exit(main())
