"""Which run ``simlab replay`` replays: a scenario and a seed, or a batch folder and a run number.

A run number belongs to a batch: run 11 of a batch rooted at seed 1 has the seed
``run_seed(11, 1)``, not 11. So a run number is only accepted with the batch's folder, and a
seed given with a folder must be one of that batch's seeds; either way the run is replayed from
the exact scenario the folder keeps (``scenario.yaml``), never from a shipped file that may have
changed since. When the run's shard is finished, its recorded trace hash comes along, so the
replay can say whether it reproduced the batch's run exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from simlab.batch.batches import code_hash, config_hash
from simlab.batch.results import read_table
from simlab.batch.runner import seed_of_run
from simlab.batch.shards import (
    BATCH_MANIFEST,
    SCENARIO_FILE,
    SWEEP_MANIFEST,
    FinishedShard,
    read_manifest,
    scan_folder,
)
from simlab.scenario.limits import shown
from simlab.scenario.loader import ScenarioError, load_scenario
from simlab.scenario.model import Scenario


class ReplayError(ValueError):
    """A replay that cannot be made as asked; ``str()`` is the one-line message for the user."""


@dataclass(frozen=True)
class ReplayTarget:
    """One run to replay: its scenario and seed and, when it came from a batch folder, where it ran."""

    scenario: Scenario
    seed: int
    folder: Path | None = None  # the batch folder it was named by
    run: int | None = None  # its run number in that batch
    recorded_hash: str | None = None  # the batch's trace hash of that run (None: its shard is not finished)
    code_changed: bool = False  # the lab's code differs from the code that ran the batch

    @property
    def label(self) -> str:
        """How the run is named in titles: ``reconnect_race seed S`` or ``run 11 of results/X (seed S)``."""
        if self.folder is None:
            return f"{self.scenario.name} seed {self.seed}"
        return f"run {self.run} of {self.folder} (seed {self.seed})"


def resolve_replay(target: str, *, seed: int | None, run: int | None, point: int | None) -> ReplayTarget:
    """The run ``simlab replay TARGET [--seed S | --run N] [--point K]`` names; ``ReplayError`` if none.

    ``target`` is a scenario (name or file), a batch folder, or a sweep folder with ``point``. A folder
    without ``seed`` or ``run`` names its first run with a violation (what a user replays first); a scenario
    without ``seed`` that lists ``run_seeds`` (a repro) names its first.
    """
    folder = Path(target)
    if not folder.is_dir():
        if not folder.exists() and (os.sep in target or "/" in target):  # a path, not a scenario's name
            raise ReplayError(f"{shown(target)}: no such results folder or scenario file")
        if run is not None:
            raise ReplayError(
                f"--run {run}: run numbers belong to a batch, so name its results folder "
                f"(simlab replay results/FOLDER --run {run}); with a scenario, give --seed"
            )
        if point is not None:
            raise ReplayError(f"--point {point}: points belong to a sweep; {shown(target)} is not a sweep folder")
        try:
            scenario = load_scenario(target)
        except ScenarioError as error:
            raise ReplayError(str(error)) from None
        if seed is None and scenario.run_seeds is not None:
            seed = scenario.run_seeds[0]  # a repro names its run: the first run of a batch of it
        if seed is None:
            raise ReplayError(f"{shown(target)}: give the run's --seed (or a results folder and --run N)")
        return ReplayTarget(scenario, seed)
    if (folder / SWEEP_MANIFEST).is_file():
        folder = _sweep_point(folder, point)
    elif point is not None:
        raise ReplayError(f"--point {point}: {folder} is not a sweep folder (it has no {SWEEP_MANIFEST})")
    if not (folder / BATCH_MANIFEST).is_file():
        raise ReplayError(
            f"{folder} is not a results folder (it has no {BATCH_MANIFEST}): give a folder of `simlab run` "
            "or `simlab sweep`, or a scenario"
        )
    return _from_batch(folder, seed, run)


def _sweep_point(folder: Path, point: int | None) -> Path:
    try:
        folders = [str(p["folder"]) for p in json.loads((folder / SWEEP_MANIFEST).read_text())["points"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReplayError(f"{folder / SWEEP_MANIFEST}: unreadable ({error}); it was not written by simlab") from None
    if not folders:
        raise ReplayError(f"{folder / SWEEP_MANIFEST} lists no points")
    if point is None:
        raise ReplayError(
            f"{folder} is a sweep of {len(folders)} points: name one with --point K (0 to {len(folders) - 1}), "
            f"or give its folder ({folder / folders[0]})"
        )
    if not 0 <= point < len(folders):
        raise ReplayError(f"--point {point}: {folder} has points 0 to {len(folders) - 1}")
    return folder / folders[point]


def _from_batch(folder: Path, seed: int | None, run: int | None) -> ReplayTarget:
    try:
        manifest = read_manifest(folder)
        runs, root = int(manifest["runs"]), int(manifest["root_seed"])
    except (OSError, UnicodeDecodeError, KeyError, ValueError) as error:
        raise ReplayError(f"{folder / BATCH_MANIFEST}: unreadable ({error}); it was not written by simlab") from None
    try:
        scenario = load_scenario(str(folder / SCENARIO_FILE))
    except ScenarioError as error:
        raise ReplayError(f"{error} (the scenario kept by the batch)") from None
    if config_hash(scenario) != manifest.get("config_hash"):
        raise ReplayError(
            f"{folder / SCENARIO_FILE} is not the scenario the batch ran (config hash {config_hash(scenario)}, "
            f"the batch's {manifest.get('config_hash')}): it was edited; replay with a scenario and --seed instead"
        )
    span = f"runs 0 to {runs - 1:,}" if runs > 1 else "run 0"
    finished = scan_folder(folder).finished  # every shard's files checked once, for both readings below
    if run is None and seed is None:
        run = _first_violating_run(folder, finished)
        if run is None:
            raise ReplayError(f"no finished run of {folder} violated an invariant: give --run N ({span}) or a --seed")
    if run is not None:
        if not 0 <= run < runs:
            raise ReplayError(f"--run {run}: {folder} holds {span}")
        if seed is not None and seed != seed_of_run(scenario, run, root):
            raise ReplayError(
                f"--seed {seed} is not the seed of run {run} of {folder} ({seed_of_run(scenario, run, root)})"
            )
    else:
        run = _run_of_seed(folder, finished, scenario, seed, runs, root)
        if run is None:
            raise ReplayError(
                f"--seed {seed}: no run of {folder} has that seed (its {runs:,} runs are seeded from root seed "
                f"{root}); to replay its run number {seed}, use --run {seed}"
            )
    return ReplayTarget(
        scenario,
        seed_of_run(scenario, run, root),
        folder,
        run,
        _recorded_hash(folder, run, finished),
        code_changed=manifest.get("code_hash") != code_hash(),
    )


def _run_of_seed(
    folder: Path, finished: Mapping[int, FinishedShard], scenario: Scenario, seed: int | None, runs: int, root: int
) -> int | None:
    """The run of the batch whose seed is ``seed``: read from its finished runs, computed for the rest."""
    table = read_table(folder, "runs", ["seed"], finished=finished)
    found = table.loc[table["seed"] == seed, "run"].tolist()
    if found:
        return int(found[0])
    # NOTE: only the runs of unfinished shards are seeded here: at 10 M runs, all of them take 10 s.
    gaps, at = [], 0
    for start, stop in sorted((shard.start, shard.stop) for shard in finished.values()):
        if start > at:
            gaps.append(range(at, start))
        at = max(at, stop)
    gaps.append(range(at, runs))
    return next((i for gap in gaps for i in gap if seed_of_run(scenario, i, root) == seed), None)


def _first_violating_run(folder: Path, finished: Mapping[int, FinishedShard]) -> int | None:
    """The lowest-numbered finished run of the batch in ``folder`` with a violation (None: there is none)."""
    violations = read_table(folder, "violations", ["run"], finished=finished)
    return int(violations["run"].min()) if len(violations) else None


def _recorded_hash(folder: Path, run: int, finished: Mapping[int, FinishedShard]) -> str | None:
    shards = {index: shard for index, shard in finished.items() if shard.start <= run < shard.stop}
    if not shards:
        return None
    runs = read_table(folder, "runs", ["trace_hash"], finished=shards)
    hashes = runs.loc[runs["run"] == run, "trace_hash"].tolist()
    return str(hashes[0]) if hashes else None
