"""simlab report: one self-contained HTML file with tables, plots, replay commands and a baseline comparison."""

from __future__ import annotations

import html as html_text
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from simlab.batch.batches import load_results, run_batch_to
from simlab.batch.runner import run_once
from simlab.batch.sweep import Grid, run_sweep
from simlab.present.analysis import config_summary, describe_choice, recommend
from simlab.scenario import load_scenario

SAFE = ("disconnect_lock", "child_wait", "purge")
ALL_THREE = ("no_data_loss", "no_orphans", "no_duplicate_accounts")


def _simlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simlab", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def race(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """80 runs of reconnect_race with the seed's variants (they include a data loss), and with the safe ones."""
    root = tmp_path_factory.mktemp("race")
    fragile = load_scenario("reconnect_race")
    variants = fragile.sagas.variants.model_copy(update={name: "safe" for name in SAFE})
    safe = fragile.model_copy(update={"sagas": fragile.sagas.model_copy(update={"variants": variants})})
    run_batch_to(fragile, 80, 1, root / "seed", workers=2)
    run_batch_to(safe, 80, 1, root / "safe", workers=2)
    return root / "seed", root / "safe"


@pytest.fixture(scope="module")
def report_html(race: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The seed batch's report, written by `simlab report`: its path, its HTML and what the command said on stderr."""
    fragile, _ = race
    out = tmp_path_factory.mktemp("report") / "race.html"
    done = _simlab("report", str(fragile), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {out}"  # progress goes to stderr only
    return out, out.read_text(), done.stderr


def _verdict(html: str) -> str:
    """The report's opening verdict as text (tags dropped, entities decoded, one sentence per line)."""
    match = re.search(r'<div class="verdict (\w+)" id="verdict">(.*?)</div>', html, re.S)
    assert match is not None
    lines = [html_text.unescape(re.sub(r"<[^>]+>", "", line)).strip() for line in match.group(2).split("</p>")]
    return f"[{match.group(1)}]\n" + "\n".join(line for line in lines if line)


def _rate(runs: int, total: int) -> str:
    """How a verdict says a count of runs, computed here from scipy's Wilson interval."""
    ci = stats.binomtest(runs, total).proportion_ci(method="wilson")
    return f"{runs} of {total} runs ({runs / total:.1%}, 95% CI {ci.low * 100:.1f}\N{EN DASH}{ci.high:.1%})"


def _first_runs(violations) -> dict[str, tuple[int, int]]:
    first = violations.drop_duplicates("invariant")
    return {str(r.invariant): (int(r.run), int(r.seed)) for r in first.itertuples()}


def test_the_report_holds_the_facts_tables_and_plots_and_nothing_external(race, report_html):
    fragile, _ = race
    _, html, _ = report_html
    results = load_results(fragile)
    assert "<h1>Reliability report: reconnect_race</h1>" in html
    assert "Does a reconnect landing milliseconds after a disconnect lose the connection" in html  # its question
    assert results.manifest["config_hash"] in html and results.manifest["code_hash"] in html
    assert "root seed 1, runs 0..79" in html
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}"', html)) >= 4
    assert html.count('<table class="dataframe data">') >= 2  # summary and outcomes
    assert "BrokerDisconnectionSaga" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # self-contained: nothing to fetch


def test_every_violation_is_listed_with_the_command_that_replays_it(race, report_html):
    fragile, _ = race
    _, html, _ = report_html
    violations = load_results(fragile).violations
    assert len(violations) > 0
    commands = re.findall(r"<code>simlab replay (\S+) --seed (\d+)</code>", html)
    assert len(commands) == len(violations)
    assert {int(seed) for _, seed in commands} == set(violations["seed"])
    # The command reproduces: the shipped scenario is the one that ran, and the replay shows the violation.
    loss = violations[violations["invariant"] == "no_data_loss"].iloc[0]
    assert ("reconnect_race", str(loss["seed"])) in commands
    replayed = run_once(load_scenario("reconnect_race"), int(loss["seed"]))
    assert "no_data_loss" in {v.invariant for v in replayed.violations}


def test_against_a_baseline_findings_are_new_resolved_or_still_present(race, tmp_path):
    fragile, safe = race
    out = tmp_path / "safe.html"
    done = _simlab("report", str(safe), "--baseline", str(fragile), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[:2] == [  # 80 runs are 16 shards of 5
        f"simlab report: read 16 shard(s), 80 runs, from {safe}",
        f"simlab report: read the baseline: 16 shard(s), 80 runs, from {fragile}",
    ]
    html = out.read_text()
    baseline = load_results(fragile).violations
    for invariant in sorted(set(baseline["invariant"])):
        row = re.search(rf"<td class=\"text\">{invariant}</td>\s*<td class=\"text [^\"]+\">(\w[\w ]*)</td>", html)
        assert row is not None and row.group(1) == "resolved", invariant
    assert load_results(safe).violations.empty
    # The other way round, the seed's findings are new.
    back = _simlab("report", str(fragile), "--baseline", str(safe), "-o", str(tmp_path / "back.html"))
    assert back.returncode == 0 and "status-new" in (tmp_path / "back.html").read_text()
    # A baseline that is not there is refused in one line: no progress was told before it.
    missing = _simlab("report", str(safe), "--baseline", str(tmp_path / "gone"), "-o", str(tmp_path / "x.html"))
    assert missing.returncode == 2
    assert missing.stderr == f"simlab report: {tmp_path / 'gone'}: no such folder (the baseline)\n"


def test_a_sweep_report_leads_with_the_recommendation_and_replays_each_point_from_its_own_scenario(tmp_path):
    scenario = load_scenario("broker_disconnection")
    budget, lag = "sagas.consistency_retry.max_attempts", "projections.accounts.median_lag_s"
    grid = Grid.model_validate(
        {"parameters": {budget: [2, 12], lag: [0.5, 2.0]}, "conditions": [lag], "saga_type": "BrokerDisconnectionSaga"}
    )
    out = tmp_path / "sweep"
    run_sweep(scenario, grid, 4, 11, out, workers=2)
    report = tmp_path / "sweep.html"
    assert _simlab("report", str(out), "-o", str(report)).returncode == 0
    html = report.read_text()
    # The verdict is the recommendation: every sentence of describe_choice, then the grid's violations.
    results = load_results(out)
    summary = config_summary(results, saga_type="BrokerDisconnectionSaga")
    recommendation = describe_choice(summary, given=[lag]).splitlines()
    assert recommendation[1].startswith("When median_lag_s=0.5: choose max_attempts=12")
    assert recommendation[3].startswith("When median_lag_s=2.0: choose max_attempts=12")
    edge = "  On the edge of the grid: max_attempts=12 is the largest value tried, so the best may lie beyond it"
    assert recommendation[2].startswith(edge) and recommendation[4].startswith(edge)  # 12 is the most tried
    violating = int((results.runs["violations"] > 0).sum())
    points = results.violations["point"].nunique()
    assert violating and not recommend(summary, given=[lag])["confident"].any()  # 4 runs per point: not sure yet
    assert _verdict(html).splitlines() == [
        "[good]",
        *(line.strip() for line in recommendation),
        f"Over the whole grid, {_rate(violating, 16)} had a violation, at {points} of 4 settings.",
        "Next step: a chosen value is the smallest or largest the grid tried, so a better one may lie beyond it: "
        "extend the grid in that direction (as said above) and sweep again before putting it in the scenario.",
    ]
    # Against a baseline (itself, here), the sweep's verdict says what is still present.
    from simlab.present.verdict import compare_findings, sweep_verdict

    found = compare_findings(results, results)
    again = sweep_verdict("\n".join(recommendation), summary, recommend(summary, given=[lag]), [lag], results,
                          findings=found, baseline=out)  # fmt: skip
    runs = results.violations.groupby("invariant")[["point", "run"]].apply(lambda v: len(v.drop_duplicates()))
    assert list(runs.index) == ["disconnect_completed"]
    n = int(runs.iloc[0])
    assert again.lines[-1] == (
        f"Against the baseline `{out}`: resolved: none; new: none; still present: disconnect_completed ({n} of 16 "
        f"runs here, {n} of 16 there)."
    )
    assert "Violations over the grid" in html
    assert "Clean rate against p99 duration when median_lag_s=0.5" in html
    assert "Clean rate against p99 duration when median_lag_s=2.0" in html
    commands = re.findall(r"<code>simlab replay (\S+) --seed (\d+)</code>", html)
    assert commands and all(ref.endswith("/scenario.yaml") and "/point-00" in ref for ref, _ in commands)
    ref, seed = commands[0]
    point = load_scenario(ref)
    assert point.sagas.consistency_retry.max_attempts == 2
    assert "disconnect_completed" in {v.invariant for v in run_once(point, int(seed)).violations}
    # By run number, a sweep's run replays from its point's folder: every point reuses the run numbers.
    by_run = re.findall(r"<code>simlab replay (\S+) --run (\d+)</code>", html)
    assert len(by_run) == len(commands) == len(results.violations)
    assert [f"{where}/scenario.yaml" for where, _ in by_run] == [ref for ref, _ in commands]
    assert [int(run) for _, run in by_run] == results.violations["run"].tolist()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/folder", "-o", "{tmp}/r.html"], "/nonexistent/folder: no such folder (the batch to report)"),
        (["{tmp}", "-o", "{tmp}/r.html"], "{tmp}: not a results folder of `simlab run` or `simlab sweep`"),
        (["{tmp}", "-o", "{tmp}/r.txt"], "-o {tmp}/r.txt: expected a file name ending in .html"),
        (["{tmp}", "-o", "{tmp}/missing/r.html"], "-o {tmp}/missing/r.html: the folder {tmp}/missing does not exist"),
    ],
)
def test_bad_report_arguments_get_one_line_and_no_file(args, message, tmp_path):
    done = _simlab("report", *[a.format(tmp=tmp_path) for a in args])
    assert done.returncode == 2
    assert done.stderr.startswith(f"simlab report: {message.format(tmp=tmp_path)}")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob(".*.tmp"))


