"""The three engine conventions the lab reads for want of a public seam, each behind one function.

The engine is gaining public seams for these (a bus that lists and detaches its handlers, and a
``SagaManager`` that says which saga a task drives). Until then the lab reads them here and only
here, so switching to the seams is a change of these three bodies.
"""

from __future__ import annotations

from sagas.engine.buses import EventBus, Handler

_SAGA_TASK_PREFIX = "saga "


def saga_driven_by(task_name: str) -> str | None:
    """The id of the saga a task named ``task_name`` drives, or None (the workload, a projection...)."""
    # TODO(seam): ask the SagaManager which saga its task drives, not its naming convention ("saga <id>").
    if task_name.startswith(_SAGA_TASK_PREFIX):
        return task_name[len(_SAGA_TASK_PREFIX) :]
    return None


def subscriptions(bus: EventBus) -> dict[str, list[Handler]]:
    """The bus's handlers by event type name: the live table itself, shared with whoever holds it."""
    # TODO(seam): the bus's own method to list and detach handlers, not its private table.
    return bus._subscribers


def handler_owner(handler: Handler) -> object | None:
    """The object a handler is a bound method of (a manager's subscriptions name it), or None."""
    # TODO(seam): the bus's record of who subscribed a handler, not the bound method's ``__self__``.
    return getattr(handler, "__self__", None)
