"""A Dask worker preload for the cluster tests: faults planted in one worker process, chosen by environment.

``dask worker --preload tests/dask_planted.py`` with
- ``SIMLAB_PLANT_KILL_SEED=S``: the worker process dies (``os._exit``) when it starts the run of seed S;
- ``SIMLAB_PLANT_SKEW=1``: every run's trace hash is replaced (a worker that is not deterministic).

It patches the worker's own copy of the lab: the driver and the other workers run the code as shipped.
"""

from __future__ import annotations

import os

import simlab.batch.batches as batches

# Dask may import this file twice (from its path, and from a copy in the worker's scratch space): the
# run_once it wraps is the lab's own, whichever import comes first.
_run_once = getattr(batches, "_unplanted_run_once", batches.run_once)
batches._unplanted_run_once = _run_once  # type: ignore[attr-defined]


def _planted_run_once(scenario, seed, **options):  # type: ignore[no-untyped-def]
    if os.environ.get("SIMLAB_PLANT_KILL_SEED") == str(seed):
        os._exit(1)
    result = _run_once(scenario, seed, **options)
    if os.environ.get("SIMLAB_PLANT_SKEW"):
        result.trace_hash = "0" * len(result.trace_hash)
    return result


batches.run_once = _planted_run_once
