"""The Monte Carlo runner: runs spread over worker processes, written as Parquet shards, resumable.

How this works: the runs ``0 .. N-1`` of a batch are cut into shards of
consecutive run indices. A worker runs one shard (each run seeded from the
batch's root seed and its index, so nothing depends on which worker ran it)
and writes its tables and then its marker (``simlab.batch.shards``: row counts and
digests); the marker is what makes a shard count as finished. Running the same
command again checks every finished shard against its marker, removes what an
interruption cut off (and any shard whose files were damaged, saying so), and
runs only what is missing. The parent process only counts; memory stays flat
as N grows. Ctrl-C or SIGTERM stops every worker at once
(``simlab.batch.interrupts``); tables are read back through ``simlab.batch.results``.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from simlab.batch.interrupts import (
    BatchInterrupted,
    WorkerDied,
    exit_if_orphaned,
    init_worker,
    stop_on_signals,
    stop_requested,
    stop_signal,
    terminate_workers,
)
from simlab.batch.results import Results, load_results, read_table
from simlab.batch.run_tables import add_run, empty_tables
from simlab.batch.runner import run_once, seed_of_run
from simlab.batch.shards import (
    BATCH_MANIFEST,
    SCENARIO_FILE,
    SWEEP_MANIFEST,
    TABLES,
    Shard,
    TableColumns,
    plan_shards,
    read_manifest,
    remove_unfinished,
    scan_folder,
    write_shard,
)
from simlab.scenario.limits import cut
from simlab.scenario.model import Scenario, seeding_problem

__all__ = [
    "BATCH_MANIFEST",
    "DEFAULT_SHARD_SIZE",
    "SCENARIO_FILE",
    "SWEEP_MANIFEST",
    "TABLES",
    "Batch",
    "BatchInterrupted",
    "Results",
    "Shard",
    "ShardRunner",
    "code_hash",
    "config_hash",
    "load_results",
    "plan_shards",
    "read_manifest",
    "read_table",
    "run_batch_to",
    "run_batches",
    "run_shard",
]

DEFAULT_SHARD_SIZE = 250
"""The largest shard a batch is cut into by default (a shard is the unit of resumption)."""
SHARDS_PER_BATCH = 16
"""How many shards a batch is cut into by default, at least: enough that every worker of a machine
with up to this many cores has work, even in a batch of a few hundred runs."""


def shard_size_for(runs: int) -> int:
    """The default shard size of a batch of ``runs`` runs: at most 250, and at least 16 shards when there are
    16 runs or more (a 16th of the runs, rounded down: rounded up, 17 runs would make 9 shards).

    It depends on ``runs`` only (not on the cores), so the same command resumes the same shards anywhere.
    """
    return max(1, min(DEFAULT_SHARD_SIZE, runs // SHARDS_PER_BATCH))


# The packages whose code decides what a run produces: the engine, and the lab below its presentation
# layer. A change in ``simlab/present`` or in the entry points (cli, lab, sample_batch) changes no run, so a
# batch written before it can still be resumed.
PRODUCING_PACKAGES = ("sagas", "simlab/sim", "simlab/scenario", "simlab/chaos", "simlab/evidence", "simlab/batch")


def code_hash() -> str:
    """A short hash of the engine's and the lab's producing source: results from other code are other results."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    sources = [path for package in PRODUCING_PACKAGES for path in root.joinpath(package).rglob("*.py")]
    for path in sorted(sources):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def config_hash(scenario: Scenario) -> str:
    """A short hash of the scenario's whole configuration (every row carries it).

    Settings added to the schema later are left out of it while they hold their defaults, so a scenario
    that does not use them has the hash it had before they existed, and a batch written then is still
    recognised as run from its ``scenario.yaml`` (``LATER_SETTINGS``).
    """
    unused: dict[str, Any] = {}
    for section, name in LATER_SETTINGS:
        holder = getattr(scenario, section) if name else scenario
        field = name or section
        if getattr(holder, field) == type(holder).model_fields[field].get_default(call_default_factory=True):
            if name:
                unused.setdefault(section, set()).add(name)
            else:
                unused[section] = True
    return hashlib.sha256(scenario.model_dump_json(exclude=unused or None).encode()).hexdigest()[:16]


