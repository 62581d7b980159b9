"""Every notebook runs top to bottom in a real Jupyter kernel, with small sizes, so none of them rots.

The sizes are set the way a user sets them: a cell placed right after the notebook's cell tagged
``parameters`` (papermill's convention), which here also sends the results into a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"

# Small sizes per notebook (the defaults in each parameters cell are what a user runs in under two minutes),
# and how many figures each must draw.
SMALL: dict[str, tuple[str, int]] = {
    "01_quickstart": ("RUNS = 40", 5),
    "02_timeout_tuning": ("RUNS_PER_POINT = 6\nDEADLINES_S = [0.25, 2.0]", 5),
    "03_retry_backoff_jitter": ('RUNS_PER_POINT = 4\nJITTERS = ["none", "full"]\nATTEMPTS = [6]\nFACTORS = [2.0]', 4),
    "04_reconnect_races": ("RUNS = 80", 2),
    "05_compensation_outcomes": ("RUNS = 12", 1),
    "06_reliability_report": ("RUNS = 30\nRUNS_PER_POINT = 4", 1),
}


def test_every_notebook_in_the_folder_is_exercised_here():
    assert sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb")) == sorted(SMALL)


def _images(nb: nbformat.NotebookNode) -> int:
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    )


def _progress_left(nb: nbformat.NotebookNode) -> list[str]:
    """Saved outputs that still show a progress bar (tqdm's rate unit, ``run/s``): a widget's text is saved
    as it was first shown (``0run [00:00, ?run/s]``), and would read as work that never started."""
    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    texts = [
        str(out.get("text", "")) + "".join(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
        for out in outputs
    ]
    return [text[:80] for text in texts if "run/s" in text]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_notebook_runs_top_to_bottom_in_a_real_kernel(name, tmp_path):
    path = NOTEBOOKS_DIR / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), f"{name} is committed with outputs"
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    sizes, figures = SMALL[name]
    nb.cells.insert(tagged[0] + 1, new_code_cell(f"{sizes}\nRESULTS = {str(tmp_path)!r}"))
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    assert _images(nb) >= figures
    assert _progress_left(nb) == []
    # Nothing was written into the working tree: every result went into the temporary folder.
    assert any(tmp_path.iterdir())
    assert not (NOTEBOOKS_DIR.parent / "results" / "notebooks").exists() or name not in {
        p.name.split("-")[0] for p in (NOTEBOOKS_DIR.parent / "results" / "notebooks").iterdir()
    }


def test_a_notebook_s_progress_bar_leaves_nothing_when_done_and_how_far_it_got_when_cut_short():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        new_code_cell(
            "from simlab.batch.progress import progress_bar\n"
            "with progress_bar(10, notebook=True) as (progress, _):\n"
            "    progress(10, 10, 2)"
        ),
        new_code_cell(
            "with progress_bar(10, notebook=True) as (progress, _):\n"
            "    progress(3, 10, 0)\n"
            "    raise KeyboardInterrupt"
        ),
    ]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True)
    client.execute()
    done, cut = (
        [out.get("data", {}).get("text/plain") for out in cell.outputs if out.output_type == "display_data"]
        for cell in nb.cells
    )
    assert done == [""]
    assert cut == ["stopped after 3 of 10 runs (KeyboardInterrupt)"]
    assert _progress_left(nb) == []
