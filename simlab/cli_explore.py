"""``simlab explore`` and the ``--schedule`` option of ``simlab run`` and ``replay``: orderings at equal timestamps.

``explore SCENARIO --strategies fifo,random,pct:3 --runs N`` runs the same seeds once per strategy, each
into a batch folder of its own under ``--out`` (resumable like any batch, replayable run by run), and
prints what each strategy found (``simlab.present.explore``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.cli_cluster import add_cluster_options
from simlab.scenario.limits import MAX_RUNS, shown

if TYPE_CHECKING:
    from simlab.batch.batches import Notice, Progress, ShardRunner
    from simlab.scenario.model import Scenario

Work = Callable[["Progress", "Notice", "ShardRunner | None"], object]
Resumable = Callable[[str, Work, int, argparse.Namespace, Path], "int | None"]
"""``simlab.cli._resumable``: runs work under a progress bar, and says what an interruption kept."""

MAX_STRATEGIES = 8


def schedule(text: str) -> str:
    """An ordering strategy's name, checked (argparse type)."""
    from simlab.sim.orderings import parse_strategy

    try:
        parse_strategy(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace(repr(text), shown(text))) from None
    return text


def strategies(text: str) -> list[str]:
    """A comma-separated list of distinct strategy names (argparse type)."""
    names = [name.strip() for name in text.split(",")]
    for name in names:
        schedule(name)
    if len(set(names)) != len(names) or not 1 <= len(names) <= MAX_STRATEGIES:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_STRATEGIES} distinct strategies, got {shown(text)}")
    return names


def add_schedule_option(parser: Any) -> None:
    """``--schedule``: how a run orders events due at the same instant (default: the scenario's)."""
    parser.add_argument(
        "--schedule", type=schedule, default=None, metavar="STRATEGY",
        help="order equal-time events by fifo, random or pct:D (default: the scenario's orderings.strategy)",
    )  # fmt: skip


def with_schedule(scenario: Scenario, strategy: str | None) -> Scenario:
    """``scenario`` with its ordering strategy replaced (unchanged when ``strategy`` is None)."""
    if strategy is None:
        return scenario
    from simlab.batch.sweep import with_settings

    return with_settings(scenario, {"orderings.strategy": strategy, "orderings.choices": []}, source="--schedule")


def add_explore_command(commands: Any, runs: Callable[[str], int], seed: Callable[[str], int],
                        workers: Callable[[str], int]) -> None:  # fmt: skip
    """Register ``simlab explore``."""
    explore = commands.add_parser(
        "explore", help="run the same seeds under several orderings of equal-time events; compare what each found"
    )
    explore.add_argument("scenario", metavar="SCENARIO", help="a name from scenarios/ or a path")
    explore.add_argument(
        "--strategies", type=strategies, default=["fifo", "random", "pct:3"],
        help="comma-separated: fifo, random, pct:D (default fifo,random,pct:3)",
    )  # fmt: skip
    explore.add_argument("--runs", type=runs, default=200, help="runs per strategy (default 200)")
    explore.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    explore.add_argument("--workers", type=workers, default=None, help="worker processes (default: all cores)")
    explore.add_argument(
        "--quantum-ms", type=_quantum, default=None,
        help="round due times up to this many ms so that ties occur (default: the scenario's)",
    )  # fmt: skip
    explore.add_argument("--out", default=None, help="output folder (default: results/explore-SCENARIO-SEED)")
    add_cluster_options(explore)


def _quantum(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 60_000.0:
        raise argparse.ArgumentTypeError(f"expected milliseconds between 0 and 60000, such as 10, got {shown(text)}")
    return value


def folder_name(strategy: str) -> str:
    """The sub-folder of a strategy's batch: ``pct:3`` -> ``pct-3``."""
    return re.sub(r"[^a-z0-9_-]", "-", strategy)


def explore(args: argparse.Namespace, resumable: Resumable, output_problem: Callable[[Path], str | None]) -> int:
    """Run ``simlab explore``; return the exit status (0 once every strategy's batch is complete)."""
    from simlab.batch.sweep import GridError, with_settings
    from simlab.scenario import ScenarioError, load_scenario
    from simlab.scenario.model import seeding_problem

    try:
        base = load_scenario(args.scenario)
        if args.quantum_ms is not None:
            base = with_settings(base, {"orderings.quantum_ms": args.quantum_ms}, source="--quantum-ms")
        chosen = {name: with_schedule(base, name) for name in args.strategies}
    except (ScenarioError, GridError) as error:
        print(f"simlab explore: {error}", file=sys.stderr)
        return 2
    root = args.seed if args.seed is not None else base.seed
    out = Path(args.out) if args.out else Path("results") / f"explore-{base.name}-{root}"
    folders = {name: out / folder_name(name) for name in args.strategies}
    problem = output_problem(out) or next(filter(None, map(output_problem, folders.values())), None)
    problem = seeding_problem(base, args.runs, args.seed) or problem
    if args.runs * len(folders) > MAX_RUNS:
        problem = f"--runs {args.runs:,} x {len(folders)} strategies: more than {MAX_RUNS:,} runs in all"
    if problem:
        print(f"simlab explore: {problem}", file=sys.stderr)
        return 2
    return _explore_into(args, chosen, folders, root, resumable)


def _explore_into(args: argparse.Namespace, chosen: dict[str, Scenario], folders: dict[str, Path], root: int,
                  resumable: Resumable) -> int:  # fmt: skip
    from simlab.batch.batches import run_batch_to
    from simlab.present.explore import explore_table, format_explore

    for name, scenario in chosen.items():
        print(f"{scenario.name}: {args.runs} runs from root seed {root}, ordered by {name} -> {folders[name]}")

        def work(progress: Progress, notice: Notice, runner: ShardRunner | None, scenario: Scenario = scenario,
                 folder: Path = folders[name]) -> object:  # fmt: skip
            return run_batch_to(scenario, args.runs, root, folder, workers=args.workers, progress=progress,
                                notice=notice, runner=runner)  # fmt: skip

        status = resumable("explore", work, args.runs, args, folders[name])
        if status is not None:
            return status
    table = explore_table(folders)
    print()
    print(format_explore(table, folders))
    return 0  # as for `simlab run`: violations are findings, not a failure of the command
