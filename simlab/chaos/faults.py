"""Fault families: wrappers around the ports of a simulated trading world, planned per run from its seed.

How this works: ``plan_faults(scenario, seed)`` decides which families are on for one run and how hard
they hit. Without swarm mode every enabled family is on at its configured intensity. In swarm mode each
enabled family is switched wholly on or off by a fair coin and, when on, its intensity is scaled by a
uniform draw in [0, 1), so it lies between 0 and the configured value: its probabilities and rates; for
``redis`` its latencies and outage durations; for ``manager_crashes`` the count, drawn from 1 to the
configured number. Shapes (multipliers, pause and delay lengths, the after-success share) stay as
configured. The coins and
levels come from the stream ``faults/plan``, two draws per family of the schema whether enabled or not,
so switching one family never shifts another's draws, and no other component's draws move at all.

``install_faults(world, plan, scenario)`` runs right after the world is built, before the workload
starts, and swaps wrappers in for the ports the sagas use. Engine and saga code stay untouched: no
``if chaos:`` anywhere, only different objects behind the same ports. Every draw a family makes comes
from its own stream ``faults/<family>`` (``faults/<family>/<broker>`` per broker), so families never
shift one another. Faults strike from ``faults.start_after_s`` (0 unless set: a scenario whose
outage begins after its connections are made sets it). At ``faults.heal_after_s`` everything heals:
from then on (and before the start) every wrapper passes calls straight through. A per-call fault
that struck before the heal plays out (a timeout being waited for, a delayed event, a frozen
process); windowed faults (Redis outages, manager downtime, projection stalls) end by the heal.
Redis outages keep the instants the scenario gives them (an outage before the start never strikes).

What each family does:

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
``redis``
    The client behind locks, cache and ``safe_set`` is wrapped. Outage windows ``[start, start +
    duration)`` are exact in simulated time: a command issued inside one raises
    ``redis.exceptions.ConnectionError`` at once, and a command whose latency lands it inside one fails
    there. Latency is real: the wrapped client answers with an awaitable (as redis-py's asyncio client
    does), which every caller already resolves through ``sagas.infra.redis_io.resolve``; the awaitable
    sleeps the drawn latency before the command runs. One draw per round trip (a command, a WATCH-mode
    read, a pipeline's EXEC); buffered pipeline commands cost nothing until EXEC.
``process_pauses``
    A lock acquisition (a successful ``SET key value NX PX/EX``, alone or inside a transaction: the
    ``RedisLockManager``'s plain and fenced acquisitions and the seed's ``safe_set(..., nx=True)``
    alike) is followed, with ``probability``, by the saga's
    process freezing for ``pause_s`` while it holds the lock (a GC pause or a VM freeze). A frozen
    process's timers do not fire either: a deadline that falls due during the freeze is delivered when
    it thaws, as an overdue timer would be. So the lock's TTL can run out, another saga can take the
    lock, and the thawed saga carries on (or times out) believing it still holds it.
``manager_crashes``
    ``crashes`` times, at instants drawn uniformly between the start and the heal, the running manager dies:
    ``manager.stop()`` cancels every saga task, and while those unwind every port call they make
    (Redis, broker, command bus) is cancelled before it reaches the port, because a dead process's
    ``finally:`` blocks never reach the outside world: its locks stay held until their TTL. The
    manager's event subscriptions die with it; events published while it is down wait for it, as on a
    durable bus, since the platform keeps running. After ``restart_after_s`` a new manager is built on
    the same store, buses, locks, tracer and ids, the trading sagas are registered on it again (the
    platform's command and query handlers stay where they are), it ``recover()`` s the unfinished
    sagas and then receives the events that waited; it then keeps recovering every third of a lease
    until two leases after the heal (``SagaManager.keep_recovering``).
``event_delivery``
    Each published event is, with ``duplicate_probability``, delivered twice in a row (same event id)
    and, with ``delay_probability``, delivered ``delay_s`` later from a task of its own (the publisher
    does not wait), so it arrives after events published after it: reordered.
``projection_stalls``
    Each asynchronous projection stalls at the instants of a Poisson process whose rate is
    ``probability`` per simulated second, each time for ``stall_s``
    (``LaggingProjectionWorker.stall``); it then catches up in order.
``failing_compensations``
    A compensation attempt fails with ``probability``: the first port call it makes (broker, command
    bus, Redis) raises the port's own error (``BrokerUnavailable``, ``PlatformUnavailable``,
    ``ConnectionError``). A call is known to come from a compensation without touching saga code: the
    simulated process making it is a saga's task (tasks are named ``saga <id>``), and that saga's latest
    step-level trace record is a ``compensate``/``started``. A compensation that makes no port call
    cannot fail this way, as in production.
``overlapping_managers``
    ``overlaps`` times, at instants drawn uniformly between the start and the heal, a second manager
    starts on the same store, buses, Redis, trace and ids and calls ``recover()`` while the running
    one goes on: both then drive every saga the store holds as unfinished (a rolling deploy whose new
    instance recovers on start-up, or a recoverer started by hand). The newcomer is another node, so
    the engine's leases leave it only sagas whose lease ran out; without them the lab's
    ``no_step_applied_twice`` sees both managers run completed steps again. With ``pause_s`` above
    zero, the running manager cannot reach the saga store for that long from the overlap on (a long
    GC or VM pause as the store sees it, or a partition from the store): its lease renewals and state
    writes wait until it is over, while steps already under way go on (the harder case for the
    engine). The newcomer calls ``recover()`` again every third of a lease until then, so once the
    leases run out it takes the sagas over: split brain, which leases and fencing must make harmless
    (the paused manager's writes are refused when it thaws, and it stops).

``install_faults`` returns the run's fault windows (family, start, end, detail): an ``on`` window
``[start, heal)`` for each per-call family that is on (broker errors, latency spikes, timeouts, event
delivery, failing compensations, process pauses, and Redis latency when it is not zero), one window per
Redis outage, manager downtime and projection stall (all known at install), and one per process pause,
appended when it strikes. ``FaultWindows.injected`` counts the faults each family injected.

Limits: the wrappers assume the simulated runtime (``SimRuntime``): a saga's task is recognised by its
simpy process, and a dead process's calls are cancelled by that identity. ``SimWorld.new_manager`` builds
its bus as ``type(old.event_bus)()``, which a ``FaultyEventBus`` does not support; crashes restart the
manager themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError

from sagas.engine.buses import CommandBus, EventBus, Handler
from sagas.engine.errors import SagaError
from sagas.engine.events import Event
from sagas.engine.manager import SagaManager
from sagas.engine.ports import SagaStore
from sagas.engine.randomness import RandomStreams
from sagas.engine.trace import Tracer, TraceRecord
from sagas.infra.cache import CacheManager
from sagas.infra.locks import RedisLockManager
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
from sagas.trading.wiring import register_trading_sagas
from simlab.scenario.distributions import Distribution, Fixed
from simlab.scenario.model import PROJECTIONS, Faults, Scenario
from simlab.sim.brokers import BrokerCall
from simlab.sim.runtime import SimRuntime, SimTask
from simlab.sim.trading_world import TradingWorld

T = TypeVar("T")

FAMILIES: tuple[str, ...] = (
    "broker_errors",
    "latency_spikes",
    "broker_timeouts",
    "redis",
    "process_pauses",
    "manager_crashes",
    "event_delivery",
    "projection_stalls",
    "failing_compensations",
    "overlapping_managers",
)
"""Every fault family this module implements, in the schema's order (the order of the plan's draws)."""

DEFAULT_TIMEOUT_AFTER_S = 30.0
"""How long a timed-out call waits when the broker has no profile saying so."""


class PlatformUnavailable(SagaError):
    """The platform could not apply a command (its database refused the write); retrying may help."""


class FaultWindow(NamedTuple):
    """When a fault family was at work: ``[start, end)`` in simulated seconds, and what it did."""

    family: str
    start: float
    end: float
    detail: str = ""


class FaultWindows(list[FaultWindow]):
    """A run's fault windows (growing while the run goes on), and how many faults each family injected."""

    def __init__(self) -> None:
        super().__init__()
        self.injected: Counter[str] = Counter()


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPlan:
    """Which families are on for one run, each with the factor its rates are scaled by."""

    faults: Faults
    intensity: dict[str, float] = field(default_factory=dict)

    @property
    def start_after_s(self) -> float:
        """When faults begin to strike (simulated seconds)."""
        return self.faults.start_after_s

    @property
    def heal_after_s(self) -> float:
        """When every fault heals (simulated seconds)."""
        return self.faults.heal_after_s

    def is_on(self, family: str) -> bool:
        """Whether ``family`` is switched on for this run."""
        return family in self.intensity

    def scale(self, family: str) -> float:
        """The factor ``family``'s rates are scaled by (0 when it is off)."""
        return self.intensity.get(family, 0.0)

    def overlaps(self) -> int:
        """How many second managers this run starts (a swarm run draws 1..configured)."""
        return self._count("overlapping_managers", self.faults.overlapping_managers.overlaps)

    def crashes(self) -> int:
        """How many manager crashes this run has (a swarm run draws 1..configured)."""
        return self._count("manager_crashes", self.faults.manager_crashes.crashes)

    def _count(self, family: str, configured: int) -> int:
        # A counted family: off is none; on is the configured count, or in swarm mode 1..configured by intensity.
        if not self.is_on(family):
            return 0
        if not self.faults.swarm or configured == 0:
            return configured
        return min(configured, 1 + int(self.scale(family) * configured))


