"""Checks from ground truth: the broker's own accounts, the saga store's instances, the simulated Redis and the
lock ledger. Each is shown clean on the unmutated world and catching the bug it is for, planted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sagas.engine.state import SagaState, SagaStatus
from sagas.infra import RedisLockManager, safe_delete, safe_set
from sagas.infra.locks import fence_key
from sagas.stores.memory import InMemorySagaStore
from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.sagas.connection import BrokerConnectionSaga
from simlab.batch.runner import run_once
from simlab.chaos.workload import build_scenario_world
from simlab.evidence.checks.locks import foreign_deletions, lock_hygiene, locks_left_at_horizon
from simlab.evidence.checks.triggers import one_saga_per_trigger
from simlab.evidence.checks.write_model import no_data_loss
from simlab.evidence.invariants import INVARIANTS, Evidence, check_invariants
from simlab.evidence.lock_ledger import LedgerRedis, LockLedger
from simlab.evidence.watch import watch_locks
from simlab.scenario.model import Scenario
from simlab.sim.brokers import REAL, VirtualBroker
from simlab.sim.clocked_redis import SimulatedRedis
from simlab.sim.trading_world import TradingWorld
from simlab.sim.world import simulate
from tests.trading.world import run_trading

HORIZON = 200.0
QUIET = dataclasses.replace(  # a broker that never fails on its own: whatever goes wrong is planted
    REAL,
    name="quiet",
    unavailable_probability=0.0,
    rate_limited_probability=0.0,
    timeout_probability=0.0,
    timeout_after_success_probability=0.0,
    tail_probability=0.0,
    rate_limit_per_second=None,
)
SAFE = {"disconnect_lock": "safe", "child_wait": "safe", "purge": "safe"}
KEY = "broker:disconnect:lock:c-1"


def run_world(
    main: Callable[[TradingWorld], Coroutine[Any, Any, Any]],
    *,
    variants: dict[str, str] | None = None,
    store: InMemorySagaStore | None = None,
) -> tuple[TradingWorld, LockLedger, Any]:
    scenario = Scenario.model_validate({"name": "checks", "horizon_s": HORIZON, "sagas": {"variants": variants or {}}})
    world = build_scenario_world(scenario, seed=0)
    if store is not None:
        world.sim.store = world.manager.store = store
    for broker in world.brokers.values():
        assert isinstance(broker, VirtualBroker)
        broker.profile = QUIET
    ledger = watch_locks(world)
    task = world.sim.runtime.spawn(main(world), name="main")
    world.sim.runtime.run(until=HORIZON)
    assert world.sim.runtime.unobserved_errors() == []
    return world, ledger, task.result()


async def connect(world: TradingWorld, user: str = "u1") -> str:
    bus = world.manager.command_bus
    await bus.send(c.CreateUser(user))
    connection_id = await bus.send(c.ConnectBroker(user, "alpaca"))
    await world.manager.wait_idle()
    return connection_id


def established(world: TradingWorld, connection_id: str, event_id: str) -> e.BrokerConnectionEstablished:
    connection = world.platform.write.connections[connection_id]
    return e.BrokerConnectionEstablished(
        event_id=event_id,
        broker_connection_id=connection_id,
        user_id=connection.user_id,
        broker_id=connection.broker_id,
        is_virtual=connection.is_virtual,
    )


# -- no_data_loss: the broker's accounts, not the saga's report ---------------------------------


def test_a_connected_connection_with_every_broker_account_linked_is_clean():
    world, _, connection_id = run_world(connect)
    assert len(world.platform.write.accounts_of(connection_id)) == 2
    assert no_data_loss(Evidence.gather(world, HORIZON)) == []


def test_a_saga_that_reports_zero_accounts_does_not_agree_with_itself_any_more(monkeypatch):
    async def discovers_nothing(self, **context):  # the planted bug: discovery loses what the broker has
        return {"discovered": []}

    monkeypatch.setattr(BrokerConnectionSaga, "_discover_accounts", discovers_nothing)
    world, _, connection_id = run_world(connect)
    [state] = world.sim.store.all_states()
    assert state.status is SagaStatus.COMPLETED and state.results["discovered"] == []
    [violation] = no_data_loss(Evidence.gather(world, HORIZON))
    assert violation.explanation.startswith(
        f"connection {connection_id} is connected with 0 of the 2 accounts its broker has (missing "
        f"alpaca:{connection_id}:1, alpaca:{connection_id}:2), although BrokerConnectionSaga {state.saga_id} "
        "completed for it at t="
    )


def test_a_compensation_that_unlinks_accounts_another_saga_linked_is_data_loss(monkeypatch):
    async def fail_second(self, **context):  # the environment: the second saga fails after linking
        raise RuntimeError("publishing failed")

    async def unlink_everything(self, **context):  # the planted bug: it undoes links it did not make
        write = TRADING_WORLD[0].platform.write
        for account in write.accounts_of(context["broker_connection_id"]):
            await context["command_bus"].send(c.UnlinkBrokerAccount(account.connection_id, account.external_id))

    TRADING_WORLD: list[TradingWorld] = []

    async def main(world: TradingWorld) -> str:
        TRADING_WORLD.append(world)
        connection_id = await connect(world)  # saga A links the broker's two accounts and completes
        monkeypatch.setattr(BrokerConnectionSaga, "_publish_completion", fail_second)
        monkeypatch.setattr(BrokerConnectionSaga, "_delete_linked_accounts", unlink_everything)
        # The same connection's establishment redelivered under a new id: saga B, which fails and compensates.
        await world.manager.event_bus.publish(established(world, connection_id, "redelivered"))
        await world.manager.wait_idle()
        return connection_id

    world, _, connection_id = run_world(main)
    first, second = world.sim.store.all_states()
    assert (first.status, second.status) == (SagaStatus.COMPLETED, SagaStatus.COMPENSATED)
    assert world.platform.write.accounts_of(connection_id) == []
    [violation] = no_data_loss(Evidence.gather(world, HORIZON))
    assert "connected with 0 of the 2 accounts its broker has" in violation.explanation
    assert f"BrokerConnectionSaga {first.saga_id} completed for it" in violation.explanation


def test_a_reconnect_whose_own_saga_failed_is_a_failure_not_a_loss(monkeypatch):
    async def unavailable(self, **context):
        raise RuntimeError("broker down")

    async def main(world: TradingWorld) -> str:
        connection_id = await connect(world)  # saga A completes
        bus = world.manager.command_bus
        await bus.send(c.DisconnectBroker(connection_id))
        await world.sim.runtime.sleep(0.1)  # the disconnection has deleted the accounts, not yet purged
        monkeypatch.setattr(BrokerConnectionSaga, "_discover_accounts", unavailable)
        await bus.send(c.ConnectBroker("u1", "alpaca"))  # the same connection again: saga B, which fails
        await world.manager.wait_idle()
        return connection_id

    world, _, connection_id = run_world(main)
    assert world.platform.write.connections[connection_id].status.value == "connected"
    assert world.platform.write.accounts_of(connection_id) == []
    statuses = [s.status for s in world.sim.store.all_states() if s.saga_type == "BrokerConnectionSaga"]
    assert statuses == [SagaStatus.COMPLETED, SagaStatus.COMPENSATED]
    assert no_data_loss(Evidence.gather(world, HORIZON)) == []  # A completed before the reconnect; B never linked


def test_a_broker_without_ground_truth_leaves_no_data_loss_unchecked():
    async def main(world):
        await world.manager.command_bus.send(c.CreateUser("u1"))
        await world.manager.command_bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()

    _, world = run_trading(main)  # scripted brokers: they answer calls but do not tell their accounts
    violations, unchecked = check_invariants(Evidence.gather(world, HORIZON), ["no_data_loss", "no_orphans"])
    assert violations == [] and unchecked == ["no_data_loss"]


# -- one saga per trigger: the store's instances ------------------------------------------------


def test_a_redelivered_trigger_starts_one_saga_and_is_clean():
    async def main(world: TradingWorld) -> str:
        connection_id = await connect(world)
        await world.manager.event_bus.publish(established(world, connection_id, "again"))
        await world.manager.event_bus.publish(established(world, connection_id, "again"))
        await world.manager.wait_idle()
        return connection_id

    world, _, _ = run_world(main)
    assert len(world.sim.store.all_states()) == 2  # the first connect's saga, and one for "again"
    assert [r.outcome for r in world.sim.tracer.records if r.outcome == "duplicate_trigger"] == ["duplicate_trigger"]
    assert one_saga_per_trigger(Evidence.gather(world, HORIZON)) == []


class ForgetfulStore(InMemorySagaStore):
    """The planted bug: the trigger claim is never checked."""

    async def create(self, state: SagaState, trigger_key: str, owner: str, lease_seconds: float) -> str:
        # Every saga claims a key of its own, so no trigger is ever found taken.
        return await super().create(state, f"{trigger_key}#{state.saga_id}", owner, lease_seconds)


def test_a_store_that_forgets_trigger_claims_starts_two_sagas_and_is_caught():
    async def main(world: TradingWorld) -> str:
        connection_id = await connect(world)
        await world.manager.event_bus.publish(established(world, connection_id, "again"))
        await world.manager.event_bus.publish(established(world, connection_id, "again"))
        await world.manager.wait_idle()
        return connection_id

    world, _, _ = run_world(main, store=ForgetfulStore())
    [violation] = one_saga_per_trigger(Evidence.gather(world, HORIZON))
    twins = {s.saga_id for s in world.sim.store.all_states() if s.trigger_id == "again"}
    assert set(violation.saga_ids) == twins and len(twins) == 2
    assert (
        violation.explanation == "2 BrokerConnectionSaga instances for one trigger (BrokerConnectionEstablished again)"
    )


# -- lock hygiene: the simulated Redis and the ledger --------------------------------------------


async def connect_and_disconnect(world: TradingWorld) -> str:
    connection_id = await connect(world)
    await world.manager.command_bus.send(c.DisconnectBroker(connection_id))
    await world.manager.wait_idle()
    return connection_id


def test_safe_locks_taken_and_released_leave_redis_clean():
    world, ledger, connection_id = run_world(connect_and_disconnect, variants=SAFE)
    assert len(ledger.holds) == 2  # the connection saga's and the disconnection saga's
    assert world.platform.write.connections[connection_id].status.value == "purged"
    assert lock_hygiene(Evidence.gather(world, HORIZON, ledger=ledger)) == []


def test_a_lock_left_behind_by_a_finished_saga_is_caught(monkeypatch):
    async def keep(self, key, owner):  # the planted bug: release forgets to delete the key
        return True

    monkeypatch.setattr(RedisLockManager, "release", keep)
    world, ledger, connection_id = run_world(connect, variants=SAFE)
    [state] = world.sim.store.all_states()
    [violation] = lock_hygiene(Evidence.gather(world, HORIZON, ledger=ledger))
    owner = state.saga_id
    assert violation.saga_ids == (owner,)
    assert violation.explanation.startswith(
        f"lock broker:disconnect:lock:{connection_id} is still held at the horizon by BrokerConnectionSaga "
        f"{owner}, which ended completed at t="
    )


def test_a_lock_without_expiry_is_caught(monkeypatch):
    async def forever(self, key, owner, ttl_seconds):  # the planted bug: SET NX without PX
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(key, owner, nx=True)
        pipe.incr(fence_key(key))
        acquired, token = pipe.execute()
        pipe.reset()
        return int(token) if acquired else None

    async def keep(self, key, owner):
        return True

    monkeypatch.setattr(RedisLockManager, "acquire_fenced", forever)  # the lock the safe sagas take
    monkeypatch.setattr(RedisLockManager, "release", keep)
    world, ledger, connection_id = run_world(connect, variants=SAFE)
    explanations = [v.explanation for v in lock_hygiene(Evidence.gather(world, HORIZON, ledger=ledger))]
    assert explanations[0].endswith("has no expiry")
    assert explanations[0].startswith(f"lock broker:disconnect:lock:{connection_id} (held by ")


def test_a_lock_held_by_a_saga_no_live_manager_runs_is_caught():
    redis = SimulatedRedis(clock=lambda: 0.0)
    redis.set(KEY, "s-dead", px=300_000)
    redis.set("broker:disconnect:lock:c-2", "s-live", px=300_000)
    states = {sid: SagaState(sid, "T", "Go", f"e-{sid}", {}) for sid in ("s-dead", "s-live")}
    [violation] = locks_left_at_horizon(redis, states, running={"s-live"}, horizon_s=9.0)
    assert (violation.t, violation.saga_ids) == (9.0, ("s-dead",))
    assert violation.explanation == (
        f"lock {KEY} is still held at the horizon by T s-dead, which no live manager runs (its process died)"
    )


def _paused_holder_and_a_successor(release: str):
    """A takes the lock for 300 s and freezes for 400 s; B takes it at 350 s; A then releases its way."""

    async def main(world):
        ledger = LockLedger(world)
        redis = LedgerRedis(SimulatedRedis(clock=world.runtime.now), ledger)
        locks, clock = RedisLockManager(redis), world.runtime

        async def paused_holder():
            assert await safe_set(redis, KEY, "saga-a:0.0", ttl_seconds=300, nx=True)
            await clock.sleep(400)
            if release == "seed":
                await safe_delete(redis, KEY)  # deletes whatever is there: B's lock
            else:
                await locks.release(KEY, "saga-a")  # owner-checked: refuses

        async def successor():
            await clock.sleep(350)
            assert await locks.acquire(KEY, "saga-b", ttl_seconds=300)
            await clock.sleep(100)

        a, b = clock.spawn(paused_holder()), clock.spawn(successor())
        await a.join()
        await b.join()
        return ledger

    ledger, _ = simulate(main)
    return ledger


def test_the_seeds_unconditional_delete_of_a_lock_another_saga_holds_is_caught():
    ledger = _paused_holder_and_a_successor("seed")
    [violation] = foreign_deletions(ledger.foreign_deletions)
    assert (violation.t, violation.saga_ids) == (400.0, ("saga-a", "saga-b"))
    assert violation.explanation == f"saga-a deleted lock {KEY}, which saga-b held (and still believed it held)"
    assert [(h.owner, h.expires_at) for h in ledger.expired_while_held()] == [("saga-a", 300.0)]


def test_an_owner_checked_release_takes_nothing_from_the_next_holder():
    ledger = _paused_holder_and_a_successor("safe")
    assert ledger.foreign_deletions == []
    assert [h.owner for h in ledger.expired_while_held()] == ["saga-a"]  # its TTL still ran out under it


@pytest.mark.parametrize("ends", ["released", "died"])
def test_a_lock_released_or_whose_holder_died_before_its_ttl_did_not_expire_under_a_believer(ends):
    async def main(world):
        ledger = LockLedger(world)
        redis = LedgerRedis(SimulatedRedis(clock=world.runtime.now), ledger)
        locks, clock = RedisLockManager(redis), world.runtime

        async def holder():
            assert await locks.acquire(KEY, "saga-a", ttl_seconds=10)
            await clock.sleep(5)
            if ends == "released":
                assert await locks.release(KEY, "saga-a")

        await clock.spawn(holder()).join()
        await clock.sleep(20)  # well past the TTL
        return ledger

    ledger, _ = simulate(main)
    assert ledger.expired_while_held() == [] and [h.expires_at for h in ledger.holds] == [10.0]


def _paused_disconnections(variant: str) -> Scenario:
    """Two disconnections of one connection 321 s apart; each freezes 400 s right after taking the lock, and
    the saga and its first step are given time to outlive the freeze (so the first one carries on after it)."""
    return Scenario.model_validate(
        {
            "name": "paused_disconnections",
            "horizon_s": 1500,
            "workload": {
                "users": 1,
                "cycles": {
                    "count": 2,
                    "connect_to_disconnect_s": {"dist": "fixed", "value": 320},
                    "disconnect_to_reconnect_s": {"dist": "fixed", "value": 1},
                },
            },
            "faults": {"heal_after_s": 700, "process_pauses": {"enabled": True, "probability": 1.0}},
            "sagas": {
                "variants": {k: variant for k in SAFE},
                "timeouts_s": {"BrokerDisconnectionSaga": 1200},
                "steps": {"BrokerDisconnectionSaga.validate_disconnection": {"timeout_s": 600}},
            },
            "invariants": ["lock_hygiene"],
        }
    )


def test_in_a_whole_run_the_seed_lock_deletes_the_next_holders_lock_and_the_safe_lock_does_not():
    seed = run_once(_paused_disconnections("seed"), 0)
    [violation] = seed.violations
    first, second = violation.saga_ids
    assert violation.t == pytest.approx(720.008934, abs=1e-6)  # the first holder thawed at 720 s
    assert violation.explanation.startswith(f"{first} deleted lock broker:disconnect:lock:")
    assert violation.explanation.endswith(f"which {second} held (and still believed it held)")
    assert seed.reach["lock_expiry"] == 1  # the first lock ran out under its frozen holder; the second was deleted
    safe = run_once(_paused_disconnections("safe"), 0)
    assert safe.violations == []
    assert safe.reach["lock_expiry"] >= 2  # both frozen holders' locks ran out: the pauses still struck


# -- the registry: an invariant whose evidence the run lacks is not checked, never called clean ---------------


def test_an_invariant_whose_evidence_the_run_lacks_is_listed_as_not_checked():
    world, _, _ = run_world(connect, variants=SAFE)
    names = ["lock_hygiene", "single_lock_holder", "deleted_user_clean", "compensation_exact", "no_such_invariant"]
    # No lock ledger and no deletion snapshots were handed over; the trace is always there.
    assert check_invariants(Evidence.gather(world, HORIZON), names) == ([], [names[0], names[1], names[2], names[4]])


class OpaqueStore:
    """A saga store that cannot list its sagas (a real one, say)."""


def test_a_store_that_cannot_list_its_sagas_leaves_every_invariant_reading_it_unchecked():
    world, ledger, _ = run_world(connect, variants=SAFE)
    world.sim.store = OpaqueStore()  # type: ignore[assignment]
    evidence = Evidence.gather(world, HORIZON, ledger=ledger, snapshots=())
    violations, unchecked = check_invariants(evidence, list(INVARIANTS))
    assert violations == []
    assert unchecked == [
        "terminal_by_horizon",
        "no_data_loss",
        "no_orphans",
        "no_duplicate_accounts",
        "disconnect_completed",
        "one_saga_per_trigger",
        "lock_hygiene",
    ]


def test_a_scenario_checks_every_registered_invariant_unless_it_names_some():
    assert Scenario.model_validate({"name": "all"}).invariants == tuple(INVARIANTS)
