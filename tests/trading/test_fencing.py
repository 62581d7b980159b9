"""Fencing tokens: a disconnection saga frozen past its lock's TTL can change nothing once the next holder acted.

The story, with exact times: the connection saga links two accounts by t=20 (the broker answers in
10 s); two disconnection sagas for the connection start at t=30. The first takes the lock (TTL 20 s)
and freezes for 25 s right after (a GC pause: the process-pause fault, on until t=40). The lock
expires at t=50; the second saga, polling every 0.25 s, takes it and cleans up, which takes until
about t=61 (releasing the adapter takes the broker 10 s). The first wakes at t=55 believing it holds
the lock.
"""

from __future__ import annotations

import pytest

from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.config import SagaConfig, SagaVariants
from sagas.trading.model import ConnectionStatus
from sagas.trading.platform import TradingPlatform
from simlab.chaos.faults import install_faults, plan_faults
from simlab.evidence.checks.locks import single_lock_holder
from simlab.evidence.lock_ledger import LOCK_PREFIX
from simlab.evidence.sources import Evidence
from simlab.evidence.watch import watch_locks
from simlab.scenario.model import Scenario
from tests.trading.world import run_trading, saga_records

PAUSE = Scenario.model_validate(
    {
        "name": "pause",
        "horizon_s": 1000,
        "faults": {
            "heal_after_s": 40,
            "process_pauses": {"enabled": True, "probability": 1.0, "pause_s": {"dist": "fixed", "value": 25}},
        },
    }
)


def _frozen_holder(variants: SagaVariants):
    async def main(world):
        ledger = watch_locks(world)
        bus = world.manager.command_bus
        connection_id = await bus.send(c.ConnectBroker("u1", "alpaca"))
        await world.manager.wait_idle()
        install_faults(world, plan_faults(PAUSE, 0))  # every lock taken before t=40 freezes its taker
        await world.sim.runtime.sleep(30.0 - world.sim.runtime.now())
        details = world.platform.write.connections[connection_id]
        accounts = tuple(a.account_id for a in world.platform.write.accounts_of(connection_id))
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
                linked_account_ids=accounts,
                virtual_account_ids=(),
                automation_ids=(),
            )
        )
        await world.manager.wait_idle()
        return connection_id, ledger

    config = SagaConfig(variants=variants, lock_ttl_seconds=20.0)
    return run_trading(main, config=config, broker_latency_s=10.0)


def _disconnections(world):
    sagas: dict[str, list] = {}
    for record in saga_records(world, "BrokerDisconnectionSaga"):
        sagas.setdefault(record.saga_id, []).append(record)
    return sorted(sagas.values(), key=lambda records: records[0].t)


def test_the_frozen_holders_first_write_is_refused_and_the_overlap_stays_visible():
    (connection_id, ledger), world = _frozen_holder(SagaVariants.all_safe())
    first, second = _disconnections(world)
    frozen, taker = first[0].saga_id, second[0].saga_id
    key = LOCK_PREFIX + connection_id
    # Both believed they held the lock from t=50.25 (the second's first poll after the TTL ran out) to t=55.
    [overlap] = ledger.overlaps
    assert (overlap.t, overlap.first_owner, overlap.second_owner) == (50.25, frozen, taker)
    assert [(h.owner, h.start, h.expires_at) for h in ledger.holds if h.key == key][-2:] == [
        (frozen, 30.0, 50.0),
        (taker, 50.25, 70.25),
    ]
    # Woken at t=55, the frozen saga announces its token first: the write model refuses it.
    [stale] = world.platform.write.stale_writes
    assert (stale.t, stale.saga_id, stale.command) == (55.0, frozen, "FenceConnection")
    assert stale.fencing_token < world.platform.write.fences[connection_id]
    failed = [(r.t, r.step, r.error_type) for r in first if r.outcome == "step_failed"]
    assert failed == [(55.0, "validate_disconnection", "StaleFencingToken")]
    assert (first[-1].outcome, second[-1].outcome) == ("compensated", "completed")
    assert not [w for w in world.platform.write.writes if w.saga_id == frozen]  # it changed nothing
    assert world.platform.write.connections[connection_id].status is ConnectionStatus.PURGED
    assert single_lock_holder(Evidence.gather(world, 0.0, ledger=ledger)) == []


def test_without_the_token_check_the_check_sees_the_stale_holders_write(monkeypatch: pytest.MonkeyPatch):
    # A planted bug: the write model forgets to compare tokens. The invariant does not read tokens;
    # it compares the write model's record of writes with the ledger's holds.
    monkeypatch.setattr(TradingPlatform, "_check_token", lambda self, connection_id, command: None)
    (_, ledger), world = _frozen_holder(SagaVariants.all_safe())
    first, second = _disconnections(world)
    frozen, taker = first[0].saga_id, second[0].saga_id
    [violation] = single_lock_holder(Evidence.gather(world, 0.0, ledger=ledger))
    assert (violation.t, violation.saga_ids) == (55.0, (frozen, taker))
    assert "FenceConnection" in violation.explanation and "its TTL ran out at 50 s" in violation.explanation


def test_the_seed_lock_never_guards_a_write_so_a_frozen_seed_holder_overlaps_no_one():
    # The seed holds its lock only during step 1 and the second saga, refused at t=30, sleeps 3 s
    # and cleans up without it (two sagas in the guarded section: the seed's weakness, seen by other
    # invariants where it loses data). The frozen holder wakes at t=55 to a purged connection.
    (_, ledger), world = _frozen_holder(SagaVariants())
    first, second = _disconnections(world)
    assert ledger.overlaps == []
    assert (first[-1].t, first[-1].outcome, first[-1].detail) == (55.0, "aborted", "already_purged")
    assert second[-1].outcome == "completed"
    assert single_lock_holder(Evidence.gather(world, 0.0, ledger=ledger)) == []
