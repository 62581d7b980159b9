"""retry_policy_obeyed: attempts and delays in the trace against the policies the sagas declare.

Plain-data tests of the rules on hand-made traces, then whole runs: the shipped sagas are clean
(and do retry, so the check had something to judge), and planted engine bugs are caught.
"""

from __future__ import annotations

import dataclasses

import pytest

import sagas.engine.attempts as attempt_loop
import sagas.engine.retry as retry_module
from sagas.engine.retry import RetryConfig
from sagas.engine.trace import TraceRecord
from sagas.trading.config import SagaConfig
from sagas.trading.wiring import definition_deps, trading_sagas
from simlab.batch.runner import run_once, run_seed
from simlab.evidence.checks.retry_policy import StepPolicies, declared_policies, delay_bounds, retry_policy_violations
from simlab.evidence.checks.violation import CannotCheck
from simlab.scenario import load_scenario
from simlab.scenario.model import Scenario

EXACT = RetryConfig(max_attempts=3, initial_delay_ms=1000, max_delay_ms=3000, backoff_factor=2.0, jitter="none")
POLL = RetryConfig(max_attempts=2, initial_delay_ms=500, max_delay_ms=500, jitter="none")
DECLARED = {"T": {"a": StepPolicies(EXACT, EXACT, POLL), "b": StepPolicies(EXACT, EXACT)}}


def rec(t, phase, outcome, step="a", attempt=None, *, error=None, delay=None, detail=None, saga="s1"):
    return TraceRecord(t, saga, "T", None, step, attempt, phase, outcome, error, delay, detail)


def attempts(step, times_and_outcomes, *, delays=()):
    """An execute attempt at each (start, end, outcome), with a retry scheduled after each failure."""
    records, delays = [], list(delays)
    for n, (start, end, outcome) in enumerate(times_and_outcomes, start=1):
        records.append(rec(start, "execute", "started", step, n))
        records.append(rec(end, "execute", outcome, step, n, error=None if outcome == "completed" else "Boom"))
        if outcome != "completed" and delays:
            records.append(rec(end, "retry", "scheduled", step, n, delay=delays.pop(0)))
    return records


def problems(records, declared=DECLARED):
    return [v.explanation for v in retry_policy_violations(records, declared)]


# -- the bounds, as plain data -----------------------------------------------------------------


def test_delay_bounds_follow_each_jitter_strategy():
    base = {"max_attempts": 9, "initial_delay_ms": 1000, "max_delay_ms": 5000, "backoff_factor": 2.0}
    assert delay_bounds(RetryConfig(**base, jitter="none"), 1, None) == (1.0, 1.0)
    assert delay_bounds(RetryConfig(**base, jitter="none"), 3, None) == (4.0, 4.0)
    assert delay_bounds(RetryConfig(**base, jitter="none"), 4, None) == (5.0, 5.0)  # capped
    assert delay_bounds(RetryConfig(**base, jitter="full"), 2, None) == (0.0, 2.0)
    assert delay_bounds(RetryConfig(**base, jitter="equal"), 2, None) == (1.0, 2.0)
    assert delay_bounds(RetryConfig(**base, jitter="decorrelated"), 1, None) == (1.0, 3.0)
    assert delay_bounds(RetryConfig(**base, jitter="decorrelated"), 2, 1.5) == (1.0, 4.5)
    assert delay_bounds(RetryConfig(**base, jitter="decorrelated"), 3, 4.0) == (1.0, 5.0)  # 12 capped at 5
    assert delay_bounds(RetryConfig(**base, jitter="none"), 10_000, None) == (5.0, 5.0)  # no overflow


def test_the_seed_policy_allows_exactly_its_doubling_delays():
    seed = RetryConfig.from_seed(3, 2.0)
    assert [delay_bounds(seed, n, None) for n in (1, 2, 3)] == [(2.0, 2.0), (4.0, 4.0), (8.0, 8.0)]


# -- the rules, on hand-made traces ------------------------------------------------------------


