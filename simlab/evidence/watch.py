"""What a run watches while it runs: the evidence that is gone by the horizon if nobody kept it.

Two sources cannot be read from the world at the end: who believed they held which lock when
(``watch_locks``: a ``LockLedger`` between the sagas and Redis), and what was left of a user at
the moment their deletion saga declared them deleted (``watch_deletions``). A run starts both
before it runs and hands what they kept to ``Evidence.gather``.
"""

from __future__ import annotations

from sagas.engine.events import SagaFinished
from sagas.engine.state import SagaStatus
from sagas.trading.model import ConnectionStatus
from sagas.trading.sagas.user_deletion import UserDeletionSaga
from simlab.evidence.lock_ledger import LedgerRedis, LockLedger
from simlab.evidence.sources import DeletionSnapshot
from simlab.sim.trading_world import TradingWorld

USER_DELETION = UserDeletionSaga.__name__  # its saga type: the name its get_saga_type returns


def watch_locks(world: TradingWorld) -> LockLedger:
    """Route the world's lock and cache traffic through a ``LockLedger`` (before faults wrap it further)."""
    ledger = LockLedger(world.sim)
    world.wrap_ports(redis=lambda inner: LedgerRedis(inner, ledger))
    return ledger


def watch_deletions(world: TradingWorld) -> list[DeletionSnapshot]:
    """Snapshot what is left of each user when their deletion saga completes; the list fills as the run goes."""
    snapshots: list[DeletionSnapshot] = []
    write = world.platform.write

    async def on_finished(event: SagaFinished) -> None:
        if event.saga_type != USER_DELETION or event.status != SagaStatus.COMPLETED:
            return
        if any(snap.saga_id == event.saga_id for snap in snapshots):
            return  # a duplicated delivery of the same completion event
        state = await world.sim.store.load(event.saga_id)
        user_id = state.trigger_data["user_id"] if state is not None else ""
        live = tuple(
            cid
            for cid, conn in write.connections.items()
            if conn.user_id == user_id and conn.status is not ConnectionStatus.PURGED
        )
        accounts = tuple(a.account_id for a in write.accounts.values() if a.user_id == user_id)
        snapshots.append(DeletionSnapshot(world.sim.runtime.now(), event.saga_id, user_id, live, accounts))

    world.manager.event_bus.subscribe("SagaCompleted", on_finished)
    return snapshots
