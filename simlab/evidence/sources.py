"""What a run leaves behind for its invariants to judge it by, gathered once at the horizon.

Every check reads its independent sources from one ``Evidence`` value, passed explicitly:
the trace, the saga store's states (read once: several checks look sagas up per connection),
the write model, the virtual brokers' own accounts, the sagas' declared step definitions,
the simulated Redis and the live managers, the lock ledger, and what the user-deletion sagas
saw when they declared a user deleted. ``Source`` names each, so the registry
(``simlab.evidence.invariants``) can declare what an invariant needs and list it as not
checked when a run lacks it, rather than check it against nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagas.engine.state import SagaState
from sagas.engine.trace import TraceRecord
from simlab.evidence.checks.violation import CannotCheck
from simlab.evidence.definitions import SagaDefinitions, saga_definitions
from simlab.evidence.lock_ledger import LockLedger
from simlab.evidence.trace_tables import records_by_saga
from simlab.sim.trading_world import TradingWorld


class Source(enum.StrEnum):
    """One independent source of evidence about a run."""

    TRACE = "trace"  # the engine's trace records
    STORE = "store"  # the saga store's states
    WRITE_MODEL = "write_model"  # the platform's write model (and its purge and write history)
    BROKERS = "brokers"  # the virtual brokers' own accounts (their ground truth)
    DEFINITIONS = "definitions"  # the sagas' declared step definitions (the scenario's overrides applied)
    REDIS = "redis"  # the simulated Redis, read at the horizon
    MANAGERS = "managers"  # the sagas the live managers still run
    LOCK_LEDGER = "lock_ledger"  # who believed they held which lock, and when (simlab.evidence.lock_ledger)
    DELETIONS = "deletions"  # what was left of each user when their deletion saga completed


_ALWAYS = frozenset(
    {Source.TRACE, Source.WRITE_MODEL, Source.BROKERS, Source.DEFINITIONS, Source.REDIS, Source.MANAGERS}
)
"""What every trading world has; the rest depends on what the run watched."""


@dataclass(frozen=True, slots=True)
class DeletionSnapshot:
    """What was left of a user when their deletion saga completed."""

    t: float
    saga_id: str
    user_id: str
    live_connections: tuple[str, ...]
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    """One run's evidence at its horizon. Build it with ``gather``.

    ``states`` is ``None`` when the store cannot list its sagas, ``ledger`` when no lock ledger
    watched the run, ``snapshots`` when no one watched the deletion sagas complete: the
    invariants that need them are then not checked.
    """

    world: TradingWorld
    horizon_s: float
    states: tuple[SagaState, ...] | None
    ledger: LockLedger | None = None
    snapshots: tuple[DeletionSnapshot, ...] | None = None
    _by_id: dict[str, SagaState] = field(default_factory=dict, repr=False)
    _readings: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def gather(
        cls,
        world: TradingWorld,
        horizon_s: float,
        *,
        ledger: LockLedger | None = None,
        snapshots: Iterable[DeletionSnapshot] | None = None,
    ) -> Evidence:
        """Read ``world``'s store once and bundle it with the run's other sources."""
        all_states = getattr(world.sim.store, "all_states", None)
        states = tuple(all_states()) if all_states is not None else None
        by_id = {s.saga_id: s for s in states or ()}
        watched = tuple(snapshots) if snapshots is not None else None
        return cls(world, horizon_s, states, ledger, watched, by_id)

    @property
    def records(self) -> list[TraceRecord]:
        """The run's trace."""
        return self.world.sim.tracer.records

    def by_saga(self) -> Mapping[str, list[TraceRecord]]:
        """Each saga's records in trace order (``records_by_saga``): shared by the checks, so read-only.

        Grouped once per run rather than once per check that walks one saga at a time; grouped
        again only if the trace has changed since (it does not after the horizon).
        """
        records = self.records
        kept = self._readings.get("by_saga")
        if kept is None or kept[0] is not records or kept[1] != len(records):
            kept = self._readings["by_saga"] = (records, len(records), records_by_saga(records))
        grouped: Mapping[str, list[TraceRecord]] = kept[2]
        return grouped

    def definitions(self) -> SagaDefinitions:
        """What the trading sagas declare under this run's configuration (``simlab.evidence.definitions``)."""
        config = self.world.deps.config
        kept = self._readings.get("definitions")
        if kept is None or kept[0] is not config:
            kept = self._readings["definitions"] = (config, saga_definitions(config))
        definitions: SagaDefinitions = kept[1]
        return definitions

    def has(self, source: Source) -> bool:
        """Whether this run's evidence includes ``source``."""
        if source is Source.STORE:
            return self.states is not None
        if source is Source.LOCK_LEDGER:
            return self.ledger is not None
        if source is Source.DELETIONS:
            return self.snapshots is not None
        return source in _ALWAYS

    def sagas(self) -> tuple[SagaState, ...]:
        """Every saga in the store, in the order first saved; ``CannotCheck`` if the store cannot list them."""
        if self.states is None:
            raise CannotCheck("the saga store cannot list its sagas")
        return self.states

    def states_by_id(self) -> Mapping[str, SagaState]:
        """The store's sagas by id."""
        self.sagas()
        return self._by_id

    def lock_ledger(self) -> LockLedger:
        """The run's lock ledger; ``CannotCheck`` if none watched the run."""
        if self.ledger is None:
            raise CannotCheck("no lock ledger watched this run")
        return self.ledger

    def deletions(self) -> tuple[DeletionSnapshot, ...]:
        """What each completed user deletion left; ``CannotCheck`` if no one watched them."""
        if self.snapshots is None:
            raise CannotCheck("no one watched the user deletions complete")
        return self.snapshots
