"""The virtual broker behaves exactly as its profile says, on the simulated clock, reproducibly from a seed."""

from __future__ import annotations

import dataclasses
import random
import statistics
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sagas import DeadlineExceeded, RetryConfig, RetryExhausted, retry_async
from sagas.trading.broker_port import (
    BrokerApi,
    BrokerError,
    BrokerTimeout,
    BrokerUnavailable,
    InvalidBrokerRequest,
    InvalidCredentials,
    NotConnected,
    OrderRequest,
    OrderUpdate,
    RateLimited,
    StreamDisconnected,
)
from simlab.sim.brokers import (
    PROFILES,
    REAL,
    VIRTUAL,
    BrokerCall,
    BrokerProfile,
    VirtualBroker,
    draw_latency,
    split_quantity,
)
from simlab.sim.world import SimWorld, simulate

NO_FAULTS: dict[str, Any] = {
    "unavailable_probability": 0.0,
    "rate_limited_probability": 0.0,
    "timeout_probability": 0.0,
    "timeout_after_success_probability": 0.0,
    "stream_disconnect_probability": 0.0,
    "reject_probability": 0.0,
    "rate_limit_per_second": None,
}
# Every call takes exactly 20 ms (10 ms each way); acks come 10 ms and each fill 20 ms after the previous update.
CALM = dataclasses.replace(
    VIRTUAL,
    name="calm",
    latency_sigma=0.0,
    tail_probability=0.0,
    update_delay_sigma=0.0,
    partial_fill_probability=0.0,
    **NO_FAULTS,
)
LATENCY = CALM.latency_median_s
TIMEOUT = CALM.timeout_after_s


def calm(**changes: Any) -> BrokerProfile:
    """CALM with exactly the given behaviours switched on."""
    return dataclasses.replace(CALM, **changes)


def order(client_order_id: str = "o1", quantity: float = 100.0, **changes: Any) -> OrderRequest:
    return OrderRequest(client_order_id, "acct-1", "AAPL", "buy", quantity, **changes)


def new_broker(world: SimWorld, profile: BrokerProfile, name: str = "b") -> VirtualBroker:
    return VirtualBroker(world.runtime, world.streams.stream(f"broker/{name}"), profile, name=name)


def in_sim(
    profile: BrokerProfile, scenario: Callable[[SimWorld, VirtualBroker], Coroutine[Any, Any, Any]], seed: int = 0
) -> tuple[Any, VirtualBroker]:
    """Run ``scenario(world, broker)`` in a simulated world; return its result and the broker."""
    brokers: list[VirtualBroker] = []

    async def main(world: SimWorld) -> Any:
        brokers.append(new_broker(world, profile))
        return await scenario(world, brokers[0])

    result, _ = simulate(main, seed)
    return result, brokers[0]


async def outcome_of(call: Coroutine[Any, Any, Any]) -> Any:
    """The call's result, or the exception it raised."""
    try:
        return await call
    except BrokerError as error:
        return error


# ----- determinism -----


async def follow(broker: VirtualBroker, connection_id: str, broker_order_id: str, quantity: float) -> None:
    """Read an order's stream until it is final, resuming after errors (at most 20 reads)."""
    after, filled = 0, 0.0
    for _ in range(20):
        update = await outcome_of(broker.next_order_update(connection_id, broker_order_id, after))
        if isinstance(update, OrderUpdate):
            after, filled = update.sequence, filled + update.fill_quantity
            if update.kind in ("rejected", "cancelled") or filled == quantity:
                return


async def busy_day(world: SimWorld, broker: VirtualBroker) -> list[BrokerCall]:
    """Five clients connect, place and follow orders concurrently on a failure-prone broker."""

    async def client(i: int) -> None:
        connection_id = f"c{i}"
        for _ in range(5):
            if not isinstance(await outcome_of(broker.connect(connection_id, "secret")), BrokerError):
                break
            await world.runtime.sleep(1.0)
        for j in range(10):
            placed = await outcome_of(broker.place_order(connection_id, order(f"o{i}-{j}")))
            if isinstance(placed, str):
                await follow(broker, connection_id, placed, 100.0)
        await outcome_of(broker.disconnect(connection_id))

    tasks = [world.runtime.spawn(client(i), name=f"client-{i}") for i in range(5)]
    for task in tasks:
        await task.join()
    return broker.calls


