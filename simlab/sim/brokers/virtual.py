"""The virtual broker: the ``BrokerApi`` port on the simulated clock, with latency, faults and an order/fill stream.

How this works: every request call (connect, health check, discover accounts,
place/cancel order, disconnect) goes through one path, ``_serve``. It draws the
call's latency (a lognormal body with a small chance of a Pareto tail) and one
fault outcome from the broker's seeded generator, then:

1. sleeps the *request leg* (``request_share`` of the latency): the request is
   on its way. A caller cancelled here (e.g. by its deadline) never reached the
   broker, so nothing is applied;
2. the broker *admits* the request at its arrival time: an outage, the token
   bucket, revoked or invalid credentials, a drawn error (unavailable, 429) or a
   missing session turn it into an error; otherwise its effect is applied at
   once (a session opened, an order placed...);
3. sleeps the *response leg* and returns the result or raises the error.

A drawn plain timeout loses the request (nothing applied) and raises
``BrokerTimeout`` ``timeout_after_s`` after the call started; a drawn
timeout-after-success applies the effect at arrival and then raises the same
``BrokerTimeout`` at the same time, so the caller cannot tell the two apart.

Orders: placing an order draws its whole schedule at once (acknowledged or
rejected after an ack delay, then one or more fills whose quantities add up to
the order's). ``next_order_update`` sleeps until the next scheduled update and
returns it; a read may instead drop with ``StreamDisconnected``, which consumes
nothing, so reading again with the same ``after_sequence`` resumes losslessly.
A cancel that arrives before the order's last scheduled update replaces every
later update by one ``cancelled`` update at the time of the first of them (the
venue's next matching cycle), so update *times* never change once drawn and a
reader never needs waking early. Fills scheduled before the cancel still happen.

Every call, including stream reads, appends a ``BrokerCall`` to ``broker.calls``.
Nothing here reads a wall clock or global randomness; ids are counters and
names, so a broker's behaviour is a pure function of its generator's seed and
the calls it receives.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from sagas.engine.ports import Runtime
from sagas.trading.broker_port import (
    BrokerError,
    BrokerTimeout,
    BrokerUnavailable,
    DiscoveredAccount,
    InvalidBrokerRequest,
    InvalidCredentials,
    NotConnected,
    OrderRequest,
    OrderUpdate,
    RateLimited,
    StreamDisconnected,
)
from simlab.sim.brokers.orders import BrokerCall, BrokerOrder, split_quantity
from simlab.sim.brokers.profiles import BrokerProfile, Fault, draw_fault, draw_latency
from simlab.sim.market import Market

T = TypeVar("T")


class VirtualBroker:
    """A simulated broker implementing ``BrokerApi``; behaviour set by ``profile`` (which may be swapped mid-run).

    Lab controls: ``set_outage``/``heal``, ``revoke_credentials``/``restore_credentials``,
    ``drop_session``, ``set_accounts``, ``set_price``. Inspection: ``calls``,
    ``orders``, ``order_updates``, ``has_session``, ``accounts_of``.
    """

    def __init__(
        self,
        runtime: Runtime,
        rng: random.Random,
        profile: BrokerProfile,
        name: str = "broker",
        market: Market | None = None,
    ) -> None:
        self.runtime = runtime
        self.rng = rng
        self.profile = profile
        self.name = name
        self.market = market  # prices that move (None: each symbol stays at the reference price)
        self.calls: list[BrokerCall] = []
        self.orders: dict[str, BrokerOrder] = {}
        self.outage_until = -math.inf
        self._sessions: set[str] = set()
        self._revoked: set[str] = set()
        self._account_counts: dict[str, int] = {}
        self._prices: dict[str, float] = {}
        self._order_ids: dict[str, str] = {}
        self._tokens = math.inf
        self._tokens_at = 0.0

    # ----- lab controls -----

    def set_outage(self, until: float) -> None:
        """Fail every call that reaches the broker before simulated time ``until`` with ``BrokerUnavailable``."""
        self.outage_until = until

    def heal(self) -> None:
        """End any outage now."""
        self.outage_until = -math.inf

    def revoke_credentials(self, connection_id: str) -> None:
        """Make the connection's credentials invalid (drops its session) until ``restore_credentials``."""
        self._revoked.add(connection_id)
        self._sessions.discard(connection_id)

    def restore_credentials(self, connection_id: str) -> None:
        """The user fixed the credentials: ``connect`` works again."""
        self._revoked.discard(connection_id)

    def drop_session(self, connection_id: str) -> None:
        """The broker drops the session (expiry, server restart): health checks say False until reconnected."""
        self._sessions.discard(connection_id)

    def set_accounts(self, connection_id: str, count: int) -> None:
        """How many accounts ``discover_accounts`` reports for the connection."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        self._account_counts[connection_id] = count

    def set_price(self, symbol: str, price: float) -> None:
        """The market price fills of ``symbol`` are drawn around (fixed from now on, the market's walk aside)."""
        self._prices[symbol] = price

    def market_price(self, symbol: str, at_s: float | None = None) -> float:
        """The price of ``symbol`` now (or at ``at_s``): one set with ``set_price``, else the market's, else
        the reference."""
        fixed = self._prices.get(symbol)
        if fixed is not None:
            return fixed
        if self.market is not None:
            return self.market.price(symbol, self.runtime.now() if at_s is None else at_s)
        return self.profile.reference_price

    # ----- inspection -----

    def accounts_of(self, connection_id: str) -> list[DiscoveredAccount]:
        """The accounts the broker has for the connection (its ground truth: no call, no latency, no fault)."""
        return self._accounts(connection_id)

    def has_session(self, connection_id: str) -> bool:
        """Whether the connection has an open session (no call, no latency)."""
        return connection_id in self._sessions

    def order_updates(self, broker_order_id: str) -> list[tuple[float, OrderUpdate]]:
        """The ``(time, update)`` pairs of the order that have happened by now."""
        now = self.runtime.now()
        return [(at, u) for at, u in self.orders[broker_order_id].timeline() if at <= now]

    # ----- the BrokerApi port -----

    async def connect(self, connection_id: str, credentials: str) -> None:
        """Open a session; ``InvalidCredentials`` for a revoked connection or credentials the profile rejects."""

        def effect() -> None:
            self._sessions.add(connection_id)

        await self._call("connect", connection_id, effect, needs_session=False, credentials=credentials)

    async def health_check(self, connection_id: str) -> bool:
        """Whether the connection's session is open when the request arrives."""
        return await self._call(
            "health_check", connection_id, lambda: connection_id in self._sessions, needs_session=False
        )

    async def discover_accounts(self, connection_id: str) -> Sequence[DiscoveredAccount]:
        """The connection's accounts, with ids derived from the broker and connection names."""
        return await self._call("discover_accounts", connection_id, lambda: self._accounts(connection_id))

    async def place_order(self, connection_id: str, order: OrderRequest) -> str:
        """Place ``order``; a known ``client_order_id`` returns the existing order's id (the first request wins)."""
        return await self._call("place_order", connection_id, lambda: self._place(connection_id, order))

    async def last_price(self, connection_id: str, symbol: str) -> float:
        """The symbol's last traded price (``set_price``, else the market's, else the profile's reference)."""
        return await self._call("last_price", connection_id, lambda: self.market_price(symbol))

    async def cancel_order(self, connection_id: str, broker_order_id: str) -> None:
        """Request cancellation; a no-op if the order is already final."""
        await self._call("cancel_order", connection_id, lambda: self._cancel(connection_id, broker_order_id))

    async def disconnect(self, connection_id: str) -> None:
        """Close the session (a no-op without one)."""

        def effect() -> None:
            self._sessions.discard(connection_id)

        await self._call("disconnect", connection_id, effect, needs_session=False, check_credentials=False)

    async def next_order_update(self, connection_id: str, broker_order_id: str, after_sequence: int) -> OrderUpdate:
        """Wait for update ``after_sequence + 1`` of the order; may raise ``StreamDisconnected`` (resume alike)."""
        stream = self._read_stream(connection_id, broker_order_id, after_sequence)
        return await self._logged("next_order_update", connection_id, stream)

    # ----- the request path -----

    async def _call(
        self,
        operation: str,
        connection_id: str,
        effect: Callable[[], T],
        *,
        needs_session: bool = True,
        check_credentials: bool = True,
        credentials: str | None = None,
    ) -> T:
        serve = self._serve(connection_id, effect, needs_session, check_credentials, credentials)
        return await self._logged(operation, connection_id, serve)

    async def _logged(self, operation: str, connection_id: str, call: Coroutine[Any, Any, T]) -> T:
        """Await ``call`` and record it in ``calls``, however it ends (a cancelled call too)."""
        started_at = self.runtime.now()
        outcome = "ok"
        try:
            return await call
        except BaseException as error:
            outcome = type(error).__name__
            raise
        finally:
            self.calls.append(BrokerCall(self.name, started_at, self.runtime.now(), operation, connection_id, outcome))

    async def _serve(
        self,
        connection_id: str,
        effect: Callable[[], T],
        needs_session: bool,
        check_credentials: bool,
        credentials: str | None,
    ) -> T:
        """Request leg, admission and effect at arrival, response leg (see the module docstring)."""
        started_at = self.runtime.now()
        latency = draw_latency(self.profile, self.rng)
        fault = draw_fault(self.profile, self.rng)
        request_leg = latency * self.profile.request_share
        await self.runtime.sleep(request_leg)
        timeout_at = started_at + self.profile.timeout_after_s
        if fault == "timeout":
            await self._sleep_until(timeout_at)
            raise BrokerTimeout(f"{self.name}: no answer within {self.profile.timeout_after_s:g} s")
        error = self._admission_error(connection_id, fault, needs_session, check_credentials, credentials)
        if error is None:
            try:
                result = effect()
            except BrokerError as refused:
                error = refused
            else:
                if fault == "timeout_after_success":
                    await self._sleep_until(timeout_at)
                    raise BrokerTimeout(f"{self.name}: no answer within {self.profile.timeout_after_s:g} s")
                await self.runtime.sleep(latency - request_leg)
                return result
        await self.runtime.sleep(latency - request_leg)
        raise error

    async def _sleep_until(self, at: float) -> None:
        await self.runtime.sleep(max(0.0, at - self.runtime.now()))

    def _admission_error(
        self,
        connection_id: str,
        fault: Fault | None,
        needs_session: bool,
        check_credentials: bool,
        credentials: str | None,
    ) -> BrokerError | None:
        """Why the broker refuses a request arriving now, or None to apply it."""
        if self.runtime.now() < self.outage_until:
            return BrokerUnavailable(f"{self.name}: outage until t={self.outage_until:g} s")
        retry_after = self._take_token()
        if retry_after is not None:
            return RateLimited(f"{self.name}: more than {self.profile.rate_limit_per_second:g} calls/s", retry_after)
        if check_credentials and (connection_id in self._revoked or credentials in self.profile.invalid_credentials):
            return InvalidCredentials(f"{self.name}: credentials for {connection_id!r} were rejected")
        if fault == "unavailable":
            return BrokerUnavailable(f"{self.name}: service unavailable")
        if fault == "rate_limited":
            return RateLimited(f"{self.name}: too many requests", self.profile.rate_limited_retry_after_s)
        if needs_session and connection_id not in self._sessions:
            return NotConnected(f"{self.name}: no session for {connection_id!r}")
        return None

    def _take_token(self) -> float | None:
        """Take a token from the bucket; return None, or the seconds until one is free."""
        rate = self.profile.rate_limit_per_second
        if rate is None:
            return None
        now = self.runtime.now()
        tokens = min(max(1.0, rate), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return None
        self._tokens = tokens
        return (1.0 - tokens) / rate

    # ----- effects -----

    def _accounts(self, connection_id: str) -> list[DiscoveredAccount]:
        count = self._account_counts.get(connection_id, self.profile.accounts_per_connection)
        kind = self.profile.account_kind
        return [
            DiscoveredAccount(f"{self.name}:{connection_id}:{i}", f"{self.name} account {i}", kind)
            for i in range(1, count + 1)
        ]

    def _place(self, connection_id: str, order: OrderRequest) -> str:
        known = self._order_ids.get(order.client_order_id)
        if known is not None:
            return known
        if not order.quantity > 0:
            raise InvalidBrokerRequest(f"{self.name}: quantity must be > 0, got {order.quantity!r}")
        broker_order_id = f"{self.name}-{len(self.orders) + 1:06d}"
        now = self.runtime.now()
        scheduled = self._schedule(broker_order_id, order, now)
        self.orders[broker_order_id] = BrokerOrder(broker_order_id, connection_id, order, now, scheduled)
        self._order_ids[order.client_order_id] = broker_order_id
        return broker_order_id

    def _cancel(self, connection_id: str, broker_order_id: str) -> None:
        order = self._order(connection_id, broker_order_id)
        now = self.runtime.now()
        if order.final_at() <= now:
            return
        if order.cancel_requested_at is None or now < order.cancel_requested_at:
            order.cancel_requested_at = now

    def _order(self, connection_id: str, broker_order_id: str) -> BrokerOrder:
        order = self.orders.get(broker_order_id)
        if order is None or order.connection_id != connection_id:
            raise InvalidBrokerRequest(f"{self.name}: no order {broker_order_id!r} for {connection_id!r}")
        return order

    # ----- the order schedule -----

    def _delay(self, median_s: float) -> float:
        return self.rng.lognormvariate(math.log(median_s), self.profile.update_delay_sigma)

    def _schedule(self, broker_order_id: str, order: OrderRequest, now: float) -> list[tuple[float, OrderUpdate]]:
        """Draw the order's updates: acknowledged (or rejected), then its fills."""
        profile = self.profile
        at = now + self._delay(profile.ack_delay_median_s)
        if self.rng.random() < profile.reject_probability:
            return [(at, OrderUpdate(broker_order_id, "rejected", 1, reason="rejected by the broker's risk checks"))]
        fills = 1
        if profile.max_fills > 1 and self.rng.random() < profile.partial_fill_probability:
            fills = self.rng.randint(2, profile.max_fills)
        out = [(at, OrderUpdate(broker_order_id, "acknowledged", 1))]
        for quantity in split_quantity(order.quantity, fills, self.rng):
            at += self._delay(profile.fill_delay_median_s)
            price = self._fill_price(order, at)
            out.append((at, OrderUpdate(broker_order_id, "fill", len(out) + 1, quantity, price)))
        return out

    def _fill_price(self, order: OrderRequest, at_s: float) -> float:
        market = self.market_price(order.symbol, at_s)  # the market when the fill happens
        price = round(market * (1.0 + self.rng.gauss(0.0, self.profile.price_noise)), 4)
        if order.limit_price is None:
            return price
        return min(price, order.limit_price) if order.side == "buy" else max(price, order.limit_price)

    # ----- the order/fill stream -----

    async def _read_stream(self, connection_id: str, broker_order_id: str, after_sequence: int) -> OrderUpdate:
        """Wait until the next update is due and return it, or drop the stream (nothing consumed)."""
        error = self._stream_error(connection_id, broker_order_id, after_sequence)
        if error is None and self.rng.random() < self.profile.stream_disconnect_probability:
            error = StreamDisconnected(f"{self.name}: order stream for {broker_order_id!r} dropped")
        if error is not None:
            await self.runtime.sleep(draw_latency(self.profile, self.rng))
            raise error
        order = self.orders[broker_order_id]
        await self._sleep_until(order.timeline()[after_sequence][0])
        timeline = order.timeline()  # a cancel may have changed what happens (never when)
        if after_sequence >= len(timeline):
            raise InvalidBrokerRequest(f"{self.name}: order {broker_order_id!r} ended before update {after_sequence}")
        return timeline[after_sequence][1]

    def _stream_error(self, connection_id: str, broker_order_id: str, after_sequence: int) -> BrokerError | None:
        if self.runtime.now() < self.outage_until:
            return BrokerUnavailable(f"{self.name}: outage until t={self.outage_until:g} s")
        if connection_id in self._revoked:
            return InvalidCredentials(f"{self.name}: credentials for {connection_id!r} were rejected")
        if connection_id not in self._sessions:
            return NotConnected(f"{self.name}: no session for {connection_id!r}")
        try:
            order = self._order(connection_id, broker_order_id)
        except InvalidBrokerRequest as error:
            return error
        if not 0 <= after_sequence < len(order.timeline()):
            return InvalidBrokerRequest(f"{self.name}: order {broker_order_id!r} has no update after {after_sequence}")
        return None
