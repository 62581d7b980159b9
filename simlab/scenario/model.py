"""The scenario schema: pydantic models that forbid unknown keys, validated once at the edge.

A scenario names its workload, brokers, projection lag, bus latency, fault
families (their schemas are in ``simlab.scenario.faults``), saga configuration
(timeouts, retries, the seed-vs-safe switches), horizon, invariants, and
defaults for the number of runs and the root seed.
After validation it is plain immutable data; the runner reads it in hot loops.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sagas.engine.retry import RetryConfig
from sagas.trading.config import DEFAULT_TIMEOUTS_SECONDS, SagaConfig, SagaVariants
from sagas.trading.wiring import saga_step_names
from simlab.evidence.invariants import INVARIANTS as REGISTERED_INVARIANTS
from simlab.evidence.reach import REACH_PATHS
from simlab.scenario.distributions import Distribution, Fixed, NonNegative, Positive
from simlab.scenario.faults import Faults
from simlab.scenario.limits import MAX_EVENTS, MAX_RUNS, MAX_USERS, MAX_WORKLOAD_SAGAS, cut, shown
from simlab.scenario.strict import Probability, Strict, known
from simlab.sim.brokers import PROFILES
from simlab.sim.orderings import STRATEGY_FORMAT, parse_strategy

SAGA_TYPES: tuple[str, ...] = tuple(DEFAULT_TIMEOUTS_SECONDS)
STEP_NAMES: dict[str, tuple[str, ...]] = saga_step_names()
BROKER_PROFILES: tuple[str, ...] = tuple(PROFILES)
PROJECTIONS: tuple[str, ...] = ("accounts",)
INVARIANTS: tuple[str, ...] = tuple(REGISTERED_INVARIANTS)
Variant = Literal["seed", "safe"]


NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
"""A scenario's name: it names its results folder and a line of ``batch.txt``, so no path separator,
dot-dot or newline can be in it."""


# -- workload ----------------------------------------------------------------------------------


class Cycles(Strict):
    """Connect, disconnect and reconnect cycles of each user's connection."""

    count: int = Field(default=1, ge=0, le=MAX_EVENTS)
    connect_to_disconnect_s: Distribution = Fixed(dist="fixed", value=2.0)
    disconnect_to_reconnect_s: Distribution = Fixed(dist="fixed", value=1.0)
    between_cycles_s: Distribution = Fixed(dist="fixed", value=0.0)
    end_connected: bool = True  # false: the last cycle's disconnect stands (no reconnect after it)


class UserDeletions(Strict):
    """Users who delete their account after their cycles."""

    probability: Probability = 0.0
    after_s: Distribution = Fixed(dist="fixed", value=5.0)


class ConnectionFailures(Strict):
    """Connections whose broker session fails (a ``BrokerConnectionFailed``, which starts recovery)."""

    probability: Probability = 0.0
    at_s: Distribution = Fixed(dist="fixed", value=5.0)
    requires_user_action_probability: Probability = 0.0


class Orders(Strict):
    """Orders each user places on a connected account."""

    per_user: int = Field(default=0, ge=0, le=MAX_EVENTS)
    gap_s: Distribution = Fixed(dist="fixed", value=1.0)
    quantity_min: int = Field(default=1, ge=1)
    quantity_max: int = Field(default=10, ge=1)
    take_profit_pct: Positive | None = None
    stop_loss_pct: Positive | None = None

    @model_validator(mode="after")
    def _quantities(self) -> Orders:
        if self.quantity_max < self.quantity_min:
            raise ValueError(f"quantity_max ({self.quantity_max}) must be >= quantity_min ({self.quantity_min})")
        return self


