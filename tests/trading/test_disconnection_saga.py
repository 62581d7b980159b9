"""Broker disconnection saga: the eight steps, enriched events, eventual consistency, the reconnect race."""

from __future__ import annotations

import dataclasses

import pytest

from sagas import RetryConfig
from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.config import SagaConfig, SagaVariants
from sagas.trading.model import ConnectionStatus
from simlab.chaos.faults import install_faults, plan_faults
from simlab.scenario.model import Scenario
from simlab.sim.latency import fixed_delay
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


def _race(variants: SagaVariants, reconnect_at: float | None, command_delay: float = 0.0):
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

    return run_trading(
        main, config=config, query_delay=fixed_delay(QUERY_DELAY), command_delay=fixed_delay(command_delay)
    )


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
    # The safe purge re-validates the connection's status (10 ms), then sends the guarded purge (10 ms
    # on the way): the user's reconnect (itself 10 ms on the way) lands between the two.
    safe = dataclasses.replace(SagaVariants(), purge="safe")
    _, undisturbed = _race(safe, reconnect_at=None, command_delay=QUERY_DELAY)
    window = _purge_started(undisturbed) + QUERY_DELAY / 2
    connection_id, world = _race(safe, reconnect_at=window, command_delay=QUERY_DELAY)
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


# -- the safe variants never strand a connection -------------------------------------------


def test_the_safe_purge_asks_the_write_model_when_the_poll_runs_out_and_purges_at_that_instant():
    # The same 10 s lag as above: the seed's poll gives up and the saga compensates; with the safe
    # purge the saga asks the write model at that very instant, learns no account remains, and purges.
    def disconnect(world):
        return connect_then_disconnect(world, disconnect_at=20.0)

    _, seed = run_trading(disconnect, lag=fixed_lag(10.0))
    safe_config = SagaConfig(variants=dataclasses.replace(SagaVariants(), purge="safe"))
    connection_id, world = run_trading(disconnect, lag=fixed_lag(10.0), config=safe_config)
    [(gave_up, outcome, _)] = terminal(seed, "BrokerDisconnectionSaga")
    assert outcome == "compensated" and gave_up < 30.0  # before the deletions reach the read model
    assert terminal(world, "BrokerDisconnectionSaga") == [(gave_up, "completed", None)]
    [state] = [s for s in world.sim.store.all_states() if s.saga_type == "BrokerDisconnectionSaga"]
    assert state.results["validated_by"] == "write_model"
    assert "AccountsStillInReadModel" in state.results["read_model_lag"]
    assert [(p.t, p.status_at_purge) for p in world.platform.write.purges] == [(gave_up, "disconnected")]
    assert world.platform.write.accounts_of(connection_id) == []


def _slow_connect(variants: SagaVariants):
    # The broker answers in 10 s: the connection saga opens a session (t=0..10) and discovers
    # (t=10..20). The user disconnects at t=5, before any account is linked: the BrokerDisconnected
    # event names none. The safe lock makes the disconnection wait for the connection saga.
    async def main(world):
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.sim.runtime.sleep(5.0)
        await bus.send(c.DisconnectBroker(connection_id))
        await world.manager.wait_idle()
        return connection_id

    return run_trading(main, config=SagaConfig(variants=variants), broker_latency_s=10.0)


def test_a_slow_connect_links_accounts_the_disconnection_never_heard_of_and_strands_the_connection():
    connection_id, world = _slow_connect(dataclasses.replace(SagaVariants(), disconnect_lock="safe"))
    assert terminal(world, "BrokerConnectionSaga") == [(20.0, "completed", None)]
    [(_, outcome, _)] = terminal(world, "BrokerDisconnectionSaga")
    assert outcome == "compensated"  # its poll never saw the read model empty
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.DISCONNECTED
    assert len(world.platform.write.accounts_of(connection_id)) == 2  # linked after the event: stranded


def test_the_safe_link_refuses_a_disconnected_connection_so_the_disconnection_purges_it():
    connection_id, world = _slow_connect(SagaVariants.all_safe())
    failed = [(r.t, r.step, r.error_type) for r in saga_records(world, "BrokerConnectionSaga") if r.outcome == "failed"]
    assert failed == [(20.0, "link_accounts", "ConnectionNotConnected")]  # refused, not retried
    assert terminal(world, "BrokerConnectionSaga") == [(20.0, "compensated", "compensated")]
    # The disconnection took the lock the connection saga's compensation released at t=20; its poll
    # waits 0.15 s and sees no account; releasing the adapter's session takes the broker 10 s more.
    assert terminal(world, "BrokerDisconnectionSaga") == [(30.15, "completed", None)]
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.PURGED
    assert world.platform.write.accounts_of(connection_id) == []


