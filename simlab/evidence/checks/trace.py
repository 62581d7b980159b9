"""The run's trace as the checks read it: each saga's records, in the order they were written."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sagas.engine.trace import TraceRecord


def records_by_saga(records: Iterable[TraceRecord]) -> dict[str, list[TraceRecord]]:
    """Each saga id's records in trace order; sagas in the order of their first record."""
    by_saga: dict[str, list[TraceRecord]] = defaultdict(list)
    for record in records:
        by_saga[record.saga_id].append(record)
    return by_saga
