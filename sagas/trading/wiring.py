"""Assembling the trading platform: write model, read models and sagas on one saga manager."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import cast

from sagas.engine.manager import SagaManager
from sagas.engine.ports import LockManager
from sagas.engine.step import SagaStep
from sagas.infra.cache import CacheManager
from sagas.trading import commands as c
from sagas.trading import events as e
from sagas.trading.config import SagaConfig
from sagas.trading.deps import TradingDeps
from sagas.trading.model import Position
from sagas.trading.platform import DomainError, TradingPlatform
from sagas.trading.read_models import ProjectionWorker, ReadModels, install_read_models
from sagas.trading.sagas import (
    BrokerConnectionSaga,
    BrokerDisconnectionSaga,
    ConnectionRecoverySaga,
    OrderExecutionSaga,
    PositionManagementSaga,
    UserDeletionSaga,
)
from sagas.trading.sagas.base import TradingSaga


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

    async def position(query: c.GetPositionQuery) -> Position:
        found = write.positions.get(query.position_id)
        if found is None:
            raise DomainError(f"unknown position {query.position_id!r}")
        return dataclasses.replace(found, fill_quantities=list(found.fill_quantities))

    manager.query_bus.register_handler(c.GetPositionQuery, position)

    async def write_model_accounts(query: c.GetWriteModelAccountsQuery) -> list[str]:
        return [a.account_id for a in write.accounts_of(query.broker_connection_id)]

    manager.query_bus.register_handler(c.GetWriteModelAccountsQuery, write_model_accounts)
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

    def order_execution() -> OrderExecutionSaga:
        return OrderExecutionSaga(deps)

    def position_management() -> PositionManagementSaga:
        return PositionManagementSaga(deps)

    manager.register(e.BrokerConnectionEstablished, connection)
    manager.register(e.BrokerDisconnected, disconnection)
    manager.register(e.BrokerConnectionFailed, recovery)
    manager.register(e.BrokerStreamingDisconnected, recovery)
    manager.register(e.UserAccountDeleted, user_deletion)
    manager.register(e.OrderPlacedEvent, order_execution)
    manager.register(e.PositionOpenedEvent, position_management)


def saga_step_names(config: SagaConfig | None = None) -> dict[str, tuple[str, ...]]:
    """The step names of each trading saga type (for validating per-step configuration)."""
    return {saga_type: tuple(step.name for step in steps) for saga_type, steps in saga_steps(config).items()}


def trading_sagas(deps: TradingDeps) -> tuple[TradingSaga, ...]:
    """One instance of each trading saga on ``deps`` (to read definitions: steps, policies, timeouts)."""
    return (
        BrokerConnectionSaga(deps),
        BrokerDisconnectionSaga(deps),
        ConnectionRecoverySaga(deps),
        UserDeletionSaga(deps),
        OrderExecutionSaga(deps),
        PositionManagementSaga(deps),
    )


def definition_deps(config: SagaConfig | None = None) -> TradingDeps:
    """Dependencies without services: enough to read the sagas' definitions under ``config``, not to run them."""
    return TradingDeps(
        brokers={},
        cache=cast(CacheManager, None),
        redis=None,
        locks=cast(LockManager, None),
        credentials=lambda _connection_id: "",
        config=config or SagaConfig(),
    )


def saga_steps(config: SagaConfig | None = None) -> dict[str, tuple[SagaStep, ...]]:
    """The steps of each trading saga type as defined (deadlines, retry policies), before any override."""
    return {saga.get_saga_type(): tuple(saga.define_steps()) for saga in trading_sagas(definition_deps(config))}
