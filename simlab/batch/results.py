"""The one loader of a results folder: every table, figure and verdict the lab shows is read through here.

``load_results(folder)`` reads a batch (or a sweep: every point) back as one DataFrame per
table, over every finished shard, sorted by (point and) run index, so the tables are the same
whatever the number of workers. ``read_table`` is the same reading for one table, optionally only
some of its columns (what ``simlab run`` prints its summary from, without reading the rest).

What it guarantees: each shard is checked against its marker before anything of it is read
(a damaged shard is left out of every table and named in ``Results.problems``, never half
used); each table's columns and types come from its declared schema and every shard's file,
never from one shard (a shard written by an older lab, lacking a column, gets nulls there); and
``Results.expected_runs`` says how many runs there should be, so an unfinished batch can say so.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from simlab.batch.shards import (
    BATCH_MANIFEST,
    LATER_TABLES,
    SCHEMAS,
    SWEEP_MANIFEST,
    TABLES,
    FinishedShard,
    FolderScan,
    marker_path,
    read_manifest,
    scan_folder,
    table_path,
)
from simlab.scenario.limits import cut


class ShardUnreadable(ValueError):
    """A finished shard's table that its marker vouches for but that cannot be read as that table
    (rewritten and resealed by hand, say); ``str()`` is one line naming the file."""


@dataclass
class Results:
    """A batch's (or a sweep's) tables as pandas DataFrames.

    For a sweep every table has a ``point`` column and one column per swept parameter,
    named by its dotted path; ``params`` lists those columns (empty for a plain batch).
    ``expected_runs`` is how many runs the batch or sweep was asked for (None when unknown),
    and ``problems`` names every damaged shard that was left out, one line each.
    """

    runs: pd.DataFrame
    sagas: pd.DataFrame
    attempts: pd.DataFrame
    violations: pd.DataFrame
    faults: pd.DataFrame
    broker_calls: pd.DataFrame
    strikes: pd.DataFrame = field(default_factory=lambda: SCHEMAS["strikes"].empty_table().to_pandas())
    """Every fault that struck (t, family, strike, detail): each run's fault schedule."""
    probes: pd.DataFrame = field(default_factory=lambda: SCHEMAS["probes"].empty_table().to_pandas())
    params: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    expected_runs: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every run asked for is here (False for an interrupted or damaged batch)."""
        return self.expected_runs is None or len(self.runs) >= self.expected_runs

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
        params = [p for p in self.params if p not in fixed]
        return _results(tables, params, self.manifest, None, self.problems)


def table_cell(value: Any) -> Any:
    """A swept value as a table cell: scalars as they are, anything else as compact JSON."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- one table ---------------------------------------------------------------------------------


def _target_schema(name: str, columns: Sequence[str], categories: bool) -> pa.Schema:
    declared = SCHEMAS[name]
    fields = []
    for column in columns:
        kind = declared.field(column).type
        if categories and pa.types.is_string(kind):
            kind = pa.dictionary(pa.int32(), pa.string())
        fields.append(pa.field(column, kind))
    return pa.schema(fields)


def _read_part(path: Path, target: pa.Schema, categories: bool) -> pa.Table:
    """One shard's table, with exactly the target's columns and types (nulls where the file has none)."""
    present = set(pq.read_schema(path).names)
    columns = [c for c in target.names if c in present]
    text = [c for c in columns if categories and pa.types.is_dictionary(target.field(c).type)]
    part = pq.read_table(path, columns=columns, read_dictionary=text, use_threads=False)
    arrays = []
    for target_field in target:
        if target_field.name in present:
            arrays.append(part.column(target_field.name).cast(target_field.type))
        else:
            arrays.append(pa.nulls(part.num_rows, target_field.type))
    return pa.Table.from_arrays(arrays, schema=target)


def _read_checked(path: Path, name: str, target: pa.Schema, categories: bool) -> pa.Table:
    """``_read_part``; a file that is not that table (a column of text where numbers belong) is one line."""
    try:
        return _read_part(path, target, categories)
    except (pa.ArrowException, OSError) as problem:
        reason = cut(str(problem).splitlines()[0] if str(problem) else type(problem).__name__, 120)
        raise ShardUnreadable(
            f"{path}: cannot be read as the {name} table ({reason}); delete {marker_path(path.parent, _index(path))}"
            " and run the batch's command again to run its shard again"
        ) from None


def _index(path: Path) -> int:
    return int(path.name.split(".", 1)[0].removeprefix("shard-"))


