"""``simlab run --until-probes``: run a scenario's batch in growing steps until every probe it can reach is reached.

A probe that a batch never reached says only that the batch was too small or the scenario cannot
get there. With ``--until-probes``, ``--runs`` (or the scenario's runs) is a limit: the batch starts
at an eighth of it and grows by that step, in the same folder, until every ``sometimes`` and
``reachable`` probe that applies to its runs was reached at least once, or the limit is run. The
shard size is the limit's throughout, and each step is a whole number of shards, so the batch's
finished shards are always the first shards of the next step's larger batch (``grow_batch``):
the same seeds, run once. Interrupted, the same command resumes from the folder's last step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the batch and presentation layers load when a batch runs, not for `simlab --help`
    from simlab.scenario.model import Scenario

Notice = Callable[[str], None]

STEPS = 8  # the batch grows by about an eighth of the limit at a time


def add_until_probes_option(parser: Any) -> None:
    """``--until-probes`` on ``simlab run``."""
    parser.add_argument(
        "--until-probes", action="store_true",
        help="run in growing steps until every sometimes/reachable probe that applies is reached; --runs is the limit",
    )  # fmt: skip


def step_runs(limit: int, shard_size: int) -> int:
    """How many runs each step adds: about ``limit / STEPS``, a whole number of shards (at least one)."""
    return max(1, limit // STEPS // shard_size) * shard_size


def first_runs(out: Path, limit: int, root_seed: int, shard_size: int) -> int:
    """Where to start: the first step, or the runs of the batch already in ``out`` (same root seed and shard
    size: an earlier ``--until-probes`` run, interrupted or stopped, resumes where it was)."""
    from simlab.batch.shards import read_manifest

    manifest = read_manifest(out) if out.is_dir() else {}
    recorded = str(manifest.get("runs", ""))
    same = manifest.get("root_seed") == str(root_seed) and manifest.get("shard_size") == str(shard_size)
    if same and recorded.isdigit() and int(recorded) > 0:
        return min(limit, int(recorded))
    return min(limit, step_runs(limit, shard_size))


def run_until_probes(
    scenario: Scenario,
    runs: int,
    root_seed: int,
    out: Path,
    *,
    shard_size: int,
    notice: Notice | None = None,
    **batch_options: Any,
) -> tuple[int, list[str]]:
    """Run the batch in steps until no probe that applies is unreached, or ``runs`` (the limit) are run; return
    the runs in the batch and the probes still unreached. Called as ``run_batch_to`` is (the other options go to
    it); ``notice`` hears one line per step and one at the end."""
    from simlab.batch.batches import grow_batch, run_batch_to
    from simlab.present.probes import folder_probe_table, unmet_probes

    say = notice or (lambda _line: None)
    limit, step = runs, step_runs(runs, shard_size)
    runs = first_runs(out, limit, root_seed, shard_size)
    while True:
        run_batch_to(scenario, runs, root_seed, out, shard_size=shard_size, notice=notice, **batch_options)
        unmet = unmet_probes(folder_probe_table(out))
        if not unmet or runs >= limit:
            ending = f"{len(unmet)} probe(s) still not reached at the limit" if unmet else "every probe reached"
            say(f"--until-probes: stopped after {runs:,} runs: {ending}")
            return runs, unmet
        grown = min(limit, runs + step)
        say(f"{len(unmet)} probe(s) not reached in {runs:,} runs: growing the batch to {grown:,}")
        grow_batch(out, grown)
        runs = grown
