"""A run is a function of its seed: equal seeds give equal traces, on either runtime."""

from __future__ import annotations

from sagas import SagaStatus
from simlab.sample_batch import run_sample
from simlab.sim.sample import OrderRequested, SampleOrderSaga
from tests.harness import run_asyncio, run_sim


def _staggered_sample(sagas: int):
    # Arrivals are spread out at random: asyncio breaks ties between timers due at the
    # same instant differently from simpy's stable insertion order, so the comparison
    # across runtimes avoids exact ties (within the simulated runtime, ties are stable).
    async def main(world):
        world.manager.register(OrderRequested, SampleOrderSaga)
        arrivals = world.streams.stream("workload")
        for index in range(sagas):
            await world.manager.handle_event(OrderRequested(event_id=f"o{index}", order_id=f"o{index}"))
            await world.runtime.sleep(arrivals.expovariate(10.0))
        return await world.manager.wait_idle()

    return main


def test_same_seed_gives_the_same_trace_hash():
    first, _ = run_sample(seed=42, sagas=30)
    second, _ = run_sample(seed=42, sagas=30)
    assert first[0].trace_hash == second[0].trace_hash
    assert first == second


def test_different_seeds_give_different_trace_hashes():
    hashes = {run_sample(seed=seed, sagas=5)[0][0].trace_hash for seed in range(20)}
    assert len(hashes) == 20


def test_the_same_sagas_behave_identically_on_asyncio_and_on_the_simulated_clock():
    # 40 concurrent sagas with random latencies, failures, hangs (deadlines), retries with
    # jitter and compensations: same seed, same trace, record for record, on both runtimes.
    sim_finals, sim_world = run_sim(_staggered_sample(40), seed=7)
    aio_finals, aio_world = run_asyncio(_staggered_sample(40), seed=7)
    assert len(sim_world.tracer.records) > 400
    assert {s.status for s in sim_finals} >= {SagaStatus.COMPLETED, SagaStatus.COMPENSATED}
    assert any(r.outcome == "timed_out" for r in sim_world.tracer.records)
    assert sim_world.tracer.records == aio_world.tracer.records
    assert sim_world.trace_hash() == aio_world.trace_hash()
    assert [s.to_dict() for s in sim_finals] == [s.to_dict() for s in aio_finals]
