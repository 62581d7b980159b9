"""Broker fault families (``broker_errors``, ``latency_spikes``, ``broker_timeouts``) and their wrapper.

``broker_errors``
    A broker call fails with ``BrokerUnavailable`` (a 5xx) with probability ``error_rate``, at once and
    without reaching the broker (nothing applied). On the order/fill stream the same fault is a
    ``StreamDisconnected`` (nothing consumed, so a reader resumes losslessly).
``latency_spikes``
    With ``probability`` a request call takes ``multiplier`` times as long: it runs normally and its
    answer (result or error) is then held back ``(multiplier - 1)`` times the call's own duration. The
    effect is applied on time, so a deadline that cuts the extra wait leaves it possibly applied.
    Stream reads are not requests (their wait is the market's, not latency) and are left alone.
``broker_timeouts``
    With ``probability`` a request call times out: ``BrokerTimeout`` after the broker profile's
    ``timeout_after_s`` (30 s without a profile). A share ``after_success_share`` of them first call
    through (the effect is applied, the answer lost); the rest never reach the broker. Both raise the
    same error at the same time after the call started, so the caller cannot tell them apart.

Each family owns its rule as a ``BrokerLink`` per wrapped broker; ``FaultyBroker`` only chains the
live families' links, after the failing-compensations verdict (every port's, held by
``FaultContext``), in ``registry.BROKER_CALL_ORDER``: errors, then timeouts, then spikes. Why that
order: an error answers at the door, so a refused call neither times out nor spikes; a timed-out call
has its answer lost, so it does not spike either (even when it went through: it calls the broker past
the spike link); a spike stretches the call's own duration, so it sits next to the broker. Each link
draws only when the call reaches it, so reordering them would move draws of every run.

Why a virtual broker's own faults (``BrokerProfile``'s error and timeout probabilities) are not these
families: the profile is how a broker behaves every day, drawn from the broker's own stream in one
draw per call; these families are extra faults injected in a window, drawn from streams of their own
(``faults/<family>/<broker>``) so that switching one never moves the broker's draws, and they wrap any
``BrokerApi``, not only a virtual one. Folding one into the other would move every draw of every run.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sagas.trading.broker_port import (
    BrokerApi,
    BrokerError,
    BrokerTimeout,
    BrokerUnavailable,
    DiscoveredAccount,
    OrderRequest,
    OrderUpdate,
    StreamDisconnected,
)
from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.family import FaultFamily
from simlab.scenario.faults import BrokerErrors, BrokerTimeouts, LatencySpikes
from simlab.sim.brokers import BrokerCall

T = TypeVar("T")
Call = Callable[[], Awaitable[T]]

DEFAULT_TIMEOUT_AFTER_S = 30.0
"""How long a timed-out call waits when the broker has no profile saying so."""


class BrokerLink:
    """One broker family's rule for the calls of one wrapped broker; this base lets everything through.

    ``around`` either answers for the broker (raises, or waits and raises) or runs ``call``, the rest
    of the chain. ``broker_call`` is the broker's own call past every later link: a link that lets the
    call through but answers for it itself (a timeout after success) calls that, so the later links
    neither draw nor act for a call whose answer is lost anyway.
    """

    def __init__(self, broker: FaultyBroker, rng: random.Random) -> None:
        self.broker = broker
        self.ctx = broker.ctx
        self.rng = rng

    async def around(self, operation: str, connection_id: str, call: Call[T], broker_call: Call[T]) -> T:
        return await call()

    def on_stream_read(self, broker_order_id: str) -> None:
        """A read of the order/fill stream (not a request): no fault unless a family says otherwise."""


class BrokerFamily(FaultFamily):
    """A family striking a broker's calls one by one: it builds one ``BrokerLink`` per wrapped broker.

    ``FaultyBroker`` chains the live families' links in ``registry.BROKER_CALL_ORDER``.
    """

    ports = ("brokers",)
    per_call = True

    def link(self, broker: FaultyBroker, rng: random.Random) -> BrokerLink:
        """Its link for ``broker``, drawing from ``rng`` (``faults/<family>/<broker>``)."""
        raise NotImplementedError


class ErrorLink(BrokerLink):
    def __init__(self, broker: FaultyBroker, rng: random.Random, rate: float) -> None:
        super().__init__(broker, rng)
        self.rate = rate

    def _strikes(self) -> bool:
        return bool(self.rate and self.rng.random() < self.rate) and self.ctx.strike("broker_errors", self.broker.name)

    async def around(self, operation: str, connection_id: str, call: Call[T], broker_call: Call[T]) -> T:
        if not self._strikes():
            return await call()
        self.broker.rejected(operation, connection_id, "BrokerUnavailable")
        raise BrokerUnavailable(f"{self.broker.name}: 503 service unavailable ({operation})")

    def on_stream_read(self, broker_order_id: str) -> None:
        if self._strikes():
            raise StreamDisconnected(f"{self.broker.name}: order stream for {broker_order_id!r} dropped (server error)")


class BrokerErrorsFamily(BrokerFamily):
    name = "broker_errors"
    schema = BrokerErrors
    streams = ("faults/broker_errors/<broker>",)

    def link(self, broker: FaultyBroker, rng: random.Random) -> BrokerLink:
        plan = broker.ctx.plan
        return ErrorLink(broker, rng, plan.faults.broker_errors.error_rate * plan.scale(self.name))


class TimeoutLink(BrokerLink):
    def __init__(self, broker: FaultyBroker, rng: random.Random, probability: float, share: float) -> None:
        super().__init__(broker, rng)
        self.probability = probability
        self.after_success_share = share

    async def around(self, operation: str, connection_id: str, call: Call[T], broker_call: Call[T]) -> T:
        if not (self.probability and self.rng.random() < self.probability):
            return await call()
        applied = self.rng.random() < self.after_success_share  # drawn even if left out: its stream keeps its place
        if not self.ctx.strike("broker_timeouts", self.broker.name, operation):
            return await call()
        runtime = self.ctx.runtime
        started = runtime.now()
        wait_s = self.broker.timeout_after_s()
        if applied:
            with contextlib.suppress(BrokerError):  # an error's answer is lost as well
                await broker_call()  # applied; the answer is lost
        else:  # lost on its way in, but it still loaded the broker
            self.broker.rejected(operation, connection_id, "BrokerTimeout")
        await runtime.sleep(started + wait_s - runtime.now())
        raise BrokerTimeout(f"{self.broker.name}: no answer within {wait_s:g} s")


class BrokerTimeoutsFamily(BrokerFamily):
    name = "broker_timeouts"
    schema = BrokerTimeouts
    streams = ("faults/broker_timeouts/<broker>",)

    def link(self, broker: FaultyBroker, rng: random.Random) -> BrokerLink:
        plan = broker.ctx.plan
        config = plan.faults.broker_timeouts
        return TimeoutLink(broker, rng, config.probability * plan.scale(self.name), config.after_success_share)


class SpikeLink(BrokerLink):
    def __init__(self, broker: FaultyBroker, rng: random.Random, probability: float, multiplier: float) -> None:
        super().__init__(broker, rng)
        self.probability = probability
        self.multiplier = multiplier

    async def around(self, operation: str, connection_id: str, call: Call[T], broker_call: Call[T]) -> T:
        if not (self.probability and self.rng.random() < self.probability):
            return await call()
        if not self.ctx.strike("latency_spikes", self.broker.name, operation):
            return await call()
        runtime = self.ctx.runtime
        started = runtime.now()
        try:
            result = await call()
        except BrokerError as error:
            await runtime.sleep((self.multiplier - 1.0) * (runtime.now() - started))
            raise error from None
        await runtime.sleep((self.multiplier - 1.0) * (runtime.now() - started))
        return result


class LatencySpikesFamily(BrokerFamily):
    name = "latency_spikes"
    schema = LatencySpikes
    streams = ("faults/latency_spikes/<broker>",)

    def link(self, broker: FaultyBroker, rng: random.Random) -> BrokerLink:
        plan = broker.ctx.plan
        config = plan.faults.latency_spikes
        return SpikeLink(broker, rng, config.probability * plan.scale(self.name), config.multiplier)


def _bound(link: BrokerLink, operation: str, connection_id: str, rest: Call[T], broker_call: Call[T]) -> Call[T]:
    return lambda: link.around(operation, connection_id, rest, broker_call)


class FaultyBroker:
    """A ``BrokerApi`` wrapper running each call through the live broker families' links, in call order.

    It knows no family's rule: only that a dead task's call is cancelled, that nothing strikes outside
    the start-to-heal window, and that the failing-compensations verdict (every port's, so it lives in
    ``FaultContext``) answers first, before any link draws.
    """

    def __init__(self, inner: BrokerApi, name: str, ctx: FaultContext, families: Sequence[BrokerFamily]) -> None:
        self.inner = inner
        self.name = str(getattr(inner, "name", name))
        self.ctx = ctx
        self._links = [family.link(self, ctx.stream(family.name, name)) for family in families]

    def __getattr__(self, name: str) -> Any:
        # Lab controls and inspection (set_outage, calls, profile...) are the wrapped broker's.
        if name == "inner":
            raise AttributeError(name)  # not set yet (copying, unpickling): no recursion
        return getattr(self.inner, name)

    # ----- the BrokerApi port -----

    async def connect(self, connection_id: str, credentials: str) -> None:
        await self._request("connect", connection_id, lambda: self.inner.connect(connection_id, credentials))

    async def health_check(self, connection_id: str) -> bool:
        return await self._request("health_check", connection_id, lambda: self.inner.health_check(connection_id))

    async def discover_accounts(self, connection_id: str) -> Sequence[DiscoveredAccount]:
        return await self._request(
            "discover_accounts", connection_id, lambda: self.inner.discover_accounts(connection_id)
        )

    async def place_order(self, connection_id: str, order: OrderRequest) -> str:
        return await self._request("place_order", connection_id, lambda: self.inner.place_order(connection_id, order))

    async def cancel_order(self, connection_id: str, broker_order_id: str) -> None:
        await self._request(
            "cancel_order", connection_id, lambda: self.inner.cancel_order(connection_id, broker_order_id)
        )

    async def last_price(self, connection_id: str, symbol: str) -> float:
        return await self._request("last_price", connection_id, lambda: self.inner.last_price(connection_id, symbol))

    async def disconnect(self, connection_id: str) -> None:
        await self._request("disconnect", connection_id, lambda: self.inner.disconnect(connection_id))

    async def next_order_update(self, connection_id: str, broker_order_id: str, after_sequence: int) -> OrderUpdate:
        self.ctx.check_alive()
        if self.ctx.active():
            for link in self._links:
                link.on_stream_read(broker_order_id)
        return await self.inner.next_order_update(connection_id, broker_order_id, after_sequence)

    # ----- the request path -----

    def rejected(self, operation: str, connection_id: str, outcome: str) -> None:
        """Log a request a fault answered at the broker's door: it still counts as broker load.

        It goes in the broker's own call log (its ``BrokerCall`` rows are what the lab's load plots read).
        """
        calls = getattr(self.inner, "calls", None)
        if isinstance(calls, list):
            now = self.ctx.runtime.now()
            calls.append(BrokerCall(self.name, now, now, operation, connection_id, outcome))

    def timeout_after_s(self) -> float:
        """How long a timed-out call waits: the profile's (a test may swap it mid-run), as the broker's own."""
        profile = getattr(self.inner, "profile", None)
        return float(getattr(profile, "timeout_after_s", DEFAULT_TIMEOUT_AFTER_S))

    async def _request(self, operation: str, connection_id: str, call: Call[T]) -> T:
        ctx = self.ctx
        ctx.check_alive()
        if not ctx.active():
            return await call()
        if ctx.compensation_fails():
            self.rejected(operation, connection_id, "BrokerUnavailable")
            raise BrokerUnavailable(f"{self.name}: 503 service unavailable ({operation})")
        chained = call
        for link in reversed(self._links):
            chained = _bound(link, operation, connection_id, chained, call)
        return await chained()
