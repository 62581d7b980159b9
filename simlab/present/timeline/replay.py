"""A replayed run's timeline figure, and saving it where ``simlab replay --plot`` asks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure

from simlab.present.timeline.figure import timeline_figure
from simlab.present.timeline.tables import run_connections

if TYPE_CHECKING:
    from simlab.batch.runner import RunResult


def plot_path_problem(path: str) -> str | None:
    """Why the figure cannot be written to ``path`` (one line), or ``None``; checked before a run starts."""
    target = Path(path)
    suffix = target.suffix.lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if not target.parent.is_dir():
        return f"--plot {path}: directory {str(target.parent)!r} does not exist"
    if not os.access(target.parent, os.W_OK):
        return f"--plot {path}: directory {str(target.parent)!r} is not writable"
    if target.is_dir():
        return f"--plot {path}: is a directory, expected a file such as timeline.png"
    if suffix not in formats:
        return f"--plot {path}: unknown image format {suffix or '(none)'!r}; use one of {', '.join(sorted(formats))}"
    return None


def replay_figure(result: RunResult, *, title: str | None = None) -> Figure:
    """``result``'s timeline: its trace, projection lags, fault windows, lock holders and violations."""
    return timeline_figure(
        result.trace,
        lags=result.lags,
        fault_windows=getattr(result, "fault_windows", None),  # recorded by the runner where faults are injected
        violations=result.violations,
        lock_holders=result.lock_holds or None,
        title=title,
        connections=run_connections(result),
    )


def save_replay_figure(result: RunResult, path: str, *, title: str | None = None, dpi: int = 120) -> None:
    """Draw ``result``'s timeline into the image ``path``."""
    replay_figure(result, title=title).savefig(path, dpi=dpi)