def plan_faults(scenario: Scenario, seed: int) -> FaultPlan:
    """The families on for the run of ``scenario`` seeded ``seed``, and their intensities."""
    faults = scenario.faults
    rng = RandomStreams(seed).stream("faults/plan")
    intensity: dict[str, float] = {}
    for name in FAMILIES:
        coin, level = rng.random(), rng.random()  # drawn for every family: toggling one never shifts another
        if not getattr(faults, name).enabled:
            continue
        if not faults.swarm:
            intensity[name] = 1.0
        elif coin < 0.5:
            intensity[name] = level
    return FaultPlan(faults, intensity)


# -- what the wrappers share -------------------------------------------------------------------


_ATTEMPT_PHASES = frozenset({"execute", "compensate", "retry"})


class _Activity:
    """Which saga the running simulated process belongs to, and what that saga is doing (from the trace)."""

    def __init__(self, runtime: SimRuntime, tracer: Tracer) -> None:
        self._runtime = runtime
        self._tracer = tracer
        self._tasks_seen = 0
        self._saga_of: dict[object, str] = {}
        self._records_seen = 0
        self._latest: dict[str, TraceRecord] = {}

    def saga(self) -> str | None:
        """The id of the saga whose task is running now, or None (the workload, a projection...)."""
        tasks = self._runtime.tasks
        if len(tasks) > self._tasks_seen:
            for task in tasks[self._tasks_seen :]:
                if task.name.startswith("saga "):
                    # The manager names each saga's task "saga <id>"; the process is the task's identity.
                    self._saga_of[task._process] = task.name[5:]
            self._tasks_seen = len(tasks)
        return self._saga_of.get(self._runtime.env.active_process)

    def compensation_attempt(self) -> tuple[str, str, int] | None:
        """(saga, step, attempt) if the running process is a saga inside a compensation attempt."""
        saga_id = self.saga()
        if saga_id is None:
            return None
        records = self._tracer.records
        if len(records) > self._records_seen:
            for record in records[self._records_seen :]:
                # Saga-level records may come from other processes (duplicates); poll and child-wait
                # records happen inside an attempt and do not end it.
                if record.phase in _ATTEMPT_PHASES:
                    self._latest[record.saga_id] = record
            self._records_seen = len(records)
        latest = self._latest.get(saga_id)
        if latest is None or latest.phase != "compensate" or latest.outcome != "started":
            return None
        return saga_id, str(latest.step), latest.attempt or 0