LATER_SETTINGS: tuple[tuple[str, str], ...] = (
    ("orderings", ""),
    ("faults", "strikes"),
    ("workload", "only_users"),
    ("run_seeds", ""),
)
"""Settings added after batches were first written, as (section, name) (name "": the section itself)."""


def run_shard(
    scenario: Scenario, root_seed: int, shard: Shard, out: Path, on_run: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Run one shard and write its tables; return (runs, violations). Runs in a worker process.

    ``on_run(violations)`` is called after each run (what the progress bar counts); in a worker of
    the pool it defaults to the pool's shared count. A stop asked for while the shard runs leaves it
    unwritten: it is run again on resume.
    """
    rows, violations = shard_rows(scenario, root_seed, shard, on_run or _count_run)
    if stop_requested():
        raise BatchInterrupted(stop_signal())
    write_shard(out, shard, rows)
    return shard.runs, violations


def shard_rows(
    scenario: Scenario, root_seed: int, shard: Shard, on_run: Callable[[int], None]
) -> tuple[dict[str, TableColumns], int]:
    """Every table of one shard's runs, and their violations; ``on_run(violations)`` after each run."""
    digest = config_hash(scenario)
    tables = empty_tables()
    violations = 0
    for index in range(shard.start, shard.stop):
        exit_if_orphaned()
        result = run_once(scenario, seed_of_run(scenario, index, root_seed), keep_trace=True)
        violations += len(result.violations)
        add_run(tables, scenario, digest, index, result)
        on_run(len(result.violations))
    return tables, violations


# In a worker of the pool: the runs done and violations found by all workers so far, shared with the
# parent, which reads them for its progress bar between shards (a shard takes seconds).
_live_counts: Any = None


def _init_pool_worker(parent_pid: int, live_counts: Any) -> None:
    global _live_counts
    init_worker(parent_pid)
    _live_counts = live_counts


def _count_run(violations: int) -> None:
    if _live_counts is not None:
        with _live_counts.get_lock():
            _live_counts[0] += 1
            _live_counts[1] += violations


Progress = Callable[[int, int, int], None]  # (runs done, total, violations so far)
Notice = Callable[[str], None]  # one line for the user (a damaged shard found, for example)


class ShardRunner(Protocol):
    """Somewhere other than this machine's process pool to run shards: a Dask cluster (``simlab.batch.cluster``)."""

    def check(self, folders: Sequence[Path]) -> None:
        """Refuse, before anything is written, what would make the shards' work wrong or lost (``ValueError``)."""

    def run(
        self,
        todo: Sequence[tuple[Batch, Shard]],
        done: Callable[[int, int], None],
        live_progress: Callable[[int, int], None],
        notice: Notice | None,
    ) -> None:
        """Run the shards; ``done(runs, violations)`` per shard written, ``live_progress`` with the runs so far."""


@dataclass(frozen=True)
class Batch:
    """``runs`` runs of one scenario from one root seed, written into ``out``, in shards of ``shard_size``."""

    scenario: Scenario
    runs: int
    root_seed: int
    out: Path
    shard_size: int = DEFAULT_SHARD_SIZE


def run_batch_to(
    scenario: Scenario,
    runs: int,
    root_seed: int,
    out: Path,
    *,
    workers: int | None = None,
    shard_size: int | None = None,
    progress: Progress | None = None,
    notice: Notice | None = None,
    runner: ShardRunner | None = None,
) -> tuple[int, int]:
    """Run the missing shards of a batch into ``out``; return (runs run now, violations found now).

    Without ``shard_size``: the size ``out``'s manifest records when it holds a batch already (so a
    resume cuts the same shards), else ``shard_size_for(runs)``. With ``runner`` (a Dask cluster), the
    shards run there instead of on ``workers`` local processes.
    """
    if shard_size is None:
        shard_size = resumed_shard_size(out, runs, root_seed) or shard_size_for(runs)
    batch = Batch(scenario, runs, root_seed, out, shard_size)
    return run_batches([batch], workers=workers, progress=progress, notice=notice, runner=runner)


def resumed_shard_size(out: Path, runs: int, root_seed: int) -> int | None:
    """The shard size of the batch of ``runs`` runs from ``root_seed`` already in ``out`` (None: no such batch is
    there, or its manifest does not say): a resume cuts the shards it started with. A folder holding another
    batch gives None, and is refused as such when the batch starts."""
    manifest = read_manifest(out) if out.is_dir() else {}
    if manifest.get("runs") != str(runs) or manifest.get("root_seed") != str(root_seed):
        return None
    recorded = str(manifest.get("shard_size", ""))
    return int(recorded) if recorded.isdigit() and int(recorded) > 0 else None


def grow_batch(out: Path, runs: int) -> None:
    """Make the batch in ``out`` a batch of ``runs`` runs (more than it was), keeping every shard it finished.

    Only a batch whose runs fill whole shards can grow: its shards are then exactly the first shards
    of the larger batch (same seeds, same cut), and running the larger batch runs only the rest.
    ``simlab run --until-probes`` grows its batch this way, step by step.
    """
    manifest = read_manifest(out)
    old, size = int(manifest["runs"]), int(manifest["shard_size"])
    if runs < old or old % size:
        raise ValueError(f"{out}: a batch of {old} runs in shards of {size} cannot grow to {runs} runs")
    path = out / BATCH_MANIFEST
    path.write_text(path.read_text().replace(f"\nruns={old}\n", f"\nruns={runs}\n", 1))


def _missing_shards(batch: Batch, notice: Notice | None) -> list[Shard]:
    """The shards of ``batch`` still to run; damaged shards and debris of interruptions are removed first."""
    scan = scan_folder(batch.out)
    for damaged in scan.damaged:
        if notice:
            notice(f"{damaged.describe(batch.out)}; running it again")
    remove_unfinished(batch.out, scan.finished)
    return [shard for shard in plan_shards(batch.runs, batch.shard_size) if shard.index not in scan.finished]


def kept_runs(batches: list[Batch]) -> int:
    """How many runs of ``batches`` are finished and whole on disk."""
    return sum(scan_folder(b.out).runs for b in batches if b.out.is_dir())


def run_batches(
    batches: list[Batch],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    notice: Notice | None = None,
    runner: ShardRunner | None = None,
) -> tuple[int, int]:
    """Run the missing shards of several batches (a sweep's points) on one pool of workers (or ``runner``).

    Returns (runs run now, violations found now). Each batch's folder is checked against
    its manifest first, so nothing runs if any folder holds a different batch. SIGINT or
    SIGTERM stops every worker and raises ``BatchInterrupted`` saying how many runs are kept.
    """
    for batch in batches:
        problem = seeding_problem(batch.scenario, batch.runs, None, "runs")
        if problem:  # before anything is written: a scenario listing its run seeds has no more runs
            raise ValueError(problem)
    if runner is not None:
        runner.check([batch.out for batch in batches])
    for batch in batches:
        batch.out.mkdir(parents=True, exist_ok=True)
        _check_manifest(batch.out, batch.scenario, batch.runs, batch.root_seed, batch.shard_size)
    todo = [(batch, shard) for batch in batches for shard in _missing_shards(batch, notice)]
    total = sum(batch.runs for batch in batches)
    finished = total - sum(shard.runs for _, shard in todo)
    tally = _Tally(finished, total, progress)
    count = workers or os.cpu_count() or 1
    try:
        with stop_on_signals():
            if runner is not None:
                runner.run(todo, tally.shard_written, tally.counted, notice)
            elif count == 1:
                for batch, shard in todo:
                    tally.shard_written(*run_shard(batch.scenario, batch.root_seed, shard, batch.out, tally.run_done))
            else:
                _run_in_pool(todo, count, tally.shard_written, tally.counted)
    except KeyboardInterrupt as interrupt:
        name = interrupt.signal_name if isinstance(interrupt, BatchInterrupted) else stop_signal()
        where = str(batches[0].out) if len(batches) == 1 else f"{batches[0].out.parent} ({len(batches)} folders)"
        raise BatchInterrupted(name, kept_runs(batches), total, where) from None
    return tally.kept_runs, tally.kept_violations


class _Tally:
    """The runs and violations of one ``run_batches`` call: kept (their shard written), and done so far
    (shards written or not), which the progress bar shows after the ``finished`` runs found on disk."""

    def __init__(self, finished: int, total: int, progress: Progress | None) -> None:
        self.finished, self.total, self.progress = finished, total, progress
        self.kept_runs = self.kept_violations = 0
        self.done_runs = self.done_violations = 0
        self.counted(0, 0)

    def shard_written(self, runs: int, violations: int) -> None:
        """A shard's tables and marker are written: its runs are kept."""
        self.kept_runs += runs
        self.kept_violations += violations

    def run_done(self, violations: int) -> None:
        """One run done in this process (one worker): the bar moves with every run."""
        self.counted(self.done_runs + 1, self.done_violations + violations)

    def counted(self, runs: int, violations: int) -> None:
        """The runs done and violations found so far (by several workers: their shared count)."""
        self.done_runs, self.done_violations = runs, violations
        if self.progress:
            self.progress(self.finished + runs, self.total, violations)


LIVE_PROGRESS_SECONDS = 0.25  # how often the parent reads the workers' count of runs for the progress bar


def _run_in_pool(
    todo: list[tuple[Batch, Shard]],
    workers: int,
    done: Callable[[int, int], None],
    live_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Run shards on a pool of worker processes; on any way out but success, no worker outlives it.

    ``live_progress(runs, violations)`` gets the workers' shared counts of runs done so far (finished
    shards and shards still running) a few times a second, so a progress bar moves between shards.
    """
    live_counts = multiprocessing.Array("q", 2)
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_pool_worker, initargs=(os.getpid(), live_counts))
    futures: dict[Future[tuple[int, int]], Shard] = {
        pool.submit(run_shard, b.scenario, b.root_seed, shard, b.out): shard for b, shard in todo
    }
    shown = (0, 0)  # run_batches has shown the start
    try:
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=LIVE_PROGRESS_SECONDS, return_when=FIRST_COMPLETED)
            for future in finished:
                done(*future.result())
            with live_counts.get_lock():  # as the workers write them: never a run without its violations
                counts = (live_counts[0], live_counts[1])
            if live_progress is not None and counts != shown:
                live_progress(*counts)
                shown = counts
    except BrokenProcessPool:
        terminate_workers()
        time.sleep(0.2)  # a signal that killed the workers may be on its way to us too: let it land first
        lost = sorted(shard.index for future, shard in futures.items() if not future.done() or future.exception())
        raise WorkerDied(
            f"a worker process died (killed from outside?) while running shard(s) {lost[:5]}; finished shards "
            "are kept: run the same command again to complete the batch"
        ) from None
    except BaseException:
        terminate_workers()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _check_manifest(out: Path, scenario: Scenario, runs: int, root_seed: int, shard_size: int) -> None:
    manifest = out / BATCH_MANIFEST
    text = f"scenario={scenario.name}\nconfig_hash={config_hash(scenario)}\nruns={runs}\nroot_seed={root_seed}\n"
    text += f"shard_size={shard_size}\ncode_hash={code_hash()}\n"
    if manifest.exists() and manifest.read_text() != text:
        raise ValueError(
            f"{out} holds a different batch ({cut(manifest.read_text().strip().replace(chr(10), ', '), 400)}); "
            "use another --out or delete it"
        )
    if not manifest.exists() and any(out.iterdir()):
        # Shards, their debris and the scenario copy are written (and removed, on resume) only in a folder
        # that holds this batch: never among someone's other files.
        raise ValueError(f"{out} is not empty and holds no batch; use another --out")
    manifest.write_text(text)
    # The exact scenario the runs used, so `simlab replay FOLDER/scenario.yaml --seed S` replays any of
    # them even after the shipped file changed, or when it is a sweep's point.
    (out / SCENARIO_FILE).write_text(
        f"# The scenario of this batch, exactly as run (config hash {config_hash(scenario)}).\n"
        + yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
    )
