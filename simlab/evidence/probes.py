"""Probes in the lab: a per-run recorder of ``sagas.probes`` calls, and the static catalogue of every probe.

A run records its probe calls with a ``ProbeRecorder`` installed around the simulation
(``sagas.probes.recording``): per probe, how often it was hit and, for ``always`` and
``unreachable``, how often it failed. The recorder keeps its own counts, outside the trace, so
probes never change a trace hash.

The catalogue (``probe_catalogue``) reads the source of the ``sagas`` package (``ast``, no
import) and lists every ``probes.<kind>(...)`` call, so a probe that no run ever fired is still
reported as "never reached". A probe's name (and its optional ``needs=``) must be a string
literal, since the catalogue cannot evaluate anything else: a non-literal one raises
``ProbeCatalogueError`` naming the file and line. A probe written inside a saga class whose
``get_saga_type`` returns a literal belongs to that saga type: a batch that never started such
a saga does not count the probe's runs.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import sagas
from sagas.probes import PROBE_KINDS, ProbeKind
from sagas.trading.config import SagaVariants

SAGAS_ROOT = Path(sagas.__file__).resolve().parent
PROBE_MODULE = "probes"  # a probe is written ``probes.<kind>(...)``, after ``from sagas import probes``


@dataclass(frozen=True, slots=True)
class ProbeCount:
    """One probe's record in one run: how often it was evaluated and hit, and how often it failed."""

    kind: ProbeKind
    name: str
    hits: int
    failures: int


class ProbeRecorder:
    """A ``sagas.probes.ProbeSink`` for one run: counts per (kind, name), in first-hit order."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[tuple[ProbeKind, str], list[int]] = {}

    def hit(self, kind: ProbeKind, name: str, ok: bool) -> None:
        """Count one evaluation of probe ``name``; ``ok`` False is a failure."""
        counts = self._counts.get((kind, name))
        if counts is None:
            counts = self._counts[(kind, name)] = [0, 0]
        counts[0] += 1
        if not ok:
            counts[1] += 1

    def counts(self) -> list[ProbeCount]:
        """Every probe the run evaluated, sorted by (kind, name) so that the rows never depend on call order."""
        return [ProbeCount(kind, name, c[0], c[1]) for (kind, name), c in sorted(self._counts.items())]


@dataclass(frozen=True, slots=True)
class Probe:
    """A probe as the source declares it: kind, name, the fault family it needs, its saga type, where it is."""

    kind: ProbeKind
    name: str
    needs: str | None
    saga_type: str | None
    where: str  # path relative to the sagas package's parent, and line: ``sagas/trading/sagas/x.py:42``
    variant: tuple[str, str] | None = None
    """(switch, value) of ``SagaVariants`` the path exists in, e.g. ("purge", "safe"); None: every variant."""


class ProbeCatalogueError(ValueError):
    """A probe the catalogue cannot read (a name that is not a string literal, one name of two kinds)."""


def probe_catalogue(root: Path = SAGAS_ROOT) -> list[Probe]:
    """Every probe written in the package at ``root`` (default: ``sagas``), sorted by (kind, name).

    One name written in several places is one probe (its first place is kept); one name used
    with two kinds, or with two different ``needs``, is an error.
    """
    found: dict[str, Probe] = {}
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent).as_posix()
        for probe in _probes_in(ast.parse(path.read_text(), filename=str(path)), where):
            seen = found.setdefault(probe.name, probe)
            if (seen.kind, seen.needs) != (probe.kind, probe.needs):
                raise ProbeCatalogueError(
                    f"{probe.where}: probe {probe.name!r} is declared differently at {seen.where}"
                    f" ({seen.kind}, needs {seen.needs}) and here ({probe.kind}, needs {probe.needs})"
                )
    return sorted(found.values(), key=lambda p: (PROBE_KINDS.index(p.kind), p.name))


def _probes_in(tree: ast.Module, where: str) -> Iterable[Probe]:
    for node in ast.walk(tree):
        # ``from sagas.probes import sometimes`` would make calls the catalogue cannot tell from others.
        if isinstance(node, ast.ImportFrom) and node.module == "sagas.probes":
            kinds = [alias.name for alias in node.names if alias.name in PROBE_KINDS]
            if kinds:
                raise ProbeCatalogueError(
                    f"{where}:{node.lineno}: import the module (from sagas import probes) and call"
                    f" probes.{kinds[0]}(...): the catalogue finds probes by that spelling"
                )
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            saga_type = _saga_type(node)
            for inner in ast.walk(node):
                if isinstance(inner, ast.Call) and (kind := _probe_kind(inner)):
                    yield _probe(inner, kind, saga_type, where)
        else:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Call) and (kind := _probe_kind(inner)):
                    yield _probe(inner, kind, None, where)


def _probe_kind(call: ast.Call) -> ProbeKind | None:
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == PROBE_MODULE:
        for kind in PROBE_KINDS:
            if func.attr == kind:
                return kind
    return None


def _probe(call: ast.Call, kind: ProbeKind, saga_type: str | None, where: str) -> Probe:
    place = f"{where}:{call.lineno}"
    name = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "name"), None)
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
        raise ProbeCatalogueError(
            f"{place}: probes.{kind} needs its name as a string literal (the lab finds probes by reading"
            " the source, so it cannot report a name computed at run time)"
        )
    needs = next((k.value for k in call.keywords if k.arg == "needs"), None)
    family = needs.value if isinstance(needs, ast.Constant) else None
    if needs is not None and not (isinstance(needs, ast.Constant) and isinstance(family, str | None)):
        raise ProbeCatalogueError(f"{place}: probes.{kind}'s needs= must be a string literal (a fault family)")
    return Probe(kind, name.value, family if isinstance(family, str) else None, saga_type, place, _variant(call, place))


def _variant(call: ast.Call, place: str) -> tuple[str, str] | None:
    """The ``variant="switch:value"`` literal of a probe call, checked against ``SagaVariants`` (None: none)."""
    given = next((k.value for k in call.keywords if k.arg == "variant"), None)
    if given is None:
        return None
    switches = tuple(field.name for field in dataclasses.fields(SagaVariants))
    text = given.value if isinstance(given, ast.Constant) and isinstance(given.value, str) else ""
    switch, _, value = text.partition(":")
    if switch not in switches or value not in ("seed", "safe"):
        raise ProbeCatalogueError(
            f"{place}: variant= must be a string literal SWITCH:seed or SWITCH:safe (SWITCH: {', '.join(switches)})"
        )
    return switch, value


def _saga_type(cls: ast.ClassDef) -> str | None:
    """The literal a class's ``get_saga_type`` returns (None: it has none, or it computes it)."""
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "get_saga_type":
            returns = [n.value for n in ast.walk(node) if isinstance(n, ast.Return)]
            if len(returns) == 1 and isinstance(returns[0], ast.Constant) and isinstance(returns[0].value, str):
                return returns[0].value
    return None
