"""Running a scenario: one seeded run, its evidence and invariants, and the result a batch stores.

``run_once`` builds the scenario's world for one seed, watches its locks, injects its
faults, drives its workload up to the horizon, then reads the trace once
(``simlab.evidence.trace_tables``) and checks the scenario's invariants
(``simlab.evidence.invariants``). Each run's seed is derived from the batch's root seed
and the run's index (``run_seed``), so any run can be replayed alone from (scenario, run
seed). ``run_batch`` runs a batch in this process, one run after another, keeping results
in memory; ``simlab.batch.batches`` spreads batches over worker processes and writes them
as Parquet shards that a later command resumes.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sagas.engine.randomness import derive_seed
from sagas.engine.state import SagaState
from sagas.engine.trace import TraceRecord, trace_hash
from sagas.probes import recording
from simlab.chaos.faults import FaultWindow, FaultWindows, install_faults, plan_faults
from simlab.chaos.faults.windows import Strike
from simlab.chaos.workload import build_scenario_world, drive
from simlab.evidence.invariants import Violation, check_invariants
from simlab.evidence.lock_ledger import LockLedger
from simlab.evidence.probes import ProbeCount, ProbeRecorder
from simlab.evidence.reach import run_reach
from simlab.evidence.sources import DeletionSnapshot, Evidence
from simlab.evidence.trace_tables import SagaRow, saga_rows
from simlab.evidence.watch import watch_deletions, watch_locks
from simlab.scenario.model import Scenario
from simlab.sim.orderings import OrderedEnvironment, Pct, parse_strategy
from simlab.sim.trading_world import TradingWorld
from simlab.sim.world import relaxed_gc

BrokerCallRow = tuple[str, float, float, str, str]
"""(broker, started_at, ended_at, operation, outcome) of one call that reached a broker."""


@dataclass
class RunResult:
    """What one run produced."""

    seed: int
    trace_hash: str
    sagas: list[SagaRow]
    violations: list[Violation]
    unchecked: list[str]
    trace: list[TraceRecord] = field(default_factory=list, repr=False)
    lock_holds: list[tuple[str, str, float, float]] = field(default_factory=list, repr=False)
    lags: list[tuple[str, float, float]] = field(default_factory=list, repr=False)  # (projection, published, applied)
    fault_windows: list[FaultWindow] = field(default_factory=list)  # (family, start, end, detail)
    strikes: list[Strike] = field(default_factory=list)
    """Every fault that struck, in order (t, family, label, detail): the run's fault schedule. Its labels
    as ``faults.strikes`` replay the run exactly; a subset of them is a run with fewer faults."""
    faults_injected: dict[str, int] = field(default_factory=dict)  # family -> faults it injected
    broker_calls: list[BrokerCallRow] = field(default_factory=list, repr=False)
    lock_overlaps: int = 0
    """How often a saga took a lock while another still believed it held it (a TTL ran out during a
    pause): the "lock expiry" path, reached; a violation only if the stale holder then wrote."""
    reach: dict[str, int] = field(default_factory=dict)  # engine path -> times taken (simlab.evidence.reach)
    connections: dict[str, str] = field(default_factory=dict, repr=False)
    """Saga id -> the ``broker_connection_id`` of its trigger event, for sagas about one connection (kept
    with the trace): what links a replay's sagas to the connections its violations name."""
    probes: list[ProbeCount] = field(default_factory=list)  # the run's probe calls (sagas.probes), kept off the trace
    ties: Ties | None = None
    """The equal-time choices of a run whose scenario orders them (None: simpy's own FIFO, not counted)."""


@dataclass(frozen=True)
class Ties:
    """What a run's ordering strategy met (``simlab.sim.orderings.OrderedEnvironment``)."""

    points: int
    """Choice points: instants at which two or more events of one priority were due at once."""
    processes: int
    """Distinct processes ready at some choice point (PCT's n)."""
    choices: tuple[tuple[int, int], ...]
    """Every non-FIFO choice, ``(choice point, index)``: replayed by ``orderings.choices``."""
    pct_steps: int | None = None
    """PCT's K, the choice points its change points were drawn over (None: another strategy)."""


def run_seed(index: int, root_seed: int) -> int:
    """The seed of run ``index`` of a batch rooted at ``root_seed``."""
    return derive_seed(root_seed, f"run/{index}")


def seed_of_run(scenario: Scenario, index: int, root_seed: int) -> int:
    """The seed of run ``index`` of a batch of ``scenario``: its ``run_seeds[index]`` when it lists them (a
    repro: the failing run itself), else ``run_seed(index, root_seed)``."""
    listed = scenario.run_seeds
    if listed is None:
        return run_seed(index, root_seed)
    if not 0 <= index < len(listed):
        raise ValueError(f"run {index}: scenario {scenario.name!r} lists {len(listed)} run seed(s) (run_seeds)")
    return listed[index]


