"""How the batch and sweep figures split their runs: by which settings, and what each group is called.

Shared by ``simlab.present.plots`` and ``simlab.present.violation_plots``, so a configuration
carries the same name in every figure of a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simlab.batch.batches import Results


def short(name: str) -> str:
    """A setting's last part: ``max_attempts`` for ``sagas.consistency_retry.max_attempts``."""
    return name.rsplit(".", 1)[-1]


def split_by(results: Results, by: Sequence[str] | None) -> list[str]:
    """The columns a figure groups by: ``by`` if given, else the swept parameters (none for a plain batch)."""
    return list(results.params if by is None else by)


def group_label(keys: Sequence[str], key: Any) -> str:
    """``max_attempts=2, median_lag_s=0.5`` for the group ``key`` of ``keys``; ``all runs`` without keys."""
    if not keys:
        return "all runs"
    values = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{short(k)}={v}" for k, v in zip(keys, values, strict=True))
