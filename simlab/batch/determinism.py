"""``simlab check-determinism``: the same batch three times (one worker twice, then several), every table compared.

A run depends only on its scenario and seed, so its tables may not depend on the pass, the
number of workers or the order shards finish in. Three passes into temporary folders, each read
back through the one loader; the first difference found (run count, a trace hash, a table) is named.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from simlab.batch.batches import TABLES, Notice, run_batch_to
from simlab.batch.results import Results, load_results
from simlab.scenario.model import Scenario

if TYPE_CHECKING:
    from simlab.batch.cluster import DaskRunner


@dataclass(frozen=True)
class DeterminismCheck:
    """What three passes of a batch showed: ``difference`` is '' when every table was identical."""

    reference_pass: str
    differing_pass: str  # '' when none differed
    difference: str
    violations: pd.DataFrame  # the first pass's violations table


@contextmanager
def check_folder(parent: Path | None = None) -> Iterator[Path]:
    """A temporary folder for the passes (in ``parent``, else the system's), removed with everything in it."""
    with tempfile.TemporaryDirectory(prefix=".simlab-determinism-" if parent else "simlab-determinism-",
                                     dir=parent) as tmp:  # fmt: skip
        yield Path(tmp)


def check_determinism(
    scenario: Scenario,
    runs: int,
    workers: int,
    *,
    runner: DaskRunner | None = None,
    folder: Path | None = None,
    notice: Notice | None = None,
) -> DeterminismCheck:
    """Run ``runs`` runs of ``scenario`` three times (1 worker twice, then ``workers``) and compare every table.

    With ``runner`` (a Dask cluster) the third pass runs there, every shard run a second time on another
    worker and compared (``AuditMismatch`` if one differs). The passes are written into ``folder`` (default:
    a temporary folder), and removed; ``notice`` gets what the passes have to say (the audit's outcome).
    ``BatchInterrupted`` on Ctrl-C or SIGTERM, as from any batch.
    """
    if folder is None:
        with check_folder() as tmp:
            return check_determinism(scenario, runs, workers, runner=runner, folder=tmp, notice=notice)
    third = "third pass, on the Dask cluster" if runner else f"third pass, {workers} workers"
    passes = {"first pass, 1 worker": folder / "a", "second pass, 1 worker": folder / "b", third: folder / "c"}
    seen: dict[str, Results] = {}
    for label, out in passes.items():
        cluster = runner if label == third else None
        if cluster is not None:
            cluster.audit = 1.0  # every shard of the pass, run again on another worker
        run_batch_to(scenario, runs, scenario.seed, out, workers=workers if label == third else 1,
                     shard_size=max(1, runs // 4), runner=cluster, notice=notice)  # fmt: skip
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