class _Context:
    """The clock, streams, windows and verdicts the wrappers of one run share."""

    def __init__(self, world: TradingWorld, plan: FaultPlan, windows: FaultWindows) -> None:
        self.runtime = world.sim.runtime
        self.streams = world.sim.streams
        self.plan = plan
        self.start = plan.start_after_s
        self.heal = plan.heal_after_s
        self.windows = windows
        self.activity = _Activity(world.sim.runtime, world.sim.tracer)
        self.dying: set[object] = set()  # processes of a crashed manager's sagas, still unwinding
        self._compensation_p = plan.faults.failing_compensations.probability * plan.scale("failing_compensations")
        self._compensation_rng = self.stream("failing_compensations")
        self._verdicts: dict[tuple[str, str, int], bool] = {}

    def stream(self, family: str, part: str | None = None) -> random.Random:
        """The stream of ``family`` (and of one ``part`` of it, e.g. a broker)."""
        return self.streams.stream(f"faults/{family}" if part is None else f"faults/{family}/{part}")

    def active(self) -> bool:
        """Whether faults strike now (from the start, before the heal)."""
        return self.start <= self.runtime.now() < self.heal

    def check_alive(self) -> None:
        """A dead process reaches no port: its call is cancelled, as the process itself was."""
        if self.dying and self.runtime.env.active_process in self.dying:
            raise asyncio.CancelledError()

    def injected(self, family: str) -> None:
        """Count one injected fault."""
        self.windows.injected[family] += 1

    def compensation_fails(self) -> bool:
        """Whether this port call is the one that fails the compensation attempt making it."""
        if self._compensation_p <= 0 or not self.active():
            return False
        attempt = self.activity.compensation_attempt()
        if attempt is None:
            return False
        verdict = self._verdicts.get(attempt)
        if verdict is None:
            verdict = self._compensation_rng.random() < self._compensation_p
        self._verdicts[attempt] = False  # the attempt's first port call decides; later ones go through
        if verdict:
            self.injected("failing_compensations")
        return verdict

    async def frozen_until(self, until: float) -> None:
        """Freeze the running process until ``until``: deadlines fall due only when it thaws.

        A deadline's cancellation (it carries its deadline) is held back and raised at the thaw; a
        task cancellation (a crash: it carries nothing) ends the freeze at once.
        """
        runtime = self.runtime
        overdue: asyncio.CancelledError | None = None
        while runtime.now() < until:
            try:
                await runtime.sleep(until - runtime.now())
            except asyncio.CancelledError as cancelled:
                if not cancelled.args:
                    raise
                overdue = cancelled
        if overdue is not None:
            raise overdue


