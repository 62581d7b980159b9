"""``simlab check-determinism``: the same batch three times (one worker twice, then several), every table compared.

A run depends only on its scenario and seed, so its tables may not depend on the pass, the
number of workers or the order shards finish in. Three passes into temporary folders, each read
back through the one loader; the first difference found (run count, a trace hash, a table) is named.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simlab.batch.batches import TABLES, run_batch_to
from simlab.batch.results import Results, load_results
from simlab.scenario.model import Scenario


@dataclass(frozen=True)
class DeterminismCheck:
    """What three passes of a batch showed: ``difference`` is '' when every table was identical."""

    reference_pass: str
    differing_pass: str  # '' when none differed
    difference: str
    violations: pd.DataFrame  # the first pass's violations table


def check_determinism(scenario: Scenario, runs: int, workers: int) -> DeterminismCheck:
    """Run ``runs`` runs of ``scenario`` three times (1 worker twice, then ``workers``) and compare every table.

    ``BatchInterrupted`` on Ctrl-C or SIGTERM, as from any batch; nothing is kept.
    """
    with tempfile.TemporaryDirectory(prefix="simlab-determinism-") as tmp:
        passes = {
            "first pass, 1 worker": (Path(tmp) / "a", 1),
            "second pass, 1 worker": (Path(tmp) / "b", 1),
            f"third pass, {workers} workers": (Path(tmp) / "c", workers),
        }
        seen: dict[str, Results] = {}
        for label, (out, count) in passes.items():
            run_batch_to(scenario, runs, scenario.seed, out, workers=count, shard_size=max(1, runs // 4))
            seen[label] = load_results(out)
    reference_label, reference = next(iter(seen.items()))
    for label, found in seen.items():
        problem = difference(reference, found)
        if problem:
            return DeterminismCheck(reference_label, label, problem, reference.violations)
    return DeterminismCheck(reference_label, "", "", reference.violations)


def difference(reference: Results, found: Results) -> str:
    """What differs between two loads of the same batch ('' when every table is identical)."""
    if len(found.runs) != len(reference.runs):
        return f"{len(found.runs)} runs instead of {len(reference.runs)}"
    hashes = reference.runs["trace_hash"].to_numpy() != found.runs["trace_hash"].to_numpy()
    if hashes.any():
        return f"trace hashes differ at runs {reference.runs['run'][hashes].tolist()[:10]}"
    for name in TABLES:
        if not getattr(reference, name).equals(getattr(found, name)):
            return f"the {name} tables differ"
    return ""
