"""simlab report: one self-contained HTML file with tables, plots, replay commands and a baseline comparison."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from simlab.batch.batches import load_results, run_batch_to
from simlab.batch.runner import run_once
from simlab.batch.sweep import Grid, run_sweep
from simlab.scenario import load_scenario

SAFE = ("disconnect_lock", "child_wait", "purge")


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
def report_html(race: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    fragile, _ = race
    out = tmp_path_factory.mktemp("report") / "race.html"
    done = _simlab("report", str(fragile), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {out}"
    return out, out.read_text()


def test_the_report_holds_the_facts_tables_and_plots_and_nothing_external(race, report_html):
    fragile, _ = race
    _, html = report_html
    results = load_results(fragile)
    assert "<h1>Reliability report: reconnect_race</h1>" in html
    assert "Does a reconnect landing milliseconds after a disconnect lose the connection" in html  # its question
    assert results.manifest["config_hash"] in html and results.manifest["code_hash"] in html
    assert "root seed 1, runs 0..79" in html
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}"', html)) >= 4
    assert html.count('<table class="dataframe data">') >= 2  # summary and outcomes
    assert "BrokerDisconnectionSaga" in html and "clean_low" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # self-contained: nothing to fetch


def test_every_violation_is_listed_with_the_command_that_replays_it(race, report_html):
    fragile, _ = race
    _, html = report_html
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
    html = out.read_text()
    baseline = load_results(fragile).violations
    for invariant in sorted(set(baseline["invariant"])):
        row = re.search(rf"<td class=\"text\">{invariant}</td>\s*<td class=\"text [^\"]+\">(\w[\w ]*)</td>", html)
        assert row is not None and row.group(1) == "resolved", invariant
    assert load_results(safe).violations.empty
    # The other way round, the seed's findings are new.
    back = _simlab("report", str(fragile), "--baseline", str(safe), "-o", str(tmp_path / "back.html"))
    assert back.returncode == 0 and "status-new" in (tmp_path / "back.html").read_text()


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
    assert "When median_lag_s=0.5: choose max_attempts=12" in html
    assert "When median_lag_s=2.0: choose max_attempts=12" in html
    assert "Violations over the grid" in html
    assert "Clean rate against p99 duration when median_lag_s=0.5" in html
    assert "Clean rate against p99 duration when median_lag_s=2.0" in html
    commands = re.findall(r"<code>simlab replay (\S+) --seed (\d+)</code>", html)
    assert commands and all(ref.endswith("/scenario.yaml") and "/point-00" in ref for ref, _ in commands)
    ref, seed = commands[0]
    point = load_scenario(ref)
    assert point.sagas.consistency_retry.max_attempts == 2
    assert "disconnect_completed" in {v.invariant for v in run_once(point, int(seed)).violations}


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


def _chromium() -> str | None:
    return next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)


def test_the_report_renders_in_headless_chromium(report_html, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does)")
        pytest.skip("no chromium on this machine (CI installs it)")
    path, _ = report_html
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,2400",
         f"--screenshot={shot}", path.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pixels = image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (2400, 1200)
    ink = (pixels.mean(axis=2) < 0.9).mean()  # share of pixels that are not (near) white
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert ink > 0.03, ink  # text, tables and figures drew something
    assert colours > 50, colours  # not a blank or single-colour page: plots are rendered


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
    assert summary.endswith("Not reached by any run, though the scenario needs it: lock_expiry")
    html = build_report(out)
    assert "Not reached by any run, though the scenario needs it: lock_expiry." in html
    assert "<td>* lock_expiry</td>" in html and "<td>* retry</td>" in html


def test_the_report_says_whether_the_batch_met_its_scenarios_expectation(race):
    from simlab.present.report import build_report

    fragile, safe = race
    assert "Expectation (safe variants, clean): met in 80 run(s)" in build_report(safe)
    assert sorted(set(load_results(fragile).violations["invariant"])) == ["no_data_loss", "no_orphans"]
    expected = "Expectation (seed variants, violations of no_data_loss, no_orphans): met in 80 run(s)"
    assert expected in build_report(fragile)


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