# -- brokers -----------------------------------------------------------------------------------


class FaultyBroker:
    """A ``BrokerApi`` wrapper injecting broker errors, timeouts (after success too) and latency spikes."""

    def __init__(self, inner: BrokerApi, name: str, ctx: _Context) -> None:
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


# -- Redis -------------------------------------------------------------------------------------


class FaultyRedis:
    """A wrapper around the synchronous (simulated) Redis client: latency, exact outage windows, pauses.

    Every public method of the wrapped client is a command here. A command that needs to wait
    (latency, a pause, nothing else) returns an awaitable instead of its reply, as redis-py's asyncio
    client does; callers resolve replies with ``sagas.infra.redis_io.resolve`` either way.
    """

    def __init__(self, inner: Any, ctx: _Context) -> None:
        self.inner = inner
        self._ctx = ctx
        plan, faults = ctx.plan, ctx.plan.faults
        self._latency: Distribution | None = faults.redis.latency_s if plan.is_on("redis") else None
        self._latency_scale = plan.scale("redis")
        self._outages: list[tuple[float, float]] = []
        if plan.is_on("redis"):
            for window in faults.redis.outages:
                start = window.start_s
                end = min(start + window.duration_s * self._latency_scale, ctx.heal)
                if start < end:
                    self._outages.append((start, end))
        self._rng = ctx.stream("redis")
        self._pause_p = faults.process_pauses.probability * plan.scale("process_pauses")
        self._pause_s = faults.process_pauses.pause_s
        self._pause_rng = ctx.stream("process_pauses")

    @property
    def outages(self) -> list[tuple[float, float]]:
        """This run's outage windows ``[start, end)`` (scaled in swarm mode, clipped at the heal)."""
        return list(self._outages)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def command(*args: Any, **kwargs: Any) -> Any:
            lock = args[0] if name == "set" and kwargs.get("nx") and (kwargs.get("px") or kwargs.get("ex")) else None
            return self.round_trip(lambda: attr(*args, **kwargs), lock=lock)

        return command

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> FaultyPipeline:
        """A pipeline whose round trips (WATCH-mode commands, EXEC) go through this wrapper."""
        return FaultyPipeline(self.inner.pipeline(transaction, shard_hint), self)

    def round_trip(self, call: Callable[[], Any], *, lock: Any = None, acquired: Callable[[Any], bool] = bool) -> Any:
        """Run one round trip to the server: its reply, or an awaitable of it when it has to wait.

        ``lock`` names the lock key a ``SET NX`` in this round trip tries to take; ``acquired(reply)``
        says whether it did (a transaction's reply is a list: its SET's entry says).
        """
        ctx = self._ctx
        ctx.check_alive()
        if not ctx.active():
            return call()
        self._refuse_during_outage()
        if ctx.compensation_fails():
            raise RedisConnectionError("Error 111 connecting to redis: Connection refused.")
        delay = self._latency.draw(self._rng) * self._latency_scale if self._latency is not None else 0.0
        if delay > 0:
            return self._after(delay, call, lock, acquired)
        reply = call()
        if lock is not None and acquired(reply):
            pause = self._pause()
            if pause is not None:
                return self._paused(reply, lock, pause)
        return reply

    def _refuse_during_outage(self) -> None:
        now = self._ctx.runtime.now()
        for start, end in self._outages:
            if start <= now < end:
                self._ctx.injected("redis")
                raise RedisConnectionError(f"Error 111 connecting to redis: Connection refused (down until {end:g})")

    def _pause(self) -> float | None:
        if not self._pause_p or self._pause_rng.random() >= self._pause_p:
            return None
        return self._pause_s.draw(self._pause_rng)

    async def _after(self, delay: float, call: Callable[[], Any], lock: Any, acquired: Callable[[Any], bool]) -> Any:
        await self._ctx.runtime.sleep(delay)
        self._ctx.check_alive()
        self._refuse_during_outage()  # the server went down while the command was on its way
        reply = call()
        if lock is not None and acquired(reply):
            pause = self._pause()
            if pause is not None:
                return await self._paused(reply, lock, pause)
        return reply

    async def _paused(self, reply: Any, lock: Any, pause: float) -> Any:
        ctx = self._ctx
        start = ctx.runtime.now()
        saga = ctx.activity.saga() or "a process"
        key = lock.decode() if isinstance(lock, bytes) else str(lock)
        ctx.injected("process_pauses")
        ctx.windows.append(FaultWindow("process_pauses", start, start + pause, f"{saga} froze holding {key}"))
        await ctx.frozen_until(start + pause)
        return reply


