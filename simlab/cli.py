"""The ``simlab`` command line."""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from simlab.cli_cluster import add_cluster_options, audit_without_cluster, dask_runner, passes_folder
from simlab.cli_explore import add_explore_command, add_schedule_option, explore, with_schedule
from simlab.cli_probes import add_until_probes_option, run_until_probes
from simlab.cli_shrink import add_shrink_command
from simlab.scenario.limits import (
    MAX_COMPARED_RUNS,
    MAX_DEMO_RUNS,
    MAX_RUNS,
    MAX_SHARDS,
    MAX_WORKERS,
    cut_quoted,
    shown,
    shown_path,
)

if TYPE_CHECKING:
    from simlab.batch.batches import Notice, Progress, ShardRunner
    from simlab.batch.sweep import Grid
    from simlab.scenario.model import Scenario


def _int_at_least(minimum: int, expected: str, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {shown(text)}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {shown(text)}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"at most {maximum:,} (the limit), got {shown(text)}")
        return value

    return parse


_seed = _int_at_least(0, "a non-negative integer seed")
_runs = _int_at_least(1, "a positive integer", MAX_RUNS)
_workers = _int_at_least(1, "a positive integer", MAX_WORKERS)


class _Parser(argparse.ArgumentParser):
    """argparse, but a wrong argument is one line on stderr (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {cut_quoted(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``simlab``."""
    parser = _Parser(prog="simlab", description="Saga Lab: the saga engine on a simulated clock.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_batch_commands(commands)
    _add_study_commands(commands)
    add_explore_command(commands, _runs, _seed, _workers)
    add_shrink_command(commands, _add_run_target)
    return parser


def _add_batch_commands(commands: Any) -> None:
    """sample, scenarios, validate, run, check-determinism and replay: one scenario, one batch or one run."""
    sample = commands.add_parser(
        "sample", help="run the sample saga (the engine alone, no trading domain) many times: its outcome table"
    )
    sample.add_argument(
        "--runs", type=_int_at_least(1, "a positive integer", MAX_DEMO_RUNS), default=1000,
        help="number of seeded runs (default 1000)",
    )  # fmt: skip
    sample.add_argument("--seed", type=_seed, default=0, help="first seed (default 0)")
    commands.add_parser("scenarios", help="list the shipped scenarios and the question each answers")
    validate = commands.add_parser("validate", help="check a scenario file (or a shipped scenario's name)")
    validate.add_argument("scenario", metavar="FILE", help="a scenario file, or a name from scenarios/")
    run = commands.add_parser("run", help="run a scenario many times and summarise outcomes and violations")
    run.add_argument("scenario", metavar="SCENARIO", help="a name from scenarios/ or a path")
    run.add_argument("--runs", type=_runs, default=None, help="number of runs (default: the scenario's)")
    run.add_argument("--seed", type=_seed, default=None, help="root seed (default: the scenario's)")
    run.add_argument("--workers", type=_workers, default=None, help="worker processes (default: all cores)")
    run.add_argument("--out", default=None, help="output folder (default: results/SCENARIO-SEED)")
    run.add_argument(
        "--shard-size", type=_runs, default=None,
        help="runs per shard, the unit of resumption (default: a 16th of the runs, at most 250)",
    )  # fmt: skip
    add_cluster_options(run)
    add_schedule_option(run)
    add_until_probes_option(run)
    check = commands.add_parser("check-determinism", help="run twice, and on 1 vs several workers; compare traces")
    check.add_argument("scenario", metavar="SCENARIO", help="a name from scenarios/ or a path")
    check.add_argument(
        "--runs", type=_int_at_least(1, "a positive integer", MAX_COMPARED_RUNS), default=None,
        help="runs per pass (default 50, or as many as the scenario's run_seeds)",
    )  # fmt: skip
    check.add_argument("--workers", type=_workers, default=2, help="workers of the parallel pass (default 2)")
    add_cluster_options(check, audit=False)
    replay = commands.add_parser("replay", help="replay one run exactly: its timeline, violations and trace hash")
    _add_run_target(
        replay,
        "a name from scenarios/ or a path; or a results folder of `simlab run` (or `simlab sweep`, with --point)",
    )
    replay.add_argument("--plot", metavar="FILE.png", help="also draw the run's timeline figure into FILE.png")
    add_schedule_option(replay)


def _add_run_target(parser: argparse.ArgumentParser, target_help: str) -> None:
    """The arguments that name one run, as ``resolve_replay`` reads them: ``replay`` and ``shrink`` share them."""
    parser.add_argument("scenario", metavar="SCENARIO|DIR", help=target_help)
    parser.add_argument("--seed", type=_seed, default=None, help="the run's seed (as `simlab run` prints it)")
    parser.add_argument(
        "--run", type=_int_at_least(0, "a run number (0 or more)"), default=None,
        help="the run's number in the batch of DIR (as the report shows it; default: its first violating run)",
    )  # fmt: skip
    parser.add_argument(
        "--point", type=_int_at_least(0, "a point number (0 or more)"), default=None,
        help="with a sweep folder: which point's batch",
    )  # fmt: skip


def _add_study_commands(commands: Any) -> None:
    """sweep and report: a grid of settings, and the HTML report of a batch or sweep."""
    sweep = commands.add_parser("sweep", help="run a scenario at every point of a grid of its settings")
    sweep.add_argument("scenario", metavar="SCENARIO", help="a name from scenarios/ or a path")
    sweep.add_argument("--grid", required=True, metavar="GRID.yaml", help="a grid file or a name in scenarios/grids/")
    sweep.add_argument("--runs-per-point", type=_runs, default=200, help="seeded runs at each point (default 200)")
    sweep.add_argument("--seed", type=_seed, default=None, help="root seed (default: the scenario's)")
    sweep.add_argument("--workers", type=_workers, default=None, help="worker processes (default: all cores)")
    sweep.add_argument("--out", default=None, help="output folder (default: results/sweep-SCENARIO-GRID)")
    sweep.add_argument(
        "--no-fit-check", dest="fit_check", action="store_false",
        help="sweep even if dry runs never saw the grid's saga type start (they can miss a rare one)",
    )  # fmt: skip
    add_cluster_options(sweep)
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


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate between 0 and 1, got {shown(text)}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate between 0 and 1, got {shown(text)}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = audit_without_cluster(args)
    if problem:
        parser.error(problem)
    if args.command == "sample":
        from simlab import sample_batch

        return sample_batch.main(runs=args.runs, seed=args.seed)
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
            for problem in error.problems:  # every problem, one line each: fix them all in one go
                print(f"simlab validate: {problem}", file=sys.stderr)
            return 2
        seeded = "of its own run_seeds" if scenario.run_seeds is not None else f"from seed {scenario.seed}"
        print(f"{args.scenario}: valid scenario {scenario.name!r} ({scenario.runs} runs {seeded})")
        return 0
    if args.command in ("run", "replay", "check-determinism"):
        return _run_or_replay(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "explore":
        return explore(args, _resumable, _output_problem)
    if args.command == "report":
        return _report(args)
    return int(args.handler(args))  # a command registered with its own handler (shrink: simlab/cli_shrink.py)


def _run_or_replay(args: argparse.Namespace) -> int:
    if args.command == "replay":
        from simlab.cli_replay import replay

        return replay(args)
    from simlab.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as error:
        print(f"simlab {args.command}: {error}", file=sys.stderr)
        return 2
    if args.command == "check-determinism":
        from simlab.scenario.model import seeding_problem

        runs = args.runs or (50 if scenario.run_seeds is None else min(50, len(scenario.run_seeds)))
        problem = seeding_problem(scenario, runs, None)
        if problem:
            print(f"simlab check-determinism: {problem}", file=sys.stderr)
            return 2
        return _check_determinism(scenario, runs, args.workers, args.dask)
    try:
        scenario = with_schedule(scenario, args.schedule)
    except ValueError as error:  # GridError: the scenario refuses it
        print(f"simlab run: {error}", file=sys.stderr)
        return 2
    return _run(args, scenario)


def _run(args: argparse.Namespace, scenario: Scenario) -> int:
    runs = args.runs if args.runs is not None else scenario.runs
    root = args.seed if args.seed is not None else scenario.seed
    listed = scenario.run_seeds  # a repro's runs: its own folder, not the shipped scenario's batch
    named = f"{scenario.name}-{root}" if listed is None else f"{scenario.name}-run-seed-{listed[0]}"
    out = Path(args.out) if args.out else Path("results") / named
    from simlab.batch.batches import resumed_shard_size, run_batch_to, shard_size_for
    from simlab.scenario.model import seeding_problem

    problem = seeding_problem(scenario, runs, args.seed) or _output_problem(out)
    shard_size = args.shard_size or (None if problem else resumed_shard_size(out, runs, root)) or shard_size_for(runs)
    shards = math.ceil(runs / shard_size)
    if shards > MAX_SHARDS:
        problem = (
            f"--shard-size {shard_size}: {runs:,} runs make {shards:,} shards of that size; the limit is "
            f"{MAX_SHARDS:,} (each shard is nine files): raise --shard-size"
        )
    if problem:
        print(f"simlab run: {problem}", file=sys.stderr)
        return 2

    def work(progress: Progress, notice: Notice, runner: ShardRunner | None) -> object:
        return (run_until_probes if args.until_probes else run_batch_to)(
            scenario, runs, root, out, workers=args.workers, shard_size=shard_size, progress=progress,
            notice=notice, runner=runner,
        )  # fmt: skip

    status = _resumable("run", work, runs, args, out)
    return status if status is not None else _print_batch_summary(out)


def _print_batch_summary(out: Path) -> int:
    # Only what the summary needs: memory stays flat however many runs the batch has. Arrow's own
    # allocator keeps arenas per read (~25 MiB more at 10,000 runs); the system one gives them back.
    import pyarrow

    from simlab.batch.results import ShardUnreadable
    from simlab.present.summary import batch_summary

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    try:
        summary = batch_summary(out)
    except ShardUnreadable as error:
        print(f"simlab run: {error}", file=sys.stderr)
        return 2
    print(summary)
    print(f"\nTables: {out} (load with simlab.batch.results.load_results)")
    return 0


def _output_problem(out: Path) -> str | None:
    """Why ``--out`` cannot be a results folder, found before anything runs or is written (None: it can be)."""
    from simlab.batch.shards import output_problem

    problem = output_problem(out)
    return f"--out {shown_path(out)}: {problem}" if problem else None


def _resumable(
    command: str, work: Callable[[Progress, Notice, ShardRunner | None], object], total: int,
    args: argparse.Namespace, out: Path,
) -> int | None:  # fmt: skip
    """Run ``work`` under a progress bar (on the ``--dask`` cluster, if given, connected and checked first); on
    Ctrl-C or SIGTERM say what is kept, on a refused folder or cluster say why.

    Returns the exit status when the work did not finish, ``None`` when it did.
    """
    from simlab.batch.cluster import AuditMismatch
    from simlab.batch.interrupts import BatchInterrupted, WorkerDied, silence_abandoned_work
    from simlab.batch.progress import progress_bar

    try:
        with (
            dask_runner(args.dask, args.workers, [out], args.audit) as runner,
            progress_bar(total) as (progress, notice),
        ):
            work(progress, notice, runner)
    except BatchInterrupted as interrupted:
        silence_abandoned_work()
        print(f"\nsimlab {command}: {interrupted}", file=sys.stderr)
        return interrupted.exit_status
    except (WorkerDied, AuditMismatch) as error:
        print(f"simlab {command}: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"simlab {command}: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the output folder cannot be written (read-only, full, removed meanwhile)
        where = f"{shown_path(Path(error.filename))}: " if error.filename else ""
        print(f"simlab {command}: cannot write the results: {where}{error.strerror}", file=sys.stderr)
        return 2
    return None


def _sweep(args: argparse.Namespace) -> int:
    from simlab.batch.sweep import GridError, load_grid, make_points, resolve_grid_path, run_sweep
    from simlab.scenario import ScenarioError, load_scenario
    from simlab.scenario.model import seeding_problem

    try:
        scenario = load_scenario(args.scenario)
        grid_path = resolve_grid_path(args.grid)
        grid = load_grid(grid_path)
        points = make_points(scenario, grid, str(grid_path), fit_check=args.fit_check)
    except (ScenarioError, GridError) as error:
        print(f"simlab sweep: {error}", file=sys.stderr)
        return 2
    root = args.seed if args.seed is not None else scenario.seed
    out = Path(args.out) if args.out else Path("results") / f"sweep-{scenario.name}-{grid_path.stem}"
    total = len(points) * args.runs_per_point
    problem = seeding_problem(scenario, args.runs_per_point, args.seed, "--runs-per-point") or _output_problem(out)
    if total > MAX_RUNS:
        problem = (
            f"--runs-per-point {args.runs_per_point}: {len(points):,} points x {args.runs_per_point:,} runs make "
            f"{total:,} runs; the limit is {MAX_RUNS:,}"
        )
    if problem:
        print(f"simlab sweep: {problem}", file=sys.stderr)
        return 2
    print(f"{scenario.name}: {len(points)} points x {args.runs_per_point} runs from root seed {root} -> {out}")

    def work(progress: Progress, notice: Notice, runner: ShardRunner | None) -> object:
        return run_sweep(scenario, grid, args.runs_per_point, root, out, grid_name=str(grid_path),
                         workers=args.workers, progress=progress, notice=notice, fit_check=False,
                         runner=runner)  # fmt: skip

    status = _resumable("sweep", work, len(points) * args.runs_per_point, args, out)
    return status if status is not None else _print_sweep_summary(out, grid)


def _print_sweep_summary(out: Path, grid: Grid) -> int:
    from simlab.batch.results import ShardUnreadable, load_results
    from simlab.present.analysis import config_summary, describe_choice, short_names

    try:
        results = load_results(out)
    except ShardUnreadable as error:
        print(f"simlab sweep: {error}", file=sys.stderr)
        return 2
    summary = config_summary(results, saga_type=grid.saga_type)
    columns = ["runs", "clean_rate", "completed_rate", "violation_rate", "success_rate", "p50_s", "p99_s"]
    with pd_display():
        print(short_names(summary[columns]).to_string())  # the settings' full paths are in the grid file
    print()
    print(describe_choice(summary, given=grid.conditions, objective=grid.objective))
    from simlab.present.commands import simlab_command

    print(f"\nTables: {out} (load with simlab.batch.results.load_results)")
    print(f"Report: {simlab_command()} report {shlex.quote(str(out))} -o {shlex.quote(str(out / 'report.html'))}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from simlab.scenario.model import SAGA_TYPES

    output = Path(args.output)
    given = shown_path(output)
    problem = None
    try:
        if output.suffix.lower() not in (".html", ".htm"):
            problem = f"-o {given}: expected a file name ending in .html"
        elif output.is_dir():
            problem = f"-o {given}: is a folder; expected a file name ending in .html"
        elif not output.parent.is_dir():
            problem = f"-o {given}: the folder {shown_path(output.parent)} does not exist"
        elif args.saga_type is not None and args.saga_type not in SAGA_TYPES:
            problem = f"--saga-type {shown(args.saga_type)}: unknown saga type; expected one of {', '.join(SAGA_TYPES)}"
        else:
            from simlab.batch.shards import write_problem

            problem = write_problem(output.parent)
            problem = problem and f"-o {given}: {problem}"
    except OSError as error:  # a name too long for the file system, say
        problem = f"-o {given}: {error.strerror}"
    if problem:
        print(f"simlab report: {problem}", file=sys.stderr)
        return 2
    from simlab.batch.results import ShardUnreadable
    from simlab.present.report import ReportError, write_report  # the plotting stack: only once the arguments are good

    try:
        path = write_report(
            args.folder,
            output,
            baseline=args.baseline,
            target=args.target,
            max_violation_rate=args.max_violation_rate,
            saga_type=args.saga_type,
            progress=_say_report_progress,
        )
    except (ReportError, ShardUnreadable) as error:
        print(f"simlab report: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the report's folder cannot be written
        print(f"simlab report: -o {shown_path(output)}: cannot write: {error.strerror}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _say_report_progress(line: str) -> None:
    """What ``simlab report`` is doing, on stderr (stdout holds only the report's path)."""
    print(f"simlab report: {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def pd_display() -> Iterator[None]:
    """Pandas printing fit for a terminal: three decimals, wide lines."""
    import pandas as pd

    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 160, "display.max_columns", 30):
        yield


def _check_determinism(scenario: Any, runs: int, workers: int, dask: str | None = None) -> int:
    """Run the batch three times (1 worker twice, then ``workers`` or the ``dask`` cluster); compare every table."""
    from simlab.batch.cluster import AuditMismatch
    from simlab.batch.determinism import check_determinism, check_folder
    from simlab.batch.interrupts import BatchInterrupted, WorkerDied, silence_abandoned_work

    where, problem = passes_folder(dask)
    if problem:
        print(f"simlab check-determinism: {problem}", file=sys.stderr)
        return 2
    try:
        with check_folder(where) as folder, dask_runner(dask, workers, [folder]) as runner:
            check = check_determinism(scenario, runs, workers, runner=runner, folder=folder, notice=_say)
    except BatchInterrupted as interrupted:
        silence_abandoned_work()
        print(f"simlab check-determinism: interrupted by {interrupted.signal_name}", file=sys.stderr)
        return interrupted.exit_status
    except ValueError as error:  # the cluster cannot run it (unreachable, other code, cannot write here)
        print(f"simlab check-determinism: {error}", file=sys.stderr)
        return 2
    except (AuditMismatch, WorkerDied) as error:
        print(f"simlab check-determinism: {error}", file=sys.stderr)
        return 1
    if check.difference:
        print(
            f"{scenario.name}: the {check.differing_pass} differs from the {check.reference_pass}: {check.difference}"
        )
        return 1
    third = f"the Dask cluster at {dask} (every shard run twice there)" if dask else f"{workers} workers"
    print(f"{scenario.name}: {runs} runs, identical tables twice on 1 worker and on {third}")
    if check.violations.empty:
        print("Invariant violations: none (in every pass)")
    else:
        counts = check.violations.groupby("invariant", observed=True)["run"].nunique()
        listed = ", ".join(f"{name} in {count} run(s)" for name, count in counts.items())
        print(f"Invariant violations, identical in every pass: {listed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