def test_a_path_the_scenario_needs_that_no_run_reached_is_flagged_in_the_summary_and_the_report(tmp_path: Path):
    from simlab.present.report import build_report
    from simlab.present.summary import batch_summary

    # reconnect_race has no process pauses: no lock ever expires under its holder, and a batch that
    # claims to need that path cannot answer its question.
    needy = load_scenario("reconnect_race").model_copy(update={"reach": ("retry", "lock_expiry")})
    out = tmp_path / "needy"
    run_batch_to(needy, 6, 1, out, workers=1)
    runs = load_results(out).runs
    assert (runs["reach_lock_expiry"] == 0).all() and (runs["reach_retry"] > 0).any()
    summary = batch_summary(out)
    assert re.search(r"^ \* lock_expiry +0 +0\.0% +0 times   NEEDED, NOT REACHED$", summary, re.M)
    assert re.search(r"^ \* retry +\d+ ", summary, re.M)
    # (the probe section follows the reach table: its verdict ends the reach section, not the summary)
    assert "\nNot reached by any run, though the scenario needs it: lock_expiry\n\nProbes (" in summary
    html = build_report(out)
    assert "Not reached by any run, though the scenario needs it: lock_expiry." in html
    assert "<td>* lock_expiry</td>" in html and "<td>* retry</td>" in html