class Workload(Strict):
    """Who does what, and when."""

    users: int = Field(default=1, ge=1, le=MAX_USERS)
    brokers: tuple[str, ...] = ("alpaca",)
    user_start_gap_s: Distribution = Fixed(dist="fixed", value=0.0)
    cycles: Cycles = Cycles()
    user_deletions: UserDeletions = UserDeletions()
    orders: Orders = Orders()
    connection_failures: ConnectionFailures = ConnectionFailures()
    only_users: tuple[int, ...] | None = None
    """Only these users (by index, from 0) live; None: all. The others' start gaps are still drawn and
    every user's own gaps come from a stream of its own, so a kept user starts when it would have (the
    streams users share, bus and broker latencies, still move):
    what ``simlab shrink`` writes when a failure needs some users but not the ones before them."""

    @model_validator(mode="after")
    def _only_users(self) -> Workload:
        chosen = self.only_users
        wrong = not chosen or list(chosen) != sorted(set(chosen)) or any(not 0 <= i < self.users for i in chosen)
        if chosen is not None and wrong:
            raise ValueError(
                f"only_users must be at least one increasing user index below users ({self.users}), each once; "
                f"got {shown(list(chosen))}"
            )
        return self

    @model_validator(mode="after")
    def _size(self) -> Workload:
        # Each user connects every broker once, and again each cycle after a disconnection, and places
        # its orders: what one run holds in memory grows with these sagas (and their traces).
        sagas = self.users * (len(self.brokers) * (1 + 2 * self.cycles.count) + self.orders.per_user)
        if sagas > MAX_WORKLOAD_SAGAS:
            raise ValueError(
                f"starts about {sagas:,} sagas per run (users x (brokers x (1 + 2 x cycles.count) + "
                f"orders.per_user)); the limit is {MAX_WORKLOAD_SAGAS:,}"
            )
        return self


# -- the world around the sagas ---------------------------------------------------------------


class BrokerSpec(Strict):
    """One broker: its profile (``virtual`` or ``real``), whether connections to it are virtual, and how
    its market moves (a seeded random walk of each symbol's price; 0: prices stay at the reference)."""

    profile: str
    virtual: bool = False
    volatility_per_sqrt_s: NonNegative = 0.0

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        return known("broker profile", value, BROKER_PROFILES)


class LagSpec(Strict):
    """Lag of one asynchronous projection."""

    median_lag_s: NonNegative = 0.05
    lag_sigma: NonNegative = 0.8
    stall_probability: Probability = 0.0
    stall_s: NonNegative = 5.0


class BusLatency(Strict):
    """Database round trips behind commands and queries (lognormal medians, seconds)."""

    command_median_s: NonNegative = 0.002
    query_median_s: NonNegative = 0.002
    sigma: NonNegative = 0.5


# -- saga configuration ------------------------------------------------------------------------


class RetrySpec(Strict):
    """A retry policy (the fields of ``RetryConfig``)."""

    max_attempts: int = Field(default=3, ge=1, le=MAX_EVENTS)
    initial_delay_ms: NonNegative = 1000.0
    max_delay_ms: NonNegative = 30000.0
    backoff_factor: Annotated[float, Field(ge=1)] = 2.0
    jitter: Literal["none", "full", "equal", "decorrelated"] = "none"
    retry_budget_ms: NonNegative | None = None

    @model_validator(mode="after")
    def _cap(self) -> RetrySpec:
        if self.max_delay_ms < self.initial_delay_ms:
            raise ValueError(
                f"max_delay_ms ({self.max_delay_ms}) must be >= initial_delay_ms ({self.initial_delay_ms})"
            )
        return self

    def to_config(self) -> RetryConfig:
        """The engine's value object."""
        return RetryConfig(
            max_attempts=self.max_attempts,
            initial_delay_ms=self.initial_delay_ms,
            max_delay_ms=self.max_delay_ms,
            backoff_factor=self.backoff_factor,
            jitter=self.jitter,
            retry_budget_ms=self.retry_budget_ms,
        )


class StepSpec(Strict):
    """Overrides for one step: its deadline and its retry policy."""

    timeout_s: Positive | None = None
    retry: RetrySpec | None = None


class Variants(Strict):
    """The seed-vs-safe switches (see ``sagas.trading.config.SagaVariants``)."""

    disconnect_lock: Variant = "seed"
    child_wait: Variant = "seed"
    purge: Variant = "seed"


SEED_POLL = RetrySpec(max_attempts=5, initial_delay_ms=500, max_delay_ms=2000, backoff_factor=1.5, jitter="full")


