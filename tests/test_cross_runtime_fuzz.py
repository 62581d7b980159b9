"""Random saga scripts behave identically on the simulated clock and on asyncio (virtual time).

Each seed draws a workload of scripted sagas: per-attempt outcomes (ok, fail, hang past
the deadline, abort), durations, step deadlines, retry policies (jitter, non-retryable
errors, budgets), failing and hanging compensations, saga deadlines, staggered arrivals
and sometimes a manager crash followed by recovery. Both runtimes must write the same
trace, record for record, and end every saga in the same state.

Ties: asyncio orders timers due at the same instant by its heap, simpy by insertion, so
two timers due at exactly the same time may fire in either order. Every duration, delay,
deadline and arrival gap is therefore drawn from a continuous range (never rounded and
never a shared constant) so that no two timers fall due together except by coincidence.
That includes step deadlines: after a crash every resumed saga re-runs its step from the
same instant, so each saga instance gets its own step deadline. Zero durations are kept:
they exercise same-instant sequencing without any timer tie.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from typing import Any

import pytest

from sagas import RetryConfig, SagaState, TraceRecord
from tests.harness import World, run_asyncio, run_sim
from tests.scripted import STEPS, Go, ScriptedFailure, ScriptedSaga

SEEDS = range(150)


def _duration(rng: random.Random, high: float) -> float:
    return 0.0 if rng.random() < 0.15 else rng.uniform(0.01, high)


def _outcomes(rng: random.Random, kinds: list[str], weights: list[int], high: float) -> list[tuple[str, float]]:
    outcomes = []
    for _ in range(4):
        kind = rng.choices(kinds, weights)[0]
        outcomes.append((kind, 0.0 if kind == "hang" else _duration(rng, high)))
    return outcomes


def scenario(seed: int) -> Any:
    """The workload for ``seed``: a ``main(world)`` that returns every saga's final state."""
    rng = random.Random(seed)
    steps = STEPS[: rng.randint(1, len(STEPS))]
    saga_timeout = rng.choice([rng.uniform(3.0, 20.0), 300.0])
    retry = RetryConfig(
        max_attempts=rng.randint(1, 4),
        initial_delay_ms=rng.uniform(10.0, 800.0),
        max_delay_ms=rng.uniform(800.0, 2500.0),
        backoff_factor=rng.uniform(1.0, 3.0),
        jitter=rng.choice(["none", "full", "equal", "decorrelated"]),
        non_retryable=(ScriptedFailure,) if rng.random() < 0.2 else (),
        retry_budget_ms=rng.uniform(500.0, 5000.0) if rng.random() < 0.3 else None,
    )
    sagas = []
    for index in range(rng.randint(1, 4)):
        script = {name: _outcomes(rng, ["ok", "fail", "hang", "abort"], [5, 4, 2, 1], 3.0) for name in steps}
        compensation = {name: _outcomes(rng, ["ok", "fail", "hang"], [6, 3, 1], 2.0) for name in steps}
        gap = rng.uniform(0.01, 1.5)
        sagas.append((Go(event_id=f"e{index}", script=script, compensation_script=compensation), gap))
    crash_at = rng.uniform(0.5, 8.0) if rng.random() < 0.3 else None

    def factory(world: World) -> Any:
        # A fresh step deadline per saga instance, drawn in call order (the same on both runtimes).
        deadlines = world.streams.stream("fuzz step deadlines")
        return lambda: ScriptedSaga(
            world.note, steps=steps, saga_timeout=saga_timeout, step_timeout=deadlines.uniform(0.5, 3.0), retry=retry
        )

    async def main(world: World) -> list[dict[str, Any]]:
        world.manager.register(Go, factory(world))
        for event, gap in sagas:
            await world.manager.handle_event(event)
            await world.runtime.sleep(gap)
        if crash_at is not None:
            await world.runtime.sleep(crash_at)
            world.manager.stop()
            await world.runtime.sleep(0)
            world.new_manager().register(Go, factory(world))
            await world.manager.recover()
        await world.manager.wait_idle()
        return [state.to_dict() for state in await _all_states(world)]

    return main


async def _all_states(world: World) -> list[SagaState]:
    states = [await world.store.load(saga_id) for saga_id in sorted({r.saga_id for r in world.tracer.records})]
    return [state for state in states if state is not None]


@functools.cache
def run_both(seed: int) -> tuple[tuple[Any, World], tuple[Any, World]]:
    return run_sim(scenario(seed), seed=seed), run_asyncio(scenario(seed), seed=seed)


def _first_difference(seed: int, sim: list[TraceRecord], aio: list[TraceRecord]) -> str:
    for index, (a, b) in enumerate(zip(sim, aio, strict=False)):
        if a != b:
            return f"seed {seed}: traces differ at record {index}\n  sim:     {a}\n  asyncio: {b}"
    return f"seed {seed}: one trace is a prefix of the other ({len(sim)} vs {len(aio)} records)"


@pytest.mark.parametrize("seed", SEEDS, ids=lambda seed: f"seed{seed}")
def test_a_random_workload_writes_the_same_trace_on_both_runtimes(seed):
    (sim_states, sim_world), (aio_states, aio_world) = run_both(seed)
    sim, aio = sim_world.tracer.records, aio_world.tracer.records
    assert sim == aio, _first_difference(seed, sim, aio)
    assert sim_world.log == aio_world.log
    assert sim_states == aio_states
    assert all(state["status"] not in ("running", "compensating") for state in sim_states)


def test_the_workloads_cover_every_terminal_status_and_attempt_outcome():
    """Guards the generator: the seeds above must reach every path worth comparing."""
    statuses: Counter[str] = Counter()
    outcomes: Counter[tuple[str, str]] = Counter()
    crashed_seeds = 0
    for seed in SEEDS:
        (states, world), _ = run_both(seed)
        statuses.update(state["status"] for state in states)
        outcomes.update((r.phase, r.outcome) for r in world.tracer.records)
        crashed_seeds += any(r.outcome == "resumed" for r in world.tracer.records)
    assert set(statuses) == {"completed", "compensated", "compensation_failed", "timed_out", "aborted"}
    assert {
        ("execute", "completed"),
        ("execute", "failed"),
        ("execute", "timed_out"),
        ("execute", "cancelled"),
        ("execute", "aborted"),
        ("retry", "scheduled"),
        ("compensate", "compensated"),
        ("compensate", "failed"),
        ("compensate", "timed_out"),
        ("compensate", "gave_up"),
        ("saga", "resumed"),
    } <= set(outcomes)
    assert crashed_seeds >= 20