def test_the_report_opens_with_the_verdict_each_finding_with_its_interval_and_the_scenarios_next_step(
    race, report_html
):
    fragile, _ = race
    _, html, _ = report_html
    assert html.index('id="verdict"') < html.index("<h2>")  # before anything else but the title and question
    results = load_results(fragile)
    violations = results.violations
    first = _first_runs(violations)
    per_invariant = violations.groupby("invariant")["run"].nunique()
    assert sorted(per_invariant.index) == ["no_data_loss", "no_orphans"]
    found = [
        f"{name} was violated in {_rate(int(runs), 80)}; first in run {first[name][0]} (seed {first[name][1]})."
        for name, runs in per_invariant.items()
    ]
    sagas = len(results.sagas)
    assert set(results.sagas["status"]) <= {"completed", "aborted", "compensated"}
    out = f"{fragile}-safe"
    assert _verdict(html).splitlines() == [
        "[bad]",  # expected or not, a violation is something to fix
        "Expectation met: the scenario expects the seed variants to violate no_data_loss and no_orphans, and they "
        "did (80 runs).",
        *found,
        f"All {sagas:,} sagas ended clean (completed, aborted by design, or compensated).",
        "Next step: these are the seed's known fragile choices; the scenario says its safe variants run clean. Copy "
        f"{fragile}/scenario.yaml to reconnect_race-safe.yaml, set sagas.variants: {{disconnect_lock: safe, "
        "child_wait: safe, purge: safe} in it, run it on the same seeds (simlab run reconnect_race-safe.yaml "
        f"--runs 80 --seed 1 --out {out}) and compare: simlab report {out} --baseline {fragile} -o report.html.",
    ]
    assert "<code>sagas.variants: {disconnect_lock: safe, child_wait: safe, purge: safe}</code>" in html