class FaultyPipeline:
    """A redis-py pipeline whose round trips go through ``FaultyRedis.round_trip``."""

    _PASS_THROUGH = frozenset({"multi", "reset"})  # no round trip to fault (reset's UNWATCH is cleanup)

    def __init__(self, inner: Any, redis: FaultyRedis) -> None:
        self.inner = inner
        self._redis = redis
        self._lock: tuple[int, Any] | None = None  # a buffered lock SET NX: (its position, its key)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if name.startswith("_") or not callable(attr) or name in self._PASS_THROUGH:
            return attr

        def command(*args: Any, **kwargs: Any) -> Any:
            pipe = self.inner
            if name == "execute" and self._lock is not None:
                # A fenced lock acquisition (SET NX PX and INCR in one transaction): the pause
                # strikes after it, exactly as after a plain SET NX.
                position, key = self._lock
                self._lock = None
                return self._redis.round_trip(
                    lambda: attr(*args, **kwargs), lock=key, acquired=lambda reply: bool(reply[position])
                )
            if name in ("execute", "watch") or (pipe.watching and not pipe.explicit_transaction):
                return self._redis.round_trip(lambda: attr(*args, **kwargs))
            if name == "set" and kwargs.get("nx") and (kwargs.get("px") or kwargs.get("ex")):
                self._lock = (len(pipe.command_stack), args[0])
            attr(*args, **kwargs)  # buffered until EXEC
            return self

        return command


# -- buses -------------------------------------------------------------------------------------


class FaultyCommandBus(CommandBus):
    """A command bus wrapper: fails a compensation's commands, and a dead process's."""

    def __init__(self, inner: CommandBus, ctx: _Context) -> None:
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


