"""Finding, reading and validating scenario files, with one-line errors for bad input.

An error names the file, the field path and the problem, e.g.::

    scenarios/bad.yaml: workload.cycles.disconnect_to_reconnect_s.mean: Input should be greater than 0 (got -1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simlab.scenario.model import Scenario

SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"
QUESTION_PREFIX = "# Question:"


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``str()`` is the one-line message for the user."""


def resolve_named_file(name_or_path: str, folder: Path, kind: str, error: type[ValueError]) -> Path:
    """A path to a YAML file, or the name of one in ``folder``; ``error`` (one line) if there is none."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise error(f"{name_or_path}: no such {kind} file")
        return path
    candidate = folder / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise error(f"{name_or_path}: no {kind} of that name in {folder} (known: {known})")
    return candidate


def read_yaml_mapping(path: Path, expected: str, error: type[ValueError]) -> dict[str, Any]:
    """A YAML file's top-level mapping; ``error`` with the file, line and column of any problem."""
    try:
        text = path.read_text()
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(problem, "problem", None) or str(problem).splitlines()[0]
        raise error(f"{path}: {where}YAML syntax error: {what}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected {expected}, got {type(data).__name__}")
    return data


def resolve_scenario_path(name_or_path: str) -> Path:
    """A scenario name from ``scenarios/`` (``reconnect_race``) or a path to a file."""
    return resolve_named_file(name_or_path, SCENARIOS_DIR, "scenario", ScenarioError)


def _location(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("fixed", "uniform", "exponential", "lognormal") and parts:
            continue  # the discriminated union's branch name adds nothing for the reader
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def describe_validation_error(error: ValidationError) -> str:
    """The first problem of a pydantic error as ``field.path: problem`` (with a count of the others)."""
    first = error.errors(include_url=False)[0]
    message = first["msg"].removeprefix("Value error, ")
    where = _location(tuple(first["loc"]))
    if first["type"] not in ("missing", "extra_forbidden", "value_error") and "input" in first:
        message += f" (got {first['input']!r})"
    if first["type"] == "extra_forbidden":
        message = "unknown key (not part of the scenario schema)"
    more = error.error_count() - 1
    return f"{where}: {message}" + (f" [and {more} more problem(s)]" if more else "")


def load_scenario(name_or_path: str) -> Scenario:
    """Read and validate a scenario; raise ``ScenarioError`` with a one-line message on any problem."""
    path = resolve_scenario_path(name_or_path)
    data = read_yaml_mapping(path, "a mapping of scenario fields", ScenarioError)
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(f"{path}: {describe_validation_error(error)}") from None


def scenario_question(path: Path) -> str:
    """The one-line question a scenario file answers (its ``# Question:`` comment)."""
    for line in path.read_text().splitlines():
        if line.startswith(QUESTION_PREFIX):
            return line[len(QUESTION_PREFIX) :].strip()
    return "(no question given)"


def list_scenarios() -> list[tuple[str, str]]:
    """(name, question) of every shipped scenario, sorted by name."""
    return [(p.stem, scenario_question(p)) for p in sorted(SCENARIOS_DIR.glob("*.yaml"))]
