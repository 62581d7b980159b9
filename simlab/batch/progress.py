"""The progress bar of long work (runs done, rate, violations found), in a terminal or a notebook."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from simlab.batch.batches import Notice, Progress


@contextmanager
def progress_bar(total: int = 0, *, notebook: bool = False) -> Iterator[tuple[Progress, Notice]]:
    """A tqdm bar on stderr (a widget in Jupyter when ``notebook``), fed by the runner's progress calls,
    and a way to print a line above it (what the runner has to tell, such as a damaged shard)."""
    from tqdm import tqdm
    from tqdm.auto import tqdm as auto_tqdm

    kind = auto_tqdm if notebook else tqdm
    bar = kind(total=total, unit="run", file=sys.stderr, disable=False if notebook else None, dynamic_ncols=True)

    def progress(done: int, total: int, violations: int) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(f"violations={violations}", refresh=False)
        bar.refresh()

    def notice(line: str) -> None:
        bar.write(line, file=sys.stderr)

    try:
        yield progress, notice
    finally:
        bar.close()
