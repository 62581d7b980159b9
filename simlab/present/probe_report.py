"""The report's probe section: each probe's status, counts and interval, and a failed probe's replay commands.

Kept apart from ``simlab.present.probes`` (which ``summary`` imports) because the replay commands come from
``replay_rows``, which itself reads ``summary``.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pandas as pd

from simlab.batch.results import Results
from simlab.present.probes import FAILED, counts_text, probe_table, verdict_text
from simlab.present.replay_rows import replay_commands


def report_rows(folder: Path, results: Results) -> list[dict[str, Any]]:
    """The report's probe rows: kind, name, status, counts and interval as text, and a failed probe's replays."""
    table = probe_table(results.runs, results.probes, results.sagas, results.faults)
    rows = []
    for row in table.to_dict("records"):
        replays: tuple[str, ...] = ()
        if row["status"] == FAILED:
            record: dict[Hashable, Any] = {"run": int(row["first_failing_run"]), "seed": int(row["first_failing_seed"])}
            if not pd.isna(row["first_failing_point"]):
                record["point"] = int(row["first_failing_point"])
            replays = replay_commands(folder, results, record)
        rows.append(
            {
                "kind": row["kind"],
                "probe": row["probe"],
                "status": row["status"],
                "counts": counts_text(row).strip(),
                "note": verdict_text(row),
                "where": row["where"],
                "replays": replays,
            }
        )
    return rows
