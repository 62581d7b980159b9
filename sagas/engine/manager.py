"""``SagaManager``: starts sagas from events, runs them, resumes them after a restart.

How this works: ``register(trigger, saga_class)`` subscribes the manager to the
trigger's event type on the event bus. Each published trigger event claims a
trigger key (saga type + event id) in the store while saving the new state,
atomically, so a redelivered event starts no second instance, then spawns a ``SagaExecution`` as a runtime task. A new
manager on the same store calls ``recover()`` to resume every unfinished
instance whose lease has expired: completed steps are not re-run, an
interrupted step is re-run (steps are idempotent) and an interrupted
compensation carries on. A step composes child sagas through
``context['sagas']`` and waits for their completion events with a deadline.

Ownership: a manager drives a saga only while it holds the saga's lease in the
store (taken with the new state, or by ``recover()`` once the previous owner's
expired). One lease keeper task per manager (``LeaseKeeper``, in ``leases``) renews each lease a third of
``lease_seconds`` after the last renewal; when a renewal is refused, or none
succeeded within ``lease_seconds`` minus a tenth (the margin for clock drift
between this process and the store), the saga's task is cancelled at its
current await and the execution stops. Each manager draws an incarnation from the store (a count,
unique per store) on first use; it is part of every id the manager draws and of
its owner token ``{node}/{incarnation}``, so a restarted manager given the same
seed never repeats the ids of the one before it. ``node`` names one manager
process at a time (a host, a pod): a manager restarted on its node takes over
the leases of that node's earlier incarnations at once, since they are dead by
definition, instead of waiting for them to run out. Two managers running at
once must have different nodes.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sagas.engine.buses import CommandBus, EventBus, QueryBus
from sagas.engine.context import ChildSagas, checked_trigger_data
from sagas.engine.errors import ChildSagasTimeout, SagaDefinitionError
from sagas.engine.events import Event, SagaCompensated, SagaCompleted, SagaFailed, SagaFinished
from sagas.engine.execution import SagaExecution
from sagas.engine.leases import LeaseKeeper
from sagas.engine.ports import LockManager, Runtime, RuntimeEvent, SagaStore, TaskHandle
from sagas.engine.randomness import IdSource, RandomStreams
from sagas.engine.saga import BaseSaga
from sagas.engine.services import ExecutionServices
from sagas.engine.state import SagaState
from sagas.engine.trace import Outcome, Phase, Tracer

SagaFactory = Callable[[], BaseSaga]


@dataclass(frozen=True, slots=True)
class _Registration:
    trigger: str
    saga_type: str
    factory: SagaFactory


def _check_settings(node: str, lease_seconds: float) -> None:
    if not node or "/" in node:
        raise SagaDefinitionError(f"node must be a non-empty name without '/', got {node!r}")
    if not lease_seconds > 0 or lease_seconds == float("inf"):
        raise SagaDefinitionError(f"lease_seconds must be a finite number > 0, got {lease_seconds!r}")


class SagaManager:
    """Registers sagas by trigger event, runs their instances, persists and resumes them.

    ``ids`` defaults to ids carrying this manager's incarnation, drawn on first use.
    ``retain_finished``: True keeps finished tasks until ``wait_idle()`` hands them back (tests, the
    lab); False lets each task forget itself when its saga ends (long-running services).
    ``lease_seconds`` is the length of the leases it takes; ``node`` names this manager's process
    (see the module's docstring); ``children_grace_seconds`` bounds how long a compensating parent
    waits for the child sagas it stops.
    """

    def __init__(
        self,
        *,
        runtime: Runtime,
        store: SagaStore,
        random_streams: RandomStreams,
        command_bus: CommandBus | None = None,
        query_bus: QueryBus | None = None,
        event_bus: EventBus | None = None,
        locks: LockManager | None = None,
        tracer: Tracer | None = None,
        ids: IdSource | None = None,
        retain_finished: bool = True,
        lease_seconds: float = 30.0,
        node: str = "manager",
        children_grace_seconds: float = 60.0,
    ) -> None:
        _check_settings(node, lease_seconds)
        self.runtime = runtime
        self.store = store
        self.random_streams = random_streams
        self.command_bus = command_bus if command_bus is not None else CommandBus()
        self.query_bus = query_bus if query_bus is not None else QueryBus()
        self.event_bus = event_bus if event_bus is not None else EventBus()
        self.locks = locks
        self.tracer = tracer if tracer is not None else Tracer(runtime.now)
        self.ids = ids if ids is not None else IdSource(random_streams)
        self._ids_given = ids is not None
        self.lease_seconds = lease_seconds
        self.children_grace_seconds = children_grace_seconds
        self.incarnation = 0  # drawn from the store on first use
        self.node = node
        self.owner = ""
        self._stopped = False
        self.jitter_rng: random.Random = random_streams.stream("jitter")
        self.step_rng: random.Random = random_streams.stream("steps")
        self._by_trigger: dict[str, list[_Registration]] = {}
        self._by_type: dict[str, _Registration] = {}
        self._tasks: dict[str, TaskHandle[SagaState]] = {}
        self._driving: dict[TaskHandle[SagaState], str] = {}  # each saga task, while it runs, to its saga
        self._executions: dict[str, SagaExecution] = {}
        self._children: dict[str, list[str]] = {}
        self._finished: dict[str, RuntimeEvent] = {}
        for finished in (SagaCompleted, SagaCompensated, SagaFailed):
            self.event_bus.subscribe(finished, self._on_saga_finished, owner=self)
        self.retry_rng: random.Random = random_streams.stream("retry_async")
        self.retain_finished = retain_finished
        self._leases = LeaseKeeper(self, self._executions)
        self._services = self._execution_services()

    def _execution_services(self) -> ExecutionServices:
        """What this manager's executions may use of it (built once, shared by all of them)."""
        return ExecutionServices(
            runtime=self.runtime,
            tracer=self.tracer,
            jitter_rng=self.jitter_rng,
            retry_rng=self.retry_rng,
            save_state=self._save_state,
            publish=self._publish,
            has_subscribers=self._has_subscribers,
            step_services=self.step_services,
            stop_children=self.stop_children,
            task_of=self.task_of,
        )

    # -- registration ------------------------------------------------------

    def register(self, trigger: type[Event] | str, saga_class: SagaFactory) -> None:
        """Start a ``saga_class`` instance for every ``trigger`` event published on the bus.

        The saga's definition is checked now (steps, timeouts), so a bad
        definition fails at registration, not in the middle of a run.
        """
        probe = saga_class()
        if not isinstance(probe, BaseSaga):
            raise SagaDefinitionError(f"{saga_class!r} must build a BaseSaga, got {type(probe).__name__}")
        probe.validated_steps()
        probe.timeout_seconds()
        saga_type = probe.get_saga_type()
        trigger_name = trigger if isinstance(trigger, str) else trigger.__name__
        known = self._by_type.get(saga_type)
        if known is not None and known.factory is not saga_class:
            raise SagaDefinitionError(f"saga type {saga_type!r} is already registered by {known.factory!r}")
        registration = _Registration(trigger_name, saga_type, saga_class)
        self._by_type[saga_type] = registration
        if trigger_name not in self._by_trigger:
            self._by_trigger[trigger_name] = []
            self.event_bus.subscribe(trigger_name, self.handle_event, owner=self)
        self._by_trigger[trigger_name].append(registration)

    # -- identity ----------------------------------------------------------

    async def _incarnate(self) -> None:
        """Draw this manager's incarnation from the store, once: it names the owner and the ids."""
        if self.incarnation:
            return
        self.incarnation = await self.store.new_incarnation()
        self.owner = f"{self.node}/{self.incarnation}"
        if not self._ids_given:
            self.ids = IdSource(self.random_streams, self.incarnation)

    # -- starting ----------------------------------------------------------

    async def handle_event(self, event: Event, parent_id: str | None = None) -> list[str]:
        """Start one instance of each saga registered for ``event``'s type; return their ids.

        An event whose id was already handled for a saga type starts nothing new;
        the id of the saga it started the first time is returned instead, so a
        retried or resumed step that re-sends it still learns (and waits for) it.
        The parent is ``parent_id`` or else the saga that caused the event.
        """
        saga_ids: list[str] = []
        parent = parent_id if parent_id is not None else event.causation_id
        for registration in self._by_trigger.get(event.event_type, ()):
            saga_ids.append(await self._start(registration, event, parent))
        return saga_ids

    async def _start(self, registration: _Registration, event: Event, parent_id: str | None) -> str:
        await self._incarnate()
        trigger_data = checked_trigger_data(event)
        saga = registration.factory()
        steps = saga.validated_steps()
        saga_id = self.ids.new_id("saga")
        saga.saga_id = saga_id
        now = self.runtime.now()
        state = SagaState(
            saga_id=saga_id,
            saga_type=registration.saga_type,
            trigger_type=event.event_type,
            trigger_id=event.event_id,
            trigger_data=trigger_data,
            parent_id=parent_id,
            started_at=now,
            updated_at=now,
            deadline_at=now + saga.timeout_seconds(),
            current_step=steps[0].name,
            transitions=1,
        )
        owner = await self.store.create(
            state, f"{registration.saga_type}:{event.event_id}", self.owner, self.lease_seconds
        )
        if owner != saga_id:
            self.tracer.record(
                owner,
                registration.saga_type,
                parent_id=parent_id,
                phase=Phase.SAGA,
                outcome=Outcome.DUPLICATE_TRIGGER,
                detail=f"{event.event_type} {event.event_id}",
            )
            if parent_id is not None and owner not in self._children.get(parent_id, ()):
                self._children.setdefault(parent_id, []).append(owner)
                await self._record_child(parent_id, owner)
            return owner
        if parent_id is not None:
            self._children.setdefault(parent_id, []).append(saga_id)
            await self._record_child(parent_id, saga_id)
        if self._stopped:
            # Stopped while the store was creating it: the saga is stored and leased to this incarnation,
            # which runs nothing any more; its node's next incarnation (or anyone, once the lease runs
            # out) resumes it. Launching it here would run it beside that successor.
            return saga_id
        self._launch(
            SagaExecution(self._services, saga, state, fence=1, lease_until=self._leases.valid_until(now), steps=steps)
        )
        return saga_id

    async def _record_child(self, parent_id: str, child_id: str) -> None:
        parent = self._executions.get(parent_id)
        if parent is not None:  # a parent driven elsewhere learns its child when its step runs again
            await parent.record_child(child_id)

    def task_of(self, saga_id: str) -> TaskHandle[SagaState] | None:
        """The task running ``saga_id`` in this manager, if any."""
        return self._tasks.get(saga_id)

    def saga_of(self, task: TaskHandle[Any]) -> str | None:
        """The id of the saga ``task`` drives, if it is one of this manager's saga tasks and still running.

        Every saga this manager runs or resumes gets a task of its own; it is tagged with the
        saga's id from before its first step until it ends. Any other task (the lease keeper,
        a renewal, a reclaim, another manager's) gives None.
        """
        return self._driving.get(task)

    async def stop_children(self, state: SagaState) -> None:
        """Ask every unfinished child of the saga in ``state`` to stop and compensate; wait for them to end."""
        known = list(dict.fromkeys([*state.children, *self.children_of(state.saga_id)]))
        if not known:
            return
        reason = f"parent {state.saga_type} {state.saga_id} is compensating"
        pending: list[str] = []
        for child_id in known:
            child = await self.store.load(child_id)
            if child is None or child.status.is_terminal:
                continue
            await self.store.request_cancel(child_id, reason)
            local = self._executions.get(child_id)
            if local is not None:
                local.cancel_for_parent(reason)
            pending.append(child_id)
        if not pending:
            return
        trace = ChildSagas(self, state.saga_id, state.saga_type, state.parent_id)
        with contextlib.suppress(ChildSagasTimeout):  # traced; the parent's own compensations must still run
            await trace.wait(pending, timeout_seconds=self.children_grace_seconds)

    def _launch(self, execution: SagaExecution) -> TaskHandle[SagaState]:
        saga_id = execution.state.saga_id
        self._executions[saga_id] = execution
        self._leases.track(execution)
        task = self._tasks[saga_id] = self.runtime.spawn(self._run(execution), name=f"saga {saga_id}")
        execution.task = task
        self._driving[task] = saga_id  # before the task first runs: it is tagged from its first step
        return task

    async def _run(self, execution: SagaExecution) -> SagaState:
        saga_id = execution.state.saga_id
        try:
            final = await execution.run()
        finally:
            if self._executions.get(saga_id) is execution:
                del self._executions[saga_id]
                self._leases.forget(saga_id)
                self._children.pop(saga_id, None)
            if not self.retain_finished and self._executions.get(saga_id) is None:
                self._tasks.pop(saga_id, None)
            if not self._executions:
                self._leases.stop()  # nothing left to keep; the next launch starts another
            if execution.task is not None:
                self._driving.pop(execution.task, None)
        if execution.lease_lost and not self._stopped:
            # Lost by silence (a pause, a partition) rather than taken: if no other manager takes the saga
            # over, nobody would ever resume it. A task of its own tries to take it back (the store decides),
            # so this one ends, as a process that lost its saga does, and its locks are no longer its.
            reclaim = self.runtime.spawn(self._reclaim(saga_id, final), name=f"reclaim {saga_id}")
            self._tasks[saga_id] = reclaim
        return final

    async def _reclaim(self, saga_id: str, last: SagaState) -> SagaState:
        try:
            # The lease is still this incarnation's on the store until it runs out there (a manager never
            # re-acquires its own live lease), so wait that long; another manager may take it meanwhile.
            await self.runtime.sleep(self.lease_seconds)
            again = await self._resume(saga_id)  # replaces this task in _tasks when it resumes the saga
        except Exception:  # noqa: BLE001 - the store is still unreachable: another manager's recover() will do
            again = None
        if again is None and not self.retain_finished:
            self._tasks.pop(saga_id, None)
        return last  # as this manager last saw it; wait_idle() follows the resumed task instead, if any

    async def recover(self) -> list[str]:
        """Take over every unfinished saga whose lease has expired; return the ids of those resumed.

        Called by a manager started on the store of one that stopped or crashed (and safe to call
        while other managers run: a saga whose owner still renews its lease is left to it).
        """
        await self._incarnate()
        resumed: list[str] = []
        for listed in await self.store.unfinished():
            saga_id = listed.saga_id
            if saga_id in self._tasks and not self._tasks[saga_id].done():
                continue
            if listed.saga_type not in self._by_type:
                raise SagaDefinitionError(
                    f"cannot resume saga {saga_id}: saga type {listed.saga_type!r} is not registered"
                )
            if await self._resume(saga_id) is not None:
                resumed.append(saga_id)
        return resumed

    async def keep_recovering(self, every_seconds: float | None = None, *, until: float | None = None) -> None:
        """Call ``recover()`` now and every ``every_seconds`` (default: the lease length) until ``until``.

        With leases this is safe to run on every manager, and it is what makes a saga whose owner died
        for good (no restart on its node) run on: once its lease runs out, the next round takes it over.
        Run it as a background task; without ``until`` it runs for the life of the process.
        """
        every = every_seconds if every_seconds is not None else self.lease_seconds
        if not every > 0:
            raise ValueError(f"every_seconds must be > 0, got {every_seconds!r}")
        while not self._stopped:
            with contextlib.suppress(Exception):  # a store blip or an unregistered saga type: next round
                await self.recover()
            if self._stopped:
                return
            now = self.runtime.now()
            if until is not None and now >= until:
                return
            await self.runtime.sleep(every if until is None else min(every, until - now))

    async def _resume(self, saga_id: str) -> TaskHandle[SagaState] | None:
        """Take over ``saga_id`` if its lease can be had and it is unfinished; return its new task."""
        if self._stopped:
            return None  # a stopped manager takes nothing over (its node's successor does)
        asked_at = self.runtime.now()
        fence = await self.store.acquire_lease(saga_id, self.owner, self.lease_seconds)
        if fence is None:
            return None  # its owner is alive (or its lease has not run out yet)
        state = await self.store.load(saga_id)  # what the previous owner wrote last
        if state is None or state.status.is_terminal:
            return None  # it finished between the listing and the lease: nothing to resume
        saga = self._by_type[state.saga_type].factory()
        saga.saga_id = saga_id
        if state.parent_id is not None and saga_id not in self._children.get(state.parent_id, ()):
            self._children.setdefault(state.parent_id, []).append(saga_id)
        lease_until = self._leases.valid_until(asked_at)
        execution = SagaExecution(self._services, saga, state, fence=fence, lease_until=lease_until, resumed=True)
        if state.parent_id is not None:
            asked = await self.store.cancel_requested(saga_id)
            if asked is not None:
                execution.cancel_for_parent(asked)  # not started yet: it goes straight to compensation
        return self._launch(execution)

    # -- services handed to executions and steps ---------------------------

    def _save_state(self, state: SagaState, fence: int) -> Awaitable[None]:
        return self.store.save(state, fence)  # the store as it is now: the lab may swap it mid-run

    def _publish(self, event: Event) -> Awaitable[None]:
        return self.event_bus.publish(event)

    def _has_subscribers(self, event_type: type[Event]) -> bool:
        return self.event_bus.has_subscribers(event_type)

    def step_services(self, saga_id: str, saga_type: str, parent_id: str | None) -> dict[str, Any]:
        """The services every step of ``saga_id`` finds in its context."""
        return {
            "saga_id": saga_id,
            "saga_type": saga_type,
            "parent_id": parent_id,
            "command_bus": self.command_bus,
            "query_bus": self.query_bus,
            "event_bus": self.event_bus,
            "clock": self.runtime,
            "rng": self.step_rng,
            "ids": self.ids,
            "locks": self.locks,
            "sagas": ChildSagas(self, saga_id, saga_type, parent_id),
        }

    # -- waiting -----------------------------------------------------------

    def execution_of(self, saga_id: str) -> SagaExecution | None:
        """The running execution of ``saga_id`` in this manager, if any."""
        return self._executions.get(saga_id)

    def children_of(self, parent_id: str) -> list[str]:
        """Ids of the child sagas started for ``parent_id``, in start order."""
        return self._children.get(parent_id, [])

    async def _on_saga_finished(self, event: SagaFinished) -> None:
        # Only sagas someone waits for have a waiter; it is dropped once woken (no growth per saga).
        waiter = self._finished.pop(event.saga_id, None)
        if waiter is not None:
            waiter.set(event.status)

    async def wait_for_sagas(self, saga_ids: Iterable[str], statuses: dict[str, str]) -> None:
        """Fill ``statuses`` as each saga's completion event arrives (or is already stored)."""
        for saga_id in saga_ids:
            waiter = self._finished.get(saga_id)
            if waiter is None:
                # Register before reading the store: a completion that lands while we read still wakes us.
                waiter = self._finished[saga_id] = self.runtime.event()
                stored = await self.store.load(saga_id)
                if stored is not None and stored.status.is_terminal:
                    self._finished.pop(saga_id, None)
                    statuses[saga_id] = stored.status.value
                    continue
            statuses[saga_id] = await waiter.wait()

    async def join(self, saga_id: str) -> SagaState:
        """Wait for a saga this manager runs; return its final state (from the store once forgotten)."""
        task = self._tasks.get(saga_id)
        if task is not None:
            return await task.join()
        stored = await self.store.load(saga_id)
        if stored is None or not stored.status.is_terminal:
            raise KeyError(f"saga {saga_id} is neither running in this manager nor finished in its store")
        return stored

    async def wait_idle(self) -> list[SagaState]:
        """Wait until every saga this manager runs (including ones started meanwhile) has ended.

        Returns the final states of the sagas that ended since the previous call, in start
        order, and forgets their tasks, so a long-lived manager does not accumulate them.
        """
        finals: list[SagaState] = []
        while self._tasks:
            saga_id = next(iter(self._tasks))
            task = self._tasks[saga_id]
            final = await task.join()
            if self._tasks.get(saga_id) is task:
                del self._tasks[saga_id]
                finals.append(final)
            # else: the saga lost its lease and is being taken back; the next round joins that task
        return finals

    def stop(self) -> None:
        """Cancel every running saga task (their ``finally:`` blocks run; nothing is persisted)."""
        self._stopped = True
        self._leases.stop()  # a stopped process renews nothing: its leases run out
        for task in self._tasks.values():
            if not task.done():
                task.cancel()

    @property
    def running(self) -> list[str]:
        """Ids of sagas whose task has not finished."""
        return [saga_id for saga_id, task in self._tasks.items() if not task.done()]