def test_same_seed_gives_the_identical_call_log_and_another_seed_a_different_one() -> None:
    first, _ = in_sim(REAL, busy_day, seed=7)
    again, _ = in_sim(REAL, busy_day, seed=7)
    other, _ = in_sim(REAL, busy_day, seed=8)
    assert len(first) > 100
    assert {"ok", "StreamDisconnected"} <= {c.outcome for c in first}
    assert first == again
    assert repr(first) == repr(again)
    assert first != other


def test_same_seed_gives_the_same_order_schedule() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> list[tuple[float, OrderUpdate]]:
        await broker.connect("c1", "secret")
        broker_order_id = await broker.place_order("c1", order())
        await world.runtime.sleep(60.0)
        return broker.order_updates(broker_order_id)

    profile = calm(partial_fill_probability=0.5, update_delay_sigma=0.8)
    assert in_sim(profile, scenario, seed=3)[0] == in_sim(profile, scenario, seed=3)[0]


# ----- latency -----


async def many_health_checks(world: SimWorld, broker: VirtualBroker) -> list[float]:
    await broker.connect("c1", "secret")
    for _ in range(2000):
        assert await broker.health_check("c1") is True
    return [c.ended_at - c.started_at for c in broker.calls if c.operation == "health_check"]


def test_virtual_calls_take_about_20_ms() -> None:
    durations, _ = in_sim(dataclasses.replace(VIRTUAL, **NO_FAULTS), many_health_checks)
    assert len(durations) == 2000
    assert 0.018 <= statistics.median(durations) <= 0.022
    assert max(durations) <= VIRTUAL.max_latency_s


def test_real_latency_is_heavy_tailed() -> None:
    durations, _ = in_sim(dataclasses.replace(REAL, **NO_FAULTS), many_health_checks)
    durations.sort()
    median, p99 = durations[1000], durations[1979]
    assert 0.25 <= median <= 0.35
    # a lognormal body alone (sigma 0.5) would put p99 at 3.2x the median
    assert p99 >= 5 * median
    assert durations[-1] >= 20 * median
    assert durations[-1] <= REAL.max_latency_s


