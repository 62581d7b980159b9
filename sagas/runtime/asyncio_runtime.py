"""The production runtime: the engine's waits mapped onto the running asyncio loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sagas.engine.errors import DeadlineExceeded

T = TypeVar("T")


class AsyncioTask:
    """A ``TaskHandle`` over an ``asyncio.Task``."""

    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task

    async def join(self) -> Any:
        """Wait for the task; return its result or raise its exception.

        Shielded: a joiner that is cancelled (say, by its own deadline) leaves the task running.
        """
        return await asyncio.shield(self._task)

    def cancel(self) -> None:
        """Cancel the task at its current await."""
        self._task.cancel()

    def done(self) -> bool:
        """Whether the task has finished."""
        return self._task.done()


class AsyncioEvent:
    """A one-shot event carrying a value, over ``asyncio.Event``."""

    __slots__ = ("_event", "_value")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._value: Any = None

    def set(self, value: Any = None) -> None:
        """Wake every waiter with ``value``; later calls are ignored."""
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def is_set(self) -> bool:
        """Whether ``set`` has been called."""
        return self._event.is_set()

    async def wait(self) -> Any:
        """Wait until set; return its value."""
        await self._event.wait()
        return self._value


class AsyncioRuntime:
    """The engine's runtime port on asyncio.

    ``clock`` gives ``now()``; the default is wall-clock epoch seconds so that
    deadlines persisted by one process mean the same to the process that resumes
    them. Tests on a ``sagas.testing.VirtualTimeLoop`` pass ``clock=loop.time``.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock if clock is not None else time.time
        self._tasks: set[asyncio.Task[Any]] = set()

    def now(self) -> float:
        """Current time in seconds."""
        return self._clock()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the loop (a negative wait is no wait)."""
        await asyncio.sleep(max(seconds, 0.0))

    async def run_with_deadline(self, awaitable: Coroutine[Any, Any, T], timeout_seconds: float) -> T:
        """Run ``awaitable`` in this task; cancel it at the deadline and raise ``DeadlineExceeded``."""
        scope = asyncio.timeout(timeout_seconds)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            # A TimeoutError raised by the awaitable itself is not our deadline.
            if scope.expired():
                raise DeadlineExceeded(timeout_seconds) from None
            raise
        except Exception as error:
            if scope.expired():
                # Cut by this deadline, then its cleanup raised: still a timeout (possibly applied).
                raise DeadlineExceeded(timeout_seconds) from error
            raise

    def spawn(self, coroutine: Coroutine[Any, Any, T], name: str = "") -> AsyncioTask:
        """Start ``coroutine`` as an asyncio task (kept referenced until it ends)."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return AsyncioTask(task)

    def event(self) -> AsyncioEvent:
        """A new one-shot event."""
        return AsyncioEvent()
