"""``simlab shrink``: from a violating run to a minimal reproduction (the search is ``simlab.batch.shrink``).

``simlab shrink results/X --run N`` (the run named exactly as ``simlab replay`` names it) or ``simlab
shrink SCENARIO --seed S`` replays the run, reads its failure's signature, and searches for the smallest
scenario that shows the same failure with the same run seed, for at most ``--budget`` seconds. It prints
one line per candidate kept, the sizes before and after, and any other failure met on the way, and writes
the reproduction (``simlab.present.shrunk``). Ctrl-C or SIGTERM stops the search and writes the smallest
reproduction found so far.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.scenario.limits import shown, shown_path

if TYPE_CHECKING:
    from simlab.batch.replays import ReplayTarget
    from simlab.batch.shrink import RunSize, ShrinkResult, Signature

MAX_BUDGET_S = 7 * 24 * 3600.0  # a week: past that a search is a mistake, not a plan
DEFAULT_BUDGET_S = 120.0
MAX_PASSES = 4  # passes of every reducer: each later pass mostly retries what the last refused


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {shown(text)}") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_BUDGET_S:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds above 0 and at most {MAX_BUDGET_S:,.0f}, got {shown(text)}"
        )
    return value


def add_shrink_command(commands: Any, add_run_target: Callable[[argparse.ArgumentParser, str], None]) -> None:
    """Register ``simlab shrink`` on the ``simlab`` subcommands; ``add_run_target`` adds the arguments that name
    the run, as ``simlab replay`` has them (``simlab.cli._add_run_target``)."""
    shrink = commands.add_parser("shrink", help="shrink a violating run to a minimal scenario that still shows it")
    add_run_target(
        shrink, "a name from scenarios/ or a path (with --seed); or a results folder (with --run, as for replay)"
    )
    shrink.add_argument("--invariant", default=None, help="shrink this invariant's violation (default: the first)")
    shrink.add_argument(
        "--budget", type=_budget, default=DEFAULT_BUDGET_S,
        help=f"wall-clock seconds the search may take (default {DEFAULT_BUDGET_S:.0f})",
    )  # fmt: skip
    shrink.set_defaults(handler=shrink_main)  # how simlab.cli.main runs it
    shrink.add_argument(
        "--out", default=None,
        help="output folder (default: DIR/shrunk/INVARIANT-runN, or results/shrunk/SCENARIO-SEED)",
    )  # fmt: skip


def shrink_main(args: argparse.Namespace) -> int:
    """Run ``simlab shrink``; return the exit status."""
    from simlab.batch.interrupts import BatchInterrupted, silence_abandoned_work, stop_on_signals
    from simlab.batch.replays import ReplayError, resolve_replay
    from simlab.batch.shrink import ShrinkError, shrink
    from simlab.scenario.model import INVARIANTS

    try:
        if args.invariant is not None and args.invariant not in INVARIANTS:
            raise ReplayError(
                f"--invariant {shown(args.invariant)}: unknown invariant; expected one of {', '.join(INVARIANTS)}"
            )
        target = resolve_replay(args.scenario, seed=args.seed, run=args.run, point=args.point)
        problem = _out_problem(Path(args.out)) if args.out else None
        if problem:
            raise ReplayError(problem)
    except ReplayError as error:
        print(f"simlab shrink: {error}", file=sys.stderr)
        return 2

    def say_start(signature: Signature, size: RunSize) -> None:
        print(f"Shrinking {target.label}: {signature}; {size}; for at most {args.budget:g} s", flush=True)

    try:
        with stop_on_signals():
            result = shrink(target.scenario, target.seed, budget_s=args.budget, invariant=args.invariant,
                            on_step=_say_step, on_start=say_start, max_passes=MAX_PASSES)  # fmt: skip
    except ShrinkError as error:
        print(f"simlab shrink: {target.label}: {error}", file=sys.stderr)
        return 2
    except BatchInterrupted as interrupted:  # before the run itself was replayed: nothing to keep
        silence_abandoned_work()
        print(f"\nsimlab shrink: {interrupted}; nothing was written", file=sys.stderr)
        return interrupted.exit_status
    if result.stopped == "interrupted":
        silence_abandoned_work()
    return _finish(result, target, args)


def _out_problem(out: Path) -> str | None:
    from simlab.batch.shards import output_problem
    from simlab.present.shrunk import SUMMARY_FILE

    problem = output_problem(out)
    if problem is None and out.is_dir() and any(out.iterdir()) and not (out / SUMMARY_FILE).is_file():
        problem = "is not empty and holds no shrink; use another --out"
    return f"--out {shown_path(out)}: {problem}" if problem else None


def _say_step(reducer: str, what: str, size: RunSize) -> None:
    print(f"  kept ({reducer}): {what} -> {size.sagas} sagas, {size.faults} faults", flush=True)


def _finish(result: ShrinkResult, target: ReplayTarget, args: argparse.Namespace) -> int:
    import signal

    from simlab.batch.interrupts import deferred_signals
    from simlab.present.shrunk import replay_command, write_shrunk

    out = Path(args.out) if args.out else _default_out(result, target)
    ended = {
        "done": "no reducer finds more",
        "passes": f"after {MAX_PASSES} passes of every reducer",
        "budget": "the budget is spent",
        "interrupted": "interrupted",
    }
    print(f"{result.target}: {result.candidates} candidates run, {result.kept} kept; stopped: {ended[result.stopped]}")
    print(_sizes(result))
    for other in result.others:
        print(f"another failure met on the way (not the one shrunk): {other.signature}")
    try:
        with deferred_signals() as noted:  # a Ctrl-C now waits for the repro to be written (about a second)
            write_shrunk(result, out, source=target.label)
    except OSError as error:
        print(f"simlab shrink: cannot write {shown_path(out)}: {error.strerror}", file=sys.stderr)
        return 2
    if result.others:
        print(f"  each written as {out}/other-K.yaml")
    print(f"Reproduction: {out / 'repro.yaml'} (test: {out / 'test_repro.py'}, figure: {out / 'timeline.png'})")
    print(f"Replay it: {replay_command(out / 'repro.yaml', result.seed)}")
    if noted and result.stopped != "interrupted":
        print(f"simlab shrink: interrupted by {noted[0]} (after the repro was written)", file=sys.stderr)
        return 128 + int(getattr(signal, noted[0]))
    return result.exit_status if result.stopped == "interrupted" else 0


def _default_out(result: ShrinkResult, target: ReplayTarget) -> Path:
    if target.folder is not None:
        return target.folder / "shrunk" / f"{result.target.invariant}-run{target.run}"
    return Path("results") / "shrunk" / f"{target.scenario.name}-{target.seed}"


def _sizes(result: ShrinkResult) -> str:
    before, after = result.original_size, result.best_size
    rows = [
        ("sagas", before.sagas, after.sagas),
        ("faults injected", before.faults, after.faults),
        ("fault windows", before.windows, after.windows),
        ("trace records", before.records, after.records),
        ("last record (s)", f"{before.last_t:.1f}", f"{after.last_t:.1f}"),
    ]
    lines = [f"{'':<16} {'before':>8} {'after':>8}"]
    lines += [f"{name:<16} {b:>8} {a:>8}" for name, b, a in rows]
    return "\n".join(lines)
