"""A results folder on disk: its file names, its tables' schemas, and the proof that a shard is whole.

How this works: a batch's runs are cut into shards of consecutive run indices. A shard is
written as one Parquet file per table, each under a temporary name first and then renamed,
and last a marker ``shard-NNNNN.done`` (JSON): the shard's runs and, for every table, its row
count and the sha256 of its file. The marker is what makes a shard count as finished, and it
is checked whenever the folder is read: a table file that is missing, truncated or altered no
longer matches its marker, so the shard is named in one line and treated as unfinished (left
out of what is loaded, run again on resume). Anything else in the folder that belongs to no
finished shard (temporary files, tables of a shard cut off before its marker) is the debris
of an interruption, removed before a resume.

Every table has one declared schema, written even when a shard has no rows for it, so an
empty table still has its columns and its types, and no shard can decide for the others
what a table looks like.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sagas.trading.config import SagaVariants
from simlab.evidence.reach import REACH_PATHS, reach_column
from simlab.scenario.limits import shown, shown_path

BATCH_MANIFEST = "batch.txt"
SWEEP_MANIFEST = "sweep.json"
SCENARIO_FILE = "scenario.yaml"
MARKER_FORMAT = 1

VARIANT_SWITCHES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(SagaVariants))
"""The seed-vs-safe switches, in their declared order (``sagas.trading.config.SagaVariants``)."""


def variant_column(switch: str) -> str:
    """The runs table's column of a variant switch: ``variant_purge``."""
    return f"variant_{switch}"


_KEYS = [
    ("scenario", pa.string()),
    ("config_hash", pa.string()),
    ("seed", pa.uint64()),  # 64-bit unsigned: as int64 the largest seeds would lose digits
    ("run", pa.int64()),
]
SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema(
        [
            *_KEYS,
            ("trace_hash", pa.string()),
            ("sagas", pa.int64()),
            ("violations", pa.int64()),
            ("unchecked", pa.string()),
            *((reach_column(path), pa.int64()) for path in REACH_PATHS),  # how often each engine path ran
            # equal-time orderings (null when the scenario leaves them to simpy's FIFO): choice points met,
            # distinct processes ready at them (PCT's k and n, in that order), and how many choices were not FIFO's
            ("choice_points", pa.int64()),
            ("tie_processes", pa.int64()),
            ("non_fifo_choices", pa.int64()),
            ("pct_steps", pa.int64()),  # PCT's K, its change points drawn over that many choice points (null: not PCT)
            # the run's saga variants (seed or safe per switch): which probes apply to it (null: an older lab's)
            *((variant_column(switch), pa.string()) for switch in VARIANT_SWITCHES),
        ]
    ),
    "sagas": pa.schema(
        [
            *_KEYS,
            ("saga_id", pa.string()),
            ("saga_type", pa.string()),
            ("status", pa.string()),
            ("started_at", pa.float64()),
            ("ended_at", pa.float64()),
            ("duration_s", pa.float64()),
            ("attempts", pa.int64()),
            ("retries", pa.int64()),
        ]
    ),
    "attempts": pa.schema(
        [
            *_KEYS,
            ("saga_id", pa.string()),
            ("saga_type", pa.string()),
            ("step", pa.string()),
            ("attempt", pa.int64()),
            ("phase", pa.string()),
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("outcome", pa.string()),
            ("error_type", pa.string()),
        ]
    ),
    "violations": pa.schema(
        [*_KEYS, ("invariant", pa.string()), ("t", pa.float64()), ("sagas", pa.string()), ("explanation", pa.string())]
    ),
    "faults": pa.schema([*_KEYS, ("family", pa.string()), ("start", pa.float64()), ("end", pa.float64())]),
    "strikes": pa.schema(
        [*_KEYS, ("t", pa.float64()), ("family", pa.string()), ("strike", pa.string()), ("detail", pa.string())]
    ),
    "broker_calls": pa.schema(
        [
            *_KEYS,
            ("broker", pa.string()),
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("operation", pa.string()),
            ("outcome", pa.string()),
        ]
    ),
    # One row per probe a run evaluated (``sagas.probes``): hits, and failures of always/unreachable.
    "probes": pa.schema(
        [*_KEYS, ("kind", pa.string()), ("probe", pa.string()), ("hits", pa.int64()), ("failures", pa.int64())]
    ),
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)
LATER_TABLES: frozenset[str] = frozenset({"strikes", "probes"})
"""Tables a lab of an earlier version did not write: a finished shard whose marker lists none of one is whole,
and reads as no rows of it (a batch written before probes existed has no probe rows, not a damaged shard)."""