def test_a_clean_batch_against_its_baseline_says_what_was_resolved(race, tmp_path):
    from simlab.present.report import build_report

    fragile, safe = race
    before = load_results(fragile).violations.groupby("invariant")["run"].nunique()
    _, high = stats.binomtest(0, 80).proportion_ci(method="wilson")
    timed_out = int((load_results(safe).sagas["status"] == "timed_out").sum())
    sagas = len(load_results(safe).sagas)
    assert timed_out and set(load_results(safe).sagas["status"]) == {"completed", "aborted", "compensated", "timed_out"}
    resolved = " and ".join(f"{name} ({runs} of 80 runs there, none here)" for name, runs in before.items())
    verdict = _verdict(build_report(safe, baseline=fragile)).splitlines()
    assert verdict == [
        "[good]",
        "Expectation met: the scenario expects the safe variants to violate nothing, and none did (80 runs).",
        f"No invariant was violated in any of the 80 runs (with 95% confidence, fewer than {high:.1%} of runs would "
        "violate one).",
        f"{timed_out} of {sagas:,} sagas did not end clean ({timed_out} timed_out).",
        f"Against the baseline {fragile}: resolved: {resolved}; new: none; still present: none.",
        f'Next step: no invariant to fix; the {timed_out} saga(s) that did not end clean are under "Outcomes per '
        f'saga type". To bound the violation rate tighter than {high:.1%}, rerun with more runs (the interval '
        "narrows as runs grow).",
    ]
    # Without a baseline there is no comparison line; the other way round, the seed's findings are new.
    assert not any(line.startswith("Against") for line in _verdict(build_report(safe)).splitlines())
    back = _verdict(build_report(fragile, baseline=safe))
    assert f"Against the baseline {safe}: resolved: none; new: no_data_loss (" in back