def test_a_trace_that_keeps_its_policy_is_clean():
    trace = attempts("a", [(0.0, 0.5, "failed"), (1.5, 2.0, "failed"), (4.0, 4.5, "completed")], delays=[1.0, 2.0])
    assert problems(trace) == []


def test_more_attempts_than_the_policy_allows_is_a_violation():
    trace = attempts(
        "a",
        [(0.0, 0.5, "failed"), (1.5, 2.0, "failed"), (4.0, 4.5, "failed"), (7.5, 8.0, "completed")],
        delays=[1.0, 2.0, 3.0],
    )
    assert problems(trace) == [
        "T: step a: retry scheduled after attempt 3 of max_attempts=3",
        "T: step a: attempt 4 exceeds its policy's max_attempts=3",
    ]


def test_a_delay_outside_the_jitter_bounds_is_a_violation():
    trace = attempts("a", [(0.0, 0.5, "failed"), (1.0, 1.5, "completed")], delays=[0.5])
    assert problems(trace) == ["T: step a: delay 0.5 s before retry 1 is outside [1, 1] s (none jitter)"]


def test_an_attempt_that_starts_before_its_delay_ends_is_a_violation():
    trace = attempts("a", [(0.0, 0.5, "failed"), (1.0, 1.5, "completed")], delays=[1.0])
    assert problems(trace) == ["T: step a: attempt 2 started 0.5 s before its delay ended"]


def test_an_attempt_without_a_scheduled_retry_is_a_violation():
    trace = attempts("a", [(0.0, 0.5, "failed"), (1.0, 1.5, "completed")])
    assert problems(trace) == ["T: step a: attempt 2 started with no retry scheduled"]


def test_a_retry_after_a_non_retryable_error_is_a_violation():
    class Fatal(Exception):
        pass

    policy = dataclasses.replace(EXACT, non_retryable=(Fatal,))
    trace = [
        rec(0.0, "execute", "started", "a", 1),
        rec(0.5, "execute", "failed", "a", 1, error="Fatal"),
        rec(0.5, "retry", "scheduled", "a", 1, delay=1.0),
    ]
    assert problems(trace, {"T": {"a": StepPolicies(policy, policy)}}) == [
        "T: step a: retried after Fatal, which its policy never retries"
    ]


def test_a_retry_past_the_budget_is_a_violation():
    policy = dataclasses.replace(EXACT, retry_budget_ms=2500)
    trace = attempts("a", [(0.0, 0.5, "failed"), (1.5, 2.0, "failed")], delays=[1.0, 2.0])
    assert problems(trace, {"T": {"a": StepPolicies(policy, policy)}}) == [
        "T: step a: retry 2 would start 4 s after the first attempt, past its 2.5 s budget"
    ]


def test_compensation_attempts_are_held_to_the_compensation_policy():
    trace = [
        rec(0.0, "compensate", "started", "b", 1),
        rec(0.5, "compensate", "failed", "b", 1, error="Boom"),
        rec(0.5, "retry", "scheduled", "b", 1, delay=2.0, detail="compensation"),
    ]
    assert problems(trace) == ["T: compensation of b: delay 2 s before retry 1 is outside [1, 1] s (none jitter)"]


def test_a_resumed_saga_carries_its_count_on_and_may_re_run_the_cut_attempt_once():
    before = attempts("a", [(0.0, 0.5, "failed"), (1.5, 2.0, "failed"), (4.0, 4.2, "cancelled")], delays=[1.0, 2.0])
    resumed = [rec(6.0, "saga", "resumed", None, detail="running")]
    # The documented re-run of the cut third attempt is attempt 4, beyond max_attempts=3: allowed.
    rerun_completes = [rec(6.0, "execute", "started", "a", 4), rec(6.5, "execute", "completed", "a", 4)]
    assert problems(before + resumed + rerun_completes) == []
    # A retry after the re-run would be a fresh budget: flagged.
    rerun_retried = [
        rec(6.0, "execute", "started", "a", 4),
        rec(6.5, "execute", "failed", "a", 4, error="Boom"),
        rec(6.5, "retry", "scheduled", "a", 4, delay=3.0),
        rec(9.5, "execute", "started", "a", 5),
    ]
    assert problems(before + resumed + rerun_retried) == [
        "T: step a: retry scheduled after attempt 4 of max_attempts=3",
        "T: step a: attempt 5 exceeds its policy's max_attempts=3",
    ]
    # An engine that forgot the count (numbering from 1 again) is caught at once.
    restarted = [rec(6.0, "execute", "started", "a", 1), rec(6.5, "execute", "completed", "a", 1)]
    assert problems(before + resumed + restarted) == [
        "T: step a: resumed at attempt 1 after 3 attempt(s): the count was lost"
    ]


