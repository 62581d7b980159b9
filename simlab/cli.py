"""The ``simlab`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}")
    return value


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
    replay = commands.add_parser("replay", help="replay one run exactly: its timeline, violations and trace hash")
    replay.add_argument("scenario", metavar="SCENARIO", help="a name from scenarios/ or a path")
    replay.add_argument("--seed", type=_seed, required=True, help="the run's seed (as `simlab run` prints it)")
    return parser


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
    if args.command in ("run", "replay"):
        return _run_or_replay(args)
    raise AssertionError(f"unhandled command {args.command!r}")


def _run_or_replay(args: argparse.Namespace) -> int:
    from simlab.runner import UnsupportedScenario, check_supported, run_batch, run_once
    from simlab.scenario import ScenarioError, load_scenario
    from simlab.summary import format_summary, format_timeline

    try:
        scenario = load_scenario(args.scenario)
        check_supported(scenario)
    except (ScenarioError, UnsupportedScenario) as error:
        print(f"simlab {args.command}: {error}", file=sys.stderr)
        return 2
    if args.command == "replay":
        print(format_timeline(run_once(scenario, args.seed, keep_trace=True)))
        return 0
    runs = args.runs if args.runs is not None else scenario.runs
    root = args.seed if args.seed is not None else scenario.seed
    results = list(run_batch(scenario, runs, root))
    print(format_summary(scenario.name, runs, root, results))
    return 0  # argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
