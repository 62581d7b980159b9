"""The ``failing_compensations`` family, and the command bus wrapper that (with the broker and Redis ones) fails them.

``failing_compensations``
    A compensation attempt fails with ``probability``: the first port call it makes (broker, command
    bus, Redis) raises the port's own error (``BrokerUnavailable``, ``PlatformUnavailable``,
    ``ConnectionError``). A call is known to come from a compensation without touching saga code: the
    simulated task making it drives a saga, and that saga's latest step-level trace record is a
    ``compensate``/``started`` (``FaultContext.compensation_fails`` decides, for every wrapped port).
    A compensation that makes no port call cannot fail this way, as in production.

``FaultyCommandBus`` also cancels the commands of a crashed manager's tasks (``manager_crashes``).
"""

from __future__ import annotations

from typing import Any

from sagas.engine.buses import CommandBus, Handler
from sagas.engine.errors import SagaError
from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.family import FaultFamily
from simlab.scenario.faults import FailingCompensations


class PlatformUnavailable(SagaError):
    """The platform could not apply a command (its database refused the write); retrying may help."""


class FailingCompensationsFamily(FaultFamily):
    name = "failing_compensations"
    schema = FailingCompensations
    ports = ("brokers", "redis", "command_bus")
    streams = ("faults/failing_compensations",)
    per_call = True


class FaultyCommandBus(CommandBus):
    """A command bus wrapper: fails a compensation's commands, and a dead task's."""

    def __init__(self, inner: CommandBus, ctx: FaultContext) -> None:
        super().__init__()
        self.inner = inner
        self._ctx = ctx

    def register_handler(self, message_type: type | str, handler: Handler) -> None:
        self.inner.register_handler(message_type, handler)

    def has_handler(self, message_type: type | str) -> bool:
        return self.inner.has_handler(message_type)

    async def send(self, command: Any) -> Any:
        self._ctx.check_alive()
        if self._ctx.compensation_fails():
            raise PlatformUnavailable(f"{type(command).__name__}: the platform's database refused the write")
        return await self.inner.send(command)
