"""The ports the engine awaits: a runtime (clock, deadlines, tasks), a saga store, locks.

How this works: steps and the engine await only what these protocols offer, so
the same saga code runs on asyncio in production and on the simulated clock in
the lab. A runtime differs only in how it waits; it must cancel an awaitable
that misses its deadline by raising the runtime's cancellation at the
awaitable's current await (so ``finally:`` blocks run) and then raise
``DeadlineExceeded`` to the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from sagas.engine.state import SagaState

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class TaskHandle(Protocol[T_co]):
    """A spawned coroutine: join it for its result, or cancel it."""

    def join(self) -> Awaitable[T_co]:
        """Wait for the task; return its result or raise its exception."""
        ...

    def cancel(self) -> None:
        """Throw the runtime's cancellation into the task at its current await."""
        ...

    def done(self) -> bool:
        """Whether the task has finished (in any way)."""
        ...


class RuntimeEvent(Protocol):
    """A one-shot event: set once with a value, awaited by any number of waiters."""

    def set(self, value: Any = None) -> None:
        """Wake every waiter with ``value``; later calls are ignored."""
        ...

    def is_set(self) -> bool:
        """Whether ``set`` has been called."""
        ...

    def wait(self) -> Awaitable[Any]:
        """Wait until set; return the value it was set with."""
        ...


@runtime_checkable
class Runtime(Protocol):
    """Time, deadlines and tasks: everything the engine waits on."""

    def now(self) -> float:
        """Current time in seconds (simulated or real)."""
        ...

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Wait ``seconds``."""
        ...

    def run_with_deadline(self, awaitable: Coroutine[Any, Any, T], timeout_seconds: float) -> Awaitable[T]:
        """Run ``awaitable`` in the caller's task; cancel it after ``timeout_seconds``.

        Raises ``DeadlineExceeded`` once the cancelled awaitable has unwound.
        """
        ...

    def spawn(self, coroutine: Coroutine[Any, Any, T], name: str = "") -> TaskHandle[T]:
        """Start ``coroutine`` as a concurrent task."""
        ...

    def event(self) -> RuntimeEvent:
        """A new one-shot event."""
        ...


class SagaStore(Protocol):
    """Where saga instances persist their state at every transition, and who owns each one.

    Ownership is a lease: an owner token with an expiry, renewed while the saga runs, and a
    fencing token (a per-saga counter that only grows, bumped by every acquisition). Every
    write carries the writer's fencing token, and the store refuses one that is no longer
    the latest, so a manager that lost its lease (a pause, a partition) cannot overwrite
    the state its successor writes.
    """

    async def save(self, state: SagaState, fence: int) -> None:
        """Persist a snapshot of ``state`` (later changes to it must not leak in).

        Refused with ``LeaseLost`` if ``fence`` is not the saga's latest fencing token (0 for
        a saga never leased: tools and tests writing states directly). A terminal state also
        releases the lease.
        """
        ...

    async def load(self, saga_id: str) -> SagaState | None:
        """The last saved state of ``saga_id``, or None."""
        ...

    async def unfinished(self) -> list[SagaState]:
        """Every saga not in a terminal status, ordered by (started_at, saga_id)."""
        ...

    async def create(self, state: SagaState, trigger_key: str, owner: str, lease_seconds: float) -> str:
        """Claim ``trigger_key`` (saga type + event id) for ``state``, save it and lease it, atomically.

        Returns the id of the saga that owns the trigger: ``state.saga_id`` if this
        call claimed it (and saved ``state``, leased to ``owner`` for ``lease_seconds``
        with fencing token 1), the earlier owner's id otherwise (and nothing is written).
        """
        ...

    async def acquire_lease(self, saga_id: str, owner: str, lease_seconds: float) -> int | None:
        """Lease ``saga_id`` to ``owner``; return the new fencing token, or None if the lease is taken.

        Taken means an unexpired lease held by anyone but an earlier incarnation of
        ``owner``'s own node (``{node}/{incarnation}``), whose leases are taken over at once;
        ``owner``'s own live lease is taken too (a manager never acquires a saga twice).
        """
        ...

    async def renew_lease(self, saga_id: str, owner: str, fence: int, lease_seconds: float) -> bool:
        """Extend the lease to ``lease_seconds`` from now if ``owner`` still holds it with ``fence``.

        False if it expired or another owner holds it: the caller must stop driving the saga.
        """
        ...

    async def new_incarnation(self) -> int:
        """A number no other manager on this store ever received (1, 2, 3... per store)."""
        ...

    async def request_cancel(self, saga_id: str, reason: str) -> None:
        """Ask whichever manager drives ``saga_id`` to stop it and compensate (its parent compensates)."""
        ...

    async def cancel_requested(self, saga_id: str) -> str | None:
        """The reason ``saga_id`` was asked to stop, or None."""
        ...


class LockManager(Protocol):
    """Distributed locks with an owner token and a TTL."""

    async def acquire(self, key: str, owner: str, ttl_seconds: float) -> bool:
        """Take ``key`` for ``owner`` unless someone holds it; expires after the TTL."""
        ...

    async def acquire_fenced(self, key: str, owner: str, ttl_seconds: float) -> int | None:
        """Take ``key`` like ``acquire`` and return a fencing token, or None if someone holds it.

        Tokens of one key increase with every acquisition, so a write model can refuse
        writes from a holder whose TTL ran out once a later holder has written.
        """
        ...

    async def release(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` still holds it; False otherwise."""
        ...

    async def holder(self, key: str) -> str | None:
        """The current holder's owner token, or None."""
        ...
