"""Bad definitions fail when defined, with a message naming the field and the value."""

from __future__ import annotations

import re

import pytest

from sagas import BaseSaga, EventBus, InMemorySagaStore, RandomStreams, RetryConfig, SagaDefinitionError, SagaManager
from sagas import SagaStep as Step
from simlab.sim.runtime import SimRuntime


async def ok(**context):
    return None


def sync_compensation(**context):
    return None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Step("s", ok, ok, timeout_seconds=0), "SagaStep 's': timeout_seconds must be > 0, got 0"),
        (lambda: Step("s", ok, ok, timeout_seconds=-1), "SagaStep 's': timeout_seconds must be > 0, got -1"),
        (
            lambda: Step("s", ok, ok, compensation_timeout_seconds=0.0),
            "SagaStep 's': compensation_timeout_seconds must be > 0, got 0.0",
        ),
        (lambda: Step("s", ok, ok, retry_count=-1), "SagaStep 's': retry_count must be an integer >= 0, got -1"),
        (lambda: Step("s", ok, sync_compensation), "SagaStep 's': compensate must be an async function"),
        (lambda: Step("s", sync_compensation, ok), "SagaStep 's': execute must be an async function"),
        (lambda: Step("", ok, ok), "SagaStep.name must be a non-empty string, got ''"),
        (lambda: RetryConfig(max_attempts=0), "max_attempts must be an integer >= 1, got 0"),
        (lambda: RetryConfig(initial_delay_ms=-5), "initial_delay_ms must be >= 0, got -5"),
        (lambda: RetryConfig(backoff_factor=0.5), "backoff_factor must be >= 1, got 0.5"),
        (lambda: RetryConfig(jitter="sometimes"), "jitter must be one of none, full, equal, decorrelated"),
        (lambda: RetryConfig(initial_delay_ms=100, max_delay_ms=10), "max_delay_ms must be >= initial_delay_ms"),
        (lambda: RetryConfig(retry_budget_ms=-1), "retry_budget_ms must be >= 0 or None, got -1"),
    ],
)
def test_bad_step_and_retry_definitions_are_rejected(build, message):
    with pytest.raises(SagaDefinitionError, match=re.escape(message)):
        build()


def test_definition_errors_are_value_errors():
    with pytest.raises(ValueError):
        RetryConfig(max_attempts=0)


def _manager():
    return SagaManager(runtime=SimRuntime(), store=InMemorySagaStore(), random_streams=RandomStreams(0))


def test_duplicate_step_names_are_rejected_at_registration():
    class Twice(BaseSaga):
        def define_steps(self):
            return [Step("charge", ok, ok), Step("charge", ok, ok)]

    with pytest.raises(SagaDefinitionError, match=re.escape("Twice: duplicate step name 'charge' at position 1")):
        _manager().register("Go", Twice)


def test_a_saga_without_steps_is_rejected_at_registration():
    class Empty(BaseSaga):
        def define_steps(self):
            return []

    with pytest.raises(SagaDefinitionError, match=re.escape("Empty.define_steps() must return at least one SagaStep")):
        _manager().register("Go", Empty)


def test_a_non_positive_saga_timeout_is_rejected_at_registration():
    class Hasty(BaseSaga):
        def get_timeout(self):
            return -3

        def define_steps(self):
            return [Step("a", ok, ok)]

    with pytest.raises(SagaDefinitionError, match=re.escape("Hasty.get_timeout() must be > 0, got -3")):
        _manager().register("Go", Hasty)


def test_registering_a_second_class_under_the_same_saga_type_is_rejected():
    class A(BaseSaga):
        def get_saga_type(self):
            return "Same"

        def define_steps(self):
            return [Step("a", ok)]

    class B(A):
        pass

    manager = _manager()
    manager.register("Go", A)
    with pytest.raises(SagaDefinitionError, match="saga type 'Same' is already registered"):
        manager.register("Other", B)


def test_a_second_handler_for_a_command_is_rejected():
    from sagas import CommandBus

    bus = CommandBus()
    bus.register_handler("Purge", ok)
    with pytest.raises(SagaDefinitionError, match="a command handler for Purge is already registered"):
        bus.register_handler("Purge", ok)
    assert EventBus().has_subscribers("Purge") is False
