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

Why a virtual broker's own faults (``BrokerProfile``'s error and timeout probabilities) are not these
families: the profile is how a broker behaves every day, drawn from the broker's own stream in one
draw per call; these families are extra faults injected in a window, drawn from streams of their own
(``faults/<family>/<broker>``) so that switching one never moves the broker's draws, and they wrap any
``BrokerApi``, not only a virtual one. Folding one into the other would move every draw of every run.
"""

from __future__ import annotations

import contextlib
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

DEFAULT_TIMEOUT_AFTER_S = 30.0
"""How long a timed-out call waits when the broker has no profile saying so."""


class BrokerErrorsFamily(FaultFamily):
    name = "broker_errors"
    schema = BrokerErrors
    ports = ("brokers",)
    streams = ("faults/broker_errors/<broker>",)
    per_call = True


class LatencySpikesFamily(FaultFamily):
    name = "latency_spikes"
    schema = LatencySpikes
    ports = ("brokers",)
    streams = ("faults/latency_spikes/<broker>",)
    per_call = True


class BrokerTimeoutsFamily(FaultFamily):
    name = "broker_timeouts"
    schema = BrokerTimeouts
    ports = ("brokers",)
    streams = ("faults/broker_timeouts/<broker>",)
    per_call = True


class FaultyBroker:
    """A ``BrokerApi`` wrapper injecting broker errors, timeouts (after success too) and latency spikes."""

    def __init__(self, inner: BrokerApi, name: str, ctx: FaultContext) -> None:
        self.inner = inner
        self.name = str(getattr(inner, "name", name))
        self._ctx = ctx
        faults, plan = ctx.plan.faults, ctx.plan
        self._error_rate = faults.broker_errors.error_rate * plan.scale("broker_errors")
        self._spike_p = faults.latency_spikes.probability * plan.scale("latency_spikes")
        self._multiplier = faults.latency_spikes.multiplier
        self._timeout_p = faults.broker_timeouts.probability * plan.scale("broker_timeouts")
        self._after_success_share = faults.broker_timeouts.after_success_share
        self._error_rng = ctx.stream("broker_errors", name)
        self._spike_rng = ctx.stream("latency_spikes", name)
        self._timeout_rng = ctx.stream("broker_timeouts", name)

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
        ctx = self._ctx
        ctx.check_alive()
        if ctx.active() and self._error_rate and self._error_rng.random() < self._error_rate:
            ctx.injected("broker_errors")
            raise StreamDisconnected(f"{self.name}: order stream for {broker_order_id!r} dropped (server error)")
        return await self.inner.next_order_update(connection_id, broker_order_id, after_sequence)

    # ----- the request path -----

    def _rejected(self, operation: str, connection_id: str, outcome: str) -> None:
        # A request the fault answered at the broker's door still counts as broker load: record it
        # in the broker's own call log (its ``BrokerCall`` rows are what the lab's load plots read).
        calls = getattr(self.inner, "calls", None)
        if isinstance(calls, list):
            now = self._ctx.runtime.now()
            calls.append(BrokerCall(self.name, now, now, operation, connection_id, outcome))

    def _timeout_after_s(self) -> float:
        # The profile's (which a test may swap mid-run), as the broker's own timeouts use.
        profile = getattr(self.inner, "profile", None)
        return float(getattr(profile, "timeout_after_s", DEFAULT_TIMEOUT_AFTER_S))

    async def _request(self, operation: str, connection_id: str, call: Callable[[], Awaitable[T]]) -> T:
        ctx = self._ctx
        ctx.check_alive()
        if not ctx.active():
            return await call()
        if ctx.compensation_fails():
            self._rejected(operation, connection_id, "BrokerUnavailable")
            raise BrokerUnavailable(f"{self.name}: 503 service unavailable ({operation})")
        if self._error_rate and self._error_rng.random() < self._error_rate:
            ctx.injected("broker_errors")
            self._rejected(operation, connection_id, "BrokerUnavailable")
            raise BrokerUnavailable(f"{self.name}: 503 service unavailable ({operation})")
        runtime = ctx.runtime
        started = runtime.now()
        if self._timeout_p and self._timeout_rng.random() < self._timeout_p:
            ctx.injected("broker_timeouts")
            wait_s = self._timeout_after_s()
            if self._timeout_rng.random() < self._after_success_share:
                with contextlib.suppress(BrokerError):  # an error's answer is lost as well
                    await call()  # applied; the answer is lost
            else:  # lost on its way in, but it still loaded the broker
                self._rejected(operation, connection_id, "BrokerTimeout")
            await runtime.sleep(started + wait_s - runtime.now())
            raise BrokerTimeout(f"{self.name}: no answer within {wait_s:g} s")
        if not (self._spike_p and self._spike_rng.random() < self._spike_p):
            return await call()
        ctx.injected("latency_spikes")
        try:
            result = await call()
        except BrokerError as error:
            await runtime.sleep((self._multiplier - 1.0) * (runtime.now() - started))
            raise error from None
        await runtime.sleep((self._multiplier - 1.0) * (runtime.now() - started))
        return result
