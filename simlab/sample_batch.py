"""``simlab sample``: the sample saga many times on the simulated clock, summarised as a table.

(``make demo`` is the lab's main job, a batch of ``reconnect_race``; this is the engine alone on a
saga free of the trading domain.)
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import pandas as pd

from sagas import SagaState, trace_hash
from simlab.evidence.trace_tables import saga_rows
from simlab.sim.sample import OrderRequested, SampleOrderSaga, SampleProfile
from simlab.sim.world import SimWorld, simulate


@dataclass(frozen=True, slots=True)
class SampleRun:
    """One run's outcome: status, simulated duration, attempts, trace hash."""

    seed: int
    status: str
    compensation_outcome: str | None
    duration_s: float
    attempts: int
    retries: int
    trace_hash: str


def run_sample(seed: int, profile: SampleProfile | None = None, sagas: int = 1) -> tuple[list[SampleRun], SimWorld]:
    """Run ``sagas`` concurrent sample sagas in one simulated world seeded with ``seed``."""
    profile = profile or SampleProfile()

    async def main(world: SimWorld) -> list[SagaState]:
        world.manager.register(OrderRequested, lambda: SampleOrderSaga(profile))
        for index in range(sagas):
            await world.manager.handle_event(OrderRequested(event_id=f"order-{index}", order_id=f"order-{index}"))
        return await world.manager.wait_idle()

    finals, world = simulate(main, seed)
    digest = trace_hash(world.tracer.records)
    runs = []
    rows = {row.saga_id: row for row in saga_rows(world.tracer.records)}
    for state in finals:
        attempts, retries = rows[state.saga_id].attempts, rows[state.saga_id].retries
        runs.append(
            SampleRun(
                seed,
                state.status.value,
                state.compensation_outcome,
                state.updated_at - state.started_at,
                attempts,
                retries,
                digest,
            )
        )
    return runs, world


def outcome_table(runs: list[SampleRun]) -> pd.DataFrame:
    """Counts, shares and simulated-duration quantiles per terminal status."""
    frame = pd.DataFrame([dataclasses.asdict(r) for r in runs])
    grouped = frame.groupby("status")
    table = pd.DataFrame(
        {
            "count": grouped.size(),
            "share": grouped.size() / len(frame),
            "p50_s": grouped["duration_s"].quantile(0.5),
            "p95_s": grouped["duration_s"].quantile(0.95),
            "max_s": grouped["duration_s"].max(),
            "mean_retries": grouped["retries"].mean(),
        }
    )
    order = ["completed", "compensated", "compensation_failed", "timed_out", "aborted"]
    return table.reindex([s for s in order if s in table.index])


def main(runs: int = 1000, seed: int = 0) -> int:
    """Print the outcome table of ``runs`` seeded runs of the sample saga."""
    started = time.perf_counter()
    results: list[SampleRun] = []
    for offset in range(runs):
        results.extend(run_sample(seed + offset)[0])
    elapsed = time.perf_counter() - started
    table = outcome_table(results)
    print(f"Sample saga (4 steps, random latency/failures/hangs), {runs} runs, seeds {seed}..{seed + runs - 1}")
    print(f"simulated on the simpy clock in {elapsed:.2f} s wall time\n")
    with pd.option_context("display.float_format", "{:.3f}".format):
        print(table.to_string())
    print("\nDurations are simulated seconds from start to terminal status.")
    return 0
