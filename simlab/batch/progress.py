"""The progress bar of long work (runs done, rate, violations found), in a terminal or a notebook."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from simlab.batch.batches import Notice, Progress


@contextmanager
def progress_bar(total: int = 0, *, notebook: bool = False) -> Iterator[tuple[Progress, Notice]]:
    """A tqdm bar on stderr (a widget in Jupyter when ``notebook``), fed by the runner's progress calls,
    and a way to print a line above it (what the runner has to tell, such as a damaged shard).

    In Jupyter the widget is removed when the work ends: a saved notebook keeps a widget's text as
    it was first shown (``0run [00:00, ?run/s]``), which would read as work that never started. Work
    cut short (an error, an interrupt) leaves one line in its place: how far it got.
    """
    from tqdm import tqdm
    from tqdm.auto import tqdm as auto_tqdm
    from tqdm.notebook import tqdm as notebook_tqdm

    kind = auto_tqdm if notebook else tqdm
    widget = issubclass(kind, notebook_tqdm)  # tqdm.auto is the widget only inside a Jupyter kernel
    options = {"display": False} if widget else {}
    bar = kind(
        total=total, unit="run", file=sys.stderr, disable=False if notebook else None, dynamic_ncols=True, **options
    )
    shown = _show(bar) if widget else None

    def progress(done: int, total: int, violations: int) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(f"violations={violations}", refresh=False)
        bar.refresh()

    def notice(line: str) -> None:
        bar.write(line, file=sys.stderr)

    stopped: BaseException | None = None
    try:
        yield progress, notice
    except BaseException as error:
        stopped = error
        raise
    finally:
        bar.close()
        if shown is not None:  # the output that held the widget: emptied, or saying where the work stopped
            said = (
                "" if stopped is None else f"stopped after {bar.n:,} of {bar.total:,} runs ({type(stopped).__name__})"
            )
            shown.update({"text/plain": said}, raw=True)


def _show(bar: Any) -> Any:
    """Display a notebook bar's widget under a display id (so that it can be replaced); its handle."""
    from IPython.display import display

    handle = display(bar.container, display_id=True)
    bar.displayed = True  # tqdm's own flag: it would display the widget a second time on its first refresh
    return handle