class FaultyEventBus(EventBus):
    """An event bus on the same subscriptions as the one it replaces: duplicated and delayed delivery,
    and a manager's subscriptions dying with it (events for it wait until a new manager attaches)."""

    def __init__(self, inner: EventBus, ctx: _Context) -> None:
        super().__init__()
        self._subscribers = inner._subscribers  # the platform's, the read models', the manager's: all of them
        self._ctx = ctx
        plan, delivery = ctx.plan, ctx.plan.faults.event_delivery
        self._duplicate_p = delivery.duplicate_probability * plan.scale("event_delivery")
        self._delay_p = delivery.delay_probability * plan.scale("event_delivery")
        self._delay_s = delivery.delay_s
        self._rng = ctx.stream("event_delivery")
        self._dead: list[object] = []
        self._down_types: set[str] = set()
        self._backlog: list[Event] = []
        self._live: SagaManager | None = None

    async def publish(self, event: Event) -> None:
        ctx = self._ctx
        if not (self._duplicate_p or self._delay_p) or not ctx.active():
            await self._deliver(event)
            return
        duplicate = self._rng.random() < self._duplicate_p
        if self._rng.random() < self._delay_p:
            delay = self._delay_s.draw(self._rng)
            ctx.injected("event_delivery")
            ctx.runtime.spawn(self._later(event, delay, duplicate), name=f"delayed {event.event_type} {event.event_id}")
            return
        await self._deliver(event)
        if duplicate:
            ctx.injected("event_delivery")
            await self._deliver(event)

    async def _later(self, event: Event, delay: float, duplicate: bool) -> None:
        await self._ctx.runtime.sleep(delay)
        await self._deliver(event)
        if duplicate:
            self._ctx.injected("event_delivery")
            await self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        """``EventBus.publish``, except that a dead manager's handlers are skipped and the event kept for it."""
        name = type(event).__name__
        kept = name in self._down_types
        if kept:
            self._backlog.append(event)
        errors: list[Exception] = []
        for handler in tuple(self._subscribers.get(name, ())):
            owner = getattr(handler, "__self__", None)
            if owner is not None and any(owner is dead for dead in self._dead):
                # Subscribed when this delivery began; its manager died since.
                if not kept and self._live is None:
                    self._backlog.append(event)
                    kept = True
                elif not kept and self._live is not None:
                    errors.extend(await self._to_manager(self._live, event))
                    kept = True
                continue
            try:
                await handler(event)
            except Exception as error:  # noqa: BLE001 - re-raised below
                errors.append(error)
        _raise(errors, name)

    def detach(self, manager: SagaManager) -> None:
        """``manager`` died: drop its subscriptions; events it listened to wait for its successor."""
        self._dead.append(manager)
        self._live = None
        for name, handlers in self._subscribers.items():
            mine = [h for h in handlers if getattr(h, "__self__", None) is manager]
            if mine:
                self._down_types.add(name)
                handlers[:] = [h for h in handlers if getattr(h, "__self__", None) is not manager]

    async def attach(self, manager: SagaManager) -> int:
        """``manager`` took over: hand it the events that waited, in order; return how many."""
        self._live = manager
        self._down_types.clear()
        backlog, self._backlog = self._backlog, []
        errors: list[Exception] = []
        for event in backlog:
            errors.extend(await self._to_manager(manager, event))
        _raise(errors, "redelivered events")
        return len(backlog)

    async def _to_manager(self, manager: SagaManager, event: Event) -> list[Exception]:
        errors: list[Exception] = []
        for handler in tuple(self._subscribers.get(type(event).__name__, ())):
            if getattr(handler, "__self__", None) is manager:
                try:
                    await handler(event)
                except Exception as error:  # noqa: BLE001 - re-raised by the caller
                    errors.append(error)
        return errors


def _raise(errors: list[Exception], what: str) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ExceptionGroup(f"{len(errors)} subscribers of {what} failed", errors)


# -- manager crashes and projection stalls -----------------------------------------------------


def crash_schedule(plan: FaultPlan, seed: int) -> list[tuple[float, float]]:
    """The run's ``(crash, restart)`` instants: crashes uniform in ``[start, heal)``, one at a time, restarts by it.

    Drawn from the stream ``faults/manager_crashes`` of ``seed`` alone, so it is known before the run.
    """
    rng = RandomStreams(seed).stream("faults/manager_crashes")
    heal = plan.heal_after_s
    restart_after = plan.faults.manager_crashes.restart_after_s
    draws = sorted((rng.uniform(plan.start_after_s, heal), restart_after.draw(rng)) for _ in range(plan.crashes()))
    schedule: list[tuple[float, float]] = []
    up_at = 0.0
    for at, down_s in draws:
        at = max(at, up_at)
        if at >= heal:
            break
        up_at = min(at + down_s, heal)
        schedule.append((at, up_at))
    return schedule


async def _crash_and_restart(world: TradingWorld, ctx: _Context, bus: FaultyEventBus, at: float, up: float) -> None:
    runtime = ctx.runtime
    await runtime.sleep(at - runtime.now())
    old = world.manager
    # Its own tasks, not every task named after its sagas: another manager may drive one of the same id.
    tasks = [old.task_of(saga_id) for saga_id in old.running]
    ctx.dying.update(task._process for task in tasks if isinstance(task, SimTask) and not task.done())
    bus.detach(old)
    old.stop()
    ctx.injected("manager_crashes")
    await runtime.sleep(up - runtime.now())  # at least one scheduling turn: the dead sagas unwind first
    new = _another_manager(world, old, bus, old.node)  # the same node, restarted: it reclaims its leases
    world.sim.manager = new
    await new.recover()
    await bus.attach(new)
    # As a deployment would, it keeps recovering: a saga the dead manager still managed to create
    # (a call under way when it died) is taken over too. Until every fault and lease is over.
    until = ctx.heal + 2 * new.lease_seconds
    runtime.spawn(new.keep_recovering(new.lease_seconds / 3, until=until), name="fault: recovery rounds")


