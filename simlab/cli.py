"""The ``simlab`` command line."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simlab.batch import Notice, Progress


def _int_at_least(minimum: int, expected: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_seed = _int_at_least(0, "a non-negative integer seed")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``simlab``."""
    parser = argparse.ArgumentParser(prog="simlab", description="Saga Lab: the saga engine on a simulated clock.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the sample saga many times and print its outcome table")
    demo.add_argument("--runs", type=_positive_int, default=1000, help="number of seeded runs (default 1000)")
    demo.add_argument("--seed", type=_seed, default=0, help="first seed (default 0)")
    commands.add_parser("scenarios", help="list the shipped scenarios and the question each answers")
    validate = commands.add_parser("validate", help="check a scenario file (or a shipped scenario's name)")
    validate.add_argument("scenario", metavar="FILE", help="a scenario file, or a name from scenarios/")
    run = commands.add_parser("run", help="run a scenario many times and summarise outcomes and violations")
    run.add_argument("scenario", metavar="SCENARIO", help="a name from scenarios/ or a path")
    run.add_argument("--runs", type=_positive_int, default=None, help="number of runs (default: the scenario's)")
    run.add_argument("--seed", type=_seed, default=None, help="root seed (default: the scenario's)")
    run.add_argument("--workers", type=_positive_int, default=None, help="worker processes (default: all cores)")
    run.add_argument("--out", default=None, help="output folder (default: results/SCENARIO-SEED)")
    run.add_argument(
        "--shard-size", type=_positive_int, default=250, help="runs per shard, the unit of resumption (default 250)"
    )
    check = commands.add_parser("check-determinism", help="run twice, and on 1 vs several workers; compare traces")
    check.add_argument("scenario", metavar="SCENARIO", help="a name from scenarios/ or a path")
    check.add_argument("--runs", type=_positive_int, default=50, help="runs per pass (default 50)")
    check.add_argument("--workers", type=_positive_int, default=2, help="workers of the parallel pass (default 2)")
    replay = commands.add_parser("replay", help="replay one run exactly: its timeline, violations and trace hash")
    replay.add_argument("scenario", metavar="SCENARIO", help="a name from scenarios/ or a path")
    replay.add_argument("--seed", type=_seed, required=True, help="the run's seed (as `simlab run` prints it)")
    replay.add_argument("--plot", metavar="FILE.png", help="also draw the run's timeline figure into FILE.png")
    sweep = commands.add_parser("sweep", help="run a scenario at every point of a grid of its settings")
    sweep.add_argument("scenario", metavar="SCENARIO", help="a name from scenarios/ or a path")
    sweep.add_argument("--grid", required=True, metavar="GRID.yaml", help="a grid file or a name in scenarios/grids/")
    sweep.add_argument(
        "--runs-per-point", type=_positive_int, default=200, help="seeded runs at each point (default 200)"
    )
    sweep.add_argument("--seed", type=_seed, default=None, help="root seed (default: the scenario's)")
    sweep.add_argument("--workers", type=_positive_int, default=None, help="worker processes (default: all cores)")
    sweep.add_argument("--out", default=None, help="output folder (default: results/sweep-SCENARIO-GRID)")
    report = commands.add_parser("report", help="write a self-contained HTML reliability report of a batch or sweep")
    report.add_argument("folder", metavar="DIR", help="a results folder of `simlab run` or `simlab sweep`")
    report.add_argument("--baseline", metavar="DIR", help="a results folder to compare findings with")
    report.add_argument("-o", "--output", metavar="REPORT.html", required=True, help="the HTML file to write")
    report.add_argument(
        "--target", type=_rate, default=0.999, help="share of sagas that must end clean (default 0.999)"
    )
    report.add_argument(
        "--max-violation-rate", type=_rate, default=0.0, help="share of runs allowed a violation (default 0)"
    )
    report.add_argument("--saga-type", default=None, help="the saga type the figures are about (default: all)")
    return parser


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate between 0 and 1, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from simlab import demo

        return demo.main(runs=args.runs, seed=args.seed)
    if args.command == "scenarios":
        from simlab.scenario import list_scenarios

        rows = list_scenarios()
        width = max(len(name) for name, _ in rows)
        for name, question in rows:
            print(f"{name:<{width}}  {question}")
        return 0
    if args.command == "validate":
        from simlab.scenario import ScenarioError, load_scenario

        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as error:
            print(f"simlab validate: {error}", file=sys.stderr)
            return 2
        print(f"{args.scenario}: valid scenario {scenario.name!r} ({scenario.runs} runs from seed {scenario.seed})")
        return 0
    if args.command in ("run", "replay", "check-determinism"):
        return _run_or_replay(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "report":
        return _report(args)
    raise AssertionError(f"unhandled command {args.command!r}")


def _run_or_replay(args: argparse.Namespace) -> int:
    from simlab.runner import UnsupportedScenario, check_supported, run_once
    from simlab.scenario import ScenarioError, load_scenario
    from simlab.summary import batch_summary, format_timeline

    try:
        scenario = load_scenario(args.scenario)
        check_supported(scenario)
    except (ScenarioError, UnsupportedScenario) as error:
        print(f"simlab {args.command}: {error}", file=sys.stderr)
        return 2
    if args.command == "replay":
        from simlab.timeline import plot_path_problem, save_replay_figure

        problem = plot_path_problem(args.plot) if args.plot else None
        if problem:
            print(f"simlab replay: {problem}", file=sys.stderr)
            return 2
        result = run_once(scenario, args.seed, keep_trace=True)
        print(format_timeline(result))
        if args.plot:
            save_replay_figure(result, args.plot, title=f"{scenario.name} seed {args.seed}")
            print(f"timeline figure: {args.plot}")
        return 0
    if args.command == "check-determinism":
        return _check_determinism(scenario, args.runs, args.workers)
    runs = args.runs if args.runs is not None else scenario.runs
    root = args.seed if args.seed is not None else scenario.seed
    out = Path(args.out) if args.out else Path("results") / f"{scenario.name}-{root}"
    from simlab.batch import run_batch_to

    def work(progress: Progress, notice: Notice) -> object:
        return run_batch_to(
            scenario, runs, root, out, workers=args.workers, shard_size=args.shard_size, progress=progress,
            notice=notice,
        )  # fmt: skip

    status = _resumable("run", work, runs)
    if status is not None:
        return status
    # Only what the summary needs: memory stays flat however many runs the batch has. Arrow's own
    # allocator keeps arenas per read (~25 MiB more at 10,000 runs); the system one gives them back.
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    print(batch_summary(out))
    print(f"\nTables: {out} (load with simlab.batch.load_results)")
    return 0


def _resumable(command: str, work: Callable[[Progress, Notice], object], total: int) -> int | None:
    """Run ``work`` under a progress bar; on Ctrl-C or SIGTERM say what is kept, on a refused folder say why.

    Returns the exit status when the work did not finish, ``None`` when it did.
    """
    from simlab.interrupts import BatchInterrupted, WorkerDied, silence_abandoned_work
    from simlab.progress import progress_bar

    try:
        with progress_bar(total) as (progress, notice):
            work(progress, notice)
    except BatchInterrupted as interrupted:
        silence_abandoned_work()
        print(f"\nsimlab {command}: {interrupted}", file=sys.stderr)
        return interrupted.exit_status
    except WorkerDied as error:
        print(f"simlab {command}: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"simlab {command}: {error}", file=sys.stderr)
        return 2
    return None


def _sweep(args: argparse.Namespace) -> int:
    from simlab.runner import UnsupportedScenario, check_supported
    from simlab.scenario import ScenarioError, load_scenario
    from simlab.sweep import GridError, load_grid, make_points, resolve_grid_path, run_sweep

    try:
        scenario = load_scenario(args.scenario)
        check_supported(scenario)
        grid_path = resolve_grid_path(args.grid)
        grid = load_grid(grid_path)
        points = make_points(scenario, grid, str(grid_path))
    except (ScenarioError, UnsupportedScenario, GridError) as error:
        print(f"simlab sweep: {error}", file=sys.stderr)
        return 2
    root = args.seed if args.seed is not None else scenario.seed
    out = Path(args.out) if args.out else Path("results") / f"sweep-{scenario.name}-{grid_path.stem}"
    print(f"{scenario.name}: {len(points)} points x {args.runs_per_point} runs from root seed {root} -> {out}")

    def work(progress: Progress, notice: Notice) -> object:
        return run_sweep(scenario, grid, args.runs_per_point, root, out, grid_name=str(grid_path),
                         workers=args.workers, progress=progress, notice=notice)  # fmt: skip

    status = _resumable("sweep", work, len(points) * args.runs_per_point)
    if status is not None:
        return status
    from simlab.analysis import config_summary, describe_choice
    from simlab.batch import load_results

    results = load_results(out)
    summary = config_summary(results, saga_type=grid.saga_type)
    columns = ["runs", "clean_rate", "completed_rate", "violation_rate", "success_rate", "p50_s", "p99_s"]
    with pd_display():
        print(summary[columns].to_string())
    print()
    print(describe_choice(summary, given=grid.conditions, objective=grid.objective))
    print(f"\nTables: {out} (load with simlab.batch.load_results); report: simlab report {out} -o report.html")
    return 0


def _report(args: argparse.Namespace) -> int:
    from simlab.scenario.model import SAGA_TYPES

    output = Path(args.output)
    problem = None
    if output.suffix.lower() not in (".html", ".htm"):
        problem = f"-o {args.output}: expected a file name ending in .html"
    elif output.is_dir():
        problem = f"-o {args.output}: is a folder; expected a file name ending in .html"
    elif not output.parent.is_dir():
        problem = f"-o {args.output}: the folder {output.parent} does not exist"
    elif args.saga_type is not None and args.saga_type not in SAGA_TYPES:
        problem = f"--saga-type {args.saga_type}: unknown saga type; expected one of {', '.join(SAGA_TYPES)}"
    if problem:
        print(f"simlab report: {problem}", file=sys.stderr)
        return 2
    from simlab.report import ReportError, write_report  # the plotting stack: only once the arguments are good

    try:
        path = write_report(
            args.folder,
            output,
            baseline=args.baseline,
            target=args.target,
            max_violation_rate=args.max_violation_rate,
            saga_type=args.saga_type,
        )
    except ReportError as error:
        print(f"simlab report: {error}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


@contextlib.contextmanager
def pd_display() -> Iterator[None]:
    """Pandas printing fit for a terminal: three decimals, wide lines."""
    import pandas as pd

    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 160, "display.max_columns", 30):
        yield


def _check_determinism(scenario: Any, runs: int, workers: int) -> int:
    """Run the batch three times (1 worker twice, then ``workers``); every table must be identical."""
    import tempfile

    from simlab.batch import run_batch_to
    from simlab.interrupts import BatchInterrupted, silence_abandoned_work
    from simlab.results import load_results

    with tempfile.TemporaryDirectory(prefix="simlab-determinism-") as tmp:
        passes = {
            "first pass, 1 worker": (Path(tmp) / "a", 1),
            "second pass, 1 worker": (Path(tmp) / "b", 1),
            f"third pass, {workers} workers": (Path(tmp) / "c", workers),
        }
        seen = {}
        try:
            for label, (out, count) in passes.items():
                run_batch_to(scenario, runs, scenario.seed, out, workers=count, shard_size=max(1, runs // 4))
                seen[label] = load_results(out)
        except BatchInterrupted as interrupted:
            silence_abandoned_work()
            print(f"simlab check-determinism: interrupted by {interrupted.signal_name}", file=sys.stderr)
            return interrupted.exit_status
    reference_label, reference = next(iter(seen.items()))
    for label, found in seen.items():
        problem = _difference(reference, found)
        if problem:
            print(f"{scenario.name}: the {label} differs from the {reference_label}: {problem}")
            return 1
    print(f"{scenario.name}: {runs} runs, identical tables twice on 1 worker and on {workers} workers")
    violations = reference.violations
    if violations.empty:
        print("Invariant violations: none (in every pass)")
    else:
        counts = violations.groupby("invariant", observed=True)["run"].nunique()
        listed = ", ".join(f"{name} in {count} run(s)" for name, count in counts.items())
        print(f"Invariant violations, identical in every pass: {listed}")
    return 0


def _difference(reference: Any, found: Any) -> str:
    """What differs between two loads of the same batch ('' when every table is identical)."""
    from simlab.batch import TABLES

    if len(found.runs) != len(reference.runs):
        return f"{len(found.runs)} runs instead of {len(reference.runs)}"
    hashes = reference.runs["trace_hash"].to_numpy() != found.runs["trace_hash"].to_numpy()
    if hashes.any():
        return f"trace hashes differ at runs {reference.runs['run'][hashes].tolist()[:10]}"
    for name in TABLES:
        if not getattr(reference, name).equals(getattr(found, name)):
            return f"the {name} tables differ"
    return ""


if __name__ == "__main__":
    sys.exit(main())