class SagaSettings(Strict):
    """Timeouts, retries and variants of the trading sagas."""

    variants: Variants = Variants()
    timeouts_s: dict[str, Positive] = Field(default_factory=dict)
    steps: dict[str, StepSpec] = Field(default_factory=dict)
    consistency_retry: RetrySpec = SEED_POLL
    lock_ttl_s: Positive = 300.0
    child_wait_timeout_s: Positive = 120.0

    @field_validator("timeouts_s")
    @classmethod
    def _saga_types(cls, value: dict[str, float]) -> dict[str, float]:
        for saga_type in value:
            known("saga type", saga_type, SAGA_TYPES)
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: dict[str, StepSpec]) -> dict[str, StepSpec]:
        for key in value:
            saga_type, _, step = key.partition(".")
            known("saga type", saga_type, SAGA_TYPES)
            if not step:
                raise ValueError(f"step key {shown(key)} must be 'SagaType.step_name'")
            known(f"step of {saga_type}", step, STEP_NAMES[saga_type])
        return value

    def to_config(self) -> SagaConfig:
        """The trading sagas' configuration."""
        timeouts = {**DEFAULT_TIMEOUTS_SECONDS, **self.timeouts_s}
        overrides = {
            key: (spec.timeout_s, spec.retry.to_config() if spec.retry else None) for key, spec in self.steps.items()
        }
        return SagaConfig(
            timeouts_seconds=timeouts,
            variants=SagaVariants(self.variants.disconnect_lock, self.variants.child_wait, self.variants.purge),
            consistency_retry=self.consistency_retry.to_config(),
            lock_ttl_seconds=self.lock_ttl_s,
            child_wait_timeout_seconds=self.child_wait_timeout_s,
            step_overrides=overrides,
        )


# -- what to expect -----------------------------------------------------------------------------

Expectation = Literal["clean"] | tuple[str, ...]
"""``clean`` (no invariant violated in any run), or the invariants expected to be violated (and no other)."""


class Expect(Strict):
    """What a batch should show with every variant switch on ``seed``, and with every one on ``safe``.

    ``seed: [no_orphans, no_data_loss]`` says the all-seed variants are expected to violate exactly
    those invariants (each in some run); ``safe: clean`` that the all-safe variants violate none.
    A scenario run with mixed variants has no expectation.
    """

    seed: Expectation | None = None
    safe: Expectation | None = None

    @field_validator("seed", "safe", mode="before")
    @classmethod
    def _invariants(cls, value: object) -> object:
        if value is None or value == "clean":
            return value
        if not isinstance(value, list | tuple) or not all(isinstance(name, str) for name in value):
            raise ValueError(f"expected clean or a list of invariant names, got {shown(value)}")
        if not value:
            raise ValueError("an empty list expects nothing to be violated: write clean")
        for name in value:
            known("invariant", name, INVARIANTS)
        if len(set(value)) != len(value):
            raise ValueError(f"lists an invariant twice: {', '.join(value)}")
        return tuple(value)


# -- orderings at equal timestamps ---------------------------------------------------------------


MIN_QUANTUM_MS, MAX_QUANTUM_MS = 0.001, 60_000.0
"""A quantum finer than a microsecond cannot move a clock hours in; one longer than a minute empties a run."""


