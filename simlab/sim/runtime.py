"""The simulated runtime: simpy steps the saga coroutines directly, no asyncio loop.

How this works: a coroutine is handed to ``simpy.Environment.process`` as if
it were a generator (simpy only calls ``send`` and ``throw``). Every await the
engine makes bottoms out in ``_wait(event)``, a generator-based awaitable that
yields a simpy event up through the coroutine chain; when the event fires,
simpy sends its value back in. Deadlines are watched by a simpy timer per
process whose callback interrupts the waiting process; ``_wait`` turns that interrupt into
``asyncio.CancelledError`` at the coroutine's current await, so ``finally:``
blocks run exactly as on asyncio (``CancelledError`` is only the exception
class here; no event loop exists). An interrupt that arrives after its
deadline was already disarmed (both fell due at the same instant) is ignored.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

import simpy
from simpy.core import URGENT

from sagas.engine.errors import DeadlineExceeded
from sagas.engine.retry import clear_step_ambient

T = TypeVar("T")


class _Deadline:
    """One ``run_with_deadline`` scope: due at ``at``; disarmed when the scope exits."""

    __slots__ = ("armed", "at", "fired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.armed = True
        self.fired = False


class _UrgentTimeout(simpy.Event):
    """``simpy.Timeout`` at URGENT priority: it fires before any ordinary event due at the same instant.

    simpy has no public way to schedule an already-succeeded event at URGENT priority in the
    future (``succeed()`` schedules now, ``Timeout`` at NORMAL), so this does what ``Timeout``'s
    own constructor does, with the other priority.
    """

    def __init__(self, env: simpy.Environment, delay: float) -> None:
        super().__init__(env)
        self._ok, self._value = True, None
        env.schedule(self, URGENT, delay)


class _ProcessDeadlines:
    """The deadlines armed in one process, watched by a single simpy timer.

    One timer per process (set for the earliest armed deadline) instead of one
    per scope: deadlines are usually far longer than the work they guard, and a
    timer per attempt would leave thousands of stale entries in simpy's queue,
    making every event cost more. When the timer falls due it fires the
    outermost deadline that is due (as nested asyncio timeouts would: the outer
    scope's cancellation unwinds the inner ones), or re-arms for the earliest
    armed deadline if the one it was set for has since been disarmed.
    """

    __slots__ = ("armed", "env", "process", "timer", "timer_at")

    def __init__(self, env: simpy.Environment, process: simpy.Process) -> None:
        self.env = env
        self.process = process
        self.armed: list[_Deadline] = []
        self.timer: simpy.Event | None = None
        self.timer_at = float("inf")

    def arm(self, deadline: _Deadline) -> None:
        self.armed.append(deadline)
        if deadline.at < self.timer_at:
            self._set_timer(deadline.at)

    def disarm(self, deadline: _Deadline) -> None:
        deadline.armed = False
        armed = self.armed
        if armed and armed[-1] is deadline:
            armed.pop()
        else:
            armed.remove(deadline)

    def _set_timer(self, at: float) -> None:
        # URGENT: a deadline falls before any ordinary event due at the same instant, whenever
        # the timer was (re)armed, so work ending exactly at its deadline always times out (as
        # on asyncio, whose timeout handle is scheduled before the work it guards).
        env = self.env
        timer = _UrgentTimeout(env, at - env.now)
        timer.callbacks.append(self._on_timer)
        self.timer, self.timer_at = timer, at

    def _on_timer(self, event: simpy.Event) -> None:
        if event is not self.timer:
            return  # superseded by an earlier deadline's timer
        self.timer, self.timer_at = None, float("inf")
        if not self.armed or not self.process.is_alive:
            return
        now = self.env.now
        for deadline in self.armed:  # outermost first
            if not deadline.fired and deadline.at <= now:
                deadline.fired = True
                self.process.interrupt(asyncio.CancelledError(deadline))
                break
        # Keep watching the rest: an outer deadline still holds while the inner scope unwinds.
        pending = [d.at for d in self.armed if not d.fired]
        if pending:
            self._set_timer(max(min(pending), now))


@types.coroutine
def _wait(event: simpy.Event) -> Generator[simpy.Event, Any, Any]:
    """Await a simpy event; deliver deadline/task cancellation as ``CancelledError``."""
    while True:
        try:
            return (yield event)
        except simpy.Interrupt as interrupt:
            cause = interrupt.cause
            if isinstance(cause, asyncio.CancelledError):
                token = cause.args[0] if cause.args else None
                if isinstance(token, _Deadline) and not token.armed:
                    continue  # stale: its scope already ended; keep waiting on the same event
                raise cause from None
            raise


class _InContext:
    """A coroutine as simpy drives it (``send``/``throw``), every step run inside one ``Context``."""

    __slots__ = ("_coroutine", "send", "throw")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], context: contextvars.Context) -> None:
        self._coroutine = coroutine
        # NOTE: partials of Context.run are C calls; a Python method here would cost a frame per resume.
        run: Any = context.run
        self.send = functools.partial(run, coroutine.send)
        self.throw = functools.partial(run, coroutine.throw)

    @property
    def __name__(self) -> str:  # simpy names a process after its generator
        return str(getattr(self._coroutine, "__name__", "task"))

    @property
    def gi_frame(self) -> Any:  # simpy describes the frame of a process that yields a bad value
        return getattr(self._coroutine, "cr_frame", None)


class SimTask:
    """A ``TaskHandle`` over a simpy process running a coroutine (in its own copy of the spawner's context)."""

    __slots__ = ("_env", "_exception", "_observed", "_on_start", "_process", "_result", "name")

    def __init__(
        self,
        env: simpy.Environment,
        coroutine: Coroutine[Any, Any, Any],
        name: str,
        on_start: Callable[[SimTask], None] | None = None,
    ) -> None:
        self._env = env
        self.name = name
        self._on_start = on_start
        self._result: Any = None
        self._exception: BaseException | None = None
        self._observed = False
        steps = _InContext(self._guard(coroutine), contextvars.copy_context())
        self._process = env.process(steps)  # type: ignore[arg-type]

    async def _guard(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        # simpy starts a process with an URGENT event, ahead of events already due now;
        # asyncio runs a new task after them. A zero delay puts the start in FIFO order too.
        try:
            await _wait(self._env.timeout(0))
        except asyncio.CancelledError as cancelled:
            coroutine.close()  # cancelled before it started, as asyncio does
            self._exception = cancelled
            return
        if self._on_start is not None:
            self._on_start(self)  # in the task's own context, before its first step
        try:
            self._result = await coroutine
        except (Exception, asyncio.CancelledError) as error:  # noqa: BLE001 - kept for join(); see unobserved_errors
            self._exception = error
        # Anything else (KeyboardInterrupt, SystemExit, GeneratorExit) is not the task's failure but the
        # process being stopped: it propagates out of the simulation instead of being recorded as a result.

    def join(self) -> Any:
        """Wait for the task; return its result or raise its exception (on every join)."""
        return self._join()

    async def _join(self) -> Any:
        await _wait(self._process)
        if self._exception is not None:
            self._observed = True
            raise self._exception
        return self._result

    def cancel(self) -> None:
        """Throw ``CancelledError`` into the task at its current await."""
        process = self._process
        if not process.is_alive:
            return
        if process is self._env.active_process:
            # A task cancelling itself: simpy cannot interrupt the running process, so the
            # cancellation lands at its next wait, as on asyncio.
            self._env.timeout(0).callbacks.append(lambda _event: self.cancel())
            return
        process.interrupt(asyncio.CancelledError())

    def done(self) -> bool:
        """Whether the task has finished."""
        return not self._process.is_alive

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the task ends (nothing if it has already ended).

        It runs as the task's process finishes, among the callbacks of those joining it; it must
        only take note (schedule nothing), so that watching a task never changes the simulation.
        """
        callbacks = self._process.callbacks
        if callbacks is not None:
            callbacks.append(lambda _event: callback())

    def result(self) -> Any:
        """The finished task's return value (raises its exception if it failed)."""
        if not self.done():
            raise RuntimeError(f"task {self.name!r} has not finished")
        if self._exception is not None:
            raise self._exception
        return self._result

    @property
    def exception(self) -> BaseException | None:
        """The exception the task ended with, if nobody joined it."""
        return None if self._observed else self._exception


class SimEvent:
    """A one-shot event over a simpy event."""

    __slots__ = ("_event",)

    def __init__(self, env: simpy.Environment) -> None:
        self._event = env.event()

    def set(self, value: Any = None) -> None:
        """Wake every waiter with ``value``; later calls are ignored."""
        if not self._event.triggered:
            self._event.succeed(value)

    def is_set(self) -> bool:
        """Whether ``set`` has been called."""
        return bool(self._event.triggered)

    def wait(self) -> Any:
        """Wait until set; return its value."""
        return _wait(self._event)


class SimRuntime:
    """The engine's runtime port on a simpy environment (simulated seconds)."""

    def __init__(self, env: simpy.Environment | None = None) -> None:
        self.env = env if env is not None else simpy.Environment()
        self.tasks: list[SimTask] = []
        self._task_of: dict[simpy.Process, SimTask] = {}
        self._deadlines: dict[simpy.Process, _ProcessDeadlines] = {}
        self.on_task_start: Callable[[SimTask], None] | None = None
        """Called in each task's context as it starts, before its first step (``simlab.sim.keyed`` uses it)."""

    def now(self) -> float:
        """Simulated seconds."""
        return float(self.env.now)

    def sleep(self, seconds: float) -> Any:
        """Wait ``seconds`` of simulated time (a negative wait is no wait, as on asyncio)."""
        return _wait(self.env.timeout(seconds if seconds > 0 else 0))

    async def run_with_deadline(self, awaitable: Coroutine[Any, Any, T], timeout_seconds: float) -> T:
        """Run ``awaitable`` in this process; cancel it at the deadline and raise ``DeadlineExceeded``."""
        env = self.env
        process = env.active_process
        if process is None:
            awaitable.close()
            raise RuntimeError("run_with_deadline must be awaited inside a task (SimRuntime.spawn)")
        watch = self._deadlines.get(process)
        if watch is None:
            watch = self._deadlines[process] = _ProcessDeadlines(env, process)
        deadline = _Deadline(env.now + max(timeout_seconds, 0.0))
        watch.arm(deadline)
        try:
            return await awaitable
        except asyncio.CancelledError as cancelled:
            if deadline.fired and cancelled.args and cancelled.args[0] is deadline:
                raise DeadlineExceeded(timeout_seconds) from None
            raise
        except Exception as error:
            if deadline.fired:
                # Cut by this deadline, then its cleanup raised: still a timeout (possibly applied).
                raise DeadlineExceeded(timeout_seconds) from error
            raise
        finally:
            watch.disarm(deadline)
            if not watch.armed:
                del self._deadlines[process]

    def spawn(self, coroutine: Coroutine[Any, Any, T], name: str = "") -> SimTask:
        """Start ``coroutine`` as a simpy process."""
        task = SimTask(self.env, coroutine, name, self.on_task_start)
        self.tasks.append(task)
        self._task_of[task._process] = task
        return task

    def current_task(self) -> SimTask | None:
        """The task running now (None between tasks: in a timer's callback, or outside the simulation)."""
        process = self.env.active_process
        return None if process is None else self._task_of.get(process)

    def event(self) -> SimEvent:
        """A new one-shot event."""
        return SimEvent(self.env)

    def run(self, until: float | None = None) -> None:
        """Advance the simulation until ``until`` (or until nothing is scheduled)."""
        try:
            self.env.run(until=until)
        finally:
            # Steps leave their clock for seed-style retry_async calls; it must not outlive the run.
            clear_step_ambient()

    def unobserved_errors(self) -> list[tuple[str, BaseException]]:
        """Exceptions that ended tasks nobody joined (engine bugs surface here)."""
        return [
            (t.name, t.exception)
            for t in self.tasks
            if t.exception is not None and not isinstance(t.exception, asyncio.CancelledError)
        ]
