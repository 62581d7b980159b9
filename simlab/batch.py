"""The Monte Carlo runner: runs spread over worker processes, written as Parquet shards, resumable.

How this works: the runs ``0 .. N-1`` of a batch are cut into shards of
consecutive run indices. A worker runs one shard (each run seeded from the
batch's root seed and its index, so nothing depends on which worker ran it)
and writes one Parquet file per table, then a marker file; the marker is what
makes a shard count as finished. Running the same command again skips
finished shards, so an interrupted batch keeps what it finished and completes
only what is missing. The parent process only counts; memory stays flat as N
grows. ``load_results`` reads every finished shard back as one DataFrame per
table, sorted by run index, so the tables are identical whatever the number
of workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from simlab.reach import reach_columns
from simlab.runner import RunResult, run_once, run_seed
from simlab.scenario.model import Scenario

BATCH_MANIFEST = "batch.txt"
SWEEP_MANIFEST = "sweep.json"
SCENARIO_FILE = "scenario.yaml"
TABLES = ("runs", "sagas", "attempts", "violations", "faults", "broker_calls")
DEFAULT_SHARD_SIZE = 250
ATTEMPT_PHASES = ("execute", "compensate", "poll")
"""Trace phases whose attempts the ``attempts`` table holds (``poll``: a ``retry_async`` poll inside a step)."""


# Modules that only read or present finished results: changing them changes no run, so a batch
# written before the change can still be resumed.
PRESENTATION = frozenset(
    {"analysis.py", "plots.py", "report.py", "lab.py", "progress.py", "cli.py", "summary.py", "timeline.py"}
)


def code_hash() -> str:
    """A short hash of the engine's and the lab's source: results from other code are other results."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    sources = [*root.joinpath("sagas").rglob("*.py"), *root.joinpath("simlab").rglob("*.py")]
    for path in sorted(p for p in sources if not (p.parent.name == "simlab" and p.name in PRESENTATION)):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def config_hash(scenario: Scenario) -> str:
    """A short hash of the scenario's whole configuration (every row carries it)."""
    return hashlib.sha256(scenario.model_dump_json().encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Shard:
    """Runs ``start .. stop-1`` of a batch."""

    index: int
    start: int
    stop: int

    @property
    def stem(self) -> str:
        return f"shard-{self.index:05d}"


def plan_shards(runs: int, shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """The shards of a batch of ``runs`` runs."""
    return [Shard(i, start, min(start + shard_size, runs)) for i, start in enumerate(range(0, runs, shard_size))]


def _tables(scenario: Scenario, digest: str, index: int, result: RunResult) -> dict[str, list[dict[str, object]]]:
    keys = {"scenario": scenario.name, "config_hash": digest, "seed": result.seed, "run": index}
    attempts = []
    open_attempts: dict[tuple[str, str | None, int | None, str], float] = {}
    for r in result.trace:
        if r.phase not in ATTEMPT_PHASES:
            continue
        key = (r.saga_id, r.step, r.attempt, r.phase)
        if r.outcome == "started":
            open_attempts[key] = r.t
        elif key in open_attempts:
            attempts.append(
                {
                    **keys,
                    "saga_id": r.saga_id,
                    "saga_type": r.saga_type,
                    "step": r.step,
                    "attempt": r.attempt,
                    "phase": r.phase,
                    "start": open_attempts.pop(key),
                    "end": r.t,
                    "outcome": r.outcome,
                    "error_type": r.error_type,
                }
            )
    windows = getattr(result, "fault_windows", ()) or ()
    return {
        "runs": [
            {
                **keys,
                "trace_hash": result.trace_hash,
                "sagas": len(result.sagas),
                "violations": len(result.violations),
                "unchecked": ",".join(result.unchecked),
                **reach_columns(result),
            }
        ],
        "sagas": [
            {
                **keys,
                "saga_id": s.saga_id,
                "saga_type": s.saga_type,
                "status": s.status,
                "started_at": s.started_at,
                "ended_at": s.ended_at,
                "duration_s": None if s.ended_at is None else s.ended_at - s.started_at,
                "attempts": s.attempts,
                "retries": s.retries,
            }
            for s in result.sagas
        ],
        "attempts": attempts,
        "violations": [
            {**keys, "invariant": v.invariant, "t": v.t, "sagas": ",".join(v.saga_ids), "explanation": v.explanation}
            for v in result.violations
        ],
        "faults": [{**keys, "family": w[0], "start": w[1], "end": w[2]} for w in windows],
        "broker_calls": [
            {**keys, "broker": b, "start": start, "end": end, "operation": op, "outcome": outcome}
            for b, start, end, op, outcome in result.broker_calls
        ],
    }


def run_shard(scenario: Scenario, root_seed: int, shard: Shard, out: Path) -> tuple[int, int]:
    """Run one shard and write its tables; return (runs, violations). Runs in a worker process."""
    digest = config_hash(scenario)
    rows: dict[str, list[dict[str, object]]] = {name: [] for name in TABLES}
    violations = 0
    for index in range(shard.start, shard.stop):
        result = run_once(scenario, run_seed(index, root_seed), keep_trace=True)
        violations += len(result.violations)
        for name, table in _tables(scenario, digest, index, result).items():
            rows[name].extend(table)
    for name in TABLES:
        tmp = out / f".{shard.stem}.{name}.parquet.tmp"
        frame = pd.DataFrame(rows[name])
        if "seed" in frame:
            # Seeds are 64-bit unsigned: pandas would store a shard whose seeds all fit in int64 as int64,
            # and int64 and uint64 shards concatenate to float64, which loses the seeds' last digits.
            frame["seed"] = frame["seed"].astype("uint64")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, out / f"{shard.stem}.{name}.parquet")
    (out / f"{shard.stem}.done").write_text(f"{shard.start} {shard.stop}\n")
    return shard.stop - shard.start, violations


def finished_shards(out: Path) -> set[int]:
    """Indices of the shards already written completely in ``out``."""
    return {int(p.name.split("-")[1].split(".")[0]) for p in out.glob("shard-*.done")}


Progress = Callable[[int, int, int], None]  # (runs done, total, violations so far)


@dataclass(frozen=True)
class Batch:
    """``runs`` runs of one scenario from one root seed, written into ``out``."""

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
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Run the missing shards of a batch into ``out``; return (runs run now, violations found now)."""
    return run_batches([Batch(scenario, runs, root_seed, out, shard_size)], workers=workers, progress=progress)


def run_batches(
    batches: list[Batch], *, workers: int | None = None, progress: Progress | None = None
) -> tuple[int, int]:
    """Run the missing shards of several batches (a sweep's points) on one pool of workers.

    Returns (runs run now, violations found now). Each batch's folder is checked against
    its manifest first, so nothing runs if any folder holds a different batch.
    """
    todo: list[tuple[Batch, Shard]] = []
    total = 0
    for batch in batches:
        batch.out.mkdir(parents=True, exist_ok=True)
        _check_manifest(batch.out, batch.scenario, batch.runs, batch.root_seed, batch.shard_size)
    for batch in batches:
        done = finished_shards(batch.out)
        shards = plan_shards(batch.runs, batch.shard_size)
        total += batch.runs
        todo += [(batch, shard) for shard in shards if shard.index not in done]
    finished = total - sum(shard.stop - shard.start for _, shard in todo)
    ran = found = 0
    if progress:
        progress(finished, total, 0)
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for batch, shard in todo:
            count, violations = run_shard(batch.scenario, batch.root_seed, shard, batch.out)
            ran, found = ran + count, found + violations
            if progress:
                progress(finished + ran, total, found)
        return ran, found
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_shard, b.scenario, b.root_seed, shard, b.out) for b, shard in todo]
        try:
            for future in as_completed(futures):
                count, violations = future.result()
                ran, found = ran + count, found + violations
                if progress:
                    progress(finished + ran, total, found)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return ran, found


def _check_manifest(out: Path, scenario: Scenario, runs: int, root_seed: int, shard_size: int) -> None:
    manifest = out / BATCH_MANIFEST
    text = f"scenario={scenario.name}\nconfig_hash={config_hash(scenario)}\nruns={runs}\nroot_seed={root_seed}\n"
    text += f"shard_size={shard_size}\ncode_hash={code_hash()}\n"
    if manifest.exists() and manifest.read_text() != text:
        raise ValueError(
            f"{out} holds a different batch ({manifest.read_text().strip().replace(chr(10), ', ')}); "
            "use another --out or delete it"
        )
    manifest.write_text(text)
    # The exact scenario the runs used, so `simlab replay FOLDER/scenario.yaml --seed S` replays any of
    # them even after the shipped file changed, or when it is a sweep's point.
    (out / SCENARIO_FILE).write_text(
        f"# The scenario of this batch, exactly as run (config hash {config_hash(scenario)}).\n"
        + yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
    )


@dataclass
class Results:
    """A batch's (or a sweep's) tables as pandas DataFrames.

    For a sweep every table has a ``point`` column and one column per swept parameter,
    named by its dotted path; ``params`` lists those columns (empty for a plain batch).
    """

    runs: pd.DataFrame
    sagas: pd.DataFrame
    attempts: pd.DataFrame
    violations: pd.DataFrame
    faults: pd.DataFrame
    broker_calls: pd.DataFrame
    params: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def where(self, conditions: dict[str, Any]) -> Results:
        """The rows of every table whose columns match ``conditions`` (a value, or a list of values).

        A swept parameter fixed to one value stops being a parameter of the result, so plots and
        analyses of it group by the remaining ones: ``sweep.where({"brokers.alpaca.profile": "real"})``.
        """
        runs = self.runs
        wanted = {
            column: [table_cell(v) for v in (value if isinstance(value, list | tuple) else [value])]
            for column, value in conditions.items()
        }
        for column, cells in wanted.items():
            if column not in runs.columns:
                raise KeyError(
                    f"{column!r} is not a column of these results (swept: {', '.join(self.params) or 'none'})"
                )
            if not runs[column].isin(cells).any():
                present = ", ".join(repr(v) for v in dict.fromkeys(runs[column].tolist()))
                raise ValueError(f"no runs with {column} in {cells!r} (present: {present})")
        tables: dict[str, pd.DataFrame] = {}
        for name in TABLES:
            frame: pd.DataFrame = getattr(self, name)
            for column, cells in wanted.items():
                if column in frame.columns:
                    frame = frame[frame[column].isin(cells)]
            tables[name] = frame.reset_index(drop=True)
        fixed = [c for c, v in conditions.items() if not isinstance(v, list | tuple) or len(v) == 1]
        return _results(tables, [p for p in self.params if p not in fixed], self.manifest)


def load_results(out: Path | str) -> Results:
    """Every finished shard of a batch or a sweep, one DataFrame per table, sorted by (point and) run index."""
    folder = Path(out)
    if (folder / SWEEP_MANIFEST).exists():
        return _load_sweep(folder)
    return _results(_load_batch(folder), [], read_manifest(folder))


def load_table(out: Path | str, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """One table of a batch, only ``columns`` of it if given (text columns as categories).

    What a summary needs, without the rest: the step-attempt and broker-call tables grow with
    every run, so reading them all back would make memory grow with the batch.
    """
    paths = _table_paths(Path(out), name)
    if not paths:
        return pd.DataFrame()
    schema = pq.read_schema(paths[0])
    wanted = [c for c in dict.fromkeys([*(columns or schema.names), "run"]) if c in schema.names]
    # Text as dictionary-encoded columns straight from Parquet: no Python string per cell, ever.
    text = [
        c for c in wanted if pa.types.is_string(schema.field(c).type) or pa.types.is_large_string(schema.field(c).type)
    ]
    table = pa.concat_tables(
        pq.read_table(path, columns=wanted, read_dictionary=text, use_threads=False) for path in paths
    )
    return _by_run(table.to_pandas())


def _load_batch(folder: Path) -> dict[str, pd.DataFrame]:
    frames: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        # Seeds exact in every part before concatenating: int64 and uint64 parts would meet as float64.
        parts = [_by_run(pd.read_parquet(path)) for path in _table_paths(folder, name)]
        non_empty = [p for p in parts if not p.empty]
        frames[name] = _by_run(pd.concat(non_empty, ignore_index=True) if non_empty else pd.DataFrame())
    return frames


def _table_paths(folder: Path, name: str) -> list[Path]:
    """The Parquet files of one table, in shard order (a table missing from a finished shard was
    written by an older lab that did not have it)."""
    paths = [folder / f"shard-{i:05d}.{name}.parquet" for i in sorted(finished_shards(folder))]
    return [path for path in paths if path.exists()]


def _by_run(frame: pd.DataFrame) -> pd.DataFrame:
    """A loaded table with exact (uint64) seeds, in run order."""
    if "seed" in frame:
        frame["seed"] = frame["seed"].astype("uint64")
    return frame.sort_values("run", kind="stable").reset_index(drop=True) if "run" in frame else frame


def _load_sweep(folder: Path) -> Results:
    manifest = json.loads((folder / SWEEP_MANIFEST).read_text())
    params: list[str] = manifest["parameters"]
    per_table: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for point in manifest["points"]:
        frames = _load_batch(folder / point["folder"])
        for name, frame in frames.items():
            if frame.empty:
                continue
            frame.insert(0, "point", point["index"])
            for offset, param in enumerate(params, start=1):
                frame.insert(offset, param, point["values"][param])
            per_table[name].append(frame)
    tables = {
        name: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame() for name, parts in per_table.items()
    }
    return _results(tables, params, manifest)


def table_cell(value: Any) -> Any:
    """A swept value as a table cell: scalars as they are, anything else as compact JSON."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _results(tables: dict[str, pd.DataFrame], params: list[str], manifest: dict[str, Any]) -> Results:
    t = tables
    return Results(
        t["runs"], t["sagas"], t["attempts"], t["violations"], t["faults"], t["broker_calls"], params, manifest
    )


def read_manifest(folder: Path) -> dict[str, Any]:
    """A batch folder's manifest (scenario, config and code hashes, runs, root seed) as a dict."""
    path = folder / BATCH_MANIFEST
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def hashes(out: Path | str) -> list[tuple[int, str]]:
    """(run index, trace hash) of every finished run, in order."""
    runs = load_results(out).runs
    return list(zip(runs["run"].tolist(), runs["trace_hash"].tolist(), strict=True)) if len(runs) else []


def throughput(started: float, runs: int) -> float:
    """Runs per second since ``started`` (a ``time.perf_counter()`` reading)."""
    elapsed = time.perf_counter() - started
    return runs / elapsed if elapsed > 0 else 0.0
