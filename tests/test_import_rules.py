"""The architecture's rules: the engine never imports the lab or its libraries, nor reads ambient state."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORBIDDEN_MODULES = ("simlab", "simpy", "pandas", "matplotlib", "fakeredis")


def test_importing_sagas_loads_neither_the_lab_nor_its_libraries():
    code = (
        "import json, sys, sagas, sagas.engine, sagas.stores, sagas.runtime; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "sagas" in loaded
    assert loaded.isdisjoint(FORBIDDEN_MODULES), loaded & set(FORBIDDEN_MODULES)


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_module_in_sagas_imports_the_lab_or_its_libraries():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] in FORBIDDEN_MODULES)
        for path in (ROOT / "sagas").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_runtime_adapter_imports_asyncio():
    importers = sorted(
        str(path.relative_to(ROOT / "sagas"))
        for path in (ROOT / "sagas").rglob("*.py")
        if any(n.split(".")[0] == "asyncio" for n in _imports(path))
    )
    assert all(name.startswith("runtime/") for name in importers), importers


AMBIENT_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("uuid", "uuid4"),
    ("uuid", "uuid1"),
    ("os", "getenv"),
    ("os", "environ"),
    ("random", "random"),
    ("random", "randint"),
    ("random", "uniform"),
    ("random", "choice"),
    ("random", "shuffle"),
    ("random", "seed"),
}


def test_engine_code_reads_no_wall_clock_global_random_uuid4_or_environment():
    found = []
    for path in (ROOT / "sagas" / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in AMBIENT_CALLS
            ):
                found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    assert found == []
