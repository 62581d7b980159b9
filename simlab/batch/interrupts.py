"""Stopping a batch cleanly: Ctrl-C and SIGTERM end every worker at once, and nothing cut off is kept.

How this works: while a batch runs, the parent process turns SIGINT and SIGTERM into
``BatchInterrupted`` (a ``KeyboardInterrupt``, so code that handles Ctrl-C still does) and
records that a stop was asked for. Worker processes ignore SIGINT (Ctrl-C reaches the whole
process group; the parent alone decides), die at once on SIGTERM, and die with their parent:
on Linux the kernel kills them when it exits, however it exits (``PR_SET_PDEATHSIG``), and
elsewhere they check between runs. The parent terminates its workers itself when stopped. A
shard is marked finished only after its last table is written, and never once a stop was asked
for, so whatever an interruption cuts off is simply run again when the batch is resumed.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from types import FrameType

_PR_SET_PDEATHSIG = 1


class BatchInterrupted(KeyboardInterrupt):
    """A batch stopped by a signal; says how many runs are kept and how to resume.

    Its arguments are plain values (simpy re-creates an exception from its ``args`` when it
    crosses a simulated process), so the message is built from them.
    """

    def __init__(self, signal_name: str = "SIGINT", kept: int | None = None, total: int | None = None,
                 where: str = "") -> None:  # fmt: skip
        super().__init__(signal_name, kept, total, where)
        self.signal_name = signal_name
        self.kept = kept
        self.total = total
        self.where = where

    @property
    def exit_status(self) -> int:
        """The shell's convention: 128 plus the signal's number."""
        return 128 + int(getattr(signal, self.signal_name, signal.SIGINT))

    def __str__(self) -> str:
        if self.kept is None or self.total is None:
            return f"interrupted by {self.signal_name}"
        return (
            f"interrupted by {self.signal_name}: {self.kept} of {self.total} runs are kept in {self.where}; "
            "run the same command again to complete it"
        )


class WorkerDied(RuntimeError):
    """A worker process died without being asked to (killed from outside, out of memory)."""


_stopping = threading.Event()
_stopped_by: list[str] = []  # the name of the signal that asked the running batch to stop


def stop_requested() -> bool:
    """Whether a signal asked the running batch to stop (checked before a shard is marked finished)."""
    return _stopping.is_set()


def stop_signal() -> str:
    """The name of the signal that asked the running batch to stop (``SIGINT`` if none is known)."""
    return _stopped_by[0] if _stopped_by else "SIGINT"


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    first = not _stopping.is_set()
    _stopping.set()
    if first:  # later signals while the batch winds down change nothing: it is already stopping
        _stopped_by[:] = [signal.Signals(signum).name]
        # NOTE: the exception can land where it is swallowed (a weakref finalizer run by the collector prints
        # and drops it), so whoever notices the stop later raises with the name kept here, not a default.
        raise BatchInterrupted(_stopped_by[0])


@contextlib.contextmanager
def _on_stop_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """While the block runs, ``handler`` takes SIGINT and SIGTERM (in the main thread: elsewhere they are
    delivered to the main thread, and whoever runs us there handles them); the previous handlers come back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise ``BatchInterrupted`` (main thread only)."""
    _stopping.clear()
    _stopped_by.clear()
    with _on_stop_signals(_raise_interrupted):
        yield


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[str]]:
    """While the block runs, SIGINT and SIGTERM are only noted (their names, in the list it yields), not raised:
    for work that a ``KeyboardInterrupt`` in its middle would leave half-built (starting a cluster, say). The
    caller raises ``BatchInterrupted`` after it, once the work can be undone cleanly. Main thread only."""
    noted: list[str] = []
    with _on_stop_signals(lambda signum, _frame: noted.append(signal.Signals(signum).name)):
        yield noted


_parent_pid: int | None = None


def init_worker(parent_pid: int) -> None:
    """Run first in every worker process: leave signals to the parent, and die with it."""
    global _parent_pid
    _parent_pid = parent_pid
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    exit_if_orphaned()  # the parent may have died before the line above took effect


def exit_if_orphaned() -> None:
    """In a worker: exit at once if the parent process is gone (nobody would read what we write)."""
    if _parent_pid is not None and os.getppid() != _parent_pid:
        os._exit(1)


def terminate_workers(grace_seconds: float = 1.0) -> None:
    """Terminate every worker process this process started; kill any still alive after the grace period."""
    children = multiprocessing.active_children()
    for child in children:
        with contextlib.suppress(OSError, ValueError):
            child.terminate()
    deadline = time.monotonic() + grace_seconds
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.is_alive():
            with contextlib.suppress(OSError, ValueError):
                child.kill()
            child.join(0.5)


def silence_abandoned_work() -> None:
    """Before exiting after an interrupt: drop the half-run simulation without Python's reports about it.

    The interrupted world's suspended coroutines are closed by the garbage collector, and Python
    reports each one (a coroutine "never awaited", an exception "ignored" in a ``finally:`` that
    awaits). That is work thrown away on purpose, and the reports would bury the one line that says
    what is kept, so they are silenced for the rest of this process, which is about to exit.
    """
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    sys.unraisablehook = lambda _unraisable: None
