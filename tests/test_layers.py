"""The lab's layers: every import in ``simlab`` points down (or within its own layer), never up.

Bottom to top: ``sim``, ``evidence``, ``scenario``, ``chaos``, ``batch``, ``present``, and the
entry points (``cli`` and its ``cli_*`` modules, ``lab``, ``sample_batch``). Imports inside
functions count too: a deferred import is still a dependency.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAYERS = ("sim", "evidence", "scenario", "chaos", "batch", "present")
ENTRY = len(LAYERS)  # cli, lab, sample_batch, __main__ and the package face


def layer_of(module: str) -> int:
    """The layer of a ``simlab`` module by its dotted name (``simlab.batch.runner`` -> 4)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return ENTRY


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def _simlab_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "simlab"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "simlab":  # ``from simlab import lab``: the names are modules of the top
                found += [(node.lineno, f"simlab.{alias.name}") for alias in node.names]
            elif node.module.split(".")[0] == "simlab":
                found.append((node.lineno, node.module))
    return found


def upward_imports(root: pathlib.Path = ROOT) -> list[str]:
    """Every import under ``root/simlab`` of a module in a higher layer, as ``path:line: imports module``."""
    offenders = []
    for path in sorted((root / "simlab").rglob("*.py")):
        if path.parent == root / "simlab" and path.name == "__init__.py":
            continue  # the package face re-exports from the bottom layer; it is not a layer of its own
        own = layer_of(_module_name(path, root))
        for line, target in _simlab_imports(path):
            if layer_of(target) > own:
                offenders.append(f"{path.relative_to(root)}:{line}: imports {target}")
    return offenders


def test_every_simlab_module_belongs_to_a_layer_package_or_is_an_entry_point():
    loose = sorted(
        path.name
        for path in (ROOT / "simlab").glob("*.py")
        if path.stem
        not in {
            "__init__",
            "__main__",
            "cli",
            "cli_cluster",
            "cli_probes",
            "cli_replay",
            "cli_explore",
            "cli_shrink",
            "lab",
            "sample_batch",
        }
    )
    assert loose == []


def test_imports_only_point_down_the_layers():
    assert upward_imports() == []


def test_the_rule_sees_an_upward_import_inside_a_function(tmp_path):
    planted = tmp_path / "simlab" / "sim"
    planted.mkdir(parents=True)
    (planted / "bad.py").write_text("def f():\n    from simlab.present.report import write_report\n")
    assert upward_imports(tmp_path) == ["simlab/sim/bad.py:2: imports simlab.present.report"]


def test_every_layer_package_states_its_role_and_what_it_may_import():
    for name in LAYERS:
        doc = ast.get_docstring(ast.parse((ROOT / "simlab" / name / "__init__.py").read_text())) or ""
        assert "May import" in doc, name


# Underscore names that are public API by their library's convention.
PUBLIC_BY_CONVENTION = {"_asdict", "_replace", "_fields", "_make", "_exit", "_value_", "_name_"}  # namedtuple, os, enum

# Reaches made on purpose, name by name, each explained where it is made.
SANCTIONED_REACHES = {
    # SimulatedRedis's direct path into fakeredis's command layer: fakeredis has no public seam below its
    # RESP byte parser, and skipping redis-py's packing and that parser is the point (see the module docstring).
    "simlab/sim/clocked_redis.py": {"_server", "_killed", "_decode"},
    # The connection under it builds fakeredis's socket through fakeredis's own _connect, then re-classes it:
    # fakeredis has no seam to choose the socket class (see redis_wire's module docstring).
    "simlab/sim/redis_wire.py": {"_connect"},
    # Reusing a SimulatedRedis for the next world: its fakeredis server is reached through the socket, and the
    # client ids a new server hands out are restored (fakeredis has no public reset; see the module docstring).
    "simlab/sim/redis_spares.py": {"_server", "_next_client_id"},
}


def private_reaches(root: pathlib.Path = ROOT) -> list[str]:
    """Every ``x._name`` in ``sagas`` or ``simlab`` on an object other than ``self``/``cls`` whose attribute
    the module does not define itself: reading another package's internals instead of asking through a seam."""
    found = []
    for path in sorted([*(root / "sagas").rglob("*.py"), *(root / "simlab").rglob("*.py")]):
        tree = ast.parse(path.read_text(), filename=str(path))
        sanctioned = SANCTIONED_REACHES.get(path.relative_to(root).as_posix(), set())
        own = {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
            and isinstance(node.ctx, ast.Store)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in PUBLIC_BY_CONVENTION
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in own
                and node.attr not in sanctioned
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reads_another_packages_underscore_names():
    assert private_reaches() == []


def test_the_seam_rule_sees_a_reach_into_a_bus(tmp_path):
    (tmp_path / "simlab").mkdir()
    (tmp_path / "simlab" / "bad.py").write_text("def f(bus):\n    return bus._subscribers\n")
    assert private_reaches(tmp_path) == ["simlab/bad.py:2: bus._subscribers"]
