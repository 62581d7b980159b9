"""The lab in a few calls, for notebooks and scripts: scenarios, settings, runs, sweeps, replays.

::

    from simlab import lab
    from simlab.present import analysis, plots

    results = lab.run("reconnect_race", runs=500, out="results/nb/race")
    analysis.config_summary(results)
    plots.outcome_breakdown(results)
    safe = lab.scenario("reconnect_race", {"sagas.variants.purge": "safe"})
    sweep = lab.sweep("broker_disconnection", {"sagas.consistency_retry.max_attempts": [2, 5, 12]},
                      runs_per_point=100, out="results/nb/budget")
    run = lab.replay("reconnect_race", seed=...)     # or lab.replay("results/nb/race", run=11)
    plots.replay_timeline(run)
    big = lab.run("reconnect_race", runs=100_000, out="/shared/race", client=dask_client)  # on a Dask cluster

Everything here is the same code the ``simlab`` command runs: results are written
as Parquet shards into ``out`` (resumable: calling again with the same arguments
only completes what is missing) and read back with ``simlab.batch.results.load_results``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simlab.batch.batches import Notice, Progress, Results, ShardRunner, load_results, run_batch_to
from simlab.batch.progress import progress_bar
from simlab.batch.replays import ReplayError, resolve_replay
from simlab.batch.runner import RunResult, run_once
from simlab.batch.sweep import Grid, load_grid, resolve_grid_path, run_sweep, with_settings
from simlab.scenario import load_scenario
from simlab.scenario.model import Scenario


def scenario(name_or_path: str | Scenario, settings: Mapping[str, Any] | None = None) -> Scenario:
    """A shipped scenario (or a file, or a ``Scenario``), optionally with some settings replaced by dotted path."""
    base = name_or_path if isinstance(name_or_path, Scenario) else load_scenario(name_or_path)
    return with_settings(base, settings) if settings else base


@contextmanager
def _bar(show: bool) -> Iterator[tuple[Progress | None, Notice]]:
    if not show:
        yield None, _warn
        return
    with progress_bar(notebook=True) as bar:
        yield bar


def _runner(client: Any, audit: float) -> ShardRunner | None:
    if client is None:
        if audit:
            raise ValueError("audit needs a Dask client: it re-runs shards on another worker of the cluster")
        return None
    from simlab.batch.cluster import DaskRunner

    return DaskRunner(client, audit=audit)


def _warn(line: str) -> None:
    warnings.warn(line, stacklevel=3)


def run(
    name_or_scenario: str | Scenario,
    *,
    runs: int | None = None,
    seed: int | None = None,
    out: str | Path,
    workers: int | None = None,
    settings: Mapping[str, Any] | None = None,
    progress: bool = True,
    client: Any = None,
    audit: float = 0.0,
) -> Results:
    """Run a scenario ``runs`` times from root ``seed`` (default: the scenario's) into ``out``; return its tables.

    With ``client`` (a ``dask.distributed.Client``) the shards run on its cluster, whose workers write into
    ``out`` themselves; ``audit`` is the fraction of them run again on another worker and compared.
    """
    chosen = scenario(name_or_scenario, settings)
    count = runs if runs is not None else chosen.runs
    with _bar(progress) as (bar, notice):
        root = chosen.seed if seed is None else seed
        run_batch_to(chosen, count, root, Path(out), workers=workers, progress=bar, notice=notice,
                     runner=_runner(client, audit))  # fmt: skip
    return load_results(out)


def sweep(
    name_or_scenario: str | Scenario,
    grid: Mapping[str, Any] | Grid | str | Path,
    *,
    runs_per_point: int,
    seed: int | None = None,
    out: str | Path,
    workers: int | None = None,
    progress: bool = True,
    client: Any = None,
    audit: float = 0.0,
) -> Results:
    """Run a scenario at every point of ``grid``; return the points' tables with one column per parameter.

    ``client`` and ``audit``: as for ``run``.

    ``grid`` is a grid file's path or name, a ``Grid``, a mapping with the grid file's keys
    (``{"parameters": {...}, "conditions": [...]}``), or just ``{path: [values]}``.
    """
    chosen = scenario(name_or_scenario)
    if isinstance(grid, Grid):
        spec = grid
    elif isinstance(grid, str | Path):
        spec = load_grid(resolve_grid_path(str(grid)))
    else:
        spec = Grid.model_validate(grid if "parameters" in grid else {"parameters": dict(grid)})
    with _bar(progress) as (bar, notice):
        run_sweep(chosen, spec, runs_per_point, chosen.seed if seed is None else seed, Path(out), workers=workers,
                  progress=bar, notice=notice, runner=_runner(client, audit))  # fmt: skip
    return load_results(out)


def replay(
    name_or_scenario: str | Scenario,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
    *,
    run: int | None = None,
    point: int | None = None,
) -> RunResult:
    """One run, exactly as the batch ran it: its trace, violations, lags, fault windows and lock holds.

    ``replay("reconnect_race", seed)``, or by a batch's folder and run number,
    ``replay("results/nb/race", run=11)`` (a sweep's folder also takes ``point=``), which
    replays from the scenario the folder kept; raises ``ReplayError`` for a run the batch did not have.
    """
    if isinstance(name_or_scenario, Scenario):
        if seed is None:
            raise ReplayError("give the run's seed")
        return run_once(scenario(name_or_scenario, settings), seed, keep_trace=True)
    target = resolve_replay(name_or_scenario, seed=seed, run=run, point=point)
    if target.folder is not None and settings:
        raise ReplayError(f"{target.label} replays from the scenario its batch kept, as it ran: give no settings")
    return run_once(
        with_settings(target.scenario, settings) if settings else target.scenario, target.seed, keep_trace=True
    )
