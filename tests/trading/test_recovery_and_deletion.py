"""Connection recovery (exact backoff, invalid credentials) and user deletion (composition)."""

from __future__ import annotations

from sagas import RetryConfig
from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.config import SagaConfig, SagaVariants
from sagas.trading.model import ConnectionStatus
from tests.trading.world import fixed_lag, run_trading, saga_records, terminal


def _recover(broker_options, requires_user_action=False):
    async def main(world):
        seen = []

        async def listen(event):
            seen.append((world.sim.runtime.now(), type(event).__name__, getattr(event, "reason", None)))

        for kind in (e.BrokerConnectionRecovered, e.BrokerConnectionRecoveryFailed):
            world.manager.event_bus.subscribe(kind, listen)
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        for name, value in broker_options.items():  # the broker breaks after the connection was made
            setattr(world.brokers["alpaca"], name, value)
        await world.sim.runtime.sleep(10.0)
        await bus.send(c.MarkConnectionFailed(connection_id, "stream_dropped", requires_user_action))
        await world.manager.wait_idle()
        return connection_id, seen

    return run_trading(main)


def test_recovery_retries_at_0_2_6_14_seconds_and_then_reports_failure():
    (connection_id, seen), world = _recover({"healthy": False, "reconnect_works": False})
    attempts = [
        r.t - 10.0
        for r in saga_records(world, "ConnectionRecoverySaga")
        if r.step == "restore_connection" and r.outcome == "started"
    ]
    assert attempts == [0.0, 2.0, 6.0, 14.0]
    assert seen == [(24.0, "BrokerConnectionRecoveryFailed", "max_attempts_exceeded")]
    assert terminal(world, "ConnectionRecoverySaga") == [(24.0, "compensated", "compensated")]
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.FAILED


def test_recovery_reconnects_and_announces_it():
    (connection_id, seen), world = _recover({"healthy": False, "reconnect_works": True})
    assert seen == [(10.0, "BrokerConnectionRecovered", None)]
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.CONNECTED
    assert world.platform.read.connections.rows[connection_id].status == "connected"


def test_the_recovered_event_carries_the_attempt_that_succeeded():
    async def main(world):
        attempts = []

        async def listen(event):
            attempts.append((world.sim.runtime.now(), event.attempts))

        world.manager.event_bus.subscribe(e.BrokerConnectionRecovered, listen)
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        broker = world.brokers["alpaca"]
        broker.healthy, broker.reconnect_works = False, False
        await world.sim.runtime.sleep(10.0)
        await bus.send(c.MarkConnectionFailed(connection_id, "stream_dropped"))
        # Attempts run at t = 10, 12, 16 and 24: the broker comes back between the second and the third.
        await world.sim.runtime.sleep(15.0 - world.sim.runtime.now())
        broker.reconnect_works = True
        await world.manager.wait_idle()
        return attempts

    attempts, world = run_trading(main)
    assert attempts == [(16.0, 3)]
    assert terminal(world, "ConnectionRecoverySaga") == [(16.0, "completed", None)]


def test_invalid_credentials_end_recovery_at_once():
    (_, seen), world = _recover({"healthy": False, "bad_credentials": True})
    assert seen == [(10.0, "BrokerConnectionRecoveryFailed", "invalid_credentials")]
    attempts = [r for r in saga_records(world, "ConnectionRecoverySaga") if r.outcome == "started" and r.step]
    assert [(r.step, r.attempt) for r in attempts] == [("verify_recoverable", 1), ("restore_connection", 1)]
    assert terminal(world, "ConnectionRecoverySaga") == [(10.0, "aborted", "invalid_credentials")]


def test_a_failure_flagged_as_needing_the_user_is_not_retried_at_all():
    (_, seen), world = _recover({"healthy": False}, requires_user_action=True)
    assert seen == [(10.0, "BrokerConnectionRecoveryFailed", "requires_user_action")]
    assert not [r for r in saga_records(world, "ConnectionRecoverySaga") if r.step == "restore_connection"]


# -- user deletion -------------------------------------------------------------------------


# Patient enough to ride out the 20 s projection lag, so every child completes cleanly (at about t=61).
PATIENT_POLL = RetryConfig(max_attempts=40, initial_delay_ms=500, max_delay_ms=2000, backoff_factor=1.5, jitter=True)


def _delete_user(variants: SagaVariants, lag: float):
    config = SagaConfig(variants=variants, consistency_retry=PATIENT_POLL)

    async def main(world):
        bus = world.manager.command_bus
        await bus.send(c.CreateUser("u1"))
        connections = [await bus.send(c.ConnectBroker("u1", broker)) for broker in ("alpaca", "ib", "tradier")]
        await world.manager.wait_idle()
        await world.sim.runtime.sleep(2 * lag + 1.0 - world.sim.runtime.now())  # links are in the read model
        leftovers_at_parent_end: list[tuple[int, int]] = []

        async def on_finished(event):
            if event.saga_type == "UserDeletionSaga":
                write = world.platform.write
                live = [cid for cid in connections if write.connections[cid].status is not ConnectionStatus.PURGED]
                leftovers_at_parent_end.append((len(live), sum(len(write.accounts_of(cid)) for cid in connections)))

        world.manager.event_bus.subscribe("SagaCompleted", on_finished)
        await bus.send(c.DeleteUser("u1"))
        finals = await world.manager.wait_idle()
        return connections, leftovers_at_parent_end, finals

    brokers = {"alpaca": None, "ib": None, "tradier": None}
    return run_trading(main, config=config, lag=fixed_lag(lag), extra_brokers=tuple(brokers))


def test_user_deletion_waits_for_its_three_child_sagas_in_the_event_driven_variant():
    (_connections, leftovers, finals), world = _delete_user(SagaVariants(child_wait="safe"), lag=20.0)
    parent = next(s for s in finals if s.saga_type == "UserDeletionSaga")
    children = [s for s in finals if s.parent_id == parent.saga_id]
    assert len(children) == 3 and {s.status.value for s in children} == {"completed"}
    assert parent.status.value == "completed"
    parent_end = terminal(world, "UserDeletionSaga")[0][0]
    assert parent_end >= max(t for t, _, _ in terminal(world, "BrokerDisconnectionSaga"))
    assert leftovers == [(0, 0)]  # nothing left when the parent completed
    assert "u1" not in world.platform.write.users


def test_the_seed_fixed_sleep_completes_the_parent_while_children_still_run():
    # 3 children: the seed sleeps min(5 + 2*3, 30) = 11 s; the account projection lags 20 s, so
    # each child's consistency poll is still waiting when the parent declares the user deleted.
    # The children do finish cleanly later: the damage is the parent's premature "deleted".
    (_connections, leftovers, _finals), world = _delete_user(SagaVariants(child_wait="seed"), lag=20.0)
    parent_end = terminal(world, "UserDeletionSaga")[0][0]
    waited = [r for r in saga_records(world, "UserDeletionSaga") if r.step == "wait_for_cascade"]
    assert waited[-1].t - waited[0].t == 11.0
    live, accounts = leftovers[0]
    assert live == 3 and accounts == 0  # three unpurged connections left behind at completion
    assert parent_end < min(t for t, _, _ in terminal(world, "BrokerDisconnectionSaga"))
