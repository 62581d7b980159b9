"""The reliability report: one self-contained HTML file a team can read without knowing the lab.

``simlab report DIR [--baseline DIR] -o report.html`` reads a batch or a sweep
folder (its tables and manifest, nothing else) and writes one file: what was run
(scenario, question, configuration and code hashes, seed range), the outcome
tables with their intervals, the plots (embedded PNGs), a recommendation for a
sweep, every invariant violation with the exact ``simlab replay`` commands that
reproduce it, and, given a baseline folder, which findings are new, resolved or
still present. It opens with the verdict (``simlab.present.verdict``): a few plain
sentences saying what was found and what to do next. The file is written to a
temporary name and moved into place, so an interrupted report leaves nothing
half-written. ``progress`` (a callable taking one line) hears what the report is
doing: what it read, the replay, each figure it draws, the writing.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import os
import re
import shlex
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from matplotlib.figure import Figure

from simlab.batch.results import Results, is_results_folder, load_results
from simlab.batch.runner import run_once
from simlab.batch.shards import SCENARIO_FILE, SWEEP_MANIFEST, read_manifest, scan_folder
from simlab.present import analysis, plots, tables
from simlab.present import summary as summary_text
from simlab.present.probe_report import report_rows as probe_rows
from simlab.present.replay_rows import replay_rows
from simlab.present.shrunk import shrunk_examples
from simlab.present.verdict import Finding as Finding
from simlab.present.verdict import Verdict, batch_verdict, sweep_verdict
from simlab.present.verdict import compare_findings as compare_findings
from simlab.scenario.loader import ScenarioError, load_scenario, resolve_scenario_path, scenario_question
from simlab.scenario.model import Scenario

MAX_PARETO_FIGURES = 6  # one per circumstance, up to this many


class ReportError(ValueError):
    """A folder that cannot be reported on; ``str()`` is the one-line message for the user."""


Say = Callable[[str], None]
"""Where the report tells what it is doing, one line at a time (``simlab report`` prints to stderr)."""


def _quiet(line: str) -> None:
    """The default ``Say``: a report built from code (a notebook, a test) tells nothing."""


def _load(folder: Path, role: str) -> Results:
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder ({role})")
    if not is_results_folder(folder):
        raise ReportError(f"{folder}: not a results folder of `simlab run` or `simlab sweep` ({role}: no manifest)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged shards are named in the report itself (Results.problems)
        results = load_results(folder)
    if results.runs.empty:
        raise ReportError(f"{folder}: holds no finished runs yet ({role}); run its command again to complete it")
    return results


def _shards(folder: Path) -> int:
    """How many finished shards a batch (or every point of a sweep) holds: their markers."""
    return len(list(folder.glob("shard-*.done"))) + len(list(folder.glob("point-*/shard-*.done")))


def _figure_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(frame: pd.DataFrame, *, percent: Sequence[str] = (), index: bool = True) -> str:
    shown = analysis.short_names(frame)  # the full paths of swept settings are listed under "What was run"
    for column in percent:
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.2%}")
    return shown.to_html(
        index=index, float_format=lambda v: f"{v:.3f}", classes="data", border=0, na_rep="", sparsify=False
    )


def _kept_scenarios(folder: Path, results: Results) -> list[Scenario]:
    """The exact scenarios a batch (one) or a sweep (one per point) ran, as the folder keeps them."""
    kept = [folder / p["folder"] / SCENARIO_FILE for p in results.manifest["points"]] if results.params else []
    return [load_scenario(str(path)) for path in kept or [folder / SCENARIO_FILE]]


def _needed_paths(folder: Path, results: Results) -> list[str]:
    """The engine paths the scenario's question needs (its ``reach:`` list; every point's for a sweep)."""
    try:
        scenarios = _kept_scenarios(folder, results)
    except ScenarioError:
        return []
    return list(dict.fromkeys(path for scenario in scenarios for path in scenario.reach))


def _checked_invariants(folder: Path, results: Results) -> list[str] | None:
    """The invariants the batch's scenario checks (from the exact scenarios kept with it: every point's)."""
    try:
        scenarios = _kept_scenarios(folder, results)
    except ScenarioError:
        return None
    return list(dict.fromkeys(name for scenario in scenarios for name in scenario.invariants))


def about_name(results: Results) -> str:
    """The scenario's name, as the batch's manifest records it."""
    return str(results.manifest.get("scenario", "?"))


def _incomplete(results: Results) -> str:
    finished, expected = len(results.runs), results.expected_runs
    if expected is None or finished >= expected:
        return ""
    why = (
        f"{len(results.problems)} shard(s) are damaged and left out ({'; '.join(results.problems)})"
        if results.problems
        else "the work was interrupted"
    )
    return (
        f"Only {finished} of the {expected} runs are here: {why}. Every figure, table and recommendation "
        "here comes from those runs only. Run the same command again to complete it, then write the report again."
    )


def _describe_batch(folder: Path, results: Results) -> dict[str, Any]:
    manifest = results.manifest
    sweep = (folder / SWEEP_MANIFEST).is_file()
    name = str(manifest.get("scenario", "?"))
    try:
        question = scenario_question(resolve_scenario_path(name))
    except ScenarioError:
        question = "(the scenario file is not among the shipped scenarios)"
    if sweep:
        # Every point's own manifest: a code hash read from one point would vouch for the others.
        codes = dict.fromkeys(read_manifest(folder / p["folder"]).get("code_hash", "?") for p in manifest["points"])
        runs_per_point = int(manifest["runs_per_point"])
        root = int(manifest["root_seed"])
        done = sum(scan_folder(folder / p["folder"]).runs > 0 for p in manifest["points"])
        return {
            "incomplete": _incomplete(results),
            "scenario": name,
            "question": question,
            "kind": f"sweep over {len(manifest['points'])} settings ({done} with results)",
            "config": f"base {manifest['base_config_hash']}; one per point (see the summary table)",
            "code": ", ".join(codes),
            "seeds": f"root seed {root}, runs 0..{runs_per_point - 1} at every point (the same seeds everywhere)",
            "runs": len(results.runs),
        }
    runs = int(manifest.get("runs", len(results.runs)))
    return {
        "incomplete": _incomplete(results),
        "scenario": name,
        "question": question,
        "kind": "batch of seeded runs",
        "config": manifest.get("config_hash", "?"),
        "code": manifest.get("code_hash", "?"),
        "seeds": f"root seed {manifest.get('root_seed', '?')}, runs 0..{runs - 1}",
        "runs": len(results.runs),
    }


REACH_HEADERS = {"path": "engine path", "runs_reached": "runs that took it", "share": "share of runs",
                 "times": "times taken, all runs"}  # fmt: skip
"""The reach table's columns (``summary.reach_table``) as the report heads them."""

