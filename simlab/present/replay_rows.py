"""The report's list of violations, each with the two commands that replay its run.

A run is named by its number in the folder the user gave (``simlab replay DIR --run N``; a sweep's
points reuse run numbers, so a point's run is named by the point's folder) and by its scenario and
seed (``simlab replay SCENARIO --seed S``): the shipped scenario's name when it is still what ran,
otherwise the exact copy the folder keeps.
"""

from __future__ import annotations

import shlex
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from simlab.batch.results import Results
from simlab.batch.shards import SCENARIO_FILE
from simlab.present import summary as summary_text


def replay_reference(folder: Path, results: Results, point: int | None) -> str:
    """How ``simlab replay`` should name the scenario of a run in ``folder`` (see ``summary.replay_reference``);
    a sweep point's run always replays from the exact copy kept in its point's folder."""
    if point is not None:
        folder_point = results.manifest["points"][point]["folder"]
        return str(folder / folder_point / SCENARIO_FILE)
    return summary_text.replay_reference(folder, results.manifest)


def replay_rows(folder: Path, results: Results) -> list[dict[str, Any]]:
    """One row per violation: where and when, what broke, and the two commands that replay its run (by the run's
    number in ``folder``, as the user named it, and by the scenario and the run's seed)."""
    violations = results.violations
    if violations.empty:
        return []
    rows = []
    refs: dict[int | None, str] = {}  # a point's scenario reference, worked out once (it may load the scenario)
    for record in violations.to_dict("records"):
        point = int(record["point"]) if "point" in record else None
        if point not in refs:
            refs[point] = replay_reference(folder, results, point)
        run_command, command = replay_commands(folder, results, record, refs[point])
        setting = results.manifest["points"][point]["label"] if point is not None else ""
        rows.append(
            {
                "invariant": record["invariant"],
                "setting": setting,
                "run": int(record["run"]),
                "seed": int(record["seed"]),
                "t": float(record["t"]),
                "explanation": str(record["explanation"]),
                "command": command,
                "run_command": run_command,
            }
        )
    return rows


def replay_commands(
    folder: Path, results: Results, record: Mapping[Hashable, Any], scenario: str | None = None
) -> tuple[str, str]:
    """The two commands that replay the run of a violations-table ``record``: by its number in its batch's
    folder (a sweep point's own folder: the points reuse run numbers), and by its scenario (``scenario``, else
    ``replay_reference``) and seed."""
    point = int(record["point"]) if "point" in record else None
    where = folder / results.manifest["points"][point]["folder"] if point is not None else folder
    scenario = scenario if scenario is not None else replay_reference(folder, results, point)
    return (
        f"simlab replay {shlex.quote(str(where))} --run {int(record['run'])}",
        f"simlab replay {shlex.quote(scenario)} --seed {int(record['seed'])}",
    )
