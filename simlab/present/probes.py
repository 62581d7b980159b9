"""Probes per scenario: in how many runs each probe of the saga code was hit, with an interval, and its status.

Every probe of the static catalogue (``simlab.evidence.probes.probe_catalogue``) gets a row, so a
probe no run fired still shows. A probe counts only the runs it applies to: those that started
a saga of its saga type (a probe written in a saga class), and in which the fault family it
``needs`` was on (the run has a window of that family in the ``faults`` table; a family switched
on that struck nothing reads as off). Statuses:

``met``             a ``sometimes``/``reachable`` probe hit in some run; an ``always`` probe checked and
                    never false; an ``unreachable`` probe never reached
``never reached``   a ``sometimes``/``reachable`` probe (or an ``always`` one never checked) that no run hit;
                    ``upper_bound`` is the 95% one-sided exact (Clopper-Pearson) bound on its rate,
                    ``1 - 0.05 ** (1 / N)`` (about 3/N, the rule of three)
``failed``          an ``always`` probe found false, or an ``unreachable`` one reached, in some run (the
                    first such run is named, to replay)
``not applicable``  no run it applies to (its saga never ran, or its fault family was never on)
"""

from __future__ import annotations

import shlex
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simlab.batch.results import read_table
from simlab.batch.shards import VARIANT_SWITCHES, FinishedShard, scan_folder, variant_column
from simlab.evidence.probes import Probe, probe_catalogue
from simlab.present.analysis import CONFIDENCE, wilson_interval
from simlab.present.commands import simlab_command

PROBE_COLUMNS: tuple[str, ...] = (
    "kind", "probe", "status", "runs_hit", "runs", "share", "low", "high", "upper_bound",
    "failing_runs", "first_failing_run", "first_failing_seed", "first_failing_point", "needs", "saga_type", "where",
    "variant",
)  # fmt: skip
"""Columns of :func:`probe_table`."""
MET, NEVER, FAILED, NOT_APPLICABLE = "met", "never reached", "failed", "not applicable"

RunKey = tuple[Any, ...]  # (run,) or, in a sweep, (point, run)


