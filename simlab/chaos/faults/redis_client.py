"""Redis fault families (``redis``, ``process_pauses``) and the wrapper around the client behind locks and cache.

``redis``
    The client behind locks, cache and ``safe_set`` is wrapped. Outage windows ``[start, start +
    duration)`` are exact in simulated time: a command issued inside one raises
    ``redis.exceptions.ConnectionError`` at once, and a command whose latency lands it inside one fails
    there. Latency is real: the wrapped client answers with an awaitable (as redis-py's asyncio client
    does), which every caller already resolves through ``sagas.infra.redis_io.resolve``; the awaitable
    sleeps the drawn latency before the command runs. One draw per round trip (a command, a WATCH-mode
    read, a pipeline's EXEC); buffered pipeline commands cost nothing until EXEC. Outages keep the
    instants the scenario gives them (an outage before the start never strikes).
``process_pauses``
    A lock acquisition (a successful ``SET key value NX PX/EX``, alone or inside a transaction: the
    ``RedisLockManager``'s plain and fenced acquisitions and the seed's ``safe_set(..., nx=True)``
    alike) is followed, with ``probability``, by the saga's task freezing for ``pause_s`` while it
    holds the lock (a GC pause or a VM freeze). A frozen task's timers do not fire either: a deadline
    that falls due during the freeze is delivered when it thaws, as an overdue timer would be. So the
    lock's TTL can run out, another saga can take the lock, and the thawed saga carries on (or times
    out) believing it still holds it. Each pause adds its own window when it strikes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from simlab.chaos.faults.context import FaultContext
from simlab.chaos.faults.family import FaultFamily, WrappedPorts
from simlab.chaos.faults.windows import FaultWindow
from simlab.scenario.distributions import Distribution, Fixed
from simlab.scenario.faults import ProcessPauses, RedisFaults


class RedisFamily(FaultFamily):
    name = "redis"
    schema = RedisFaults
    ports = ("redis",)
    streams = ("faults/redis",)

    def down_windows(self, ctx: FaultContext, ports: WrappedPorts) -> list[FaultWindow]:
        """One window per outage (scaled in swarm mode, clipped at the heal)."""
        outages = ports.redis.outages if ports.redis is not None else []
        return [FaultWindow(self.name, start, end, "outage") for start, end in outages]

    def on_window(self, ctx: FaultContext) -> FaultWindow | None:
        """Its latency's window, unless the latency is zero."""
        latency = ctx.plan.faults.redis.latency_s
        if isinstance(latency, Fixed) and latency.value == 0:
            return None
        return FaultWindow(self.name, ctx.start, ctx.heal, f"latency at intensity {ctx.plan.scale(self.name):.3g}")


class ProcessPausesFamily(FaultFamily):
    name = "process_pauses"
    schema = ProcessPauses
    ports = ("redis",)
    streams = ("faults/process_pauses",)
    per_call = True


class FaultyRedis:
    """A wrapper around the synchronous (simulated) Redis client: latency, exact outage windows, pauses.

    Every public method of the wrapped client is a command here. A command that needs to wait
    (latency, a pause, nothing else) returns an awaitable instead of its reply, as redis-py's asyncio
    client does; callers resolve replies with ``sagas.infra.redis_io.resolve`` either way.
    """

    def __init__(self, inner: Any, ctx: FaultContext) -> None:
        self.inner = inner
        self._ctx = ctx
        plan, faults = ctx.plan, ctx.plan.faults
        self._latency: Distribution | None = faults.redis.latency_s if plan.is_on("redis") else None
        self._latency_scale = plan.scale("redis")
        self._outages: list[tuple[float, float]] = []
        self._outage_labels: list[str] = []  # each outage's name as a strike: its place in the scenario's list
        if plan.is_on("redis"):
            for number, window in enumerate(faults.redis.outages, 1):
                start = window.start_s
                end = min(start + window.duration_s * self._latency_scale, ctx.heal)
                label = f"redis/outage#{number}"
                if start < end and ctx.allows(label):
                    self._outages.append((start, end))
                    self._outage_labels.append(label)
        self._outages_struck: set[str] = set()
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
        for (start, end), label in zip(self._outages, self._outage_labels, strict=True):
            if start <= now < end:
                if label in self._outages_struck:
                    self._ctx.injected("redis")  # another command refused by an outage already recorded
                else:  # the outage's first refusal: when it struck, as the run's schedule records it
                    self._outages_struck.add(label)
                    self._ctx.struck("redis", label, f"down until {end:g}")
                raise RedisConnectionError(f"Error 111 connecting to redis: Connection refused (down until {end:g})")

    def _pause(self) -> float | None:
        if not self._pause_p or self._pause_rng.random() >= self._pause_p:
            return None
        pause = self._pause_s.draw(self._pause_rng)  # drawn even if left out: its stream keeps its place
        return pause if self._ctx.strike("process_pauses", detail=f"{pause:.3g} s") else None

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
