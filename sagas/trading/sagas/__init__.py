"""The six sagas of the trading platform, following the seed guide's flows."""

from sagas.trading.sagas.connection import BrokerConnectionSaga
from sagas.trading.sagas.disconnection import BrokerDisconnectionSaga
from sagas.trading.sagas.order_execution import OrderExecutionSaga
from sagas.trading.sagas.position_management import PositionManagementSaga
from sagas.trading.sagas.recovery import ConnectionRecoverySaga
from sagas.trading.sagas.user_deletion import UserDeletionSaga

__all__ = [
    "BrokerConnectionSaga",
    "BrokerDisconnectionSaga",
    "ConnectionRecoverySaga",
    "OrderExecutionSaga",
    "PositionManagementSaga",
    "UserDeletionSaga",
]
