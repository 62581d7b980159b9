"""Equal-time orderings: the strategies choose among tied events only, record their choices, and replay them.

The planted bug at the end is the issue's acceptance test: two sagas wake at the same instant, and only
the non-FIFO order lets a withdrawal land after the account was settled.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import pytest
import simpy
from simpy.events import Interruption

from sagas import Event, InMemorySagaStore, RandomStreams, Tracer
from sagas.engine.saga import BaseSaga
from sagas.engine.step import SagaStep
from simlab.batch.ddmin import ddmin
from simlab.batch.runner import count_choice_points, run_once, run_seed
from simlab.lab import scenario
from simlab.scenario import ScenarioError, load_scenario
from simlab.sim.orderings import (
    Fifo,
    OrderedEnvironment,
    Pct,
    Replayed,
    StrategySpec,
    Uniform,
    owner_of,
    parse_strategy,
    pct_bound,
)
from simlab.sim.runtime import SimRuntime
from tests.harness import World

# -- the environment alone ---------------------------------------------------------------------


def _wake_order(env: simpy.Environment, delays: dict[str, float]) -> list[tuple[str, float]]:
    order: list[tuple[str, float]] = []

    def sleeper(name: str, delay: float):
        yield env.timeout(delay)
        order.append((name, env.now))

    for name, delay in delays.items():
        env.process(sleeper(name, delay))
    env.run()
    return order


def test_fifo_is_simpys_own_order_and_counts_each_tie_as_a_choice_point():
    env = OrderedEnvironment(Fifo())
    assert _wake_order(env, {"a": 1.0, "b": 1.0, "c": 1.0}) == _wake_order(
        simpy.Environment(), {"a": 1.0, "b": 1.0, "c": 1.0}
    )
    # Every event processed while another of its time and priority waits is a choice point: two of the
    # three starts (URGENT, at 0); at 1.0 the three wakes and the first two processes' ends (each end is an
    # event due at once, behind the wakes): 2 + 5.
    assert env.points == 7
    assert env.choices == []


def test_a_choice_runs_the_chosen_event_and_leaves_its_ties_in_fifo_order():
    env = OrderedEnvironment(Replayed({3: 2}))
    order = _wake_order(env, {"a": 1.0, "b": 1.0, "c": 1.0})
    assert order == [("c", 1.0), ("a", 1.0), ("b", 1.0)]
    assert env.choices == [(3, 2)]


def test_events_at_different_instants_or_priorities_are_never_a_choice():
    env = OrderedEnvironment(Uniform(random.Random(0)))
    assert _wake_order(env, {"a": 1.0, "b": 2.0, "c": 3.0}) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert env.points == 2  # only two of the three processes' starts, all due at 0


def test_a_quantum_rounds_due_times_up_so_that_near_events_tie():
    env = OrderedEnvironment(Replayed({2: 1}), quantum=0.01)  # point 1: the two starts; point 2: the wakes
    order = _wake_order(env, {"late": 0.007, "early": 0.003})
    assert order == [("early", 0.01), ("late", 0.01)]
    assert env.choices == [(2, 1)]
    assert _wake_order(OrderedEnvironment(Fifo()), {"late": 0.007, "early": 0.003}) == [
        ("early", 0.003),
        ("late", 0.007),
    ]


def test_recorded_choices_replay_a_random_order_exactly():
    delays = {name: float(i % 3) for i, name in enumerate("abcdefgh")}
    first = OrderedEnvironment(Uniform(random.Random(7)))
    order = _wake_order(first, delays)
    again = OrderedEnvironment(Replayed(dict(first.choices)))
    assert _wake_order(again, delays) == order
    assert again.choices == first.choices


def test_pct_runs_the_highest_priority_process_and_drops_it_at_a_change_point():
    strategy = Pct(random.Random(3), depth=2, steps=1)  # the one change point is choice point 1
    env = OrderedEnvironment(strategy)
    order = _wake_order(env, {"a": 1.0, "b": 1.0})
    assert sorted(order) == [("a", 1.0), ("b", 1.0)]
    assert strategy.change_points == {1: 1}
    assert min(strategy.priority.values()) == 1.0  # the process chosen at point 1 dropped below the others


def test_pct_bound_is_one_over_n_times_k_to_the_depth_less_one():
    assert pct_bound(1, 4, 100) == 1 / 4
    assert pct_bound(3, 4, 10) == 1 / 400
    assert pct_bound(2, 0, 10) == 1.0
    # Change points drawn over K = 50 points: each falls on a given one of them 1 time in 50, whether the run
    # met fewer points (10: the rest are wasted) or more (60: past the 50th, no guarantee at all).
    assert pct_bound(2, 4, 10, 50) == 1 / 200 and pct_bound(2, 4, 60, 50) == 1 / 200


@pytest.mark.parametrize(
    ("text", "spec"),
    [("fifo", StrategySpec("fifo")), ("random", StrategySpec("random")), ("pct:3", StrategySpec("pct", 3)),
     ("pct:2:500", StrategySpec("pct", 2, 500))],
)  # fmt: skip
def test_strategy_names(text, spec):
    assert parse_strategy(text) == spec


@pytest.mark.parametrize("text", ["", "FIFO", "pct", "pct:0", "pct:11", "pct:2:0", "pct:x", "lifo"])
def test_a_wrong_strategy_name_says_what_is_expected(text):
    with pytest.raises(ValueError, match="expected fifo, random, pct:D or pct:D:K"):
        parse_strategy(text)


def test_a_scenario_file_with_a_bad_ordering_names_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\norderings:\n  strategy: pct:zero\n")
    with pytest.raises(ScenarioError, match=r"orderings\.strategy.*expected fifo, random"):
        load_scenario(str(path))
    path.write_text("name: bad\norderings:\n  strategy: random\n  choices: [[3, 1]]\n")
    with pytest.raises(ScenarioError, match="replay with strategy fifo only"):
        load_scenario(str(path))


# -- the shipped scenarios ---------------------------------------------------------------------


def test_fifo_keeps_the_trace_hash_of_plain_simpy(monkeypatch):
    import simlab.chaos.workload as workload

    race = scenario("reconnect_race")
    seeds = [run_seed(i, race.seed) for i in range(3)]
    plain = [run_once(race, seed).trace_hash for seed in seeds]
    monkeypatch.setattr(workload, "ordered_environment", lambda *_args: OrderedEnvironment(Fifo()))
    counted = [run_once(race, seed) for seed in seeds]
    assert [r.trace_hash for r in counted] == plain
    assert all(r.ties is not None and r.ties.points > 0 and r.ties.choices == () for r in counted)


def test_a_random_order_replays_from_its_recorded_choices_and_pct_measures_its_k():
    seed = run_seed(5, 0)
    shuffled = run_once(scenario("reconnect_race", {"orderings.strategy": "random"}), seed)
    assert shuffled.ties is not None and shuffled.ties.choices
    choices = [list(pair) for pair in shuffled.ties.choices]
    replayed = run_once(scenario("reconnect_race", {"orderings.choices": choices}), seed)
    assert replayed.trace_hash == shuffled.trace_hash
    assert replayed.ties == shuffled.ties
    assert run_once(scenario("reconnect_race"), seed).ties is None  # plain FIFO: nothing counted
    fifo_points = count_choice_points(scenario("reconnect_race"), seed)
    pct = run_once(scenario("reconnect_race", {"orderings.strategy": "pct:2"}), seed)
    assert pct.ties is not None and fifo_points > 0
    again = run_once(scenario("reconnect_race", {"orderings.strategy": f"pct:2:{fifo_points}"}), seed)
    assert again.trace_hash == pct.trace_hash  # K measured by the FIFO run is the K given explicitly


# -- the planted ordering bug ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Opened(Event):
    pass


@dataclass
class Account:
    open: bool = True
    withdrawn: int = 0
    settled_at: int | None = None  # what had been withdrawn when the account was settled
    late: int = 0  # withdrawals that landed after the settlement: the invariant says none


class CloseSaga(BaseSaga):
    def __init__(self, account: Account) -> None:
        super().__init__()
        self.account = account

    def define_steps(self):
        return [SagaStep("settle", self.settle, self.undo)]

    async def settle(self, **context):
        await context["clock"].sleep(1.0)
        self.account.open = False
        self.account.settled_at = self.account.withdrawn

    async def undo(self, **context):
        return None


class WithdrawSaga(BaseSaga):
    """Checks that the account is open, then commits one await later: a check-then-act race."""

    def __init__(self, account: Account) -> None:
        super().__init__()
        self.account = account

    def define_steps(self):
        return [SagaStep("withdraw", self.withdraw, self.undo)]

    async def withdraw(self, **context):
        await context["clock"].sleep(1.0)
        if not self.account.open:
            return {"refused": True}
        await context["clock"].sleep(0)
        self.account.withdrawn += 1
        if self.account.settled_at is not None:
            self.account.late += 1
        return {"refused": False}

    async def undo(self, **context):
        return None


def _planted(env: OrderedEnvironment | None, seed: int) -> Account:
    runtime = SimRuntime(env)
    world = World(runtime, RandomStreams(seed), InMemorySagaStore(), Tracer(runtime.now))
    account = Account()
    world.manager.register(Opened, lambda: CloseSaga(account))
    world.manager.register(Opened, lambda: WithdrawSaga(account))

    async def main(world: World) -> None:
        await world.manager.handle_event(Opened(event_id="opened"))
        await world.manager.wait_idle()

    runtime.spawn(main(world), name="main")
    runtime.run()
    assert runtime.unobserved_errors() == []
    return account


def _first_failing(make_env, runs: int = 200) -> tuple[int, OrderedEnvironment] | None:
    for run in range(runs):
        env = make_env(run)
        if _planted(env, run).late:
            return run, env
    return None


def test_fifo_never_finds_the_planted_ordering_bug():
    assert all(_planted(None, run).late == 0 for run in range(200))
    assert _first_failing(lambda run: OrderedEnvironment(Fifo())) is None


@pytest.mark.parametrize("strategy", ["random", "pct:2"])
def test_random_and_pct_find_the_planted_bug_and_its_choices_replay_and_shrink_it(strategy):
    spec = parse_strategy(strategy)

    def make(run: int) -> OrderedEnvironment:
        rng = RandomStreams(run).stream("orderings")
        return OrderedEnvironment(Uniform(rng) if spec.kind == "random" else Pct(rng, spec.depth, 40))

    found = _first_failing(make)
    assert found is not None, f"{strategy} missed the planted bug in 200 runs"
    run, env = found
    replayed = OrderedEnvironment(Replayed(dict(env.choices)))
    assert _planted(replayed, run).late == 1
    # simlab shrink's ddmin over the recorded choices leaves the one that matters: the withdrawal's wake
    # run before the settlement's, at the choice point where both are due.
    kept = ddmin(list(env.choices), lambda subset: _planted(OrderedEnvironment(Replayed(dict(subset))), run).late > 0)
    assert len(kept) == 1
    assert _planted(OrderedEnvironment(Replayed(dict(kept))), run).late == 1
    assert _planted(OrderedEnvironment(Replayed({})), run).late == 0


def test_a_quantum_never_turns_a_positive_wait_into_no_wait():
    env = OrderedEnvironment(Fifo(), quantum=0.01)
    ticks: list[float] = []

    def poller():
        while env.now < 0.05:
            yield env.timeout(1e-12)
            ticks.append(env.now)

    env.process(poller())
    env.run()
    assert ticks == [0.01, 0.02, 0.03, 0.04, 0.05]


def test_an_interrupt_belongs_to_the_process_it_interrupts():
    env = simpy.Environment()

    def sleeper():
        with contextlib.suppress(simpy.Interrupt):
            yield env.timeout(10)

    process = env.process(sleeper())
    env.run(until=1)
    process.interrupt("wake")
    interrupts = [entry[3] for entry in env._queue if isinstance(entry[3], Interruption)]
    assert len(interrupts) == 1 and owner_of(interrupts[0]) is process
    timer = env.timeout(5)
    assert owner_of(timer) is timer  # nobody waits on it in a process: its own