def test_a_finding_the_scenario_does_not_expect_sends_the_reader_to_its_replay(race):
    from simlab.present.verdict import batch_verdict, compare_findings

    fragile, _ = race
    results = load_results(fragile)
    expects_orphans = load_scenario(str(fragile / "scenario.yaml"))
    expects_orphans = expects_orphans.model_copy(
        update={"expect": expects_orphans.expect.model_copy(update={"seed": ("no_orphans",)})}
    )
    verdict = batch_verdict(fragile, results, expects_orphans, compare_findings(results, None))
    run, seed = _first_runs(results.violations)["no_data_loss"]
    assert verdict.tone == "bad"
    assert verdict.lines[0] == (
        "Expectation NOT met: the scenario expects the seed variants to violate no_orphans, but no_data_loss "
        "violated unexpectedly."
    )
    assert verdict.next_step == (
        f"replay the first run that violated no_data_loss: `simlab replay {fragile} --run {run}` "
        f"(or `simlab replay reconnect_race --seed {seed}`), and read its timeline; this finding is not one the "
        "scenario expects."
    )
    assert run_once(load_scenario("reconnect_race"), seed).violations  # the seed form replays it

    # Expected yet not seen: said with the fix, since what did show still has one.
    expects_more = expects_orphans.model_copy(
        update={"expect": expects_orphans.expect.model_copy(update={"seed": ALL_THREE})}
    )
    verdict = batch_verdict(fragile, results, expects_more, compare_findings(results, None))
    assert verdict.lines[0] == (
        "Expectation NOT met: the scenario expects the seed variants to violate no_data_loss, no_orphans and "
        "no_duplicate_accounts, but no_duplicate_accounts violated in none of the 80 runs."
    )
    assert verdict.next_step.startswith("these are the seed's known fragile choices;")
    assert verdict.next_step.endswith(
        " Also: no_duplicate_accounts did not show in 80 runs, though the scenario expects it: rare, not gone, until "
        "more runs say otherwise; rerun with more runs before concluding."
    )


def test_the_summary_table_has_readable_headers_intervals_and_says_what_each_rate_counts(race, report_html):
    fragile, _ = race
    _, html, _ = report_html
    summary = re.search(r"<h2>Summary</h2>(.*?)</ul>", html, re.S)
    assert summary is not None
    headers = re.findall(r"<th>([^<]*)</th>", summary.group(1))
    assert headers == [
        "runs", "sagas", "clean sagas (95% CI)", "completed sagas (95% CI)", "successful runs (95% CI)",
        "runs with a violation (95% CI)", "median duration (s)", "p99 duration (s, 95% CI)",
        "retries per saga (mean)", "broker calls per saga", "peak broker calls per s (mean over runs)",
    ]  # fmt: skip
    raw_names = ("clean_rate", "clean_low", "violation_high", "p99_low", "peak_calls_per_s", "mean_retries", "p50_s",
                 "saga_type", "failing_step", "runs_reached")  # fmt: skip
    for raw in raw_names:  # nor in the outcome, compensation and reach tables
        assert raw not in html, raw
    runs = load_results(fragile).runs
    violating = int((runs["violations"] > 0).sum())
    ci = stats.binomtest(violating, 80).proportion_ci(method="wilson")
    cells = re.findall(r"<td>([^<]*)</td>", summary.group(1))
    assert f"{violating / 80:.2%} ({ci.low * 100:.2f}\N{EN DASH}{ci.high:.2%})" in cells
    sagas = len(load_results(fragile).sagas)  # every one ended clean (the verdict test checks it)
    low = stats.binomtest(sagas, sagas).proportion_ci(method="wilson").low
    assert cells[2] == f"100% ({low * 100:.2f}\N{EN DASH}100%)"
    notes = [html_text.unescape(n) for n in re.findall(r"<li>([^<]*)</li>", summary.group(1))]
    assert notes[0].startswith("clean sagas: share of sagas that ended completed, aborted or compensated")
    assert notes[3].startswith("runs with a violation: share of runs with at least one violation")
    assert "It counts runs, not sagas" in notes[3]
    assert notes[-1].startswith(
        'aborted = a step ended the saga early by design (it raised SagaAborted or returned {"aborted": True}): '
        "not a failure, and nothing is compensated ("
    )
    assert (
        "BrokerDisconnectionSaga: the normal ending of a disconnection that finds the connection reconnected"
        in (notes[-1])
    )


