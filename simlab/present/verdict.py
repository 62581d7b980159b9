"""The report's first lines: did the batch do what its scenario expects, what broke and how often, what next.

A team lead reads these sentences and maybe nothing else, so each is plain and each figure
comes from the loader's tables through ``simlab.present.analysis`` (counts, Wilson
intervals) or ``simlab.present.summary`` (the scenario's expectation). What to do next is
not invented per invariant here: it comes from the scenario itself. A scenario's ``expect``
says what its all-seed and its all-safe variants show (measured over 1,000 runs), so a
seed batch whose findings the safe side does not show has a fix to try: the safe side, on
the same seeds, compared with ``simlab report --baseline``.

Sentences are plain text; a command or a setting is marked with backticks (the report
renders it as code).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from simlab.batch.results import Results
from simlab.batch.shards import SCENARIO_FILE
from simlab.present import analysis
from simlab.present.choice import EDGE_LINE
from simlab.present.replay_rows import replay_commands
from simlab.present.summary import ExpectationVerdict, expectation_verdict
from simlab.present.tables import DASH, PERCENT_DIGITS, interval, percent
from simlab.scenario.model import Scenario


@dataclass(frozen=True)
class Finding:
    """One invariant's violations in a batch, compared with a baseline.

    ``runs`` and ``baseline_runs`` count the runs that show the finding, out of ``total`` and
    ``baseline_total`` runs; ``share`` and ``baseline_share`` are those as rates with their 95 %
    Wilson intervals, so that "resolved" after 10 runs reads differently from after 10,000.
    """

    invariant: str
    status: str  # "new", "still present", "resolved", "not checked here", or "" without a baseline
    violations: int
    runs: int
    total: int
    baseline_violations: int
    baseline_runs: int
    baseline_total: int
    example: str

    @property
    def share(self) -> str:
        return _share(self.runs, self.total)

    @property
    def baseline_share(self) -> str:
        return _share(self.baseline_runs, self.baseline_total)


def _share(runs: int, total: int) -> str:
    if not total:
        return ""
    low, high = analysis.wilson_interval(runs, total)
    return interval(runs / total, low, high, PERCENT_DIGITS)


def compare_findings(current: Results, baseline: Results | None, checked: Sequence[str] | None = None) -> list[Finding]:
    """Per invariant: violations and runs here and in the baseline, and whether the finding is new,
    resolved, still present, or not checked here at all (``checked``: the invariants the current
    batch's scenario checks; an invariant it does not check cannot have been resolved by it)."""

    def tally(results: Results) -> dict[str, tuple[int, int, str]]:
        table = analysis.findings(results, by=[])
        rows = table.to_dict("records")
        return {str(r["invariant"]): (int(r["violations"]), int(r["runs"]), str(r["example"])) for r in rows}

    now = tally(current)
    before = tally(baseline) if baseline is not None else {}
    total, baseline_total = len(current.runs), len(baseline.runs) if baseline is not None else 0
    found = []
    for invariant in sorted(set(now) | set(before)):
        v, r, example = now.get(invariant, (0, 0, ""))
        bv, br, bexample = before.get(invariant, (0, 0, ""))
        if baseline is None:
            status = ""
        elif checked is not None and invariant not in checked:
            status = "not checked here"
        elif v and bv:
            status = "still present"
        elif v:
            status = "new"
        else:
            status = "resolved"
        found.append(Finding(invariant, status, v, r, total, bv, br, baseline_total, example or bexample))
    return found


@dataclass(frozen=True)
class Verdict:
    """The report's opening: ``tone`` colours it (``good``, ``bad``, ``neutral``), ``lines`` say what was
    found (for a sweep, the recommendation first), ``next_step`` what to do about it."""

    tone: Literal["good", "bad", "neutral"]
    lines: list[str] = field(default_factory=list)
    next_step: str = ""


def rate_text(runs: int, total: int) -> str:
    """``110 of 2,000 runs (5.5%, 95% CI 4.6-6.6%)`` (an en dash between the ends): a count of runs, its share and
    the share's Wilson interval."""
    low, high = analysis.wilson_interval(runs, total)
    ci = f"{percent(low).removesuffix('%')}{DASH}{percent(high)}"
    return f"{runs:,} of {total:,} runs ({percent(runs / total)}, 95% CI {ci})"


def listed(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    if len(names) <= 1:
        return names[0] if names else "none"
    return ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class FirstRun:
    """The first run that showed a finding: its number, its seed and the two commands that replay it."""

    run: int
    seed: int
    by_run: str
    by_seed: str


def first_runs(folder: Path, results: Results) -> dict[str, FirstRun]:
    """Per violated invariant, the first run (lowest point, then run) that shows it.

    ``folder`` is the results folder as the user named it: ``simlab replay FOLDER --run N``
    replays run N of that batch (of the point's own folder, in a sweep, where every point
    reuses the run numbers).
    """
    violations = results.violations
    found: dict[str, FirstRun] = {}
    if violations.empty:
        return found
    for record in violations.drop_duplicates("invariant").to_dict("records"):
        by_run, by_seed = replay_commands(folder, results, record)
        found[str(record["invariant"])] = FirstRun(int(record["run"]), int(record["seed"]), by_run, by_seed)
    return found


def batch_verdict(
    folder: Path,
    results: Results,
    scenario: Scenario | None,
    findings: Sequence[Finding],
    *,
    baseline: Path | None = None,
) -> Verdict:
    """The opening of a plain batch's report (``scenario``: the exact one it ran, None if unreadable)."""
    total = len(results.runs)
    violated = [f for f in findings if f.runs]
    expectation = (
        expectation_verdict(scenario, results.violations["invariant"].astype(str).tolist(), total)
        if scenario is not None
        else None
    )
    lines = [_headline(expectation, total)]
    first = first_runs(folder, results)
    for f in violated:
        run = first[f.invariant]
        first_seen = f"first in run {run.run} (seed {run.seed})"
        lines.append(f"{f.invariant} was violated in {rate_text(f.runs, total)}; {first_seen}.")
    if not violated:
        _, high = analysis.wilson_interval(0, total)
        lines.append(f"No invariant was violated in any of the {total:,} runs (with 95% confidence, fewer than "
                     f"{percent(high)} of runs would violate one).")  # fmt: skip
    lines.append(_sagas_line(results))
    if baseline is not None:
        lines.append(_baseline_line(baseline, findings))
    # Red whenever something is to be done (an expected seed finding is still a bug to fix), green only for a
    # complete batch that met its expectation with nothing violated.
    tone: Literal["good", "bad", "neutral"] = "neutral"
    if violated or not results.complete or (expectation is not None and expectation.status == "not met"):
        tone = "bad"
    elif expectation is not None and expectation.status == "met":
        tone = "good"
    return Verdict(tone, lines, _next_step(folder, results, scenario, expectation, violated, first))


def _headline(expectation: ExpectationVerdict | None, total: int) -> str:
    if expectation is None:
        return "The scenario file kept with the batch is missing or unreadable, so its expectation cannot be checked."
    if expectation.status == "no expectation":
        return f"No expectation to check: {expectation.reason}."
    side = f"the {expectation.variant} variants"
    if expectation.expected == "clean":
        wanted = f"expects {side} to violate nothing"
    else:
        wanted = f"expects {side} to violate {listed(expectation.expected or ())}"
    if expectation.status == "met":
        done = "and none did" if expectation.expected == "clean" else "and they did"
        return f"Expectation met: the scenario {wanted}, {done} ({total:,} runs)."
    problems = []
    if expectation.unexpected:
        problems.append(f"{listed(expectation.unexpected)} violated unexpectedly")
    if expectation.missing:
        problems.append(f"{listed(expectation.missing)} violated in none of the {total:,} runs")
    return f"Expectation NOT met: the scenario {wanted}, but {'; '.join(problems)}."


def _sagas_line(results: Results) -> str:
    outcomes = analysis.outcome_rates(results, by=[])
    counts = outcomes.groupby("status")["count"].sum()
    sagas = int(counts.sum())
    unclean = counts[~counts.index.isin(analysis.CLEAN_STATUSES)]
    if not sagas:
        return "No saga ran."
    if unclean.empty:
        return f"All {sagas:,} sagas ended clean (completed, aborted by design, or compensated)."
    how = ", ".join(f"{int(n):,} {status}" for status, n in unclean.items())
    return f"{int(unclean.sum()):,} of {sagas:,} sagas did not end clean ({how})."


def _baseline_line(baseline: Path, findings: Sequence[Finding]) -> str:
    groups: dict[str, list[str]] = {"resolved": [], "new": [], "still present": [], "not checked here": []}
    for f in findings:
        if f.status == "resolved":
            there = f"{f.baseline_runs:,} of {f.baseline_total:,} runs there"
            groups["resolved"].append(f"{f.invariant} ({there}, none here)")
        elif f.status in groups:
            groups[f.status].append(f"{f.invariant} ({f.runs:,} of {f.total:,} runs here, "
                                    f"{f.baseline_runs:,} of {f.baseline_total:,} there)")  # fmt: skip
    parts = [f"{status}: {listed(names)}" for status, names in groups.items() if names or status != "not checked here"]
    return f"Against the baseline `{baseline}`: " + "; ".join(parts) + "."


def _next_step(
    folder: Path,
    results: Results,
    scenario: Scenario | None,
    expectation: ExpectationVerdict | None,
    violated: Sequence[Finding],
    first: dict[str, FirstRun],
) -> str:
    total = len(results.runs)
    if not results.complete:
        return "run the same `simlab run` command again to complete the batch, then write this report again."
    expected = expectation is not None and expectation.status != "no expectation"
    surprising = [f for f in violated if not expected or f.invariant in (expectation.unexpected if expectation else ())]
    if surprising:
        run = first[surprising[0].invariant]
        why = "not one the scenario expects" if expected else "the scenario states no expectation for it"
        return (f"replay the first run that violated {surprising[0].invariant}: `{run.by_run}` "
                f"(or `{run.by_seed}`), and read its timeline; this finding is {why}.")  # fmt: skip
    rare = ""
    if expectation is not None and expectation.missing:
        them = "it" if len(expectation.missing) == 1 else "them"
        rare = (f"{listed(expectation.missing)} did not show in {total:,} runs, though the scenario expects {them}: "
                "rare, not gone, until more runs say otherwise; rerun with more runs before concluding.")  # fmt: skip
    step = ""
    if violated and scenario is not None and expectation is not None and expectation.variant == "seed":
        step = _safe_side(folder, results, scenario, violated)
    if violated and not step:
        run = first[violated[0].invariant]
        step = f"replay the first run that violated {violated[0].invariant}: `{run.by_run}` (or `{run.by_seed}`)."
    if step:
        return f"{step} Also: {rare}" if rare else step
    if rare:
        return rare
    _, high = analysis.wilson_interval(0, total)
    unclean = int((~results.sagas["status"].isin(analysis.CLEAN_STATUSES)).sum()) if len(results.sagas) else 0
    what = (
        f'no invariant to fix; the {unclean:,} saga(s) that did not end clean are under "Outcomes per saga type"'
        if unclean
        else "nothing to fix"
    )
    return (f"{what}. To bound the violation rate tighter than {percent(high)}, rerun with more runs "
            "(the interval narrows as runs grow).")  # fmt: skip


def _safe_side(folder: Path, results: Results, scenario: Scenario, violated: Sequence[Finding]) -> str:
    """The scenario's own answer to its seed findings: its all-safe variants, when its ``expect.safe`` says they do
    not show them ("" when they would, or the scenario states nothing for the safe side)."""
    safe = scenario.expect.safe
    if safe is None or (safe != "clean" and any(f.invariant in safe for f in violated)):
        return ""
    switches = [name for name, side in scenario.sagas.variants.model_dump().items() if side == "seed"]
    setting = "sagas.variants: {" + ", ".join(f"{name}: safe" for name in switches) + "}"
    shows = "run clean" if safe == "clean" else f"violate only {listed(safe)}"
    copy = f"{scenario.name}-safe.yaml"
    out = shlex.quote(f"{folder}-safe")
    runs, root = len(results.runs), results.manifest.get("root_seed", scenario.seed)
    return (
        f"these are the seed's known fragile choices; the scenario says its safe variants {shows}. Copy "
        f"`{folder / SCENARIO_FILE}` to `{copy}`, set `{setting}` in it, run it on the same seeds "
        f"(`simlab run {copy} --runs {runs} --seed {root} --out {out}`) and compare: "
        f"`simlab report {out} --baseline {shlex.quote(str(folder))} -o report.html`."
    )


def sweep_verdict(
    recommendation: str,
    summary: pd.DataFrame,
    chosen: pd.DataFrame,
    given: Sequence[str],
    results: Results,
    *,
    findings: Sequence[Finding] = (),
    baseline: Path | None = None,
) -> Verdict:
    """The opening of a sweep's report: its recommendation (``analysis.describe_choice``'s sentences for
    ``summary``; ``chosen`` is ``analysis.recommend``'s table), how many runs anywhere on the grid had a
    violation and, given a ``baseline``, which ``findings`` it resolved or brought. It reads well (``good``)
    when a setting meets the target in every circumstance of ``given``."""
    lines = [line for line in recommendation.splitlines() if line]
    total = len(results.runs)
    violating = int((results.runs["violations"] > 0).sum())
    if violating:
        points = results.violations["point"].nunique()
        lines.append(f"Over the whole grid, {rate_text(violating, total)} had a violation, at {points} of "
                     f"{len(results.manifest['points'])} settings.")  # fmt: skip
    if baseline is not None:
        lines.append(_baseline_line(baseline, findings))
    given = list(given)
    circumstances = len(summary.reset_index()[given].drop_duplicates()) if given else 1
    answered = len(chosen.reset_index()[given].drop_duplicates()) if given else min(len(chosen), 1)
    tone: Literal["good", "bad", "neutral"] = "good" if answered == circumstances and results.complete else "bad"
    on_edge = any(line.startswith(EDGE_LINE) for line in recommendation.splitlines())
    return Verdict(tone, lines, _sweep_next_step(results, chosen, answered < circumstances, on_edge))


def _sweep_next_step(results: Results, chosen: pd.DataFrame, unanswered: bool, on_edge: bool) -> str:
    if not results.complete:
        return "run the same `simlab sweep` command again to complete the grid, then write this report again."
    if unanswered:
        return ("where no setting meets the target, widen the grid beyond its edge or loosen the target "
                "(`simlab report --target`, `--max-violation-rate`), then sweep again.")  # fmt: skip
    if on_edge:
        return ("a chosen value is the smallest or largest the grid tried, so a better one may lie beyond it: "
                "extend the grid in that direction (as said above) and sweep again before putting it in the "
                "scenario.")  # fmt: skip
    if not chosen.loc[chosen["rank"] == 1, "confident"].all():
        more = int(results.manifest.get("runs_per_point", 0)) * 4
        return ("the choice meets the target only as measured: its interval still reaches past it. Sweep again with "
                f"more runs per point (`--runs-per-point {more}`: four times the runs halve an interval) before "
                "putting it in the scenario.")  # fmt: skip
    return "put the chosen setting in the scenario file, and run it as a plain batch to confirm it."