_SHARD_FILE = re.compile(r"^\.?shard-(\d{5})\.")


@dataclass(frozen=True, slots=True)
class Shard:
    """Runs ``start .. stop-1`` of a batch."""

    index: int
    start: int
    stop: int

    @property
    def stem(self) -> str:
        """The shard's file-name stem, ``shard-NNNNN``."""
        return f"shard-{self.index:05d}"

    @property
    def runs(self) -> int:
        """How many runs the shard holds."""
        return self.stop - self.start


def plan_shards(runs: int, shard_size: int) -> list[Shard]:
    """The shards of a batch of ``runs`` runs."""
    return [Shard(i, start, min(start + shard_size, runs)) for i, start in enumerate(range(0, runs, shard_size))]


def table_path(folder: Path, shard: Shard | int, table: str) -> Path:
    """The Parquet file of one table of one shard."""
    index = shard.index if isinstance(shard, Shard) else shard
    return folder / f"shard-{index:05d}.{table}.parquet"


def marker_path(folder: Path, shard: Shard | int) -> Path:
    """The marker that says a shard is finished."""
    index = shard.index if isinstance(shard, Shard) else shard
    return folder / f"shard-{index:05d}.done"


# -- writing -----------------------------------------------------------------------------------


class UndeclaredColumn(ValueError):
    """Rows hold a column that the table's schema does not declare (a lab bug, caught before writing)."""