def test_simlab_run_explains_aborted_under_its_outcome_table(race):
    from simlab.present.summary import batch_summary

    fragile, _ = race
    lines = batch_summary(fragile).splitlines()
    note = next(i for i, line in enumerate(lines) if line.startswith("Note: aborted = "))
    assert lines[note + 1] == "" and lines[note + 2] == "Invariant violations:"  # right under the table
    assert lines[note].startswith(
        'Note: aborted = a step ended the saga early by design (it raised SagaAborted or returned {"aborted": True})'
    )
    assert (
        "BrokerDisconnectionSaga: the normal ending of a disconnection that finds the connection reconnected"
        in (lines[note])
    )


def test_each_violation_shows_its_run_and_seed_and_replays_by_run_number_in_the_folder_given(race, report_html):
    fragile, _ = race
    _, html, _ = report_html
    violations = load_results(fragile).violations
    rows = re.findall(
        r"<td>run (\d+)</td><td>(\d+)</td>.*?<code>simlab replay (\S+) --run (\d+)</code><br>"
        r"<code>simlab replay (\S+) --seed (\d+)</code>",
        html,
        re.S,
    )
    assert [(int(r[0]), int(r[1])) for r in rows] == list(zip(violations["run"], violations["seed"], strict=True))
    assert all(r[2] == str(fragile) and r[3] == r[0] and r[4] == "reconnect_race" and r[5] == r[1] for r in rows)
    first = violations.iloc[0]
    assert f"Replay of run {first['run']}: {first['invariant']}" in html


def test_simlab_report_tells_on_stderr_what_it_is_doing(race, report_html):
    fragile, _ = race
    path, html, stderr = report_html
    lines = stderr.splitlines()
    shards = len(list(fragile.glob("shard-*.done")))
    figures = len(re.findall(r'<img src="data:image/png', html))
    first = load_results(fragile).violations.iloc[0]
    assert lines[:2] == [
        f"simlab report: read {shards} shard(s), 80 runs, from {fragile}",
        "simlab report: computing rates and intervals over 80 runs",
    ]
    assert f"simlab report: replaying run {first['run']} (seed {first['seed']}) to draw its timeline" in lines
    drawn = [line for line in lines if line.startswith("simlab report: drawing figure ")]
    numbered = [f" drawing figure {k} of {figures}" for k in range(1, figures + 1)]
    assert [line.split(":")[1] for line in drawn] == numbered
    assert lines[-1] == f"simlab report: writing {path}"
    assert len(lines) == 3 + figures + 1  # loading, rates, the replay; each figure; writing


def test_an_incomplete_batch_says_so_first_and_that_the_next_step_is_to_complete_it(tmp_path):
    from simlab.batch.shards import table_path
    from simlab.present.report import build_report

    out = tmp_path / "cut"
    run_batch_to(load_scenario("reconnect_race"), 4, 1, out, workers=1, shard_size=2)
    sagas = table_path(out, 1, "sagas")
    sagas.write_bytes(sagas.read_bytes()[:-40])  # runs 2..3 no longer match their marker: left out
    verdict = _verdict(build_report(out)).splitlines()
    assert verdict[0] == "[bad]"
    assert verdict[1].startswith("Only 2 of the 4 runs are here: 1 shard(s) are damaged and left out (")
    assert verdict[-1] == (
        "Next step: run the same simlab run command again to complete the batch, then write this report again."
    )


@pytest.mark.parametrize(
    ("value", "digits", "shown"),
    [(0.0, 1, "0%"), (1.0, 1, "100%"), (0.5, 1, "50.0%"), (0.9996, 1, "99.96%"), (0.0004, 1, "0.04%"),
     (0.99999999, 2, ">99.99999%"), (1e-9, 2, "<0.00001%"), (float("nan"), 1, "")],
)  # fmt: skip
def test_a_rate_reads_as_0_or_100_percent_only_when_it_is(value, digits, shown):
    from simlab.present.tables import percent

    assert percent(value, digits) == shown