def _another_manager(world: TradingWorld, like: SagaManager, event_bus: EventBus, node: str) -> SagaManager:
    """A new manager process ``node`` on the run's store, buses, locks and trace, running the trading sagas."""
    sim = world.sim
    new = SagaManager(
        runtime=sim.runtime,
        store=sim.store,
        random_streams=sim.streams,
        command_bus=like.command_bus,
        query_bus=like.query_bus,
        event_bus=event_bus,
        locks=like.locks,
        tracer=sim.tracer,
        retain_finished=like.retain_finished,
        lease_seconds=like.lease_seconds,
        node=node,
    )
    register_trading_sagas(new, world.deps)
    return new


def overlap_schedule(plan: FaultPlan, seed: int) -> list[float]:
    """The instants a second manager calls ``recover()``: uniform in ``[start, heal)``, in order.

    Drawn from the stream ``faults/overlapping_managers`` of ``seed`` alone, so it is known before the run.
    """
    count = plan.overlaps()
    if not count:
        return []  # most runs: no stream to derive
    rng = RandomStreams(seed).stream("faults/overlapping_managers")
    return sorted(rng.uniform(plan.start_after_s, plan.heal_after_s) for _ in range(count))


def overlap_pauses(plan: FaultPlan, seed: int, count: int) -> list[float]:
    """How long the running manager cannot reach the store at each overlap (0: not at all).

    Drawn from the stream ``faults/overlapping_managers/pause`` of ``seed``, apart from the instants.
    """
    pause_s = plan.faults.overlapping_managers.pause_s
    if not count or (isinstance(pause_s, Fixed) and pause_s.value == 0):
        return [0.0] * count
    rng = RandomStreams(seed).stream("faults/overlapping_managers/pause")
    return [pause_s.draw(rng) for _ in range(count)]


class _UnreachableStore:
    """One manager's connection to the saga store while it cannot reach it: every call waits for ``thaw``."""

    def __init__(self, inner: SagaStore, runtime: SimRuntime, thaw: float) -> None:
        self.inner = inner
        self._runtime = runtime
        self._thaw = thaw

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)

        async def waits(*args: Any, **kwargs: Any) -> Any:
            now = self._runtime.now()
            if now < self._thaw:
                await self._runtime.sleep(self._thaw - now)
            return await call(*args, **kwargs)

        return waits


async def _overlaps(world: TradingWorld, ctx: _Context, schedule: Sequence[tuple[float, float]]) -> None:
    runtime = ctx.runtime
    for at, pause in schedule:
        await runtime.sleep(max(0.0, at - runtime.now()))
        # The running manager is not stopped: both now drive whatever the store holds as unfinished
        # (a rolling deploy whose new instance recovers on start-up, or a recoverer started by hand).
        # The newcomer is not subscribed to trigger events; it only takes over.
        running = world.manager
        other = _another_manager(world, running, running.event_bus, f"overlap-{len(world.sim.others) + 1}")
        world.sim.others.append(other)
        ctx.injected("overlapping_managers")
        if pause <= 0:
            await other.recover()
            continue
        thaw = at + pause
        reachable = running.store
        running.store = _UnreachableStore(reachable, runtime, thaw)
        await other.keep_recovering(other.lease_seconds / 3, until=thaw)
        running.store = reachable


async def _crashes(
    world: TradingWorld, ctx: _Context, bus: FaultyEventBus, schedule: Sequence[tuple[float, float]]
) -> None:
    for at, up in schedule:
        await _crash_and_restart(world, ctx, bus, at, up)


def _stall_schedule(ctx: _Context) -> list[tuple[float, str, float]]:
    """``(start, projection, end)`` of every stall: a Poisson process per projection, stalls ending by the heal."""
    family = ctx.plan.faults.projection_stalls
    rate = family.probability * ctx.plan.scale("projection_stalls")
    stalls: list[tuple[float, str, float]] = []
    if rate <= 0:
        return stalls
    for name in PROJECTIONS:
        rng = ctx.stream("projection_stalls", name)
        t = ctx.start + rng.expovariate(rate)
        while t < ctx.heal:
            stalls.append((t, name, min(t + family.stall_s.draw(rng), ctx.heal)))
            t += rng.expovariate(rate)
    return sorted(stalls)


