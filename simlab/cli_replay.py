"""``simlab replay``: one run exactly as it ran (or under another ordering strategy, with ``--schedule``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING

from simlab.cli_explore import with_schedule

if TYPE_CHECKING:
    from simlab.batch.replays import ReplayTarget


def replay(args: argparse.Namespace) -> int:
    """Run ``simlab replay``; return the exit status (1: the run did not reproduce the batch's trace hash)."""
    from simlab.batch.replays import ReplayError, resolve_replay
    from simlab.batch.runner import run_once
    from simlab.present.summary import format_timeline
    from simlab.present.timeline import plot_path_problem, save_replay_figure

    try:
        problem = plot_path_problem(args.plot) if args.plot else None
        if problem:
            raise ReplayError(problem)
        target = resolve_replay(args.scenario, seed=args.seed, run=args.run, point=args.point)
        target = _scheduled(target, args.schedule)
    except ReplayError as error:
        print(f"simlab replay: {error}", file=sys.stderr)
        return 2
    if target.folder is not None:
        print(f"Replaying {target.label}, from the scenario the batch kept ({target.folder / 'scenario.yaml'})")
    result = run_once(target.scenario, target.seed, keep_trace=True)
    print(format_timeline(result))
    if result.ties is not None:
        ties = result.ties
        print(
            f"Orderings ({target.scenario.orderings.strategy}): {ties.points} choice points among "
            f"{ties.processes} processes, {len(ties.choices)} of them not FIFO's "
            "(orderings.choices replays them under fifo)"
        )
    if args.plot:
        save_replay_figure(result, args.plot, title=target.label)
        print(f"timeline figure: {args.plot}")
    if target.recorded_hash is None:
        return 0
    if result.trace_hash == target.recorded_hash:
        print(f"Reproduced: the trace hash is the one the batch recorded for run {target.run}.")
        return 0
    changed = " The lab's code changed since the batch ran (its code hash differs)." if target.code_changed else ""
    print(
        f"simlab replay: NOT reproduced: the batch recorded trace hash {target.recorded_hash} for run "
        f"{target.run}, this replay gives {result.trace_hash}.{changed}",
        file=sys.stderr,
    )
    return 1


def _scheduled(target: ReplayTarget, strategy: str | None) -> ReplayTarget:
    """``target`` under ``strategy``; a batch's run replays only as it ran (``ReplayError`` otherwise)."""
    from simlab.batch.replays import ReplayError
    from simlab.batch.sweep import GridError

    if strategy is None:
        return target
    if target.folder is not None:
        if strategy == target.scenario.orderings.strategy:
            return target
        raise ReplayError(
            f"--schedule {strategy}: {target.label} replays as its batch ran it, with "
            f"{target.scenario.orderings.strategy}; give the scenario and --seed to try another ordering"
        )
    try:
        return dataclasses.replace(target, scenario=with_schedule(target.scenario, strategy))
    except GridError as error:
        raise ReplayError(str(error)) from None