COMPENSATION_HEADERS = {"saga_type": "saga type", "failing_step": "failing step", "status": "final status"}
"""The columns of ``analysis.compensations_by_step`` as the report heads them."""


class _Figures(list[tuple[str, str, str]]):
    """The report's figures in order: (title, caption, data URI).

    ``add`` only keeps a figure; ``draw`` renders them all to PNG (matplotlib rasterizes only then, the slow
    part), telling ``say`` which one of how many it is drawing.
    """

    def __init__(self, say: Say = _quiet) -> None:
        super().__init__()
        self.say = say
        self.pending: list[tuple[str, str, Figure]] = []

    def add(self, title: str, caption: str, figure: Figure) -> None:
        self.pending.append((title, caption, figure))

    def draw(self) -> _Figures:
        for k, (title, caption, figure) in enumerate(self.pending, start=1):
            self.say(f"drawing figure {k} of {len(self.pending)}: {title}")
            self.append((title, caption, _figure_uri(figure)))
        self.pending.clear()
        return self


@dataclass(frozen=True)
class _Choice:
    """How a sweep's recommendation is asked for: the grid's objective and conditions, and the user's limits."""

    objective: str
    given: list[str]
    target: float
    max_violation_rate: float

    def options(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "max_violation_rate": self.max_violation_rate,
            "given": self.given,
            "objective": self.objective,
        }


def build_report(
    folder: Path | str,
    *,
    baseline: Path | str | None = None,
    target: float = 0.999,
    max_violation_rate: float = 0.0,
    saga_type: str | None = None,
    progress: Say | None = None,
) -> str:
    """The report's HTML for the batch or sweep in ``folder`` (raises ``ReportError`` on bad folders).

    ``progress`` hears one line per step (what was read, the replay, each figure drawn); by default nothing is told.
    """
    folder = Path(folder)
    say = progress or _quiet
    results, base = _read(folder, baseline, say)
    grid = results.manifest.get("grid", {}) if results.params else {}
    saga_type = saga_type or grid.get("saga_type")
    choice = _Choice(str(grid.get("objective", "clean_rate")), list(grid.get("conditions", [])), target,
                     max_violation_rate)  # fmt: skip
    figures = _Figures(say)
    say(f"computing rates and intervals over {len(results.runs):,} runs")
    summary = analysis.config_summary(results, saga_type=saga_type)
    recommendation, recommended_table = _sweep_choice(results, summary, choice, figures)
    _outcome_figures(results, saga_type, figures)
    replays = replay_rows(folder, results)
    if replays:
        say(f"replaying run {replays[0]['run']} (seed {replays[0]['seed']}) to draw its timeline")
    _replay_figure(results, replays, figures)
    findings = compare_findings(results, base, checked=_checked_invariants(folder, results))
    return _render(
        folder,
        results,
        base,
        baseline,
        saga_type=saga_type or "all saga types",
        target=target,
        max_violation_rate=max_violation_rate,
        summary=_table(tables.readable_summary(summary), index=bool(results.params)),
        summary_notes=tables.summary_notes(saga_type),
        outcomes=_table(tables.readable_outcomes(analysis.outcome_rates(results, saga_type=saga_type)), index=False),
        aborted=_aborted_note(results, saga_type),
        recommendation=recommendation,
        recommended_table=recommended_table,
        figures=figures.draw(),
        findings=findings,
        replays=replays,
        shrunk=shrunk_examples(folder) if not results.params else [],
        verdict=_verdict(folder, results, summary, choice, recommendation, findings, baseline),
    )