def test_latency_draws_come_only_from_the_given_generator() -> None:
    draws = [draw_latency(REAL, random.Random(5)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    assert draw_latency(CALM, random.Random(1)) == pytest.approx(LATENCY)


# ----- rate limits -----


def test_n_plus_one_calls_in_one_instant_give_exactly_one_rate_limited_with_the_time_to_the_next_token() -> None:
    profile = calm(rate_limit_per_second=10.0)

    async def scenario(world: SimWorld, broker: VirtualBroker) -> tuple[list[Any], Any]:
        tasks = [world.runtime.spawn(outcome_of(broker.health_check("c1"))) for _ in range(11)]
        outcomes = [await task.join() for task in tasks]
        limited = outcomes[-1]
        await world.runtime.sleep(limited.retry_after_seconds)
        return outcomes, await outcome_of(broker.health_check("c1"))

    (outcomes, after_waiting), broker = in_sim(profile, scenario)
    assert outcomes[:10] == [False] * 10  # admitted (no session needed for a health check)
    assert isinstance(outcomes[10], RateLimited)
    assert outcomes[10].retry_after_seconds == 0.1
    assert after_waiting is False
    assert [c.outcome for c in broker.calls].count("RateLimited") == 1


def test_a_drawn_429_carries_the_profile_retry_after_and_is_retryable() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> Any:
        return await outcome_of(broker.health_check("c1"))

    error, _ = in_sim(calm(rate_limited_probability=1.0, rate_limited_retry_after_s=2.5), scenario)
    assert isinstance(error, RateLimited)
    assert error.retry_after_seconds == 2.5
    assert RetryConfig().is_retryable(error)


# ----- errors and timeouts -----


def test_unavailable_errors_come_back_after_the_call_latency_and_are_retryable() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> Any:
        return await outcome_of(broker.connect("c1", "secret"))

    error, broker = in_sim(calm(unavailable_probability=1.0), scenario)
    assert isinstance(error, BrokerUnavailable)
    assert RetryConfig().is_retryable(error)
    assert not broker.has_session("c1")
    [call] = broker.calls
    assert (call.operation, call.connection_id, call.outcome) == ("connect", "c1", "BrokerUnavailable")
    assert call.ended_at - call.started_at == pytest.approx(LATENCY)


def test_timeout_after_success_applies_the_call_and_a_retry_returns_the_same_order() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> tuple[Any, ...]:
        connect_error = await outcome_of(broker.connect("c1", "secret"))
        connected = broker.has_session("c1")
        place_error = await outcome_of(broker.place_order("c1", order("o1")))
        timed_out_at = world.runtime.now()
        orders_after_timeout = list(broker.orders)
        broker.profile = CALM
        retried = await broker.place_order("c1", order("o1"))
        return connect_error, connected, place_error, timed_out_at, orders_after_timeout, retried

    profile = calm(timeout_after_success_probability=1.0)
    (connect_error, connected, place_error, at, orders_then, retried), broker = in_sim(profile, scenario)
    assert isinstance(connect_error, BrokerTimeout)
    assert connected  # the session was opened although the caller saw a timeout
    assert isinstance(place_error, BrokerTimeout)
    assert at == pytest.approx(2 * TIMEOUT)
    assert orders_then == [retried]
    assert list(broker.orders) == [retried]


def test_plain_timeouts_do_not_apply_the_call_and_look_the_same_to_the_caller() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> tuple[Any, ...]:
        connect_error = await outcome_of(broker.connect("c1", "secret"))
        connected = broker.has_session("c1")
        broker.profile = CALM
        await broker.connect("c1", "secret")
        broker.profile = calm(timeout_probability=1.0)
        place_error = await outcome_of(broker.place_order("c1", order("o1")))
        return connect_error, connected, place_error

    (connect_error, connected, place_error), broker = in_sim(calm(timeout_probability=1.0), scenario)
    assert isinstance(connect_error, BrokerTimeout)
    assert not connected
    assert isinstance(place_error, BrokerTimeout)
    assert broker.orders == {}
    timeouts = [c for c in broker.calls if c.outcome == "BrokerTimeout"]
    assert [c.ended_at - c.started_at for c in timeouts] == pytest.approx([TIMEOUT, TIMEOUT])


def test_a_caller_deadline_after_the_request_arrived_leaves_the_order_placed() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> tuple[int, int]:
        await broker.connect("c1", "secret")
        with pytest.raises(DeadlineExceeded):  # gives up during the request leg: never reached the broker
            await world.runtime.run_with_deadline(broker.place_order("c1", order("o1")), 0.005)
        placed_before = len(broker.orders)
        with pytest.raises(DeadlineExceeded):  # gives up during the response leg: the order is placed
            await world.runtime.run_with_deadline(broker.place_order("c1", order("o2")), 0.015)
        return placed_before, len(broker.orders)

    (placed_before, placed_after), broker = in_sim(CALM, scenario)
    assert (placed_before, placed_after) == (0, 1)
    assert [c.outcome for c in broker.calls] == ["ok", "CancelledError", "CancelledError"]


# ----- credentials and sessions -----


def test_invalid_credentials_raise_and_are_never_retried() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> Any:
        with pytest.raises(InvalidCredentials) as rejected:
            await broker.connect("c1", "expired")
        with pytest.raises(RetryExhausted) as exhausted:
            await retry_async(
                lambda: broker.connect("c1", "invalid"),
                RetryConfig(max_attempts=5, initial_delay_ms=100),
                clock=world.runtime,
                rng=world.streams.stream("jitter"),
            )
        return rejected.value, exhausted.value

    (error, exhausted), broker = in_sim(CALM, scenario)
    assert not RetryConfig().is_retryable(error)
    assert exhausted.attempts == 1
    assert [c.outcome for c in broker.calls] == ["InvalidCredentials", "InvalidCredentials"]


def test_revoked_credentials_fail_connect_and_health_check_until_restored() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> list[Any]:
        await broker.connect("c1", "secret")
        broker.revoke_credentials("c1")
        seen = [await outcome_of(broker.health_check("c1")), await outcome_of(broker.connect("c1", "secret"))]
        broker.restore_credentials("c1")
        seen.append(await outcome_of(broker.health_check("c1")))  # the revocation dropped the session
        await broker.connect("c1", "secret")
        seen.append(await broker.health_check("c1"))
        return seen

    seen, _ = in_sim(CALM, scenario)
    assert [type(s).__name__ for s in seen[:2]] == ["InvalidCredentials", "InvalidCredentials"]
    assert seen[2:] == [False, True]


def test_health_check_reflects_the_session() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> list[bool]:
        checks = [await broker.health_check("c1")]
        await broker.connect("c1", "secret")
        checks.append(await broker.health_check("c1"))
        broker.drop_session("c1")
        checks.append(await broker.health_check("c1"))
        await broker.connect("c1", "secret")
        await broker.disconnect("c1")
        await broker.disconnect("c1")  # idempotent
        checks.append(await broker.health_check("c1"))
        return checks

    assert in_sim(CALM, scenario)[0] == [False, True, False, False]


def test_discover_accounts_needs_a_session_and_gives_deterministic_accounts() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> tuple[Any, ...]:
        not_connected = await outcome_of(broker.discover_accounts("c1"))
        await broker.connect("c1", "secret")
        default = await broker.discover_accounts("c1")
        broker.set_accounts("c1", 3)
        return not_connected, default, await broker.discover_accounts("c1")

    (not_connected, default, three), _ = in_sim(CALM, scenario)
    assert isinstance(not_connected, NotConnected)
    assert RetryConfig().is_retryable(not_connected)
    assert [a.external_id for a in default] == ["b:c1:1"]
    assert [a.external_id for a in three] == ["b:c1:1", "b:c1:2", "b:c1:3"]
    assert {a.kind for a in three} == {"virtual"}


# ----- orders and the stream -----


def test_partial_fills_add_up_exactly_to_the_quantity_with_increasing_sequences_and_times() -> None:
    quantities = [100.0, 7.0, 2.0, 1.0, 1.5, 333.0]

    async def scenario(world: SimWorld, broker: VirtualBroker) -> list[list[tuple[float, OrderUpdate]]]:
        await broker.connect("c1", "secret")
        histories = []
        for i, quantity in enumerate(quantities):
            broker_order_id = await broker.place_order("c1", order(f"o{i}", quantity))
            timed = []
            for after in range(len(broker.orders[broker_order_id].timeline())):
                update = await broker.next_order_update("c1", broker_order_id, after)
                timed.append((world.runtime.now(), update))
            histories.append(timed)
        return histories

    profile = calm(partial_fill_probability=1.0, max_fills=4, update_delay_sigma=0.5)
    histories, _ = in_sim(profile, scenario)
    for quantity, history in zip(quantities, histories, strict=True):
        updates = [u for _, u in history]
        fills = [u for u in updates if u.kind == "fill"]
        assert updates[0].kind == "acknowledged"
        assert [u.kind for u in updates[1:]] == ["fill"] * len(fills)
        assert sum(f.fill_quantity for f in fills) == quantity
        if quantity == int(quantity) and quantity >= 2:
            assert 2 <= len(fills) <= min(4, quantity)
        else:
            assert len(fills) == 1
        assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
        times = [t for t, _ in history]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert all(f.fill_price > 0 for f in fills)
    assert [len(h) for h in histories][3:5] == [2, 2]  # 1 and 1.5 cannot be split: ack + one fill


def test_split_quantity_is_exact() -> None:
    rng = random.Random(0)
    for quantity in range(1, 200):
        parts = split_quantity(float(quantity), 5, rng)
        assert sum(parts) == quantity
        assert all(p >= 1 and p == int(p) for p in parts)
        assert len(parts) == (1 if quantity < 2 else min(5, quantity))
    assert split_quantity(2.5, 5, rng) == [2.5]


def test_limit_prices_bound_the_fills() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> list[OrderUpdate]:
        await broker.connect("c1", "secret")
        broker_order_id = await broker.place_order("c1", order(limit_price=99.0))
        return [await broker.next_order_update("c1", broker_order_id, after) for after in range(2)]

    _, fill = in_sim(calm(price_noise=0.05), scenario)[0]
    assert fill.kind == "fill" and fill.fill_price <= 99.0


def test_a_stream_disconnect_loses_no_update_when_resumed_from_the_same_sequence() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> tuple[list[OrderUpdate], int, list[Any]]:
        await broker.connect("c1", "secret")
        broker_order_id = await broker.place_order("c1", order())
        updates: list[OrderUpdate] = []
        disconnects = 0
        while len(updates) < len(broker.orders[broker_order_id].timeline()):
            after = updates[-1].sequence if updates else 0
            try:
                updates.append(await broker.next_order_update("c1", broker_order_id, after))
            except StreamDisconnected:
                disconnects += 1
        return updates, disconnects, [u for _, u in broker.order_updates(broker_order_id)]

    profile = calm(stream_disconnect_probability=0.5, partial_fill_probability=1.0, max_fills=5)
    (updates, disconnects, at_broker), broker = in_sim(profile, scenario)
    assert disconnects >= 2
    assert updates == at_broker
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    assert sum(u.fill_quantity for u in updates) == 100.0
    assert [c.outcome for c in broker.calls].count("StreamDisconnected") == disconnects


def test_a_stream_read_after_a_disconnect_returns_the_update_it_missed() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> tuple[Any, OrderUpdate]:
        await broker.connect("c1", "secret")
        broker_order_id = await broker.place_order("c1", order())
        broker.profile = calm(stream_disconnect_probability=1.0)
        dropped = await outcome_of(broker.next_order_update("c1", broker_order_id, 0))
        broker.profile = CALM
        return dropped, await broker.next_order_update("c1", broker_order_id, 0)

    (dropped, resumed), _ = in_sim(CALM, scenario)
    assert isinstance(dropped, StreamDisconnected)
    assert (resumed.kind, resumed.sequence) == ("acknowledged", 1)


def test_a_cancelled_order_ends_with_a_cancelled_update() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> tuple[list[OrderUpdate], Any]:
        await broker.connect("c1", "secret")
        broker_order_id = await broker.place_order("c1", order())
        await broker.cancel_order("c1", broker_order_id)  # arrives after the ack, before the fill
        updates = [await broker.next_order_update("c1", broker_order_id, after) for after in range(2)]
        await broker.cancel_order("c1", broker_order_id)  # already final: a no-op
        beyond = await outcome_of(broker.next_order_update("c1", broker_order_id, 2))
        return updates, beyond

    (updates, beyond), _ = in_sim(CALM, scenario)
    assert [(u.kind, u.sequence, u.fill_quantity) for u in updates] == [("acknowledged", 1, 0.0), ("cancelled", 2, 0.0)]
    assert isinstance(beyond, InvalidBrokerRequest)
    assert not RetryConfig().is_retryable(beyond)


def test_a_cancel_racing_the_last_fill_loses() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> list[str]:
        await broker.connect("c1", "secret")
        broker_order_id = await broker.place_order("c1", order())
        await world.runtime.sleep(1.0)
        await broker.cancel_order("c1", broker_order_id)
        return [u.kind for _, u in broker.order_updates(broker_order_id)]

    assert in_sim(CALM, scenario)[0] == ["acknowledged", "fill"]


def test_a_rejected_order_gets_one_rejected_update() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> OrderUpdate:
        await broker.connect("c1", "secret")
        broker_order_id = await broker.place_order("c1", order())
        return await broker.next_order_update("c1", broker_order_id, 0)

    rejected, broker = in_sim(calm(reject_probability=1.0), scenario)
    assert (rejected.kind, rejected.sequence, rejected.reason) == (
        "rejected",
        1,
        "rejected by the broker's risk checks",
    )
    [only] = broker.orders.values()
    assert len(only.timeline()) == 1


def test_order_ids_are_counters_and_place_order_is_idempotent_per_client_order_id() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> list[str]:
        await broker.connect("c1", "secret")
        return [await broker.place_order("c1", order(client_id)) for client_id in ("a", "b", "a")]

    ids, broker = in_sim(CALM, scenario)
    assert ids == ["b-000001", "b-000002", "b-000001"]
    assert len(broker.orders) == 2


# ----- outages -----


def test_an_outage_fails_every_call_until_its_end_then_calls_succeed() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> list[Any]:
        await broker.connect("c1", "secret")
        broker.set_outage(until=10.0)

        async def check_at(t: float) -> Any:
            await world.runtime.sleep(t - world.runtime.now())
            return await outcome_of(broker.health_check("c1"))

        tasks = [world.runtime.spawn(check_at(float(t))) for t in range(1, 13)]
        return [await task.join() for task in tasks]

    outcomes, _ = in_sim(CALM, scenario)
    assert [type(o).__name__ for o in outcomes[:9]] == ["BrokerUnavailable"] * 9  # t = 1 .. 9
    assert outcomes[9:] == [True, True, True]  # t = 10, 11, 12


def test_heal_ends_an_outage_at_once() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> list[Any]:
        await broker.connect("c1", "secret")
        broker.set_outage(until=1000.0)
        failed = await outcome_of(broker.discover_accounts("c1"))
        broker.heal()
        return [failed, await outcome_of(broker.health_check("c1"))]

    failed, healthy = in_sim(CALM, scenario)[0]
    assert isinstance(failed, BrokerUnavailable)
    assert healthy is True


# ----- the call log and the profiles -----


def test_every_call_is_logged_with_times_operation_connection_and_outcome() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> None:
        await broker.connect("c1", "secret")
        await outcome_of(broker.place_order("c2", order()))
        await broker.disconnect("c1")

    _, broker = in_sim(CALM, scenario)
    assert [(c.broker, c.operation, c.connection_id, c.outcome) for c in broker.calls] == [
        ("b", "connect", "c1", "ok"),
        ("b", "place_order", "c2", "NotConnected"),
        ("b", "disconnect", "c1", "ok"),
    ]
    starts = [c.started_at for c in broker.calls]
    assert starts == pytest.approx([0.0, LATENCY, 2 * LATENCY])
    assert all(c.ended_at - c.started_at == pytest.approx(LATENCY) for c in broker.calls)
    with pytest.raises(dataclasses.FrozenInstanceError):
        broker.calls[0].outcome = "changed"  # type: ignore[misc]


def test_the_ready_profiles() -> None:
    assert PROFILES == {"virtual": VIRTUAL, "real": REAL}
    assert REAL.latency_median_s >= 10 * VIRTUAL.latency_median_s
    assert REAL.timeout_after_s == 10 * VIRTUAL.timeout_after_s
    assert REAL.unavailable_probability > 10 * VIRTUAL.unavailable_probability
    assert VIRTUAL.account_kind == "virtual" and REAL.account_kind == "linked"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"unavailable_probability": 0.6, "timeout_probability": 0.6}, "sum to <= 1"),
        ({"latency_median_s": 0.0}, "latency_median_s must be > 0"),
        ({"reject_probability": 1.5}, "reject_probability must be in [0, 1]"),
        ({"rate_limit_per_second": 0.0}, "rate_limit_per_second must be > 0 or None"),
        ({"max_fills": 0}, "max_fills must be >= 1"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        dataclasses.replace(VIRTUAL, **changes)


def test_the_virtual_broker_fits_the_port() -> None:
    async def scenario(world: SimWorld, broker: VirtualBroker) -> bool:
        api: BrokerApi = broker
        await api.connect("c1", "secret")
        return await api.health_check("c1")

    assert in_sim(CALM, scenario)[0] is True