def read_table(
    folder: Path | str,
    name: str,
    columns: Sequence[str] | None = None,
    *,
    finished: Mapping[int, FinishedShard] | None = None,
    categories: bool = False,
) -> pd.DataFrame:
    """One table of a batch folder over every finished shard, in run order.

    ``columns`` reads only those (``run`` is always included); ``categories`` reads text as pandas
    categories, so that a summary of a large batch holds no Python string per cell. ``finished``
    is a check of the folder already made (``scan_folder``); without it the folder is checked now.
    """
    folder = Path(folder)
    if name not in SCHEMAS:
        raise KeyError(f"no table {name!r}; the tables are {', '.join(TABLES)}")
    declared = SCHEMAS[name].names
    wanted = list(dict.fromkeys([*(columns if columns is not None else declared), "run"]))
    unknown = [c for c in wanted if c not in declared]
    if unknown:
        raise KeyError(f"table {name} has no column(s) {', '.join(unknown)}; its columns are {', '.join(declared)}")
    shards = finished if finished is not None else scan_folder(folder).finished
    target = _target_schema(name, wanted, categories)
    paths = [table_path(folder, index, name) for index in sorted(shards)]
    if name in LATER_TABLES:  # a shard of a lab that did not write this table yet has no rows of it
        paths = [path for path in paths if path.exists()]
    parts = [_read_checked(path, name, target, categories) for path in paths]
    table = pa.concat_tables(parts) if parts else target.empty_table()
    frame = table.to_pandas()
    return frame.sort_values("run", kind="stable").reset_index(drop=True)


# -- whole folders -----------------------------------------------------------------------------


def _batch_tables(folder: Path, scan: FolderScan) -> dict[str, pd.DataFrame]:
    return {name: read_table(folder, name, finished=scan.finished) for name in TABLES}


def load_results(out: Path | str) -> Results:
    """Every finished shard of a batch or a sweep, one DataFrame per table, sorted by (point and) run index.

    A damaged shard (its files no longer match its marker) is left out of every table, named in
    ``Results.problems`` and warned about; running the batch's command again re-runs it.
    """
    folder = Path(out)
    if (folder / SWEEP_MANIFEST).exists():
        results = _load_sweep(folder)
    else:
        scan = scan_folder(folder)
        manifest = read_manifest(folder)
        expected = int(manifest["runs"]) if "runs" in manifest else None
        problems = [damaged.describe(folder) for damaged in scan.damaged]
        results = _results(_batch_tables(folder, scan), [], manifest, expected, problems)
    for problem in results.problems:
        warnings.warn(f"left out: {problem}; run the same command again to re-run it", stacklevel=2)
    return results


def _load_sweep(folder: Path) -> Results:
    manifest = json.loads((folder / SWEEP_MANIFEST).read_text())
    params: list[str] = manifest["parameters"]
    per_table: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    problems: list[str] = []
    for point in manifest["points"]:
        point_folder = folder / point["folder"]
        scan = scan_folder(point_folder)
        problems += [damaged.describe(point_folder) for damaged in scan.damaged]
        for name, frame in _batch_tables(point_folder, scan).items():
            frame.insert(0, "point", point["index"])
            for offset, param in enumerate(params, start=1):
                frame.insert(offset, param, point["values"][param])
            per_table[name].append(frame)
    tables = {name: pd.concat(parts, ignore_index=True) for name, parts in per_table.items()}
    expected = int(manifest["runs_per_point"]) * len(manifest["points"])
    return _results(tables, params, manifest, expected, problems)


def _results(
    tables: dict[str, pd.DataFrame],
    params: list[str],
    manifest: dict[str, Any],
    expected: int | None,
    problems: list[str],
) -> Results:
    t = tables
    return Results(
        t["runs"],
        t["sagas"],
        t["attempts"],
        t["violations"],
        t["faults"],
        t["broker_calls"],
        t["strikes"],
        t["probes"],
        params=params,
        manifest=manifest,
        expected_runs=expected,
        problems=list(problems),
    )


def hashes(out: Path | str) -> list[tuple[int, str]]:
    """(run index, trace hash) of every finished run, in order."""
    runs = read_table(out, "runs", ["run", "trace_hash"])
    return list(zip(runs["run"].tolist(), runs["trace_hash"].tolist(), strict=True))


def is_results_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a batch or a sweep written by ``simlab run`` / ``simlab sweep``."""
    return (folder / SWEEP_MANIFEST).is_file() or (folder / BATCH_MANIFEST).is_file()
