"""One reading of the trace: the saga and attempt tables, from hand-made records."""

from __future__ import annotations

from sagas.engine.trace import TraceRecord
from simlab.evidence.trace_tables import AttemptRow, SagaRow, attempt_rows, records_by_saga, saga_rows

A, B = "saga-a", "saga-b"


def rec(t: float, saga_id: str, phase: str, outcome: str, step: str | None = None, attempt: int | None = None,
        error_type: str | None = None, detail: str | None = None) -> TraceRecord:  # fmt: skip
    return TraceRecord(t, saga_id, "ASaga" if saga_id == A else "BSaga", None, step, attempt, phase, outcome,
                       error_type, None, detail)  # fmt: skip


TRACE = [
    rec(0.0, A, "saga", "started"),
    rec(0.0, A, "execute", "started", "s1", 1),
    rec(1.0, A, "execute", "failed", "s1", 1, "BrokerUnavailable"),
    rec(1.0, A, "retry", "scheduled", "s1", 1),
    rec(1.5, B, "saga", "started"),
    rec(1.5, B, "execute", "started", "b1", 1),
    rec(2.0, A, "execute", "started", "s1", 2),
    rec(2.5, A, "execute", "completed", "s1", 2),
    rec(2.5, A, "poll", "started", "s2", 1),
    rec(3.0, A, "poll", "completed", "s2", 1),
    rec(3.0, A, "compensate", "started", "s1", 1),
    rec(3.25, A, "compensate", "compensated", "s1", 1),
    rec(3.25, A, "saga", "compensated", detail="compensated"),
]


def test_one_row_per_saga_with_its_last_status_attempts_and_retries():
    assert saga_rows(TRACE) == [
        SagaRow(A, "ASaga", "compensated", 0.0, 3.25, attempts=2, retries=1),
        SagaRow(B, "BSaga", "running", 1.5, None, attempts=1, retries=0),
    ]


def test_one_row_per_ended_attempt_of_a_step_a_poll_or_a_compensation_in_order_of_its_end():
    assert attempt_rows(TRACE) == [
        AttemptRow(A, "ASaga", "s1", 1, "execute", 0.0, 1.0, "failed", "BrokerUnavailable"),
        AttemptRow(A, "ASaga", "s1", 2, "execute", 2.0, 2.5, "completed", None),
        AttemptRow(A, "ASaga", "s2", 1, "poll", 2.5, 3.0, "completed", None),
        AttemptRow(A, "ASaga", "s1", 1, "compensate", 3.0, 3.25, "compensated", None),
    ]  # B's attempt never ended: no row


def test_records_by_saga_keeps_trace_order_and_first_appearance():
    grouped = records_by_saga(TRACE)
    assert list(grouped) == [A, B]
    assert [r.t for r in grouped[B]] == [1.5, 1.5]