def quiet_swallowed_errors() -> None:
    """Keep the seed's ``safe_set``/``safe_delete`` failure logs (logger ``sagas.infra``) off the terminal.

    They log every Redis error they swallow; in the lab those are injected faults, thousands per batch,
    and the trace records their consequences. Only that logger, only in a process that runs the lab.
    """
    logger = logging.getLogger("sagas.infra")
    if logger.propagate:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def run_once(scenario: Scenario, seed: int, *, keep_trace: bool = False) -> RunResult:
    """Simulate one run of ``scenario`` with ``seed`` up to its horizon and check its invariants."""
    # NOTE: the collector's thresholds come back only once the run's world is out of scope: the first
    # collection then meets the few objects the run left in reference cycles, not the whole live world
    # (collecting inside the run scanned every object of the world, about 8% of a run's time).
    # Probe calls are counted by a recorder of this run alone (tasks inherit it when spawned), never
    # traced: the trace and its hash are the same with or without probes.
    recorder = ProbeRecorder()
    with relaxed_gc(), recording(recorder):
        result = _run(scenario, seed, keep_trace)
    result.probes = recorder.counts()
    return result


def pct_needs_steps(scenario: Scenario) -> bool:
    """Whether the scenario's strategy is PCT without its expected number of choice points."""
    spec = parse_strategy(scenario.orderings.strategy)
    return spec.kind == "pct" and spec.steps is None


def count_choice_points(scenario: Scenario, seed: int) -> int:
    """How many choice points the FIFO run of ``seed`` meets (PCT's K when the strategy does not give it).

    Its probe calls go to a recorder of its own: they are not the run's (which is ordered by PCT).
    """
    with relaxed_gc(), recording(ProbeRecorder()):
        world = build_scenario_world(scenario, seed, count_ties=True)
        _simulate(world, scenario)
        env = world.sim.runtime.env
        assert isinstance(env, OrderedEnvironment)
        return env.points


def _simulate(world: TradingWorld, scenario: Scenario) -> tuple[FaultWindows, LockLedger, list[DeletionSnapshot]]:
    """Install the scenario's faults and watchers in ``world``, and run its workload to the horizon."""
    ledger = watch_locks(world)
    windows = install_faults(world, plan_faults(scenario, world.sim.streams))
    snapshots = watch_deletions(world)
    runtime = world.sim.runtime
    runtime.spawn(drive(world, scenario), name="workload")
    runtime.run(until=scenario.horizon_s)
    return windows, ledger, snapshots


def _ties(world: TradingWorld) -> Ties | None:
    env = world.sim.runtime.env
    if not isinstance(env, OrderedEnvironment):
        return None
    steps = env.strategy.steps if isinstance(env.strategy, Pct) else None
    return Ties(env.points, env.processes, tuple(env.choices), steps)


def _run(scenario: Scenario, seed: int, keep_trace: bool) -> RunResult:
    quiet_swallowed_errors()
    steps = count_choice_points(scenario, seed) if pct_needs_steps(scenario) else None
    world = build_scenario_world(scenario, seed, pct_steps=steps)
    windows, ledger, snapshots = _simulate(world, scenario)
    runtime = world.sim.runtime
    records = world.sim.tracer.records
    evidence = Evidence.gather(world, scenario.horizon_s, ledger=ledger, snapshots=snapshots)
    violations, unchecked = check_invariants(evidence, scenario.invariants)
    for name, error in runtime.unobserved_errors():
        violations.append(Violation("task_failed", runtime.now(), (), f"{name}: {type(error).__name__}: {error}"))
    return RunResult(
        seed,
        trace_hash(records),
        saga_rows(records),
        violations,
        unchecked,
        list(records) if keep_trace else [],
        lags=[(a.projection, a.published_at, a.applied_at) for a in world.projections.applied] if keep_trace else [],
        fault_windows=list(windows),
        strikes=list(windows.strikes),
        faults_injected=dict(windows.injected),
        lock_holds=ledger.spans() if keep_trace else [],
        broker_calls=broker_calls(world),
        lock_overlaps=len(ledger.overlaps),
        reach=run_reach(records, len(ledger.expired_while_held())),
        connections=_connections(evidence.states or ()) if keep_trace else {},
        ties=_ties(world),
    )


def _connections(states: Iterable[SagaState]) -> dict[str, str]:
    """Each saga's broker connection, from its trigger event's data (sagas about no one connection are absent)."""
    return {
        state.saga_id: str(state.trigger_data[CONNECTION_FIELD])
        for state in states
        if isinstance(state.trigger_data.get(CONNECTION_FIELD), str)
    }


CONNECTION_FIELD = "broker_connection_id"  # the seed's name for it in every connection event


def broker_calls(world: TradingWorld) -> list[BrokerCallRow]:
    """Every call the run's brokers received (those a fault rejected at the door too), by start time."""
    rows = [
        (c.broker, c.started_at, c.ended_at, c.operation, c.outcome)
        for broker in world.brokers.values()
        for c in getattr(broker, "calls", ())
    ]
    return sorted(rows, key=_BY_START)


_BY_START = operator.itemgetter(1, 0, 2)  # (started_at, broker, ended_at), as a C call per row


def run_batch(scenario: Scenario, runs: int, root_seed: int) -> Iterator[RunResult]:
    """Runs ``0 .. runs-1`` of a batch, one after another."""
    for index in range(runs):
        yield run_once(scenario, seed_of_run(scenario, index, root_seed))
