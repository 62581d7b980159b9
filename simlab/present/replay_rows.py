"""The report's list of violations, each with the two commands that replay its run.

A run is named by its number in the folder the user gave (``simlab replay DIR --run N``; a sweep's
points reuse run numbers, so a point's run is named by the point's folder) and by its scenario and
seed (``simlab replay SCENARIO --seed S``): the shipped scenario's name when it is still what ran,
otherwise the exact copy the folder keeps.
"""

from __future__ import annotations

import shlex
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
    refs: dict[int | None, str] = {}
    for record in violations.to_dict("records"):
        point = int(record["point"]) if "point" in record else None
        if point not in refs:
            refs[point] = replay_reference(folder, results, point)
        setting, where = "", folder
        if point is not None:
            setting = results.manifest["points"][point]["label"]
            where = folder / results.manifest["points"][point]["folder"]  # a sweep's points reuse run numbers
        rows.append(
            {
                "invariant": record["invariant"],
                "setting": setting,
                "run": int(record["run"]),
                "seed": int(record["seed"]),
                "t": float(record["t"]),
                "explanation": str(record["explanation"]),
                "command": f"simlab replay {shlex.quote(refs[point])} --seed {int(record['seed'])}",
                "run_command": f"simlab replay {shlex.quote(str(where))} --run {int(record['run'])}",
            }
        )
    return rows
