"""Broker disconnection saga: the eight steps, enriched events, eventual consistency, the reconnect race."""

from __future__ import annotations

import dataclasses

import pytest

from sagas import RetryConfig
from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.config import SagaConfig, SagaVariants
from sagas.trading.model import ConnectionStatus
from simlab.latency import fixed_delay
from tests.trading.world import fixed_lag, run_trading, saga_records, terminal

STEPS = [
    "validate_disconnection",
    "clear_broker_cache",
    "delete_broker_accounts",
    "cleanup_virtual_broker",
    "validate_accounts_deleted",
    "clear_adapter_resources",
    "final_cache_cleanup",
    "purge_connection",
]


async def connect_then_disconnect(world, *, disconnect_at=1.0, reason="user_requested", broker="alpaca"):
    bus = world.manager.command_bus
    connection_id = await bus.send(c.ConnectBroker("u1", broker, is_virtual=broker == "virtual"))
    await world.deps.cache.put("u1", broker, connection_id, "accounts", "cached")
    await world.sim.runtime.sleep(disconnect_at - world.sim.runtime.now())
    await bus.send(c.DisconnectBroker(connection_id, reason=reason))
    await world.manager.wait_idle()
    return connection_id


def test_disconnecting_runs_the_eight_steps_and_purges_the_connection():
    connection_id, world = run_trading(lambda w: connect_then_disconnect(w))
    records = saga_records(world, "BrokerDisconnectionSaga")
    steps = [r.step for r in records if r.phase == "execute" and r.outcome == "completed"]
    assert steps == STEPS
    # the eventual-consistency poll writes its one attempt into the step's trace
    polls = [(r.t, r.step, r.attempt, r.outcome) for r in records if r.phase == "poll"]
    assert polls == [
        (1.0, "validate_accounts_deleted", 1, "started"),
        (1.15, "validate_accounts_deleted", 1, "completed"),
    ]
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.PURGED
    assert world.platform.write.accounts_of(connection_id) == []
    assert [(p.broker_connection_id, p.status_at_purge) for p in world.platform.write.purges] == [
        (connection_id, "disconnected")
    ]
    # validate_accounts_deleted waits 0.15 s for the read model once; nothing else takes time
    assert terminal(world, "BrokerDisconnectionSaga") == [(1.15, "completed", None)]


def test_a_virtual_connection_also_loses_its_virtual_broker_records():
    connection_id, world = run_trading(lambda w: connect_then_disconnect(w, broker="virtual"))
    assert world.platform.write.virtual_broker_records == {}
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.PURGED


def test_critical_reasons_clear_all_the_users_broker_data():
    async def main(world):
        await world.deps.cache.put("u1", "alpaca", "other-connection", "positions", "x")
        await world.deps.cache.put("u2", "alpaca", "someone-else", "positions", "y")
        return await connect_then_disconnect(world, reason="cache_corruption")

    _, world = run_trading(main)
    remaining = world.redis.keys("cache:*")
    assert [k.decode() for k in remaining] == ["cache:user:u2:broker:alpaca:conn:someone-else:positions"]


def test_an_event_missing_enriched_fields_fails_at_the_first_step_and_deletes_nothing():
    async def main(world):
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        await world.manager.event_bus.publish(
            e.BrokerDisconnected(
                event_id="legacy-1",
                broker_connection_id=connection_id,
                user_id="u1",
                broker_id="alpaca",
                is_virtual=False,
                disconnect_reason="user_requested",
                linked_account_ids=None,  # type: ignore[arg-type]
                virtual_account_ids=(),
                automation_ids=None,  # type: ignore[arg-type]
            )
        )
        finals = await world.manager.wait_idle()
        return connection_id, finals

    (connection_id, finals), world = run_trading(main)
    [saga] = [s for s in finals if s.saga_type == "BrokerDisconnectionSaga"]
    assert saga.status.value == "compensated"
    assert saga.error_type == "InvalidEvent"
    assert "lacks enriched field(s) linked_account_ids, automation_ids" in saga.error
    executed = [r.step for r in saga_records(world, "BrokerDisconnectionSaga") if r.phase == "execute"]
    assert set(executed) == {"validate_disconnection"}
    assert len(world.platform.write.accounts_of(connection_id)) == 2
    assert world.platform.write.purges == []


def test_the_consistency_poll_outlasts_a_short_lag_and_succeeds():
    # Links reach the account read model at t=1; the deletions made at t=5 reach it at t=6.
    _, world = run_trading(lambda w: connect_then_disconnect(w, disconnect_at=5.0), lag=fixed_lag(1.0))
    [step] = [
        r
        for r in saga_records(world, "BrokerDisconnectionSaga")
        if r.step == "validate_accounts_deleted" and r.phase == "execute" and r.outcome == "completed"
    ]
    checks = [a for a in world.projections.applied if a.event_type == "BrokerAccountDeleted"]
    assert [a.applied_at for a in checks] == [6.0, 6.0]
    assert step.t > 6.0  # polled (with the seed's jittered backoff) until the read model caught up
    assert terminal(world, "BrokerDisconnectionSaga")[-1][1] == "completed"


def test_a_lag_longer_than_the_seed_poll_budget_leaves_the_connection_unpurged():
    # The seed's poll: 5 checks 0.15 s apart plus jittered waits of at most 0.5+0.75+1.125+1.6875 s,
    # about 4.7 s in all. A projection that lags 10 s outlasts it: the saga gives up and compensates.
    # Disconnect at t=20, after the links reached the read model (t=10); the deletions reach it at t=30.
    connection_id, world = run_trading(lambda w: connect_then_disconnect(w, disconnect_at=20.0), lag=fixed_lag(10.0))
    [end] = terminal(world, "BrokerDisconnectionSaga")
    assert end[1] == "compensated"
    failed = [r for r in saga_records(world, "BrokerDisconnectionSaga") if r.outcome == "step_failed"]
    assert [(r.step, r.error_type) for r in failed] == [("validate_accounts_deleted", "RetryExhausted")]
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.DISCONNECTED  # leftover


