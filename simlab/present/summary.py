"""Summaries of a batch of runs: outcomes per saga type, durations, retries, violations with their seeds,
reach, saga types that never reached their goal, and whether the batch met its scenario's expectation."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from simlab.batch.batches import config_hash
from simlab.batch.results import read_table
from simlab.batch.runner import RunResult
from simlab.batch.shards import SCENARIO_FILE, read_manifest, scan_folder
from simlab.evidence.reach import REACH_PATHS, reach_column
from simlab.present.commands import simlab_command
from simlab.present.probes import folder_probe_table, format_probes
from simlab.present.timeline.tables import run_connections
from simlab.scenario.loader import ScenarioError, load_scenario
from simlab.scenario.model import Scenario, Variant

REACH_COLUMNS: tuple[str, ...] = ("path", "runs_reached", "runs", "share", "times", "needed", "unreached")
"""Columns of :func:`reach_table`."""

ABORTED = (
    'aborted = a step ended the saga early by design (it raised SagaAborted or returned {"aborted": True}): '
    "not a failure, and nothing is compensated"
)
"""What the status ``aborted`` means for any saga (``sagas.engine.execution``)."""

ABORTED_BY_TYPE: dict[str, str] = {
    "BrokerDisconnectionSaga": "the normal ending of a disconnection that finds the connection reconnected (or "
    "already purged); also a purge refused, by the write model (safe purge) or because the read model still "
    "listed accounts (seed purge)",
    "BrokerConnectionSaga": "the connection was no longer connected when the saga verified it",
    "ConnectionRecoverySaga": "the failure needs the user (invalid credentials): the user is told, nothing is retried",
}
"""Why each trading saga aborts, from its steps (``sagas.trading.sagas``): said next to ``ABORTED``."""


def saga_table(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per saga of every run (seed, type, status, duration, attempts, retries)."""
    rows = [
        {
            "seed": result.seed,
            "saga_type": row.saga_type,
            "status": row.status,
            "duration_s": (row.ended_at - row.started_at) if row.ended_at is not None else None,
            "attempts": row.attempts,
            "retries": row.retries,
        }
        for result in results
        for row in result.sagas
    ]
    return pd.DataFrame(rows, columns=["seed", "saga_type", "status", "duration_s", "attempts", "retries"])


