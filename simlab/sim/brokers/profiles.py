"""Broker profiles: how a virtual broker behaves (latency, fault probabilities, rate limit, order flow), and the
draws a call makes from them.

``VIRTUAL`` and ``REAL`` are the ready profiles (``PROFILES`` by name, the names a scenario may give).
``draw_latency`` and ``draw_fault`` are the two draws every request makes from its broker's stream.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

Fault = Literal["unavailable", "rate_limited", "timeout", "timeout_after_success"]
_FAULTS: tuple[tuple[str, Fault], ...] = (
    ("unavailable_probability", "unavailable"),
    ("rate_limited_probability", "rate_limited"),
    ("timeout_probability", "timeout"),
    ("timeout_after_success_probability", "timeout_after_success"),
)


@dataclass(frozen=True, slots=True)
class BrokerProfile:
    """How a virtual broker behaves: latency, fault probabilities, rate limit, order flow.

    Latencies are in seconds. A call's latency is lognormal with median
    ``latency_median_s`` and shape ``latency_sigma``, except that with
    probability ``tail_probability`` it is Pareto (``tail_min_s`` times a
    Pareto(``tail_alpha``) draw); either is capped at ``max_latency_s``.

    The four request faults are exclusive outcomes of one draw, so their
    probabilities must sum to at most 1. ``rate_limit_per_second`` (None: no
    limit) is a token bucket refilled at that rate holding at most
    ``max(1, rate)`` tokens. Order-update delays are lognormal with the given
    medians and ``update_delay_sigma``.
    """

    name: str
    latency_median_s: float
    latency_sigma: float
    tail_probability: float
    tail_min_s: float
    tail_alpha: float
    max_latency_s: float
    unavailable_probability: float
    rate_limited_probability: float
    rate_limited_retry_after_s: float
    timeout_probability: float
    timeout_after_success_probability: float
    timeout_after_s: float
    rate_limit_per_second: float | None
    stream_disconnect_probability: float
    ack_delay_median_s: float
    fill_delay_median_s: float
    update_delay_sigma: float
    reject_probability: float
    partial_fill_probability: float
    max_fills: int
    price_noise: float
    reference_price: float = 100.0
    request_share: float = 0.5
    accounts_per_connection: int = 2
    account_kind: Literal["linked", "virtual"] = "linked"
    invalid_credentials: frozenset[str] = field(default=frozenset({"invalid", "expired"}))

    def __post_init__(self) -> None:
        problem = _profile_problem(self)
        if problem is not None:
            raise ValueError(f"BrokerProfile {self.name!r}: {problem}")


_PROBABILITIES = (
    "tail_probability",
    "unavailable_probability",
    "rate_limited_probability",
    "timeout_probability",
    "timeout_after_success_probability",
    "stream_disconnect_probability",
    "reject_probability",
    "partial_fill_probability",
    "request_share",
)
_POSITIVE = ("latency_median_s", "tail_min_s", "tail_alpha", "ack_delay_median_s", "fill_delay_median_s")
_NON_NEGATIVE = (
    "latency_sigma",
    "max_latency_s",
    "rate_limited_retry_after_s",
    "timeout_after_s",
    "update_delay_sigma",
    "price_noise",
    "reference_price",
)


def _profile_problem(p: BrokerProfile) -> str | None:
    """What is wrong with ``p``, or None."""
    for name in _PROBABILITIES:
        value = getattr(p, name)
        if not 0.0 <= value <= 1.0:
            return f"{name} must be in [0, 1], got {value!r}"
    for name in _POSITIVE:
        if not getattr(p, name) > 0:
            return f"{name} must be > 0, got {getattr(p, name)!r}"
    for name in _NON_NEGATIVE:
        if not getattr(p, name) >= 0:
            return f"{name} must be >= 0, got {getattr(p, name)!r}"
    total = sum(getattr(p, name) for name, _ in _FAULTS)
    if total > 1.0:
        return f"the request fault probabilities must sum to <= 1, got {total!r}"
    if p.rate_limit_per_second is not None and not p.rate_limit_per_second > 0:
        return f"rate_limit_per_second must be > 0 or None, got {p.rate_limit_per_second!r}"
    if p.max_fills < 1:
        return f"max_fills must be >= 1, got {p.max_fills!r}"
    if p.accounts_per_connection < 0:
        return f"accounts_per_connection must be >= 0, got {p.accounts_per_connection!r}"
    return None


VIRTUAL = BrokerProfile(
    name="virtual",
    latency_median_s=0.020,
    latency_sigma=0.3,
    tail_probability=0.002,
    tail_min_s=0.1,
    tail_alpha=2.5,
    max_latency_s=2.0,
    unavailable_probability=0.001,
    rate_limited_probability=0.0,
    rate_limited_retry_after_s=0.1,
    timeout_probability=0.0005,
    timeout_after_success_probability=0.0002,
    timeout_after_s=3.0,
    rate_limit_per_second=100.0,
    stream_disconnect_probability=0.001,
    ack_delay_median_s=0.010,
    fill_delay_median_s=0.020,
    update_delay_sigma=0.3,
    reject_probability=0.002,
    partial_fill_probability=0.1,
    max_fills=3,
    price_noise=0.0005,
    accounts_per_connection=1,
    account_kind="virtual",
)
"""A fast, reliable in-house (paper-trading) broker: ~20 ms calls, tiny error rates, 3 s timeouts."""

REAL = BrokerProfile(
    name="real",
    latency_median_s=0.300,
    latency_sigma=0.5,
    tail_probability=0.04,
    tail_min_s=1.0,
    tail_alpha=1.5,
    max_latency_s=30.0,
    unavailable_probability=0.02,
    rate_limited_probability=0.01,
    rate_limited_retry_after_s=1.0,
    timeout_probability=0.005,
    timeout_after_success_probability=0.003,
    timeout_after_s=30.0,
    rate_limit_per_second=5.0,
    stream_disconnect_probability=0.01,
    ack_delay_median_s=0.250,
    fill_delay_median_s=1.5,
    update_delay_sigma=0.8,
    reject_probability=0.02,
    partial_fill_probability=0.3,
    max_fills=5,
    price_noise=0.002,
    accounts_per_connection=2,
    account_kind="linked",
)
"""A slow, failure-prone external broker: ~300 ms median, p99 ~8x that, a few % errors, 5 calls/s, 30 s timeouts."""

PROFILES: dict[str, BrokerProfile] = {VIRTUAL.name: VIRTUAL, REAL.name: REAL}
"""The ready profiles by name."""


def draw_latency(profile: BrokerProfile, rng: random.Random) -> float:
    """One call latency in seconds: lognormal body, Pareto tail with ``tail_probability``, capped."""
    if rng.random() < profile.tail_probability:
        value = profile.tail_min_s * rng.paretovariate(profile.tail_alpha)
    else:
        value = rng.lognormvariate(math.log(profile.latency_median_s), profile.latency_sigma)
    return min(value, profile.max_latency_s)


def draw_fault(profile: BrokerProfile, rng: random.Random) -> Fault | None:
    """The request fault for one call (one draw), or None for a normal call."""
    u = rng.random()
    for name, fault in _FAULTS:
        u -= getattr(profile, name)
        if u < 0:
            return fault
    return None
