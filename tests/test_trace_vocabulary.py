"""The trace vocabulary: the enums keep the strings traces were always written with."""

from __future__ import annotations

import pickle

import pytest

from sagas.engine.state import SagaStatus
from sagas.engine.trace import (
    ATTEMPT_END_OUTCOMES,
    ATTEMPT_PHASES,
    POSSIBLY_APPLIED_OUTCOMES,
    TERMINAL_SAGA_OUTCOMES,
    Outcome,
    Phase,
    Tracer,
    canonical_trace,
)


def test_phase_and_outcome_values_are_the_recorded_strings() -> None:
    # Recorded traces and the outcome corpus hold these strings: renaming one changes every hash.
    assert [p.value for p in Phase] == ["saga", "execute", "compensate", "retry", "poll", "children"]
    assert sorted(o.value for o in Outcome) == sorted(
        [
            "started",
            "resumed",
            "completed",
            "failed",
            "timed_out",
            "cancelled",
            "aborted",
            "invalid_result",
            "scheduled",
            "skipped",
            "compensated",
            "gave_up",
            "waiting",
            "deadline_exceeded",
            "step_failed",
            "parent_compensated",
            "compensating",
            "compensation_failed",
            "lease_lost",
            "subscriber_failed",
            "duplicate_trigger",
        ]
    )


def test_named_groups() -> None:
    assert {"execute", "compensate"} == ATTEMPT_PHASES
    assert {s.value for s in SagaStatus if s.is_terminal} == TERMINAL_SAGA_OUTCOMES
    assert {"completed", "failed", "timed_out", "cancelled", "aborted", "compensated"} == ATTEMPT_END_OUTCOMES
    assert {"completed", "timed_out", "cancelled", "invalid_result"} == POSSIBLY_APPLIED_OUTCOMES


def test_records_hold_plain_strings_and_hash_as_before() -> None:
    tracer = Tracer(lambda: 1.5)
    tracer.record("s1", "T", step="a", attempt=1, phase=Phase.EXECUTE, outcome=Outcome.STARTED)
    [record] = tracer.records
    # Plain str, not the enum: a trace pickles, prints and digests exactly as one written with strings.
    assert type(record.phase) is str and type(record.outcome) is str
    assert repr(record) == (
        "TraceRecord(t=1.5, saga_id='s1', saga_type='T', parent_id=None, step='a', attempt=1, "
        "phase='execute', outcome='started', error_type=None, retry_delay=None, detail=None)"
    )
    assert pickle.loads(pickle.dumps(record)) == record
    # The canonical trace, byte for byte, that the trace hash digests.
    assert canonical_trace(tracer.records) == b'[[1.5,"s1","T",null,"a",1,"execute","started",null,null,null]]'


def test_record_takes_keywords_after_the_saga_identity() -> None:
    tracer = Tracer(lambda: 0.0)
    with pytest.raises(TypeError):
        tracer.record("s1", "T", None, "a", 1, Phase.EXECUTE, Outcome.STARTED)  # type: ignore[call-arg]


def test_canonical_trace_is_one_array_of_records_whatever_their_text_holds() -> None:
    tracer = Tracer(lambda: 2.0)
    tracer.record("s1", "T", phase=Phase.SAGA, outcome=Outcome.STARTED, detail='],[\n"é')
    tracer.record("s1", "T", phase=Phase.SAGA, outcome=Outcome.COMPLETED)
    assert canonical_trace(tracer.records) == (
        b'[[2.0,"s1","T",null,null,null,"saga","started",null,null,"],[\\n\\"\\u00e9"],'
        b'[2.0,"s1","T",null,null,null,"saga","completed",null,null,null]]'
    )
    assert canonical_trace(iter(tracer.records)) == canonical_trace(tracer.records)
    assert canonical_trace([]) == b""
