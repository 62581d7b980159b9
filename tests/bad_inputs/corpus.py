"""The corpus of hostile inputs: each case's files laid out in a folder, its command line and what its
one-line refusal must say. ``tests/test_bad_inputs.py`` runs every case; ``benchmarks/hostile_inputs.py``
times them.

A case (``cases.yaml``) names its command line (``argv``, with placeholders), where its input comes
from (a committed ``file`` under this folder, or a ``generate``d one: the big cases are made at run
time, never committed), an optional ``setup`` of the folder (a finished batch with a damaged shard,
an existing file where the output should go), and two fragments of the message: ``where`` (the file
and the field, or the argument) and ``problem``.

Placeholders: ``{file}`` the case's input, ``{out}`` an output folder, ``{results}`` a results folder
made by the setup, ``{report}`` a report file.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

HERE = Path(__file__).resolve().parent
CASES_FILE = HERE / "cases.yaml"
RESULTS_SCENARIO = HERE / "scenarios" / "tiny.yaml"
"""The good scenario the results-folder setups run (2 runs, shards of 1, root seed 1)."""
SHOWN = 80
COMMANDS = (
    "sample",
    "scenarios",
    "validate",
    "run",
    "check-determinism",
    "replay",
    "sweep",
    "report",
    "explore",
    "shrink",
)
"""Any value a message quotes is at most this long."""


@dataclass(frozen=True)
class Case:
    """One hostile input."""

    id: str
    argv: tuple[str, ...]
    where: str
    problem: str
    file: str | None = None
    generate: dict[str, Any] | None = None
    setup: str | None = None
    subprocess: bool = False  # also run as a real command (stderr of the process, not of main())

    @property
    def command(self) -> str:
        """The ``simlab`` command the case runs (a word that is none: ``simlab`` itself refuses it)."""
        return self.argv[0] if self.argv[0] in COMMANDS else ""


@dataclass
class Prepared:
    """A case laid out in its folder: the command line to run and the message's expected fragments."""

    case: Case
    folder: Path
    argv: list[str]
    where: str
    problem: str
    input: Path | None
    watched: dict[str, str] = field(default_factory=dict)  # every file in the folder -> its digest, before