class TableColumns:
    """One table's rows, held column by column (what Arrow builds a table from, without a dict per row).

    Every declared column grows by the same count at each ``extend``; a column not given is null there.
    """

    __slots__ = ("columns", "name", "rows")

    def __init__(self, name: str) -> None:
        self.name = name
        self.columns: dict[str, list[Any]] = {column: [] for column in SCHEMAS[name].names}
        self.rows = 0

    def extend(self, count: int, same: Mapping[str, Any], each: Mapping[str, Sequence[Any]]) -> None:
        """Add ``count`` rows: ``same`` gives a value every one of them holds, ``each`` one value per row."""
        columns = self.columns
        extra = (same.keys() | each.keys()) - columns.keys()
        if extra:
            raise UndeclaredColumn(f"table {self.name}: column(s) {', '.join(sorted(extra))} are not in its schema")
        for column, given in each.items():
            if len(given) != count:
                raise ValueError(f"table {self.name}: column {column} has {len(given)} values for {count} rows")
        for column, values in columns.items():
            values.extend(each[column] if column in each else itertools.repeat(same.get(column), count))
        self.rows += count

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one row (its columns by name)."""
        self.extend(1, row, {})


def table_bytes(table: TableColumns) -> tuple[bytes, int]:
    """One table as Parquet bytes with its declared schema, and its row count."""
    arrow = pa.Table.from_pydict(table.columns, schema=SCHEMAS[table.name])
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    return sink.getvalue().to_pybytes(), arrow.num_rows


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    # No fsync: a file cut short by a crash no longer matches the digest in its shard's marker,
    # so the shard is found and run again rather than trusted.
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_shard(folder: Path, shard: Shard, tables: Mapping[str, TableColumns]) -> None:
    """Write every table of ``shard`` (each atomically), then its marker: only then is it finished."""
    entries: dict[str, dict[str, Any]] = {}
    for name in TABLES:
        data, count = table_bytes(tables.get(name) or TableColumns(name))
        path = table_path(folder, shard, name)
        _write_atomically(path, data)
        entries[name] = {"file": path.name, "rows": count, "sha256": hashlib.sha256(data).hexdigest()}
    marker = {"format": MARKER_FORMAT, "start": shard.start, "stop": shard.stop, "tables": entries}
    _write_atomically(marker_path(folder, shard), (json.dumps(marker, indent=1, sort_keys=True) + "\n").encode())


# -- reading and checking ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FinishedShard:
    """A shard whose marker and every table file agree."""

    index: int
    start: int
    stop: int

    @property
    def runs(self) -> int:
        """How many runs the shard holds."""
        return self.stop - self.start


@dataclass(frozen=True, slots=True)
class DamagedShard:
    """A shard marked finished whose files do not match its marker (``problem`` says how)."""

    index: int
    start: int | None
    stop: int | None
    problem: str

    def describe(self, folder: Path) -> str:
        """One line for the user: which shard, which runs, what is wrong."""
        runs = f" (runs {self.start}..{self.stop - 1})" if self.start is not None and self.stop is not None else ""
        return f"{folder / f'shard-{self.index:05d}'}{runs}: {self.problem}"


@dataclass
class FolderScan:
    """What a batch folder holds: its whole shards, and the ones that are damaged."""

    finished: dict[int, FinishedShard] = field(default_factory=dict)
    damaged: list[DamagedShard] = field(default_factory=list)

    @property
    def runs(self) -> int:
        """How many runs the whole shards hold."""
        return sum(shard.runs for shard in self.finished.values())


def _marker_indices(folder: Path) -> list[int]:
    indices = []
    for path in folder.glob("shard-*.done"):
        match = _SHARD_FILE.match(path.name)
        if match:
            indices.append(int(match.group(1)))
    return sorted(indices)


def _check_shard(folder: Path, index: int, tables: Iterable[str]) -> FinishedShard | DamagedShard:
    marker = marker_path(folder, index)
    try:
        text = marker.read_text()
    except OSError as error:
        return DamagedShard(index, None, None, f"its marker cannot be read ({error.strerror})")
    try:
        data = json.loads(text)
        start, stop, entries = int(data["start"]), int(data["stop"]), data["tables"]
        if not isinstance(entries, dict):
            raise TypeError("tables is not a mapping")
    except (ValueError, KeyError, TypeError, RecursionError):  # (RecursionError: JSON nested thousands deep)
        legacy = text.split()
        if len(legacy) == 2 and all(part.isdigit() for part in legacy):
            return _check_legacy(folder, index, int(legacy[0]), int(legacy[1]), tables)
        return DamagedShard(index, None, None, "its marker is not a shard marker (truncated or overwritten)")
    for name in tables:
        entry = entries.get(name)
        path = table_path(folder, index, name)
        if entry is None and name in LATER_TABLES:
            continue
        if not isinstance(entry, dict):
            return DamagedShard(index, start, stop, f"its marker lists no {name} table")
        if entry.get("file") != path.name:  # a marker naming another file (../elsewhere) vouches for nothing here
            return DamagedShard(index, start, stop, f"its marker names {shown(entry.get('file'))} as its {name} table")
        try:
            content = path.read_bytes()
        except OSError:
            return DamagedShard(index, start, stop, f"its {name} table {path.name} is missing")
        if hashlib.sha256(content).hexdigest() != entry.get("sha256"):
            return DamagedShard(
                index, start, stop, f"its {name} table {path.name} does not match its marker (truncated or altered)"
            )
        # The digest proves the file is the one sealed, not that what was sealed is a table (a marker
        # rewritten by hand): the footer is read from the bytes already here, so this costs no I/O.
        problem = _footer_problem(content, entry.get("rows"))
        if problem:
            return DamagedShard(index, start, stop, f"its {name} table {path.name} {problem}")
    return FinishedShard(index, start, stop)


def _footer_problem(content: bytes, rows: object) -> str | None:
    """Why a table file's bytes are not a Parquet table of ``rows`` rows (None: they are)."""
    try:
        found = pq.read_metadata(pa.BufferReader(content)).num_rows
    except (pa.ArrowException, OSError):
        return "is not a Parquet file"
    if found != rows:
        return f"holds {found} rows, not the {shown(rows)} its marker says"
    return None