class Orderings(Strict):
    """How events due at the same simulated instant are ordered (``simlab.sim.orderings``)."""

    strategy: str = "fifo"
    """``fifo`` (simpy's own order, the default), ``random``, ``pct:D`` or ``pct:D:K``."""
    quantum_ms: NonNegative = 0.0
    """Round every future due time up to a multiple of this many milliseconds, so that ties occur (0: off)."""
    choices: tuple[tuple[int, int], ...] = ()
    """Recorded non-FIFO choices as ``(choice point, index)`` pairs, replayed exactly (with ``fifo`` only):
    what ``simlab shrink`` writes for a run whose failure needs an ordering."""

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        try:
            parse_strategy(value)
        except ValueError:
            raise ValueError(f"expected {STRATEGY_FORMAT}, got {shown(value)}") from None
        return value

    @field_validator("quantum_ms")
    @classmethod
    def _quantum(cls, value: float) -> float:
        if value and not MIN_QUANTUM_MS <= value <= MAX_QUANTUM_MS:
            raise ValueError(
                f"expected 0 (off) or a grain between {MIN_QUANTUM_MS:g} and {MAX_QUANTUM_MS:g} ms, got {shown(value)}"
            )
        return value

    @field_validator("choices")
    @classmethod
    def _choices(cls, value: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        points = [point for point, _index in value]
        if any(point < 1 or index < 1 for point, index in value):
            raise ValueError(f"a choice is (choice point >= 1, index >= 1), got {shown(value)}")
        if points != sorted(set(points)):
            raise ValueError(f"choice points must be increasing, each once, got {shown(points)}")
        return value

    @model_validator(mode="after")
    def _replayed_with_fifo(self) -> Orderings:
        if self.choices and self.strategy != "fifo":
            raise ValueError(f"recorded choices replay with strategy fifo only, not {shown(self.strategy)}")
        return self


# -- the scenario ------------------------------------------------------------------------------


class Scenario(Strict):
    """One scenario file."""

    name: str
    """Lower-case letters, digits, ``_`` and ``-``, at most 64 (``NAME_PATTERN``)."""
    runs: int = Field(default=1000, ge=1, le=MAX_RUNS)
    seed: int = Field(default=0, ge=0)
    run_seeds: tuple[Annotated[int, Field(ge=0, lt=2**64)], ...] | None = None
    """The seeds of the runs themselves, run ``i`` seeded with ``run_seeds[i]`` (None: derived from ``seed``,
    ``simlab.batch.runner.run_seed``). A repro written by ``simlab shrink`` lists its failing run's seed, so
    ``simlab run`` on it runs that very run; a batch then has at most this many runs."""
    horizon_s: Positive = 900.0
    workload: Workload = Workload()
    brokers: dict[str, BrokerSpec] = Field(default_factory=lambda: {"alpaca": BrokerSpec(profile="real")})
    projections: dict[str, LagSpec] = Field(default_factory=lambda: {"accounts": LagSpec()})
    bus_latency: BusLatency = BusLatency()
    faults: Faults = Faults()
    orderings: Orderings = Orderings()
    sagas: SagaSettings = SagaSettings()
    invariants: tuple[str, ...] = INVARIANTS
    expect: Expect = Expect()
    reach: tuple[str, ...] = ()
    """Engine paths (``simlab.evidence.reach.REACH_PATHS``) the scenario's question needs: a batch in which
    no run reached one of them is flagged by ``simlab.present.summary.reach_table``."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(
                "a scenario name is 1 to 64 lower-case letters, digits, _ or -, starting with a letter or digit "
                f"(it names the results folder) (got {shown(value)})"
            )
        return value

    @field_validator("projections")
    @classmethod
    def _projections(cls, value: dict[str, LagSpec]) -> dict[str, LagSpec]:
        for name in value:
            known("projection", name, PROJECTIONS)
        return value

    @field_validator("invariants")
    @classmethod
    def _invariants(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            known("invariant", name, INVARIANTS)
        return value

    @field_validator("reach")
    @classmethod
    def _reach(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            known("engine path", name, REACH_PATHS)
        return value

    @model_validator(mode="after")
    def _runs_seeded(self) -> Scenario:
        if self.run_seeds is not None and not 1 <= self.runs <= len(self.run_seeds):
            raise ValueError(
                f"runs is {self.runs} but run_seeds lists {len(self.run_seeds)} seed(s): a batch of this scenario "
                f"has at most {len(self.run_seeds)} run(s)"
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        for broker in self.workload.brokers:
            if broker not in self.brokers:
                raise ValueError(
                    f"workload.brokers names broker {shown(broker)}, which brokers does not define "
                    f"(defined: {', '.join(cut(name) for name in self.brokers) or 'none'})"
                )
        for variant in ("seed", "safe"):
            expected = getattr(self.expect, variant)
            unchecked = (
                [name for name in expected if name not in self.invariants] if isinstance(expected, tuple) else []
            )
            if unchecked:
                raise ValueError(
                    f"expect.{variant} names {', '.join(unchecked)}, which this scenario does not check "
                    f"(its invariants: {', '.join(self.invariants)})"
                )
        if self.faults.heal_after_s > self.horizon_s:
            raise ValueError(
                f"faults.heal_after_s ({self.faults.heal_after_s}) must be <= horizon_s ({self.horizon_s}) "
                "so that liveness can be judged after faults heal"
            )
        return self


def seeding_problem(scenario: Scenario, runs: int, seed: int | None, runs_flag: str = "--runs") -> str | None:
    """Why a batch of ``runs`` runs of ``scenario`` from root seed ``seed`` (None: its own) cannot be made, or
    None: a scenario that lists its runs' own seeds (``run_seeds``) takes no root seed, nor more runs."""
    listed = scenario.run_seeds
    if listed is None:
        return None
    if seed is not None:
        return f"--seed {seed}: scenario {scenario.name!r} lists its runs' own seeds (run_seeds)"
    if runs > len(listed):
        return (
            f"{runs_flag} {runs}: scenario {scenario.name!r} lists {len(listed)} run seed(s) (run_seeds), so a "
            f"batch of it has at most {len(listed)} run(s)"
        )
    return None
