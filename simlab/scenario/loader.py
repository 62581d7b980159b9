"""Finding, reading and validating scenario files, with one-line errors for bad input.

An error names the file, the field path and the problem, e.g.::

    scenarios/bad.yaml: workload.cycles.disconnect_to_reconnect_s.mean: Input should be greater than 0 (got -1)
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from simlab.scenario.limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, SHOWN_CHARS, cut, cut_quoted, shown
from simlab.scenario.model import Scenario

SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"
QUESTION_PREFIX = "# Question:"


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``str()`` is the one-line message for the user.

    ``problems`` lists every problem found, one line each (``simlab validate`` prints them all);
    ``str()`` names the first and counts the others.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]


def resolve_named_file(name_or_path: str, folder: Path, kind: str, error: type[ValueError]) -> Path:
    """A path to a YAML file, or the name of one in ``folder``; ``error`` (one line) if there is none."""
    path = Path(name_or_path)
    given = name_or_path if len(name_or_path) <= 255 and "\n" not in name_or_path else shown(name_or_path)
    try:
        if path.suffix in (".yaml", ".yml") or path.exists():
            if not path.is_file():
                raise error(f"{given}: no such {kind} file")
            return path
        candidate = folder / f"{name_or_path}.yaml"
        found = candidate.is_file()
    except OSError as problem:  # a name too long for the file system, say
        raise error(f"{given}: cannot read: {problem.strerror}") from None
    if not found:
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise error(f"{given}: no {kind} of that name in {folder} (known: {known})")
    return candidate


class _Refused(yaml.YAMLError):
    """Input the limited loader refuses: where (a field path) and what, as one line."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _field(path: list[str]) -> str:
    return "".join(path).removeprefix(".") or "(top level)"


class LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing what the lab never needs and an attacker would send.

    It composes no collection nested deeper than ``MAX_DEPTH`` (PyYAML composes recursively:
    20,000 levels would end in a ``RecursionError``), no document of more than ``MAX_NODES``
    nodes counting every alias as a full copy of what it names (the graph PyYAML builds
    shares aliased nodes, but everything downstream walks it as a tree: an alias bomb is
    refused here before it expands), no alias to a collection that contains it, and no
    mapping with the same key twice (PyYAML would keep the last one silently). Each refusal
    names the field path where it happened.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []
        self._depth = 0
        self._total = 0  # nodes composed so far, every alias counted as a copy of its target
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it expands to (known once it is composed)
        self._fields: dict[int, str] = {}  # id(node) -> the field path where it was first composed

    def _refuse(self, problem: str) -> _Refused:
        return _Refused(_field(self._path), problem)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose one node, tracking its field path, nesting, expanded size and duplicate keys."""
        label = None
        if isinstance(parent, yaml.SequenceNode) and isinstance(index, int):
            label = f"[{index}]"
        elif isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.Node):
            label = "." + cut(str(index.value)) if isinstance(index, yaml.ScalarNode) else ".(a collection key)"
        if label is not None:
            self._path.append(label)
        if self.check_event(yaml.AliasEvent):
            target = self.anchors.get(self.peek_event().anchor)
            if target is not None and id(target) not in self._sizes:
                raise self._refuse("an alias refers to a collection that contains it")
            node = super().compose_node(parent, index)  # (an undefined alias is PyYAML's own error)
            self._count(self._sizes[id(node)])
        else:
            collection = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
            if collection:
                self._depth += 1
                if self._depth > MAX_DEPTH:
                    raise self._refuse(f"nested deeper than {MAX_DEPTH} levels (the limit)")
            self._count(1)
            node = super().compose_node(parent, index)
            self._fields[id(node)] = _field(self._path)
            if isinstance(node, yaml.MappingNode):
                self._check_keys(node)
                children = [n for pair in node.value for n in pair]
            else:
                children = node.value if isinstance(node, yaml.SequenceNode) else []
            self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
            if collection:
                self._depth -= 1
        if label is not None:
            self._path.pop()
        return node

    def _count(self, nodes: int) -> None:
        self._total += nodes
        if self._total > MAX_NODES:
            raise self._refuse(
                f"the document expands to more than {MAX_NODES:,} YAML nodes, the limit "
                "(an alias counts as a copy of what it names)"
            )

    def _check_keys(self, node: yaml.MappingNode) -> None:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merge keys (<<) may repeat and be overridden; that is what they are for
            key = self.construct_object(key_node)
            if not isinstance(key, Hashable):
                continue  # PyYAML refuses it itself, with its position
            line = key_node.start_mark.line + 1
            if key in seen:
                self._path.append("." + cut(str(key_node.value)))
                raise self._refuse(
                    f"duplicate key, on lines {seen[key]} and {line} (YAML would silently keep the last)"
                )
            seen[key] = line

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """PyYAML's integer, refused with its field past Python's limit of 4,300 digits."""
        digits = sum(character.isdigit() for character in str(node.value))
        if digits > sys.get_int_max_str_digits():
            field = self._fields.get(id(node), "(top level)")
            raise _Refused(field, f"an integer of {digits:,} digits (the limit is {sys.get_int_max_str_digits():,})")
        value: int = super().construct_yaml_int(node)
        return value

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's construction; a value Python refuses (a 5,000-digit integer, a 13th month) is one line."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as problem:
            if isinstance(problem, yaml.YAMLError):
                raise
            field = self._fields.get(id(node), "(top level)")
            raise _Refused(field, f"not a value YAML can read: {cut(str(problem))} (got {shown(node.value)})") from None


LimitedLoader.add_constructor("tag:yaml.org,2002:int", LimitedLoader.construct_yaml_int)


def read_yaml_mapping(path: Path, expected: str, error: type[ValueError]) -> dict[str, Any]:
    """A YAML file's top-level mapping; ``error`` with the file, and the field path or line, of any problem.

    Within the limits of ``simlab.scenario.limits``: the file's size, strict UTF-8, nesting, nodes
    after alias expansion, and no duplicate keys.
    """
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)  # never more: a 50 MB file is refused without reading it all
            size = os.fstat(file.fileno()).st_size
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        how_big = f"{size:,} bytes" if size > MAX_FILE_BYTES else f"more than {MAX_FILE_BYTES:,} bytes"
        raise error(f"{path}: file too large: {how_big} (the limit is {MAX_FILE_BYTES:,} bytes, 1 MiB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = raw.count(b"\n", 0, problem.start) + 1
        column = problem.start - (raw.rfind(b"\n", 0, problem.start) + 1) + 1
        raise error(
            f"{path}: line {line}, column {column}: not UTF-8 text (byte 0x{raw[problem.start]:02x}); "
            "a binary file, or text in another encoding such as Latin-1?"
        ) from None
    try:
        loader = LimitedLoader(text)  # (PyYAML checks for unprintable characters right here)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as problem:
        raise error(f"{path}: {problem.field}: {problem.problem}") from None
    except yaml.YAMLError as problem:
        raise error(f"{path}: {_yaml_problem(problem, text)}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected {expected}, got {type(data).__name__}")
    return data


def _yaml_problem(problem: yaml.YAMLError, text: str) -> str:
    """PyYAML's error as ``line L, column C: YAML syntax error: what`` (its own message is several lines)."""
    mark = getattr(problem, "problem_mark", None)
    if mark is None and isinstance(problem, yaml.reader.ReaderError):
        line = text.count("\n", 0, problem.position) + 1
        column = problem.position - (text.rfind("\n", 0, problem.position) + 1) + 1
        where = f"line {line}, column {column}: "
    else:
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = getattr(problem, "problem", None) or str(problem).splitlines()[0]
    return f"{where}YAML syntax error: {cut_quoted(what)}"  # PyYAML quotes names (an alias's, a tag's) whole


def resolve_scenario_path(name_or_path: str) -> Path:
    """A scenario name from ``scenarios/`` (``reconnect_race``) or a path to a file."""
    return resolve_named_file(name_or_path, SCENARIOS_DIR, "scenario", ScenarioError)


_UNION_BRANCH = re.compile(r"(list|dict|tuple|function-[a-z]+)\[.*\]")
"""How pydantic names the branch of a union in an error's location (``list[any]``, ``function-after[...]``)."""
_BRANCH_MISMATCH = frozenset({"list_type", "dict_type", "tuple_type", "model_type"})