def _during_a_redis_outage(variants: SagaVariants):
    # Redis refuses every command from t=0.5 to t=8 (the lock, the caches); the user disconnects at t=1.
    outage = Scenario.model_validate(
        {
            "name": "outage",
            "faults": {
                "heal_after_s": 60,
                "redis": {"enabled": True, "outages": [{"start_s": 0.5, "duration_s": 7.5}]},
            },
        }
    )

    async def main(world):
        install_faults(world, plan_faults(outage, 0))
        return await connect_then_disconnect(world)

    return run_trading(main, config=SagaConfig(variants=variants))


def test_the_seed_cleanup_gives_up_during_a_redis_outage_and_strands_the_connection():
    connection_id, world = _during_a_redis_outage(SagaVariants())
    failed = [(r.t, r.step) for r in saga_records(world, "BrokerDisconnectionSaga") if r.outcome == "step_failed"]
    # safe_set swallows the refused lock and the saga sleeps 3 s; the cache clears at t=4, 5 and 7 are refused
    assert failed == [(7.0, "clear_broker_cache")]
    assert terminal(world, "BrokerDisconnectionSaga") == [(7.0, "compensated", "compensated")]
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.DISCONNECTED


def test_the_safe_disconnection_retries_its_lock_through_a_redis_outage_and_purges():
    connection_id, world = _during_a_redis_outage(SagaVariants.all_safe())
    records = saga_records(world, "BrokerDisconnectionSaga")
    lock = [
        (r.t, r.outcome, r.error_type) for r in records if r.step == "validate_disconnection" and r.phase == "execute"
    ]
    assert lock[:2] == [(1.0, "started", None), (1.0, "failed", "ConnectionError")]
    assert lock[-1][1] == "completed" and lock[-1][0] >= 8.0  # the first attempt after the outage
    assert {r.outcome for r in records if r.step == "clear_broker_cache" and r.phase == "execute"} == {
        "started",
        "completed",
    }
    assert terminal(world, "BrokerDisconnectionSaga")[-1][1] == "completed"
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.PURGED


def _frozen_past_its_deadline(variants: SagaVariants):
    # The disconnection saga freezes for 400 s right after taking the lock (a GC pause; the fault is
    # on from t=1 to t=10 only): its own 300 s deadline passes while it is frozen.
    pause = Scenario.model_validate(
        {
            "name": "pause",
            "faults": {
                "heal_after_s": 10,
                "process_pauses": {"enabled": True, "probability": 1.0, "pause_s": {"dist": "fixed", "value": 400}},
            },
        }
    )

    async def main(world):
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        install_faults(world, plan_faults(pause, 0))
        await world.sim.runtime.sleep(1.0)
        await bus.send(c.DisconnectBroker(connection_id))
        await world.manager.wait_idle()
        return connection_id

    return run_trading(main, config=SagaConfig(variants=variants))


def test_the_seed_disconnection_that_outlives_its_deadline_frozen_strands_the_connection():
    connection_id, world = _frozen_past_its_deadline(SagaVariants())
    assert terminal(world, "BrokerDisconnectionSaga") == [(401.0, "timed_out", "compensated")]
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.DISCONNECTED


def test_the_safe_disconnection_that_outlives_its_deadline_hands_the_cleanup_to_a_fresh_saga():
    connection_id, world = _frozen_past_its_deadline(SagaVariants.all_safe())
    [(gave_up, outcome, _), (done, handed_over, _)] = terminal(world, "BrokerDisconnectionSaga")
    # Woken at t=401, 100 s past its deadline, it retries its lock step and meets its deadline before the
    # retry's first (jittered) delay is over; the fresh saga starts at that instant and purges.
    assert (outcome, handed_over) == ("timed_out", "completed")
    assert 401.0 < gave_up < 401.5
    first, second = sorted(
        (s for s in world.sim.store.all_states() if s.saga_type == "BrokerDisconnectionSaga"),
        key=lambda s: s.started_at,
    )
    assert (first.trigger_data["redrive"], second.started_at, second.trigger_data["redrive"]) == (0, gave_up, 1)
    assert done == pytest.approx(gave_up + 0.15)  # its poll's one settle
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.PURGED
    assert world.platform.write.accounts_of(connection_id) == []