def never_reached_bound(runs: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided exact upper bound on a rate seen 0 times in ``runs`` runs (NaN without runs)."""
    return 1.0 - (1.0 - confidence) ** (1.0 / runs) if runs > 0 else float("nan")


def _keys(frame: pd.DataFrame) -> list[str]:
    return ["point", "run"] if "point" in frame.columns else ["run"]


def _run_set(frame: pd.DataFrame) -> set[RunKey]:
    return set(frame[_keys(frame)].itertuples(index=False, name=None))


def _runs_by(frame: pd.DataFrame, column: str) -> dict[str, set[RunKey]]:
    """For each value of ``column``, the runs that have a row with it."""
    if frame.empty or column not in frame.columns:
        return {}
    # One row per (run, value) first: a large batch's sagas table holds millions of rows, its runs far fewer.
    pairs = frame[[*_keys(frame), column]].drop_duplicates()
    return {str(value): _run_set(group) for value, group in pairs.groupby(column, observed=True)}


def probe_table(
    runs: pd.DataFrame,
    probes: pd.DataFrame,
    sagas: pd.DataFrame,
    faults: pd.DataFrame,
    catalogue: Sequence[Probe] | None = None,
) -> pd.DataFrame:
    """One row per probe (the catalogue's, then any recorded probe it lacks), with the columns ``PROBE_COLUMNS``.

    ``runs`` names the runs (``run``, ``seed``, and ``point`` for a sweep); ``probes``, ``sagas`` and
    ``faults`` are the batch's tables (only ``kind``/``probe``/``hits``/``failures``, ``saga_type`` and
    ``family`` are read besides the run's keys).
    """
    listed = list(catalogue if catalogue is not None else probe_catalogue())
    known = {p.name for p in listed}
    if not probes.empty:
        recorded = probes[["kind", "probe"]].drop_duplicates().itertuples(index=False, name=None)
        listed += [Probe(kind, name, None, None, "?") for kind, name in recorded if name not in known]
    every = _run_set(runs)
    with_saga, with_family = _runs_by(sagas, "saga_type"), _runs_by(faults, "family")
    seeds = dict(zip(runs[_keys(runs)].itertuples(index=False, name=None), runs["seed"].tolist(), strict=True))
    by_probe = dict(tuple(probes.groupby("probe", observed=True))) if not probes.empty else {}
    rows = []
    for probe in listed:
        applies = every
        if probe.saga_type is not None:
            applies = applies & with_saga.get(probe.saga_type, set())
        if probe.needs is not None:
            applies = applies & with_family.get(probe.needs, set())
        if probe.variant is not None and variant_column(probe.variant[0]) in runs.columns:
            recorded_variant = runs[variant_column(probe.variant[0])]
            if recorded_variant.notna().any():  # (a batch of an older lab recorded no variants: every run may apply)
                applies = applies & _run_set(runs[recorded_variant == probe.variant[1]])
        rows.append(_row(probe, applies, by_probe.get(probe.name), seeds))
    # Integers that may be missing stay exact integers: a plain column would make them floats beside a None,
    # and a 64-bit seed as a float names another run.
    table = pd.DataFrame(rows, columns=list(PROBE_COLUMNS))
    for column in ("first_failing_run", "first_failing_point"):
        table[column] = pd.array([row[column] for row in rows], dtype="Int64")
    table["first_failing_seed"] = pd.array([row["first_failing_seed"] for row in rows], dtype="UInt64")
    return table


def _row(probe: Probe, applies: set[RunKey], recorded: pd.DataFrame | None, seeds: dict[RunKey, Any]) -> dict[str, Any]:
    hit = _run_set(recorded[recorded["hits"] > 0]) if recorded is not None else set()
    failing = sorted(_run_set(recorded[recorded["failures"] > 0])) if recorded is not None else []
    total, k = len(applies | hit), len(hit)
    if failing:
        status = FAILED
    elif total == 0:
        status = NOT_APPLICABLE
    elif probe.kind == "unreachable" or k > 0:
        status = MET
    else:
        status = NEVER
    low, high = wilson_interval(k, total) if total else (float("nan"), float("nan"))
    first = failing[0] if failing else None
    return {
        "kind": probe.kind,
        "probe": probe.name,
        "status": status,
        "runs_hit": k,
        "runs": total,
        "share": k / total if total else float("nan"),
        "low": low,
        "high": high,
        "upper_bound": never_reached_bound(total) if status == NEVER else float("nan"),
        "failing_runs": len(failing),
        "first_failing_run": None if first is None else int(first[-1]),
        "first_failing_seed": None if first is None else int(seeds[first]),
        "first_failing_point": None if first is None or len(first) == 1 else int(first[0]),
        "needs": probe.needs,
        "saga_type": probe.saga_type,
        "where": probe.where,
        "variant": None if probe.variant is None else ":".join(probe.variant),
    }


def folder_probe_table(folder: Path, finished: Mapping[int, FinishedShard] | None = None) -> pd.DataFrame:
    """:func:`probe_table` of the batch in ``folder``, reading only the columns it needs (``finished``: a
    check of the folder already made, as ``read_table`` takes it)."""
    shards = finished if finished is not None else scan_folder(folder).finished
    return probe_table(
        read_table(folder, "runs", ["seed", *map(variant_column, VARIANT_SWITCHES)], finished=shards),
        read_table(folder, "probes", finished=shards, categories=True),
        read_table(folder, "sagas", ["saga_type"], finished=shards, categories=True),
        read_table(folder, "faults", ["family"], finished=shards, categories=True),
    )


def unmet_probes(table: pd.DataFrame) -> list[str]:
    """The ``sometimes`` (and ``reachable``) probes that apply to some run yet no run hit: what
    ``simlab run --until-probes`` keeps running for."""
    wanted = table["kind"].isin(["sometimes", "reachable"]) & (table["status"] == NEVER)
    return table.loc[wanted, "probe"].tolist()


def format_probes(table: pd.DataFrame, folder: Path | None = None, replay_as: str | None = None) -> str:
    """The probe table as text for ``simlab run``: one line per probe, the replay of a failed one, the verdict.

    With the batch's ``folder`` a failed probe's first run is replayed by its number, then by its seed
    (``replay_as`` names the scenario), as the summary's violations are.
    """
    if table.empty:
        return "Probes: none in the saga code."
    lines = ["Probes (runs that hit each, of the runs it applies to; 95% interval):"]
    width = max(len(str(name)) for name in table["probe"])
    for row in table.to_dict("records"):
        lines.append(f"  {row['kind']:<11} {row['probe']:<{width}}  {status_text(row)}")
        if row["status"] == FAILED and folder is not None:
            lines.extend(f"      {line}" for line in _replays(row, folder, replay_as))
    unmet = unmet_probes(table)
    failed = table.loc[table["status"] == FAILED, "probe"].tolist()
    if failed:
        lines.append(f"Probes failed: {', '.join(failed)}")
    lines.append(
        f"Sometimes/reachable probes never reached: {', '.join(unmet)}"
        if unmet
        else "Every sometimes/reachable probe that applies was reached."
    )
    return "\n".join(lines)


def status_text(row: Mapping[Hashable, Any]) -> str:
    """A probe row's counts, interval and status as one piece of text (what the summary prints after its name)."""
    counts = counts_text(row)
    return f"{counts}  {verdict_text(row)}" if counts else verdict_text(row)


def counts_text(row: Mapping[Hashable, Any]) -> str:
    """``k of N``, the share and its 95% Wilson interval ("" when the probe applies to no run)."""
    k, n = row["runs_hit"], row["runs"]
    if row["status"] == NOT_APPLICABLE:
        return ""
    return f"{k:>5} of {n:<5} {k / n:>6.1%} [{row['low']:.1%}, {row['high']:.1%}]"


def verdict_text(row: Mapping[Hashable, Any]) -> str:
    """The status in words: met, never reached (with its rate's bound), failed (how often), not applicable (why)."""
    status = row["status"]
    if status == NOT_APPLICABLE:
        # NOTE: read through _named: a table column holding None for some probes holds NaN (truthy) for them.
        needs, variant, saga_type = _named(row["needs"]), _named(row.get("variant")), _named(row["saga_type"])
        if needs:
            return f"not applicable ({needs} never on)"
        if variant:
            return f"not applicable (no run of {variant}{f' started a {saga_type}' if saga_type else ''})"
        return f"not applicable (no {saga_type or 'saga'} ran)"
    if status == NEVER:
        return f"NEVER REACHED (rate < {row['upper_bound']:.2%} at 95%)"
    if status == FAILED:
        return f"FAILED in {row['failing_runs']} run(s), first run {row['first_failing_run']}"
    return MET


def _named(value: Any) -> str | None:
    """A name from a table cell, or None for an empty one (None, NaN or "")."""
    return value if isinstance(value, str) and value else None


def _replays(row: Mapping[Hashable, Any], folder: Path, replay_as: str | None) -> Iterable[str]:
    run, seed = row["first_failing_run"], row["first_failing_seed"]
    by_run = f"{simlab_command()} replay {shlex.quote(str(folder))} --run {run}"
    yield f"Replay it: {by_run}"
    if replay_as is not None:
        yield f"  (run {run} is seed {seed}: {simlab_command()} replay {replay_as} --seed {seed})"