def _location(loc: tuple[Any, ...], limit: int | None = SHOWN_CHARS) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("fixed", "uniform", "exponential", "lognormal") and parts:
            continue  # the discriminated union's branch name adds nothing for the reader
        elif isinstance(item, str) and parts and _UNION_BRANCH.fullmatch(item):
            continue  # nor does a union's
        else:
            key = str(item) if limit is None else cut(str(item), limit)  # a key is the user's text too
            parts.append(("." if parts else "") + key)
    return "".join(parts) or "(top level)"


def _distinct_errors(error: ValidationError) -> list[ErrorDetails]:
    """One error per problem, in pydantic's order.

    A value of a union (a list of values, or a range) fails every branch, so pydantic reports one
    "should be a valid list/dict" per branch; when another error is about what is inside that value
    (a range's infinite bound), that one says more, and the branch mismatches are dropped; otherwise
    the first mismatch of the value stands for all of them.
    """
    errors = error.errors(include_url=False)
    located = [(_location(tuple(e["loc"])), e) for e in errors]
    distinct: list[ErrorDetails] = []
    mismatched: set[str] = set()
    for field, details in located:
        if details["type"] in _BRANCH_MISMATCH:
            inner = any(e["type"] not in _BRANCH_MISMATCH and _within(where, field) for where, e in located)
            if inner or field in mismatched:
                continue
            mismatched.add(field)
        distinct.append(details)
    return distinct or errors[:1]


def _within(where: str, field: str) -> bool:
    """Whether location ``where`` is ``field`` or inside it (``brokers.alpaca2`` is not in ``brokers.alpaca``)."""
    return where == field or where.startswith((f"{field}.", f"{field}["))


def validation_field(error: ValidationError) -> str:
    """The dotted path of the field ``describe_validation_error`` names, uncut (to compare with paths)."""
    return _location(tuple(_distinct_errors(error)[0]["loc"]), limit=None)


def _describe(details: ErrorDetails) -> str:
    message = cut_quoted(details["msg"].removeprefix("Value error, "))  # pydantic may quote the input whole
    where = _location(tuple(details["loc"]))
    if details["type"] not in ("missing", "extra_forbidden", "value_error") and "input" in details:
        message += f" (got {shown(details['input'])})"
    if details["type"] == "extra_forbidden":
        message = "unknown key (not part of the scenario schema)"
    return f"{where}: {message}"


def describe_validation_errors(error: ValidationError) -> list[str]:
    """Every problem of a pydantic error, each as ``field.path: problem``."""
    return list(dict.fromkeys(_describe(details) for details in _distinct_errors(error)))


def describe_validation_error(error: ValidationError) -> str:
    """The first problem of a pydantic error as ``field.path: problem`` (with a count of the others)."""
    problems = describe_validation_errors(error)
    more = len(problems) - 1
    return problems[0] + (f" [and {more} more problem(s)]" if more else "")


def load_scenario(name_or_path: str) -> Scenario:
    """Read and validate a scenario; raise ``ScenarioError`` with a one-line message on any problem."""
    path = resolve_scenario_path(name_or_path)
    data = read_yaml_mapping(path, "a mapping of scenario fields", ScenarioError)
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        problems = [f"{path}: {problem}" for problem in describe_validation_errors(error)]
        more = f" [and {len(problems) - 1} more problem(s): simlab validate lists each]" if len(problems) > 1 else ""
        raise ScenarioError(problems[0] + more, problems) from None


def scenario_question(path: Path) -> str:
    """The one-line question a scenario file answers (its ``# Question:`` comment)."""
    for line in path.read_text().splitlines():
        if line.startswith(QUESTION_PREFIX):
            return line[len(QUESTION_PREFIX) :].strip()
    return "(no question given)"


def list_scenarios() -> list[tuple[str, str]]:
    """(name, question) of every shipped scenario, sorted by name."""
    return [(p.stem, scenario_question(p)) for p in sorted(SCENARIOS_DIR.glob("*.yaml"))]
