"""Modules stay under 500 lines and functions under 50, in the engine and the lab.

A module or function that outgrows its limit is reported by name with its size: split it by what
it holds (``docs/architecture.md`` shows where things live).
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULE_LINES = 500
FUNCTION_LINES = 50


def oversized(root: pathlib.Path = ROOT) -> dict[str, int]:
    """``path`` or ``path:function`` -> lines, for every module and function over its limit."""
    found: dict[str, int] = {}
    for package in ("sagas", "simlab"):
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            name = path.relative_to(root).as_posix()
            lines = len(text.splitlines())
            if lines > MODULE_LINES:
                found[name] = lines
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                    length = node.end_lineno - node.lineno + 1
                    if length > FUNCTION_LINES:
                        found[f"{name}:{node.name}"] = length
    return found


def test_no_module_or_function_outgrows_its_limit():
    assert oversized() == {}, "over the limit (module 500 lines, function 50): split by what it holds"


def test_the_limits_see_a_long_function(tmp_path):
    package = tmp_path / "simlab"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    (package / "long.py").write_text(f"def long():\n{body}\n")
    (tmp_path / "sagas").mkdir()
    assert oversized(tmp_path) == {"simlab/long.py:long": 61}