def violation_table(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per invariant violation (seed, invariant, time, sagas, explanation)."""
    rows = [
        {
            "seed": r.seed,
            "invariant": v.invariant,
            "t": v.t,
            "sagas": ",".join(v.saga_ids),
            "explanation": v.explanation,
        }
        for r in results
        for v in r.violations
    ]
    return pd.DataFrame(rows, columns=["seed", "invariant", "t", "sagas", "explanation"])


def outcome_summary(sagas: pd.DataFrame) -> pd.DataFrame:
    """Counts and rates of each terminal status per saga type, with duration quantiles and mean retries."""
    grouped = sagas.groupby(["saga_type", "status"], observed=True)
    counts = grouped.size().rename("count")
    table = counts.to_frame()
    table["rate"] = counts / counts.groupby(level=0).transform("sum")
    table["p50_s"] = grouped["duration_s"].quantile(0.5)
    table["p99_s"] = grouped["duration_s"].quantile(0.99)
    table["mean_retries"] = grouped["retries"].mean()
    return table


def format_summary(scenario_name: str, runs: int, root_seed: int, results: list[RunResult]) -> str:
    """The text `simlab run` prints, from in-memory results."""
    unchecked = sorted({name for r in results for name in r.unchecked})
    return format_tables(scenario_name, runs, root_seed, saga_table(results), violation_table(results), unchecked)


def batch_summary(folder: Path | str) -> str:
    """The text `simlab run` prints for the batch in ``folder``, read through the lab's one loader.

    Only the columns the summary needs are read, text as categories, so memory stays flat
    however many runs the batch holds; every finished shard is checked and read.
    """
    folder = Path(folder)
    scan = scan_folder(folder)
    manifest = read_manifest(folder)
    sagas = read_table(
        folder, "sagas", ["seed", "saga_type", "status", "duration_s", "retries"], finished=scan.finished,
        categories=True,
    )  # fmt: skip
    violations = read_table(folder, "violations", finished=scan.finished, categories=True)
    reach = [reach_column(path) for path in REACH_PATHS]
    runs = read_table(folder, "runs", ["unchecked", *reach], finished=scan.finished)
    unchecked = sorted({name for cell in runs["unchecked"].tolist() for name in str(cell or "").split(",") if name})
    scenario = _kept_scenario(folder)
    needed = scenario.reach if scenario is not None else ()
    text = format_tables(
        str(manifest.get("scenario", folder.name)),
        len(runs),
        int(manifest.get("root_seed", 0)),
        sagas,
        violations,
        unchecked,
        expected_runs=int(manifest["runs"]) if "runs" in manifest else None,
        problems=[damaged.describe(folder) for damaged in scan.damaged],
        replay_as=shlex.quote(replay_reference(folder, manifest)),
        folder=folder,
    )
    if scenario is not None:
        verdict = expectation_verdict(scenario, violations["invariant"].astype(str).tolist(), len(runs))
        text += "\n" + verdict.describe()
    probes = folder_probe_table(folder, scan.finished)
    probes_text = format_probes(probes, folder, shlex.quote(replay_reference(folder, manifest)))
    return text + "\n\n" + format_reach(reach_table(runs, needed)) + "\n\n" + probes_text


def replay_reference(folder: Path, manifest: Mapping[str, str]) -> str:
    """How ``simlab replay`` should name the scenario of a batch in ``folder``: the shipped name when the
    shipped file is still the configuration that ran, otherwise the exact copy kept in the folder (a
    batch run with changed settings, or from a file, replays only from that copy)."""
    name = str(manifest.get("scenario", ""))
    try:
        shipped = load_scenario(name) if name else None
    except ScenarioError:
        shipped = None
    if shipped is not None and config_hash(shipped) == manifest.get("config_hash"):
        return name
    return str(folder / SCENARIO_FILE)


def _kept_scenario(folder: Path) -> Scenario | None:
    """The exact scenario a batch ran, as its folder keeps it (None if it is missing or unreadable)."""
    try:
        return load_scenario(str(folder / SCENARIO_FILE))
    except ScenarioError:
        return None


def format_tables(
    scenario_name: str,
    runs: int,
    root_seed: int,
    sagas: pd.DataFrame,
    violations: pd.DataFrame,
    unchecked: list[str],
    *,
    expected_runs: int | None = None,
    problems: Sequence[str] = (),
    replay_as: str | None = None,
    folder: Path | None = None,
) -> str:
    """The text `simlab run` prints: outcomes per saga type, then violations with the runs that show them.

    ``replay_as`` is how the replay command names the scenario (default: its name). With the batch's
    ``folder``, violations name their run numbers and the replay command is the folder's and the run's
    (a run number alone means nothing outside its batch); without it, their seeds.
    """
    if expected_runs is not None and runs < expected_runs:
        head = f"{scenario_name}: {runs} of {expected_runs} runs from root seed {root_seed} (the rest are missing)"
    else:
        head = f"{scenario_name}: {runs} runs from root seed {root_seed}"
    lines = [head, *(f"Left out: {problem}" for problem in problems), ""]
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 140):
        lines.append(outcome_summary(sagas).to_string() if len(sagas) else "(no sagas ran)")
    lines.extend(f"Note: {note}" for note in goal_notes(sagas))
    if note := aborted_note(sagas):
        lines.append(f"Note: {note}")
    lines.append("")
    lines.extend(_violation_lines(violations, replay_as or scenario_name, folder))
    if unchecked:
        lines.append(f"Not checked yet: {', '.join(unchecked)}")
    return "\n".join(lines)


def _violation_lines(violations: pd.DataFrame, replay_as: str, folder: Path | None) -> list[str]:
    """Each invariant's violations with the runs (or, without the batch's ``folder``, the seeds) that show
    them, then the command that replays the first."""
    if violations.empty:
        return ["Invariant violations: none"]
    lines = ["Invariant violations:"]
    by = "run" if folder is not None else "seed"
    for invariant, group in violations.groupby("invariant", observed=True):
        named = list(dict.fromkeys(group[by]))
        shown = ", ".join(str(s) for s in named[:5]) + (" ..." if len(named) > 5 else "")
        lines.append(f"  {invariant}: {len(group)} in {len(named)} run(s); {by}s: {shown}")
        lines.append(f"    e.g. {group.iloc[0]['explanation']}")
    lines.append("")
    first = violations.iloc[0]
    by_seed = f"{simlab_command()} replay {replay_as} --seed {first['seed']}"
    if folder is None:
        return [*lines, f"Replay one: {by_seed}"]
    by_run = f"{simlab_command()} replay {shlex.quote(str(folder))} --run {first['run']}"
    return [*lines, f"Replay one: {by_run}", f"  (run {first['run']} is seed {first['seed']}: {by_seed})"]


def format_timeline(result: RunResult) -> str:
    """The text `simlab replay` prints: every trace record, then the violations and the trace hash.

    Each record names its saga by the first 8 characters of its id and, for a saga about one broker
    connection, of that connection, which is what violations name: as the run recorded it from the
    saga's trigger event, else as its locks and violations tell (``timeline.saga_connections``).
    """
    connections = run_connections(result)
    lines = []
    for r in result.trace:
        what = " ".join(
            part
            for part in (
                r.step or "",
                f"#{r.attempt}" if r.attempt else "",
                r.phase,
                r.outcome,
                f"[{r.error_type}]" if r.error_type else "",
                f"retry in {r.retry_delay:.3f}s" if r.retry_delay is not None else "",
                f"({r.detail})" if r.detail else "",
            )
            if part
        )
        connection = connections.get(r.saga_id)
        saga = f"{r.saga_id[:8]} " + (f"conn {connection[:8]}" if connection else " " * 13)
        lines.append(f"{r.t:12.6f}  {r.saga_type:<24} {saga}  {what}")
    lines.append("")
    for v in result.violations:
        lines.append(f"VIOLATION {v.invariant} at t={v.t:.6f}: {v.explanation}")
    lines.append(f"trace sha256: {result.trace_hash}")
    return "\n".join(lines)


def reach_table(runs: pd.DataFrame, needed: Iterable[str] = ()) -> pd.DataFrame:
    """In how many runs each engine path was reached, from the ``runs`` table's ``reach_<path>`` columns.

    One row per path of ``simlab.evidence.reach.REACH_PATHS``, in that order: ``runs_reached`` (runs whose count
    is above zero), ``runs`` (all runs), ``share`` (their ratio), ``times`` (the count summed over all
    runs), ``needed`` (the path is in ``needed``, a scenario's ``reach:`` list) and ``unreached``
    (needed, yet no run reached it: the batch cannot answer what the scenario asks). A table written
    before the lab counted a path has no column for it: its figures are missing (NA) and it is not
    flagged, since nothing was measured.
    """
    wanted = list(dict.fromkeys(needed))
    unknown = [p for p in wanted if p not in REACH_PATHS]
    if unknown:
        raise ValueError(f"unknown engine path(s) {', '.join(unknown)}; expected some of {', '.join(REACH_PATHS)}")
    total = len(runs)
    rows = []
    for path in REACH_PATHS:
        column = reach_column(path)
        counted = column in runs.columns
        counts = runs[column].fillna(0) if counted else None
        reached = int((counts > 0).sum()) if counts is not None else pd.NA
        rows.append(
            {
                "path": path,
                "runs_reached": reached,
                "runs": total,
                "share": (reached / total if total else 0.0) if counts is not None else pd.NA,
                "times": int(counts.sum()) if counts is not None else pd.NA,
                "needed": path in wanted,
                "unreached": path in wanted and counts is not None and reached == 0,
            }
        )
    table = pd.DataFrame(rows, columns=list(REACH_COLUMNS))
    for column in ("runs_reached", "times"):
        table[column] = table[column].astype("Int64")
    table["share"] = table["share"].astype("Float64")
    return table


def format_reach(table: pd.DataFrame) -> str:
    """The reach table as text (for `simlab run` and the report): one line per path, then the verdict.

    Needed paths carry a ``*``; a needed path no run reached says so on its line and in the last line.
    """
    total = int(table["runs"].iloc[0]) if len(table) else 0
    lines = [f"Reach: runs (of {total}) that exercised each engine path; * = the scenario's question needs it"]
    for row in table.to_dict("records"):
        mark = "*" if row["needed"] else " "
        path, reached, share, times = row["path"], row["runs_reached"], row["share"], row["times"]
        if pd.isna(reached):
            lines.append(f" {mark} {path:<31} not counted in these results")
            continue
        line = f" {mark} {path:<31} {int(reached):>7}  {float(share):>6.1%}  {int(times):>9,} times"
        lines.append(line + ("   NEEDED, NOT REACHED" if row["unreached"] else ""))
    missing = table.loc[table["unreached"], "path"].tolist()
    if missing:
        lines.append(f"Not reached by any run, though the scenario needs it: {', '.join(missing)}")
    elif table["needed"].any():
        lines.append("Every path the scenario needs was reached.")
    return "\n".join(lines)


def aborted_note(sagas: pd.DataFrame) -> str:
    """One line: what ``aborted`` means, and why each saga type that aborted in ``sagas`` does ("" if none did)."""
    if sagas.empty:
        return ""
    aborting = sorted(set(sagas.loc[sagas["status"] == "aborted", "saga_type"].astype(str)))
    if not aborting:
        return ""
    why = [f"{saga_type}: {ABORTED_BY_TYPE[saga_type]}" for saga_type in aborting if saga_type in ABORTED_BY_TYPE]
    return ABORTED + (f" ({'; '.join(why)})" if why else "") + "."


def goal_notes(sagas: pd.DataFrame) -> list[str]:
    """One note per saga type that ran in the batch and never completed: the scenario never shows it
    reaching its goal (every instance compensated, timed out, aborted or still running), so whatever
    the scenario asks about that saga, the batch cannot answer it."""
    notes = []
    for saga_type, statuses in sagas.groupby("saga_type", observed=True)["status"]:
        if (statuses == "completed").any():
            continue
        seen = ", ".join(f"{count} {status}" for status, count in statuses.value_counts().sort_index().items())
        notes.append(f"{saga_type} never completed ({seen}): the batch never shows it reaching its goal")
    return notes


@dataclass(frozen=True, slots=True)
class ExpectationVerdict:
    """Whether a batch showed what its scenario's ``expect`` says about its variants.

    ``status`` is ``met``, ``not met`` or ``no expectation`` (mixed variants, or none stated);
    ``unexpected`` lists what was violated but not expected, ``missing`` what was expected but
    violated in no run.
    """

    status: Literal["met", "not met", "no expectation"]
    variant: Variant | None
    expected: Literal["clean"] | tuple[str, ...] | None
    unexpected: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    runs: int = 0
    reason: str = ""

    def describe(self) -> str:
        """One line for the batch summary."""
        if self.status == "no expectation":
            return f"Expectation: none ({self.reason})"
        wanted = "clean" if self.expected == "clean" else f"violations of {', '.join(self.expected or ())}"
        head = f"Expectation ({self.variant} variants, {wanted}): {self.status}"
        if self.status == "met":
            return f"{head} in {self.runs} run(s)"
        problems = []
        if self.unexpected:
            problems.append(f"violated {', '.join(self.unexpected)}")
        if self.missing:
            problems.append(f"{', '.join(self.missing)} violated in none of {self.runs} run(s)")
        return f"{head}: {'; '.join(problems)}"


def scenario_variant(scenario: Scenario) -> Variant | None:
    """``seed`` or ``safe`` when every variant switch of ``scenario`` is on that side; None when mixed."""
    variants = scenario.sagas.variants
    switches: set[Variant] = {getattr(variants, name) for name in type(variants).model_fields}
    return switches.pop() if len(switches) == 1 else None


def expectation_verdict(scenario: Scenario, violated: Iterable[str], runs: int) -> ExpectationVerdict:
    """Did a batch of ``runs`` runs of ``scenario`` (as run, settings applied) meet its ``expect``?

    ``violated`` names what was violated in the batch (the violations table's ``invariant`` column:
    invariants, and anything else the runner reports, such as ``task_failed``, which no expectation
    allows). A pure function: the caller reads the tables.
    """
    variant = scenario_variant(scenario)
    if variant is None:
        switches = ", ".join(f"{name}={value}" for name, value in scenario.sagas.variants.model_dump().items())
        return ExpectationVerdict("no expectation", None, None, runs=runs, reason=f"mixed variants: {switches}")
    expected = getattr(scenario.expect, variant)
    if expected is None:
        return ExpectationVerdict(
            "no expectation", variant, None, runs=runs, reason=f"the scenario states none for {variant} variants"
        )
    seen = set(violated)
    wanted = set() if expected == "clean" else set(expected)
    unexpected = tuple(sorted(seen - wanted))
    missing = tuple(sorted(wanted - seen))
    status: Literal["met", "not met"] = "met" if not unexpected and not missing else "not met"
    return ExpectationVerdict(status, variant, expected, unexpected, missing, runs)