def load_cases() -> list[Case]:
    """Every case of ``cases.yaml``, in file order."""
    raw = yaml.safe_load(CASES_FILE.read_text())
    cases = [Case(**{**entry, "argv": tuple(str(a) for a in entry["argv"])}) for entry in raw["cases"]]
    ids = [case.id for case in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{CASES_FILE}: duplicate case ids {duplicates}")
    return cases


# -- generated inputs ---------------------------------------------------------------------------


def _alias_bomb(at: str = "horizon_s", levels: int = 9, fan: int = 10) -> str:
    """``fan ** levels`` nodes from a few hundred bytes: every level lists the one below ``fan`` times."""
    lines = ["name: bomb"]
    anchors = [f"&l0 [{', '.join(['1'] * fan)}]"]
    anchors += [f"&l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
    head, _, leaf = at.rpartition(".")
    indent = ""
    for part in head.split(".") if head else []:
        lines.append(f"{indent}{part}:")
        indent += "  "
    lines.append(f"{indent}{leaf}:")
    lines += [f"{indent}  - {anchor}" for anchor in anchors]
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int = 9) -> str:
    """The same bomb through merge keys (``<<``): each mapping merges the one below ten times."""
    lines = ["name: bomb", "x0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    for i in range(1, levels):
        lines.append(f"x{i}: &m{i} {{{', '.join(f'k{k}: *m{i - 1}' for k in range(10))}}}")
    lines.append(f"workload: {{<<: *m{levels - 1}}}")
    return "\n".join(lines) + "\n"


def _grid_bomb(levels: int = 9) -> str:
    lines = ["parameters:", "  sagas.lock_ttl_s:"]
    lines.append("    - &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]")
    lines += [f"    - &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _deep(depth: int, kind: str, prefix: str) -> str:
    if kind == "flow-list":
        return f"{prefix}{'[' * depth}1{']' * depth}\n"
    if kind == "flow-map":
        return f"{prefix}{'{a: ' * depth}1{'}' * depth}\n"
    lines = [prefix.rstrip()]  # block style: one more level of indentation per line
    lines += [f"{'  ' * (level + 1)}a{level}:" for level in range(depth)]
    return "\n".join(lines) + " 1\n"


def generate(spec: dict[str, Any]) -> bytes:
    """The bytes of a generated input (``kind`` and its parameters, from ``cases.yaml``)."""
    kind = spec["kind"]
    size = int(spec.get("size", 0))
    if kind == "alias_bomb":
        return _alias_bomb(spec.get("at", "horizon_s")).encode()
    if kind == "merge_bomb":
        return _merge_bomb().encode()
    if kind == "grid_bomb":
        return _grid_bomb().encode()
    if kind == "deep":
        return _deep(int(spec["depth"]), spec["style"], spec.get("prefix", "name: deep\nhorizon_s: ")).encode()
    if kind == "long_value":  # ``text`` with ``{big}`` standing for ``size`` characters
        return spec["text"].replace("{big}", spec.get("fill", "x") * size).encode()
    if kind == "many_items":  # a flat list of ``size`` items at ``at``
        return f"name: many\n{spec['at']}: [{', '.join(['1'] * size)}]\n".encode()
    if kind == "padded":  # a good scenario padded by a comment to ``size`` bytes
        head = b"name: padded\n# "
        return head + b"x" * (size - len(head) - 1) + b"\n"
    raise ValueError(f"unknown generated input {kind!r}")


# -- setups of the case's folder ----------------------------------------------------------------


def make_results(folder: Path) -> Path:
    """A finished batch of ``tiny.yaml`` (2 runs, shards of 1, root seed 1) in ``folder``."""
    from simlab.batch.batches import run_batch_to
    from simlab.scenario import load_scenario

    run_batch_to(load_scenario(str(RESULTS_SCENARIO)), 2, 1, folder, workers=1, shard_size=1)
    return folder


def _reseal(folder: Path, index: int, name: str, data: bytes, rows: int) -> None:
    """Replace a table of a finished shard and rewrite its marker to vouch for the new file."""
    from simlab.batch.shards import marker_path, table_path

    table_path(folder, index, name).write_bytes(data)
    marker = marker_path(folder, index)
    sealed = json.loads(marker.read_text())
    sealed["tables"][name].update(rows=rows, sha256=hashlib.sha256(data).hexdigest())
    marker.write_text(json.dumps(sealed, indent=1, sort_keys=True) + "\n")


def _mistyped_shard(folder: Path) -> None:
    """Shard 0's sagas table rewritten with text where a duration belongs, and resealed: every check
    of the folder passes, and only reading the table can find it out."""
    from simlab.batch.shards import table_path

    table = pq.read_table(table_path(folder, 0, "sagas"))
    position = table.schema.get_field_index("duration_s")  # (a column the summary of `simlab run` reads)
    text = pa.array(["not a duration"] * table.num_rows, pa.string())
    table = table.set_column(position, "duration_s", text)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    _reseal(folder, 0, "sagas", sink.getvalue().to_pybytes(), table.num_rows)


def _out_is_file(folder: Path) -> None:
    (folder / "out").write_text("my notes\n")


def _out_not_empty(folder: Path) -> None:
    (folder / "out").mkdir()
    (folder / "out" / "notes.txt").write_text("my notes\n")


def _report_is_folder(folder: Path) -> None:
    (folder / "report.html").mkdir()


SETUPS: dict[str, Callable[[Path], None]] = {
    "out_is_file": _out_is_file,
    "out_not_empty": _out_not_empty,
    "out_is_folder_html": _report_is_folder,
}
"""Setups of the case's folder; ``finished_batch`` (a copy of a finished batch) and ``mistyped_shard`` (that
copy, damaged) are apart."""


def prepare(case: Case, folder: Path, finished_batch: Callable[[], Path]) -> Prepared:
    """Lay ``case`` out in the empty ``folder``; ``finished_batch()`` gives a batch to copy from."""
    source: Path | None = None
    if case.file is not None:
        source = folder / Path(case.file).name
        source.write_bytes((HERE / case.file).read_bytes())
    elif case.generate is not None:
        source = folder / f"{case.id}.yaml"
        source.write_bytes(generate(case.generate))
    if case.setup in ("mistyped_shard", "finished_batch"):
        shutil.copytree(finished_batch(), folder / "results")
        if case.setup == "mistyped_shard":
            _mistyped_shard(folder / "results")
    elif case.setup is not None:
        SETUPS[case.setup](folder)
    values = {
        "file": str(source) if source else "",
        "out": str(folder / "out"),
        "results": str(folder / "results"),
        "report": str(folder / "report.html"),
        "tiny": str(folder / "tiny.yaml"),
    }
    if any("{tiny}" in a for a in case.argv):
        shutil.copy(RESULTS_SCENARIO, folder / "tiny.yaml")
    argv = [_fill(a, values) for a in case.argv]
    prepared = Prepared(case, folder, argv, _fill(case.where, values), _fill(case.problem, values), source)
    prepared.watched = snapshot(folder)
    return prepared


def _fill(text: str, values: dict[str, str]) -> str:
    text = re.sub(r"\{repeat:(.):(\d+)\}", lambda m: m.group(1) * int(m.group(2)), text)
    return re.sub(r"\{(file|out|results|report|tiny)\}", lambda m: values[m.group(1)], text)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` -> a digest of its content (folders: ``<dir>``)."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        relative = str(path.relative_to(folder))
        seen[relative] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


# -- what the refusal must be ---------------------------------------------------------------------

_QUOTED = re.compile(r"'[^'\n]*'")
_GOT = re.compile(r"\(got (.*?)\)(?= \[and|$)")  # a value is shown last, or before "[and N more problem(s)]"


def problems(prepared: Prepared, status: int | None, stdout: str, stderr: str) -> list[str]:
    """Everything wrong with how the command refused the case (empty: it refused as it should)."""
    found = []
    if status != 2:
        found.append(f"exit status {status}, not 2")
    if "Traceback" in stderr:
        found.append("a traceback on stderr")
    lines = stderr.splitlines()
    # `simlab validate` lists every problem of a scenario, one line each; every other refusal is one line.
    if len(lines) != 1 and not (prepared.case.command == "validate" and lines):
        found.append(f"{len(lines)} lines on stderr, not 1: {stderr[:300]!r}")
    line = lines[0] if lines else ""
    prefix = f"simlab {prepared.case.command}: " if prepared.case.command else "simlab: "
    if prepared.where not in line:
        found.append(f"the line does not name {prepared.where!r}: {line[:300]!r}")
    if prepared.problem not in line:
        found.append(f"the line does not say {prepared.problem!r}: {line[:300]!r}")
    for each in lines or [""]:
        if len(each) > 1000:
            found.append(f"a line of {len(each):,} characters")
        if not each.startswith(prefix):
            found.append(f"the line does not start with {prefix!r}: {each[:200]!r}")
        for quoted in _QUOTED.findall(each):
            if len(quoted) > SHOWN:
                found.append(f"a quoted value of {len(quoted)} characters: {quoted[:100]!r}")
        for got in _GOT.findall(each):
            if len(got) > SHOWN:
                found.append(f"a value shown in {len(got)} characters: {got[:100]!r}")
    if stdout:
        found.append(f"output on stdout: {stdout[:200]!r}")
    after = snapshot(prepared.folder)
    if after != prepared.watched:
        changed = sorted(set(after.items()) ^ set(prepared.watched.items()))
        found.append(f"files written or changed: {[name for name, _ in changed][:5]}")
    return found
