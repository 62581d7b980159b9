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


def test_only_the_runtime_adapter_and_the_test_support_import_asyncio():
    importers = sorted(
        str(path.relative_to(ROOT / "sagas"))
        for path in (ROOT / "sagas").rglob("*.py")
        if any(n.split(".")[0] == "asyncio" for n in _imports(path))
    )
    assert all(name.startswith(("runtime/", "testing/")) for name in importers), importers


def test_production_code_never_imports_the_test_support():
    # sagas.testing serves tests: nothing a service runs may depend on it.
    importers = sorted(
        str(path.relative_to(ROOT / "sagas"))
        for path in (ROOT / "sagas").rglob("*.py")
        if not path.is_relative_to(ROOT / "sagas" / "testing")
        and any(n == "sagas.testing" or n.startswith("sagas.testing.") for n in _imports(path))
    )
    assert importers == []


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


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(package: str = "sagas") -> dict[str, set[str]]:
    """Module -> the ``package`` modules it imports, counting imports under ``if TYPE_CHECKING:`` too.

    ``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``.
    A package's parents are not counted (importing ``sagas.engine.trace`` runs ``sagas.engine``'s
    ``__init__`` first, which is how packages work, not a cycle anyone wrote).
    """
    paths = {_module_name(path): path for path in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    targets.add(child if child in paths else node.module)
        graph[module] = {t for t in targets if t in paths and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_among_sagas_modules():
    # Counted with TYPE_CHECKING imports: a cycle hidden from the interpreter is still one for a reader.
    graph = _import_graph("sagas")
    assert "sagas.engine.manager" in graph["sagas.engine"]
    assert _cycles(graph) == []


def test_no_import_cycle_among_simlab_modules():
    graph = _import_graph("simlab")
    assert "simlab.chaos.faults.family" in graph["simlab.chaos.faults.ports"]
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