def test_a_longer_poll_budget_rides_out_the_same_lag():
    patient = RetryConfig(max_attempts=25, initial_delay_ms=500, max_delay_ms=2000, backoff_factor=1.5, jitter=True)
    config = SagaConfig(consistency_retry=patient)
    connection_id, world = run_trading(
        lambda w: connect_then_disconnect(w, disconnect_at=20.0), lag=fixed_lag(10.0), config=config
    )
    assert terminal(world, "BrokerDisconnectionSaga")[-1][1] == "completed"
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.PURGED


# -- the connect / disconnect / connect race ----------------------------------------------


QUERY_DELAY = 0.01  # every read-model query takes 10 ms, as a database round trip would


def _race(variants: SagaVariants, reconnect_at: float | None):
    config = SagaConfig(variants=variants)

    async def main(world):
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.sim.runtime.sleep(1.0 - world.sim.runtime.now())
        await bus.send(c.DisconnectBroker(connection_id))
        if reconnect_at is not None:
            await world.sim.runtime.sleep(reconnect_at - world.sim.runtime.now())
            await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        return connection_id

    return run_trading(main, config=config, query_delay=fixed_delay(QUERY_DELAY))


def _purge_started(world) -> float:
    [t] = [
        r.t
        for r in saga_records(world, "BrokerDisconnectionSaga")
        if r.step == "purge_connection" and r.outcome == "started"
    ]
    return t


def test_the_seed_purge_loses_a_connection_that_reconnects_between_revalidation_and_purge():
    # Find when the purge step starts, then reconnect just after its first re-validation query
    # (connection status) answered and while its second (accounts) is in flight.
    _, undisturbed = _race(SagaVariants(), reconnect_at=None)
    window = _purge_started(undisturbed) + QUERY_DELAY + QUERY_DELAY / 2
    connection_id, world = _race(SagaVariants(), reconnect_at=window)
    assert _purge_started(world) == _purge_started(undisturbed)
    purges = world.platform.write.purges
    assert [(p.broker_connection_id, p.status_at_purge) for p in purges] == [(connection_id, "connected")]
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.PURGED  # the user's live one


def test_the_safe_purge_aborts_when_the_connection_reconnected_and_loses_nothing():
    safe = dataclasses.replace(SagaVariants(), purge="safe")
    _, undisturbed = _race(safe, reconnect_at=None)
    window = _purge_started(undisturbed) + QUERY_DELAY + QUERY_DELAY / 2
    connection_id, world = _race(safe, reconnect_at=window)
    assert world.platform.write.purges == []
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.CONNECTED
    assert len(world.platform.write.accounts_of(connection_id)) == 2  # rediscovered and kept
    [end] = terminal(world, "BrokerDisconnectionSaga")
    assert end[1:] == ("aborted", "status_is_connected")


# -- two disconnection sagas for one connection ---------------------------------------------


def _double_disconnect(variants: SagaVariants):
    async def main(world):
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        details = world.platform.write.connections[connection_id]
        await bus.send(c.DisconnectBroker(connection_id))
        # A second, distinct BrokerDisconnected for the same connection (a retried command upstream).
        await world.manager.event_bus.publish(
            e.BrokerDisconnected(
                event_id="second",
                broker_connection_id=connection_id,
                user_id=details.user_id,
                broker_id=details.broker_id,
                is_virtual=False,
                disconnect_reason="user_requested",
                linked_account_ids=(),
                virtual_account_ids=(),
                automation_ids=(),
            )
        )
        await world.manager.wait_idle()
        return connection_id

    # The broker takes 5 s to release the adapter (step 6), so the first saga is still at work at t=3.
    return run_trading(
        main, config=SagaConfig(variants=variants), query_delay=fixed_delay(QUERY_DELAY), broker_latency_s=5.0
    )


def _by_saga(world):
    sagas: dict[str, list] = {}
    for record in saga_records(world, "BrokerDisconnectionSaga"):
        sagas.setdefault(record.saga_id, []).append(record)
    first, second = sorted(sagas.values(), key=lambda records: records[0].t)  # both start at the same instant
    return first, second


def test_the_seed_lock_lets_a_second_saga_into_the_cleanup_after_sleeping_3_s():
    _, world = _double_disconnect(SagaVariants())
    first, second = _by_saga(world)
    started = second[0].t
    entered = next(r.t for r in second if r.step == "clear_broker_cache" and r.outcome == "started")
    first_end = first[-1].t
    # slept 3 s without the lock, asked for the connection's status (10 ms), then went on...
    assert entered == pytest.approx(started + 3.0 + QUERY_DELAY)
    # ...while the first saga was still cleaning up: two sagas in the section the lock guards
    assert entered < first_end
    assert sorted(r.outcome for r in (first[-1], second[-1])) == ["aborted", "completed"]


def test_the_safe_lock_makes_the_second_saga_wait_its_turn_then_stand_down():
    safe = dataclasses.replace(SagaVariants(), disconnect_lock="safe")
    _, world = _double_disconnect(safe)
    first, second = _by_saga(world)
    assert (first[-1].outcome, second[-1].outcome, second[-1].detail) == ("completed", "aborted", "already_purged")
    assert not [r for r in second if r.step == "clear_broker_cache"]  # never entered the cleanup
    assert second[-1].t >= first[-1].t
