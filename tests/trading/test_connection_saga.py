"""Broker connection saga: discover and link accounts; compensate by deleting them."""

from __future__ import annotations

import dataclasses

from sagas.trading import commands as c
from sagas.trading.config import SagaConfig, SagaVariants
from sagas.trading.model import ConnectionStatus
from tests.trading.world import run_trading, terminal


def test_connecting_links_the_discovered_accounts():
    async def main(world):
        bus = world.manager.command_bus
        await bus.send(c.CreateUser("u1"))
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        return connection_id

    connection_id, world = run_trading(main, broker_latency_s=0.25)
    accounts = world.platform.write.accounts_of(connection_id)
    assert [a.external_id for a in accounts] == [f"{connection_id[:8]}-acct-0", f"{connection_id[:8]}-acct-1"]
    # the adapter opens a session (0.25 s), then discovers (0.25 s)
    assert terminal(world, "BrokerConnectionSaga") == [(0.5, "completed", None)]
    assert world.platform.read.accounts.by_connection[connection_id] == [a.account_id for a in accounts]


def test_discovery_is_idempotent_when_the_saga_runs_twice_for_a_reconnect():
    async def main(world):
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        await bus.send(c.ConnectBroker("u1", "alpaca"))  # same connection, connected again
        await world.manager.wait_idle()
        return connection_id

    connection_id, world = run_trading(main)
    assert len(world.platform.write.accounts_of(connection_id)) == 2  # not 4
    assert [o for _, o, _ in terminal(world, "BrokerConnectionSaga")] == ["completed", "completed"]


def test_a_link_step_that_keeps_timing_out_is_compensated_by_deleting_the_discovered_accounts():
    # Linking the second account hangs (its command takes 100 s); the step's 30 s deadline cuts it
    # after the first account was linked, so the step is possibly applied and gets compensated.
    def delay(command):
        slow = isinstance(command, c.LinkBrokerAccount) and command.external_id.endswith("-acct-1")
        return 100.0 if slow else 0.0

    async def main(world):
        connection_id = await world.manager.command_bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        return connection_id

    connection_id, world = run_trading(main, command_delay=delay)
    link = [
        (r.t, r.attempt, r.outcome)
        for r in world.sim.tracer.records
        if r.step == "link_accounts" and r.phase in ("execute", "compensate") and r.outcome != "started"
    ]
    assert link == [(30.0, 1, "timed_out"), (60.5, 2, "timed_out"), (91.5, 3, "timed_out"), (91.5, 1, "compensated")]
    assert world.platform.write.accounts_of(connection_id) == []
    assert terminal(world, "BrokerConnectionSaga") == [(91.5, "compensated", "compensated")]


def _second_saga_fails_after_relinking(variants: SagaVariants):
    # The first saga links both accounts. The user connects the same connection again; the second
    # saga's links are idempotent (the accounts exist), but its link of the second account hangs
    # (100 s) until the step's deadline cuts it, three times: the step is compensated.
    slow = [False]

    def delay(command):
        hanging = isinstance(command, c.LinkBrokerAccount) and command.external_id.endswith("-acct-1")
        return 100.0 if slow[0] and hanging else 0.0

    async def main(world):
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        slow[0] = True
        await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        return connection_id

    return run_trading(main, command_delay=delay, config=SagaConfig(variants=variants))


def test_the_seed_compensation_unlinks_accounts_an_earlier_saga_linked():
    connection_id, world = _second_saga_fails_after_relinking(SagaVariants())
    assert [o for _, o, _ in terminal(world, "BrokerConnectionSaga")] == ["completed", "compensated"]
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.CONNECTED
    assert world.platform.write.accounts_of(connection_id) == []  # the first saga's accounts are gone


def test_the_safe_compensation_unlinks_only_what_its_own_saga_linked():
    connection_id, world = _second_saga_fails_after_relinking(dataclasses.replace(SagaVariants(), purge="safe"))
    first, second = [s for s in world.sim.store.all_states() if s.saga_type == "BrokerConnectionSaga"]
    assert (first.status.value, second.status.value) == ("completed", "compensated")
    accounts = world.platform.write.accounts_of(connection_id)
    assert [a.linked_by for a in accounts] == [first.saga_id, first.saga_id]  # kept, and still the first's