def _read(folder: Path, baseline: Path | str | None, say: Say) -> tuple[Results, Results | None]:
    """The batch (or sweep) and its baseline, read through the one loader; then says what was read."""
    results = _load(folder, "the batch to report")
    base = _load_baseline(results, baseline)
    # Told once both are read: a folder that cannot be read is then the one line on stderr, as for any bad input.
    say(f"read {_shards(folder)} shard(s), {len(results.runs):,} runs, from {folder}")
    if base is not None:
        say(f"read the baseline: {_shards(Path(str(baseline)))} shard(s), {len(base.runs):,} runs, from {baseline}")
    return results, base


def _verdict(
    folder: Path,
    results: Results,
    summary: pd.DataFrame,
    choice: _Choice,
    recommendation: str,
    findings: list[Finding],
    baseline: Path | str | None,
) -> Verdict:
    """The report's opening: a sweep's recommendation, or what a batch showed against its scenario's expectation."""
    if results.params:
        chosen = analysis.recommend(summary, **choice.options())
        return sweep_verdict(recommendation, summary, chosen, choice.given, results, findings=findings,
                             baseline=Path(baseline) if baseline else None)  # fmt: skip
    try:
        scenario: Scenario | None = _kept_scenarios(folder, results)[0]
    except ScenarioError:
        scenario = None
    return batch_verdict(folder, results, scenario, findings, baseline=Path(baseline) if baseline else None)


def _aborted_note(results: Results, saga_type: str | None) -> str:
    """What ``aborted`` means, for the saga types that aborted here ("" if none did)."""
    sagas = results.sagas if saga_type is None else results.sagas[results.sagas["saga_type"] == saga_type]
    return summary_text.aborted_note(sagas)


def _load_baseline(results: Results, baseline: Path | str | None) -> Results | None:
    """The baseline's results, if one is given; ``ReportError`` if it ran another scenario."""
    if baseline is None:
        return None
    base = _load(Path(baseline), "the baseline")
    if about_name(base) != about_name(results):
        raise ReportError(
            f"{baseline}: the baseline ran scenario {about_name(base)!r}, not {about_name(results)!r}; "
            "findings of different scenarios cannot be compared"
        )
    return base


def _sweep_choice(results: Results, summary: pd.DataFrame, choice: _Choice, figures: _Figures) -> tuple[str, str]:
    """For a sweep: the recommendation, its table, the grid's heatmap and its Pareto figures ("" for a batch)."""
    if not results.params:
        return "", ""
    recommendation = analysis.describe_choice(summary, **choice.options())
    chosen = analysis.recommend(summary, **choice.options())
    objective = choice.objective
    recommended_table = _table(tables.readable_choice(chosen, objective)) if len(chosen) else ""
    if len(results.params) >= 2:
        x, y = results.params[0], results.params[1]
        figures.add(
            "Violations over the grid",
            f"Share of runs with at least one invariant violation, for each {x} and {y}.",
            plots.heatmap(summary, x, y),
        )
    _pareto_figures(summary, chosen, choice, figures)
    return recommendation, recommended_table


def _pareto_figures(summary: pd.DataFrame, chosen: pd.DataFrame, choice: _Choice, figures: _Figures) -> None:
    """One Pareto figure per circumstance (each combination of the grid's conditions), up to ``MAX_PARETO_FIGURES``."""
    given, objective = choice.given, choice.objective
    flat = summary.reset_index()
    conditions = [()] if not given else list(flat[given].drop_duplicates().itertuples(index=False, name=None))
    for condition in conditions[:MAX_PARETO_FIGURES]:
        part, top = summary, chosen
        for column, value in zip(given, condition, strict=True):
            part = part[part.index.get_level_values(column) == value]
            top = top[top.index.get_level_values(column) == value]
        when = ", ".join(f"{c.rsplit('.', 1)[-1]}={v}" for c, v in zip(given, condition, strict=True))
        figures.add(
            f"{objective.replace('_', ' ').capitalize()} against p99 duration" + (f" when {when}" if when else ""),
            "Each point is one setting (bars: 95% intervals). The Pareto front joins the settings within the "
            "violation tolerance that no other beats on both; the star is the recommendation.",
            plots.pareto(
                part,
                rate=objective,
                recommended=top.index[0] if len(top) else None,
                max_violation_rate=choice.max_violation_rate,
            ),
        )


