"""The platform's state at the horizon: no data lost, no orphans, no duplicates, disconnections and deletions done.

How this works: each check reads the write model (its connections, accounts, positions,
applied fills and purge history) at the horizon, and attributes a violation to the sagas
the saga store holds for the connection involved. ``no_data_loss`` compares a connected
connection's accounts with the broker's own (``accounts_of`` of the virtual broker: its
ground truth, never what a saga said it discovered); ``deleted_user_clean`` reads what
was left of each user at the moment their deletion saga completed.
"""

from __future__ import annotations

from collections import defaultdict

from sagas.engine.state import SagaState, SagaStatus
from sagas.trading.model import BrokerConnection, ConnectionStatus
from simlab.evidence.checks.violation import CannotCheck, Violation
from simlab.evidence.sources import Evidence
from simlab.sim.trading_world import TradingWorld


def no_data_loss(ev: Evidence) -> list[Violation]:
    """No connection is purged while connected; a connected connection keeps the accounts its broker has.

    The accounts expected are the broker's own (``accounts_of`` of the virtual broker: its
    ground truth), never what a saga said it discovered. They are expected once a connection
    saga that started after the connection last became connected has completed: from then on
    the connection stayed connected, so nothing may take its accounts away. Without such a
    saga (the reconnect's saga failed or still runs) missing accounts are a failure, not a loss.
    """
    write = ev.world.platform.write
    found = [
        Violation(
            "no_data_loss",
            purge.t,
            _sagas_of(ev, purge.broker_connection_id),
            f"connection {purge.broker_connection_id} was purged while {purge.status_at_purge}: the user's live "
            "connection is gone",
        )
        for purge in write.purges
        if purge.status_at_purge == ConnectionStatus.CONNECTED.value
    ]
    for connection in write.connections.values():
        if connection.status is not ConnectionStatus.CONNECTED:
            continue
        linker = _completed_since_connected(ev, connection)
        if linker is None:
            continue
        truth = _broker_accounts(ev.world, connection)
        linked = {a.external_id for a in write.accounts_of(connection.connection_id)}
        missing = sorted(truth - linked)
        if missing:
            found.append(
                Violation(
                    "no_data_loss",
                    ev.horizon_s,
                    _sagas_of(ev, connection.connection_id),
                    f"connection {connection.connection_id} is connected with {len(truth) - len(missing)} of the "
                    f"{len(truth)} accounts its broker has (missing {', '.join(missing)}), although "
                    f"{linker.saga_type} {linker.saga_id} completed for it at t={linker.updated_at:g}",
                )
            )
    return found


def _completed_since_connected(ev: Evidence, connection: BrokerConnection) -> SagaState | None:
    """The first connection saga that started after ``connection`` last became connected and completed."""
    done = [
        s
        for s in ev.sagas()
        if s.saga_type == "BrokerConnectionSaga"
        and s.trigger_data.get("broker_connection_id") == connection.connection_id
        and s.started_at >= connection.connected_at
        and s.status is SagaStatus.COMPLETED
    ]
    return min(done, key=lambda s: (s.updated_at, s.saga_id)) if done else None


def _broker_accounts(world: TradingWorld, connection: BrokerConnection) -> set[str]:
    """External ids of the accounts the connection's broker itself has for it (its ground truth)."""
    broker = world.brokers.get(connection.broker_id)
    accounts_of = getattr(broker, "accounts_of", None)
    if accounts_of is None:
        raise CannotCheck(f"broker {connection.broker_id!r} does not tell its accounts (no ground truth)")
    return {account.external_id for account in accounts_of(connection.connection_id)}


def no_orphans(ev: Evidence) -> list[Violation]:
    """No account is left without its connection."""
    write = ev.world.platform.write
    found = []
    for account in write.accounts.values():
        connection = write.connections.get(account.connection_id)
        if connection is None or connection.status is ConnectionStatus.PURGED:
            found.append(
                Violation(
                    "no_orphans",
                    ev.horizon_s,
                    _sagas_of(ev, account.connection_id),
                    f"account {account.account_id} outlived its connection {account.connection_id} (purged)",
                )
            )
    return found


def disconnect_completed(ev: Evidence) -> list[Violation]:
    """A connection its user disconnected (and did not reconnect) is purged by the horizon.

    The disconnection saga ends in the purge; a saga that gives up (for example when its
    eventual-consistency poll runs out before the account projection catches up) leaves the
    connection stranded in ``disconnected``, still holding whatever the purge would have removed.
    """
    found = []
    for connection in ev.world.platform.write.connections.values():
        if connection.status is ConnectionStatus.DISCONNECTED:
            last = _last_saga(ev, "BrokerDisconnectionSaga", connection.connection_id)
            how = f"its disconnection saga ended {last.status.value}" if last is not None else "no disconnection ran"
            found.append(
                Violation(
                    "disconnect_completed",
                    ev.horizon_s,
                    _sagas_of(ev, connection.connection_id),
                    f"connection {connection.connection_id} is still disconnected, not purged, at the "
                    f"{ev.horizon_s:g} s horizon ({how})",
                )
            )
    return found


def no_duplicate_accounts(ev: Evidence) -> list[Violation]:
    """No connection has two accounts for the same broker account."""
    seen: dict[tuple[str, str], str] = {}
    found = []
    for account in ev.world.platform.write.accounts.values():
        key = (account.connection_id, account.external_id)
        if key in seen:
            found.append(
                Violation(
                    "no_duplicate_accounts",
                    ev.horizon_s,
                    _sagas_of(ev, account.connection_id),
                    f"accounts {seen[key]} and {account.account_id} both stand for {account.external_id}",
                )
            )
        seen.setdefault(key, account.account_id)
    return found


def deleted_user_clean(ev: Evidence) -> list[Violation]:
    """When a user's deletion saga completes, nothing of the user is left."""
    return [
        Violation(
            "deleted_user_clean",
            snap.t,
            (snap.saga_id,),
            f"user {snap.user_id} declared deleted with {len(snap.live_connections)} unpurged connection(s) and "
            f"{len(snap.accounts)} account(s) left",
        )
        for snap in ev.deletions()
        if snap.live_connections or snap.accounts
    ]


def position_matches_fills(ev: Evidence) -> list[Violation]:
    """A position's quantity equals the sum of the order fills applied to it (and not reverted)."""
    write = ev.world.platform.write
    applied: dict[str, float] = defaultdict(float)
    for fill in write.applied_fills.values():
        applied[fill.position_id] += fill.signed
    found = []
    for position in write.positions.values():
        total = applied.get(position.position_id, 0.0)
        if abs(position.quantity - total) > 1e-9:
            found.append(
                Violation(
                    "position_matches_fills",
                    ev.horizon_s,
                    (),
                    f"position {position.position_id} holds {position.quantity:g} but its fills sum to {total:g}",
                )
            )
    return found


def _last_saga(ev: Evidence, saga_type: str, connection_id: str) -> SagaState | None:
    states = [
        s
        for s in ev.sagas()
        if s.saga_type == saga_type and s.trigger_data.get("broker_connection_id") == connection_id
    ]
    return max(states, key=lambda s: (s.started_at, s.transitions)) if states else None


def _sagas_of(ev: Evidence, connection_id: str) -> tuple[str, ...]:
    return tuple(s.saga_id for s in ev.sagas() if s.trigger_data.get("broker_connection_id") == connection_id)
