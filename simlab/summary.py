"""Summaries of a batch of runs: outcomes per saga type, durations, retries, violations with their seeds,
saga types that never reached their goal, and whether the batch met its scenario's expectation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from simlab.runner import RunResult
from simlab.scenario.model import Scenario, Variant


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


def format_tables(
    scenario_name: str,
    runs: int,
    root_seed: int,
    sagas: pd.DataFrame,
    violations: pd.DataFrame,
    unchecked: list[str],
) -> str:
    """The text `simlab run` prints: outcomes per saga type, then violations with the seeds that show them."""
    lines = [f"{scenario_name}: {runs} runs from root seed {root_seed}", ""]
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 140):
        lines.append(outcome_summary(sagas).to_string() if len(sagas) else "(no sagas ran)")
    lines.extend(f"Note: {note}" for note in goal_notes(sagas))
    lines.append("")
    if violations.empty:
        lines.append("Invariant violations: none")
    else:
        lines.append("Invariant violations:")
        for invariant, group in violations.groupby("invariant", observed=True):
            seeds = list(dict.fromkeys(group["seed"]))
            shown = ", ".join(str(s) for s in seeds[:5]) + (" ..." if len(seeds) > 5 else "")
            lines.append(f"  {invariant}: {len(group)} in {len(seeds)} run(s); seeds: {shown}")
            lines.append(f"    e.g. {group.iloc[0]['explanation']}")
        lines.append("")
        lines.append(f"Replay one: simlab replay {scenario_name} --seed {violations.iloc[0]['seed']}")
    if unchecked:
        lines.append(f"Not checked yet: {', '.join(unchecked)}")
    return "\n".join(lines)


def format_timeline(result: RunResult) -> str:
    """The text `simlab replay` prints: every trace record, then the violations and the trace hash."""
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
        lines.append(f"{r.t:12.6f}  {r.saga_type:<24} {r.saga_id[:8]}  {what}")
    lines.append("")
    for v in result.violations:
        lines.append(f"VIOLATION {v.invariant} at t={v.t:.6f}: {v.explanation}")
    lines.append(f"trace sha256: {result.trace_hash}")
    return "\n".join(lines)


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