def _check_legacy(
    folder: Path, index: int, start: int, stop: int, tables: Iterable[str]
) -> FinishedShard | DamagedShard:
    """A shard written before markers carried digests: its runs table must hold its runs, and every other
    table it has must parse (one a lab of that age did not write yet, broker_calls say, may be missing)."""
    for name in tables:
        path = table_path(folder, index, name)
        if name != "runs" and not path.exists():
            continue
        try:
            rows = pq.read_metadata(path).num_rows
        except (OSError, pa.ArrowException):
            return DamagedShard(index, start, stop, f"its {name} table {path.name} is missing or unreadable")
        if name == "runs" and rows != stop - start:
            return DamagedShard(index, start, stop, f"its runs table holds {rows} runs, not {stop - start}")
    return FinishedShard(index, start, stop)


def scan_folder(folder: Path, tables: Iterable[str] = TABLES) -> FolderScan:
    """Check every shard marked finished in ``folder`` against its marker (the files of ``tables``)."""
    scan = FolderScan()
    wanted = tuple(tables)
    manifest = read_manifest(folder)
    try:  # which runs a shard holds, even if its marker is garbled
        runs, shard_size = int(manifest["runs"]), int(manifest["shard_size"])
    except (KeyError, ValueError):
        runs = shard_size = 0
    for index in _marker_indices(folder):
        checked = _check_shard(folder, index, wanted)
        if isinstance(checked, FinishedShard):
            scan.finished[index] = checked
        else:
            start = index * shard_size  # (not plan_shards: a manifest edited to 10**12 runs would take them all)
            if checked.start is None and shard_size > 0 and start < runs:
                checked = DamagedShard(index, start, min(start + shard_size, runs), checked.problem)
            scan.damaged.append(checked)
    return scan


def remove_unfinished(folder: Path, finished: Iterable[int]) -> int:
    """Delete every shard file in ``folder`` that belongs to no finished shard; return how many.

    Called before a resume: damaged shards' files, temporary files and tables written before
    an interruption cut their shard off would otherwise be mistaken for results.
    """
    keep = set(finished)
    removed = 0
    for path in folder.iterdir():
        match = _SHARD_FILE.match(path.name)
        if match is None:
            continue
        if path.name.startswith(".") or int(match.group(1)) not in keep:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def nearest_existing(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists: where the first write into ``path`` would go."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def output_problem(out: Path) -> str | None:
    """Why ``out`` cannot become a results folder, found before anything is written (None: it can be)."""
    try:
        existing = nearest_existing(out)
        if not existing.is_dir():
            return "is a file, not a folder" if existing == out else f"{shown_path(existing)} is a file, not a folder"
    except OSError as error:  # a name too long for the file system, say
        return str(error.strerror)
    return write_problem(existing)


def write_problem(folder: Path) -> str | None:
    """Why nothing can be written in ``folder`` (None: something can), found by trying.

    ``os.access`` would say yes to root in a folder root cannot write in (sysfs, a read-only mount);
    an anonymous temporary file leaves nothing behind, whatever happens next.
    """
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"cannot write in {shown_path(folder)} ({error.strerror})"
    return None


def read_manifest(folder: Path) -> dict[str, Any]:
    """A batch folder's manifest (scenario, config and code hashes, runs, root seed) as a dict."""
    path = folder / BATCH_MANIFEST
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
