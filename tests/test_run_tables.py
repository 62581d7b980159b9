"""A run's rows go into its shard's tables column by column: every row lands whole, under its own columns."""

from __future__ import annotations

import pyarrow as pa
import pytest

from simlab.batch.batches import config_hash
from simlab.batch.run_tables import add_run, empty_tables
from simlab.batch.runner import run_once, seed_of_run
from simlab.batch.shards import SCHEMAS, TableColumns, UndeclaredColumn, table_bytes
from simlab.evidence.trace_tables import attempt_rows
from simlab.scenario import load_scenario


def _rows(tables: dict[str, TableColumns], name: str) -> list[dict[str, object]]:
    return pa.Table.from_pydict(tables[name].columns, schema=SCHEMAS[name]).to_pylist()


def test_a_runs_rows_land_under_their_own_columns() -> None:
    scenario = load_scenario("chaos_swarm")  # faults, strikes, broker calls and violations, all in a few runs
    digest = config_hash(scenario)
    tables = empty_tables()
    results = [run_once(scenario, seed_of_run(scenario, i, scenario.seed), keep_trace=True) for i in range(3)]
    for index, result in enumerate(results):
        add_run(tables, scenario, digest, index, result)

    def keyed(index: int) -> dict[str, object]:
        return {"scenario": scenario.name, "config_hash": digest, "seed": results[index].seed, "run": index}

    expected_attempts = [
        {**keyed(i), **row._asdict()} for i, result in enumerate(results) for row in attempt_rows(result.trace)
    ]
    assert _rows(tables, "attempts") == expected_attempts
    expected_sagas = [
        {
            **keyed(i),
            "saga_id": s.saga_id,
            "saga_type": s.saga_type,
            "status": s.status,
            "started_at": s.started_at,
            "ended_at": s.ended_at,
            "duration_s": None if s.ended_at is None else s.ended_at - s.started_at,
            "attempts": s.attempts,
            "retries": s.retries,
        }
        for i, result in enumerate(results)
        for s in result.sagas
    ]
    assert _rows(tables, "sagas") == expected_sagas
    expected_strikes = [
        {**keyed(i), "t": t, "family": family, "strike": label, "detail": detail}
        for i, result in enumerate(results)
        for t, family, label, detail in result.strikes
    ]
    assert expected_strikes, "chaos_swarm runs 0-2 should strike faults: the test would check nothing"
    assert _rows(tables, "strikes") == expected_strikes
    calls = _rows(tables, "broker_calls")
    assert [(c["run"], c["broker"], c["start"], c["end"], c["operation"], c["outcome"]) for c in calls] == [
        (i, *call) for i, result in enumerate(results) for call in result.broker_calls
    ]
    runs = _rows(tables, "runs")
    assert [(r["run"], r["trace_hash"], r["violations"]) for r in runs] == [
        (i, result.trace_hash, len(result.violations)) for i, result in enumerate(results)
    ]
    for name, table in tables.items():
        data, count = table_bytes(table)
        assert count == table.rows == len(_rows(tables, name))
        assert data.startswith(b"PAR1")


def test_a_column_not_given_is_null_and_an_undeclared_one_is_refused() -> None:
    table = TableColumns("faults")
    table.extend(2, {"scenario": "s", "run": 4}, {"family": ["a", "b"], "start": [1.0, 2.0]})
    assert table.columns["end"] == [None, None]
    assert table.columns["run"] == [4, 4]
    with pytest.raises(UndeclaredColumn, match=r"table faults: column.*colour"):
        table.append({"colour": "red"})
    with pytest.raises(ValueError, match="column family has 1 values for 2 rows"):
        table.extend(2, {}, {"family": ["a"]})
    assert table.rows == 2
    assert {len(values) for values in table.columns.values()} == {2}, "a refused extend must add nothing"
