"""What one run adds to each table of its shard, written column by column.

A run adds one ``runs`` row and a few to a hundred rows to the others (its sagas, its
attempts, its broker calls...). They go straight into the shard's ``TableColumns``: a row
dict per attempt, merged with the run's keys and then taken apart again by Arrow, cost
more than the Parquet file itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simlab.batch.runner import RunResult
from simlab.batch.shards import TABLES, VARIANT_SWITCHES, TableColumns, variant_column
from simlab.evidence.reach import reach_columns
from simlab.evidence.trace_tables import AttemptRow, SagaRow, attempt_rows
from simlab.scenario.model import Scenario

_ATTEMPT_FIELDS = AttemptRow._fields


def empty_tables() -> dict[str, TableColumns]:
    """Every table of a shard, with no rows yet."""
    return {name: TableColumns(name) for name in TABLES}


def tie_columns(result: RunResult) -> dict[str, int | None]:
    """The runs table's ordering columns of one run (nulls when its scenario left orderings to FIFO)."""
    ties = result.ties
    if ties is None:
        return {"choice_points": None, "tie_processes": None, "non_fifo_choices": None, "pct_steps": None}
    return {
        "choice_points": ties.points,
        "tie_processes": ties.processes,
        "non_fifo_choices": len(ties.choices),
        "pct_steps": ties.pct_steps,
    }


def add_run(tables: dict[str, TableColumns], scenario: Scenario, digest: str, index: int, result: RunResult) -> None:
    """Add run ``index``'s rows (``result``, kept with its trace) to every table of its shard."""
    keys = {"scenario": scenario.name, "config_hash": digest, "seed": result.seed, "run": index}
    tables["runs"].append(_runs_row(scenario, keys, result))
    _add_tuples(
        tables["sagas"],
        keys,
        ("saga_id", "saga_type", "status", "started_at", "ended_at", "duration_s", "attempts", "retries"),
        [
            (s.saga_id, s.saga_type, s.status, s.started_at, s.ended_at, _duration(s), s.attempts, s.retries)
            for s in result.sagas
        ],
    )
    _add_tuples(tables["attempts"], keys, _ATTEMPT_FIELDS, attempt_rows(result.trace))
    _add_tuples(
        tables["violations"],
        keys,
        ("invariant", "t", "sagas", "explanation"),
        [(v.invariant, v.t, ",".join(v.saga_ids), v.explanation) for v in result.violations],
    )
    windows = getattr(result, "fault_windows", ()) or ()
    _add_tuples(tables["faults"], keys, ("family", "start", "end"), [w[:3] for w in windows])
    _add_tuples(tables["strikes"], keys, ("t", "family", "strike", "detail"), result.strikes)
    _add_tuples(tables["broker_calls"], keys, ("broker", "start", "end", "operation", "outcome"), result.broker_calls)
    _add_tuples(
        tables["probes"],
        keys,
        ("kind", "probe", "hits", "failures"),
        [(p.kind, p.name, p.hits, p.failures) for p in result.probes],
    )


def _duration(saga: SagaRow) -> float | None:
    return None if saga.ended_at is None else saga.ended_at - saga.started_at


def _runs_row(scenario: Scenario, keys: dict[str, Any], result: RunResult) -> dict[str, Any]:
    """The run's one row of the ``runs`` table."""
    return {
        **keys,
        "trace_hash": result.trace_hash,
        "sagas": len(result.sagas),
        "violations": len(result.violations),
        "unchecked": ",".join(result.unchecked),
        **reach_columns(result),
        **tie_columns(result),
        **{variant_column(switch): getattr(scenario.sagas.variants, switch) for switch in VARIANT_SWITCHES},
    }


def _add_tuples(table: TableColumns, keys: dict[str, Any], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Add ``rows`` (tuples whose items are the columns ``names``, in that order)."""
    count = len(rows)
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if count else [()] * len(names)
    table.extend(count, keys, dict(zip(names, columns, strict=True)))