def test_a_retry_reserved_before_the_restart_counts_and_the_budget_runs_from_the_first_attempt():
    policy = dataclasses.replace(EXACT, max_attempts=4, retry_budget_ms=5000)
    declared = {"T": {"a": StepPolicies(policy, policy)}}
    before = attempts("a", [(0.0, 0.5, "failed")], delays=[1.0])  # retry 2 reserved, then the crash at 1.0
    resumed = [rec(1.0, "saga", "resumed", None, detail="running")]
    after = [
        rec(1.0, "execute", "started", "a", 3),  # the reserved attempt 2 counts as made
        rec(1.5, "execute", "failed", "a", 3, error="Boom"),
        rec(1.5, "retry", "scheduled", "a", 3, delay=3.0),
        rec(4.5, "execute", "started", "a", 4),
        rec(5.0, "execute", "failed", "a", 4, error="Boom"),
    ]
    assert problems(before + resumed + after, declared) == []
    late = [*after[:2], rec(1.5, "retry", "scheduled", "a", 3, delay=3.0)]
    late[0] = rec(3.0, "execute", "started", "a", 3)
    late[1] = rec(3.5, "execute", "failed", "a", 3, error="Boom")
    late[2] = rec(3.5, "retry", "scheduled", "a", 3, delay=3.0)
    assert problems(before + resumed + late, declared) == [
        "T: step a: retry 3 would start 6.5 s after the first attempt, past its 5 s budget"
    ]


def test_polls_are_held_to_the_declared_poll_policy_and_restart_with_each_step_attempt():
    poll = [
        rec(0.0, "execute", "started", "a", 1),
        rec(0.0, "poll", "started", "a", 1),
        rec(0.1, "poll", "failed", "a", 1, error="NotYet"),
        rec(0.1, "poll", "scheduled", "a", 1, delay=0.5),
        rec(0.6, "poll", "started", "a", 2),
        rec(0.7, "poll", "failed", "a", 2, error="NotYet"),
        rec(0.7, "poll", "gave_up", "a", 2, error="NotYet"),
        rec(0.7, "execute", "failed", "a", 1, error="RetryExhausted"),
        rec(0.7, "retry", "scheduled", "a", 1, delay=1.0),
        rec(1.7, "execute", "started", "a", 2),
        rec(1.7, "poll", "started", "a", 1),
        rec(1.8, "poll", "completed", "a", 1),
        rec(1.8, "execute", "completed", "a", 2),
    ]
    assert problems(poll) == []
    too_many = [
        *poll[:6],
        rec(0.7, "poll", "scheduled", "a", 2, delay=0.5),
        rec(1.2, "poll", "started", "a", 3),
        rec(1.3, "poll", "completed", "a", 3),
    ]
    assert problems(too_many) == [
        "T: poll in a: retry scheduled after attempt 2 of max_attempts=2",
        "T: poll in a: attempt 3 exceeds its policy's max_attempts=2",
    ]


def test_a_step_that_polls_without_declaring_a_policy_is_a_violation():
    trace = [rec(0.0, "execute", "started", "b", 1), rec(0.0, "poll", "started", "b", 1)]
    assert problems(trace) == ["T: step b polls with retry_async but declares no poll policy"]


