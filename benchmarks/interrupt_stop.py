"""How long `simlab run` takes to stop after Ctrl-C or SIGTERM, with every worker gone (a benchmark).

Issue 9's target: every worker stopped and the command exited within 2 s of the signal. The
test suite (``tests/test_interrupts.py``) checks what an interrupt must leave behind; this
script measures how fast it happens. For 1 and 2 workers and SIGINT to the process group (a
terminal's Ctrl-C), SIGTERM to the parent and SIGTERM to the group, it starts a batch, waits
for its first finished shard, sends the signal, and prints the seconds until the command
exited and until its last worker was gone.

    .venv/bin/python benchmarks/interrupt_stop.py              # 3 tries of each case
    .venv/bin/python benchmarks/interrupt_stop.py --tries 10
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ((1, "SIGINT", "group"), (1, "SIGTERM", "parent"), (2, "SIGINT", "group"), (2, "SIGTERM", "parent"),
         (2, "SIGTERM", "group"))  # fmt: skip
TARGET_S = 2.0


def _live(group: int) -> bool:
    listed = subprocess.run(["ps", "-o", "stat=", "-g", str(group)], capture_output=True, text=True).stdout
    return any(stat and not stat.startswith("Z") for stat in listed.split())


def one(workers: int, signal_name: str, target: str, out: Path) -> tuple[float, float]:
    """Seconds from the signal until the command exited, and until no process of its group was left."""
    command = [sys.executable, "-m", "simlab", "run", "chaos_swarm", "--runs", "2000", "--shard-size", "20"]
    command += ["--workers", str(workers), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not list(out.glob("shard-*.done")):
            if process.poll() is not None:
                raise SystemExit(f"the batch ended before its first shard: {command}")
            time.sleep(0.02)
        number = getattr(signal, signal_name)
        sent = time.monotonic()
        (os.killpg if target == "group" else os.kill)(process.pid, number)
        process.wait(timeout=60)
        exited = time.monotonic() - sent
        while _live(process.pid):
            time.sleep(0.01)
        return exited, time.monotonic() - sent
    finally:
        if process.poll() is None or _live(process.pid):
            os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    """Print one line per case: the slowest exit and the slowest last worker over the tries."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=3, help="tries of each case (default 3)")
    args = parser.parse_args()
    worst = 0.0
    print(f"target: exited, every worker gone, within {TARGET_S:g} s of the signal")
    with tempfile.TemporaryDirectory(prefix="interrupt-") as tmp:
        for workers, signal_name, target in CASES:
            figures = [one(workers, signal_name, target, Path(tmp) / f"{workers}-{signal_name}-{target}-{i}")
                       for i in range(args.tries)]  # fmt: skip
            exited = max(f[0] for f in figures)
            gone = max(f[1] for f in figures)
            worst = max(worst, gone)
            print(f"{workers} worker(s), {signal_name} to the {target:<6}: exited after {exited:.2f} s at most, "
                  f"last worker gone after {gone:.2f} s at most ({args.tries} tries)")  # fmt: skip
    print(f"slowest: {worst:.2f} s ({'within' if worst <= TARGET_S else 'OVER'} the {TARGET_S:g} s target)")
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