async def _stalls(world: TradingWorld, ctx: _Context, stalls: list[tuple[float, str, float]]) -> None:
    runtime = ctx.runtime
    for start, name, end in stalls:
        await runtime.sleep(start - runtime.now())
        world.projections.stall(name, end)
        ctx.injected("projection_stalls")


# -- installing --------------------------------------------------------------------------------

_PER_CALL = ("broker_errors", "latency_spikes", "broker_timeouts", "event_delivery", "failing_compensations")


def install_faults(world: TradingWorld, plan: FaultPlan, scenario: Scenario) -> FaultWindows:
    """Wrap ``world``'s ports with the families ``plan`` switched on; return the run's fault windows.

    Call it right after the world is built, before the workload starts. Nothing is wrapped when no
    family is on (or faults heal at 0 s), so such runs are exactly the runs without faults.
    """
    windows = FaultWindows()
    heal = plan.heal_after_s
    if not plan.intensity or heal <= 0:
        return windows
    ctx = _Context(world, plan, windows)
    on = plan.is_on
    crashes = on("manager_crashes") and plan.crashes() > 0
    compensations = on("failing_compensations")
    deps, manager = world.deps, world.manager

    if crashes or compensations or any(on(f) for f in ("broker_errors", "latency_spikes", "broker_timeouts")):
        deps.brokers = {name: FaultyBroker(broker, name, ctx) for name, broker in deps.brokers.items()}
    if crashes or compensations or on("redis") or on("process_pauses"):
        redis = FaultyRedis(deps.redis, ctx)
        locks = RedisLockManager(redis)
        deps.redis, deps.cache, deps.locks = redis, CacheManager(redis), locks
        manager.locks = locks
        windows.extend(FaultWindow("redis", start, end, "outage") for start, end in redis.outages)
    if crashes or compensations:
        manager.command_bus = FaultyCommandBus(manager.command_bus, ctx)
    bus: FaultyEventBus | None = None
    if crashes or on("event_delivery"):
        bus = FaultyEventBus(manager.event_bus, ctx)
        manager.event_bus = bus
        world.platform.write.event_bus = bus

    for family in _PER_CALL:
        if on(family):
            windows.append(FaultWindow(family, ctx.start, heal, f"on at intensity {plan.scale(family):.3g}"))
    if on("process_pauses"):
        windows.append(
            FaultWindow("process_pauses", ctx.start, heal, f"on at intensity {plan.scale('process_pauses'):.3g}")
        )
    latency = scenario.faults.redis.latency_s
    if on("redis") and not (isinstance(latency, Fixed) and latency.value == 0):
        windows.append(FaultWindow("redis", ctx.start, heal, f"latency at intensity {plan.scale('redis'):.3g}"))
    if crashes and bus is not None:
        schedule = crash_schedule(plan, world.sim.seed)
        windows.extend(FaultWindow("manager_crashes", at, up, "manager down") for at, up in schedule)
        world.sim.runtime.spawn(_crashes(world, ctx, bus, schedule), name="fault: manager crashes")
    overlaps = overlap_schedule(plan, world.sim.seed)
    if overlaps:
        pauses = overlap_pauses(plan, world.sim.seed, len(overlaps))
        windows.extend(
            FaultWindow(
                "overlapping_managers",
                at,
                heal,
                "a second manager recovers while the first runs"
                + (f"; the first cannot reach the store for {pause:g} s" if pause > 0 else ""),
            )
            for at, pause in zip(overlaps, pauses, strict=True)
        )
        schedule = list(zip(overlaps, pauses, strict=True))
        world.sim.runtime.spawn(_overlaps(world, ctx, schedule), name="fault: overlapping managers")
    if on("projection_stalls"):
        stalls = _stall_schedule(ctx)
        windows.extend(FaultWindow("projection_stalls", start, end, f"{name} stalled") for start, name, end in stalls)
        if stalls:
            world.sim.runtime.spawn(_stalls(world, ctx, stalls), name="fault: projection stalls")
    return windows


__all__ = [
    "FAMILIES",
    "FaultPlan",
    "FaultWindow",
    "FaultWindows",
    "FaultyBroker",
    "FaultyCommandBus",
    "FaultyEventBus",
    "FaultyRedis",
    "PlatformUnavailable",
    "crash_schedule",
    "install_faults",
    "plan_faults",
]
