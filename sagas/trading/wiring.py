"""Assembling the trading platform: write model, read models and sagas on one saga manager."""

from __future__ import annotations

from dataclasses import dataclass

from sagas.engine.manager import SagaManager
from sagas.trading import events as e
from sagas.trading.deps import TradingDeps
from sagas.trading.platform import TradingPlatform
from sagas.trading.read_models import ProjectionWorker, ReadModels, install_read_models
from sagas.trading.sagas import BrokerConnectionSaga, BrokerDisconnectionSaga, ConnectionRecoverySaga, UserDeletionSaga


@dataclass
class Platform:
    """The write model and read models installed on a manager's buses."""

    write: TradingPlatform
    read: ReadModels


def install_platform(manager: SagaManager, projection_worker: ProjectionWorker | None) -> Platform:
    """Register the command handlers and projections on ``manager``'s buses.

    ``projection_worker`` applies the asynchronous projections (the lab's lags);
    None applies them synchronously.
    """
    write = TradingPlatform(manager.event_bus, manager.ids, manager.runtime.now)
    write.register(manager.command_bus)
    read = install_read_models(manager.event_bus, manager.query_bus, projection_worker)
    return Platform(write, read)


def register_trading_sagas(manager: SagaManager, deps: TradingDeps) -> None:
    """Start each trading saga from its trigger events (the seed's table)."""

    def connection() -> BrokerConnectionSaga:
        return BrokerConnectionSaga(deps)

    def disconnection() -> BrokerDisconnectionSaga:
        return BrokerDisconnectionSaga(deps)

    def recovery() -> ConnectionRecoverySaga:
        return ConnectionRecoverySaga(deps)

    def user_deletion() -> UserDeletionSaga:
        return UserDeletionSaga(deps)

    manager.register(e.BrokerConnectionEstablished, connection)
    manager.register(e.BrokerDisconnected, disconnection)
    manager.register(e.BrokerConnectionFailed, recovery)
    manager.register(e.BrokerStreamingDisconnected, recovery)
    manager.register(e.UserAccountDeleted, user_deletion)