def _outcome_figures(results: Results, saga_type: str | None, figures: _Figures) -> None:
    """How the sagas ended, how long they took, their retries and (if any reached a broker) the broker load."""
    figures.add(
        "How the sagas ended",
        "Share of sagas per final status; the black mark is the clean share with its 95% Wilson interval.",
        plots.outcome_breakdown(results, saga_type=saga_type),
    )
    figures.add(
        "Which invariants were violated",
        "Share of runs that violated each invariant (per setting for a sweep), with its 95% Wilson interval.",
        plots.violations_by_invariant(results),
    )
    if not results.violations.empty:
        figures.add(
            "When the violations were found",
            "Simulated time at which each violation was found, one dot per violation; an invariant checked at "
            "the end of a run is found at the horizon.",
            plots.violation_times(results),
        )
    figures.add(
        "How long the sagas took",
        "Cumulative share of finished sagas by duration (simulated seconds); the dotted line is the 99th percentile.",
        plots.duration_cdf(results, saga_type=saga_type),
    )
    figures.add(
        "Retries", "How many sagas needed how many retries.", plots.retry_histogram(results, saga_type=saga_type)
    )
    if not results.broker_calls.empty:
        figures.add(
            "Broker load",
            "Calls reaching the brokers per simulated second (refused ones included): the mean over runs, and the "
            "most any one run made. Above it, one lane per injected fault family: its typical window.",
            plots.broker_load(results),
        )


def _replay_figure(results: Results, replays: list[dict[str, Any]], figures: _Figures) -> None:
    """The timeline of the first violating run, replayed from its seed (none if no run violated anything)."""
    if not replays:
        return
    first = replays[0]
    ref = shlex.split(first["command"])[2]
    run = run_once(load_scenario(ref), first["seed"], keep_trace=True)
    figures.add(
        f"Replay of run {first['run']}: {first['invariant']}",
        f"The first violating run, replayed ({first['run_command']}, or {first['command']}): one lane per saga, step "
        "attempts as bars, compensations marked, the violation as a red dashed line, lock holders and "
        f"projection lag below. {first['explanation']}.",
        plots.replay_timeline(run, title=f"{about_name(results)} run {first['run']}, seed {first['seed']} ({ref})"),
    )


def _render(folder: Path, results: Results, base: Results | None, baseline: Path | str | None, **sections: Any) -> str:
    """Fill the report's template with ``sections``, the batch's description, its compensations and its reach."""
    compensations = analysis.compensations_by_step(results)
    reach = summary_text.reach_table(results.runs, _needed_paths(folder, results))
    shown_reach = reach.assign(
        path=[("* " if n else "") + p for p, n in zip(reach["path"], reach["needed"], strict=True)]
    )
    env = Environment(loader=PackageLoader("simlab.present", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["code"] = _code_spans
    return env.get_template("report.html.j2").render(
        about=_describe_batch(folder, results),
        folder=str(folder),
        baseline=str(baseline) if baseline is not None else None,
        baseline_about=_describe_batch(Path(baseline), base) if base is not None and baseline is not None else None,
        compensations=_table(compensations.rename(columns=COMPENSATION_HEADERS), index=False)
        if len(compensations)
        else "",
        reach=_table(
            shown_reach[["path", "runs_reached", "share", "times"]].rename(columns=REACH_HEADERS),
            percent=[REACH_HEADERS["share"]],
            index=False,
        ),
        unreached=reach.loc[reach["unreached"], "path"].tolist(),
        probes=probe_rows(folder, results),
        params=results.params,
        generated=_dt.date.today().isoformat(),  # the report's date only; nothing simulated reads it
        **sections,
    )


_CODE_SPAN = re.compile(r"`([^`]+)`")


def _code_spans(text: str) -> Markup:
    """A verdict's sentence as HTML: escaped, each `backticked` command or setting set as code."""
    return Markup(_CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text))))


def write_report(folder: Path | str, output: Path | str, **options: Any) -> Path:
    """Build the report and write it to ``output`` atomically; return the path (``progress``: see ``build_report``)."""
    output = Path(output)
    html = build_report(folder, **options)
    (options.get("progress") or _quiet)(f"writing {output}")
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, output)
    except OSError:
        tmp.unlink(missing_ok=True)  # a report cut short (a full disk) leaves nothing behind
        raise
    return output