def test_an_undeclared_step_is_a_violation_and_an_unknown_saga_type_cannot_be_checked():
    assert problems([rec(0.0, "execute", "started", "zz", 1)]) == [
        "T: execute record for step 'zz', which the saga does not declare"
    ]
    with pytest.raises(CannotCheck):
        retry_policy_violations([rec(0.0, "execute", "started", "a", 1)], {})


# -- whole runs --------------------------------------------------------------------------------


def _with_policy_check(name: str) -> Scenario:
    scenario = load_scenario(name)
    return scenario.model_copy(update={"invariants": ("retry_policy_obeyed",)})


def _policy_findings(scenario: Scenario, runs: int) -> tuple[list[str], dict[str, int]]:
    """The check's findings over ``runs`` runs, and how many step retries and poll delays there were to judge."""
    found: list[str] = []
    reached = {"retry": 0, "poll": 0}
    for index in range(runs):
        result = run_once(scenario, run_seed(index, scenario.seed), keep_trace=True)
        assert result.unchecked == []
        found += [v.explanation for v in result.violations if v.invariant == "retry_policy_obeyed"]
        for r in result.trace:
            if r.outcome == "scheduled" and r.phase in reached:
                reached[r.phase] += 1
    return found, reached


@pytest.mark.parametrize("name", ["connection_recovery", "thundering_herd", "broker_disconnection"])
def test_the_shipped_sagas_keep_their_policies(name):
    found, reached = _policy_findings(_with_policy_check(name), runs=3)
    assert found == []
    assert reached["retry"] > 0  # there were retries to judge
    if name == "broker_disconnection":
        assert reached["poll"] > 0


def test_the_policies_come_from_the_definitions_with_the_scenarios_overrides():
    # thundering_herd gives restore_connection 6 attempts; the saga's own definition has 4.
    scenario = _with_policy_check("thundering_herd")
    result = run_once(scenario, run_seed(0, scenario.seed), keep_trace=True)
    assert result.violations == []
    attempts_made = [r.attempt for r in result.trace if r.step == "restore_connection" and r.outcome == "started"]
    assert max(attempts_made) == 6
    unconfigured = declared_policies(trading_sagas(definition_deps(SagaConfig())))
    assert any(
        "exceeds its policy's max_attempts=4" in v.explanation
        for v in retry_policy_violations(result.trace, unconfigured)
    )


def test_an_engine_that_retries_once_more_than_its_policy_is_caught(monkeypatch):
    real = attempt_loop.next_retry_delay

    def one_more(config, **kwargs):  # the planted bug: an off-by-one in the attempt limit
        return real(dataclasses.replace(config, max_attempts=config.max_attempts + 1), **kwargs)

    monkeypatch.setattr(attempt_loop, "next_retry_delay", one_more)
    found, _ = _policy_findings(_with_policy_check("connection_recovery"), runs=3)
    assert any("exceeds its policy's max_attempts=4" in f for f in found), found


def test_an_engine_that_waits_half_its_delays_is_caught(monkeypatch):
    real = attempt_loop.next_retry_delay

    def hasty(config, **kwargs):  # the planted bug: the delay halved before it is scheduled
        delay = real(config, **kwargs)
        return None if delay is None else delay / 2

    monkeypatch.setattr(attempt_loop, "next_retry_delay", hasty)
    found, _ = _policy_findings(_with_policy_check("connection_recovery"), runs=3)
    assert any("delay 1 s before retry 1 is outside [2, 2] s" in f for f in found), found


def test_a_poll_that_outlives_its_policy_is_caught(monkeypatch):
    real = retry_module.next_retry_delay

    def one_more(config, **kwargs):  # the planted bug, in retry_async this time
        return real(dataclasses.replace(config, max_attempts=config.max_attempts + 1), **kwargs)

    monkeypatch.setattr(retry_module, "next_retry_delay", one_more)
    found, _ = _policy_findings(_with_policy_check("broker_disconnection"), runs=3)
    assert any(
        f.startswith("BrokerDisconnectionSaga: poll in validate_accounts_deleted: attempt 6 exceeds") for f in found
    )
