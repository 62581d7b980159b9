"""The sagas' definitions are read once per configuration, and only equal configurations and code share them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import SimpleNamespace
from typing import cast

from sagas.engine.retry import RetryConfig
from sagas.engine.step import SagaStep
from sagas.engine.trace import TraceRecord
from sagas.trading.config import SagaConfig, SagaVariants
from sagas.trading.sagas import disconnection
from sagas.trading.sagas.disconnection import BrokerDisconnectionSaga
from sagas.trading.wiring import definition_deps, saga_steps, trading_sagas
from simlab.batch.runner import run_seed
from simlab.chaos.workload import build_scenario_world, drive
from simlab.evidence.definitions import config_key, declared_policies, saga_definitions
from simlab.evidence.sources import Evidence
from simlab.evidence.trace_tables import records_by_saga
from simlab.scenario import load_scenario
from simlab.sim.trading_world import TradingWorld

OVERRIDE = "BrokerConnectionSaga.discover_accounts"


def _with_retry(retry: RetryConfig) -> SagaConfig:
    return SagaConfig(step_overrides={OVERRIDE: (None, retry)})


def test_equal_configurations_have_equal_keys_and_share_one_reading():
    config = load_scenario("reconnect_race").sagas.to_config()
    again = load_scenario("reconnect_race").sagas.to_config()
    assert config is not again and config_key(config) == config_key(again)
    assert saga_definitions(config) is saga_definitions(again)


def test_the_key_tells_apart_values_that_compare_equal_but_are_not_the_same():
    assert config_key(SagaConfig(lock_ttl_seconds=300)) != config_key(SagaConfig(lock_ttl_seconds=300.0))
    assert config_key(SagaConfig(lock_ttl_seconds=0.0)) != config_key(SagaConfig(lock_ttl_seconds=-0.0))
    assert config_key(_with_retry(RetryConfig(max_attempts=2))) != config_key(_with_retry(RetryConfig(max_attempts=3)))


def test_a_configuration_the_key_cannot_copy_is_read_afresh():
    odd = SagaConfig(step_overrides={OVERRIDE: (None, RetryConfig(max_attempts=2))})
    object.__setattr__(odd, "timeouts_seconds", _Opaque())
    assert config_key(odd) is None


def _shown(steps: Mapping[str, tuple[SagaStep, ...]]) -> dict[str, list[tuple[object, ...]]]:
    return {
        saga_type: [(s.name, s.policy, s.compensation_policy, s.timeout_seconds, s.compensate is None) for s in defined]
        for saga_type, defined in steps.items()
    }


class _Opaque:
    """A value of a kind the key does not know."""


def test_the_kept_reading_is_what_the_sagas_declare_under_that_configuration():
    for config in (SagaConfig(), _with_retry(RetryConfig(max_attempts=7, initial_delay_ms=10.0))):
        definitions = saga_definitions(config)
        assert definitions.policies == declared_policies(trading_sagas(definition_deps(config)))
        fresh = {t: tuple(config.apply_step_overrides(t, s)) for t, s in saga_steps(config).items()}
        assert _shown(definitions.steps) == _shown(fresh)
    overridden = saga_definitions(_with_retry(RetryConfig(max_attempts=7, initial_delay_ms=10.0)))
    assert overridden.policies["BrokerConnectionSaga"]["discover_accounts"].execute.max_attempts == 7


def test_patching_a_sagas_definition_gets_a_reading_of_its_own(monkeypatch):
    config = SagaConfig()
    before = saga_definitions(config)
    patient = RetryConfig(max_attempts=9)
    defined = BrokerDisconnectionSaga.define_steps

    def define_steps(self: BrokerDisconnectionSaga) -> list:
        return [replace(step, retry=patient, compensation_retry=patient) for step in defined(self)]

    monkeypatch.setattr(BrokerDisconnectionSaga, "define_steps", define_steps)
    patched = saga_definitions(config)
    assert patched is not before
    assert {p.execute for p in patched.policies["BrokerDisconnectionSaga"].values()} == {patient}
    monkeypatch.undo()
    assert saga_definitions(config).policies == before.policies


def test_the_trace_grouped_by_saga_is_shared_by_the_checks_until_the_trace_changes():
    records = [_record(0.0, "a"), _record(1.0, "b"), _record(2.0, "a")]
    world = SimpleNamespace(sim=SimpleNamespace(tracer=SimpleNamespace(records=records)))
    evidence = Evidence(cast(TradingWorld, world), 10.0, ())
    grouped = evidence.by_saga()
    assert grouped == records_by_saga(records) and evidence.by_saga() is grouped
    records.append(_record(3.0, "c"))
    assert list(evidence.by_saga()) == ["a", "b", "c"]
    world.sim.tracer.records = records[:2]
    assert list(evidence.by_saga()) == ["a", "b"]


def _record(t: float, saga_id: str) -> TraceRecord:
    return TraceRecord(t, saga_id, "ASaga", None, "s1", 1, "execute", "started")


def test_patching_a_policy_constant_a_definition_reads_gets_a_reading_of_its_own(monkeypatch):
    config = SagaConfig(variants=SagaVariants.all_safe())
    before = saga_definitions(config).policies["BrokerDisconnectionSaga"]
    patient = RetryConfig(max_attempts=11)
    monkeypatch.setattr(disconnection, "PATIENT_RETRY", patient)
    after = saga_definitions(config).policies["BrokerDisconnectionSaga"]
    assert patient in {p.execute for p in after.values()} and patient not in {p.execute for p in before.values()}


def test_the_runs_of_a_batch_share_one_reading():
    scenario = load_scenario("reconnect_race")
    seen = set()
    for index in range(3):
        world = build_scenario_world(scenario, run_seed(index, scenario.seed))
        world.sim.runtime.spawn(drive(world, scenario), name="workload")
        world.sim.runtime.run(until=scenario.horizon_s)
        seen.add(id(Evidence.gather(world, scenario.horizon_s).definitions()))
    assert len(seen) == 1
