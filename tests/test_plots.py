"""The report's and the notebooks' plots: they show failures, split what differs, and stay readable.

Small batches, built once for the module: reconnect_race (it violates no_data_loss and
no_orphans), chaos_swarm (every fault family), and a 2 x 2 sweep of broker_disconnection.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from simlab.batch.batches import Results, load_results, run_batch_to
from simlab.batch.runner import RunResult, run_once
from simlab.batch.sweep import Grid, run_sweep
from simlab.present import analysis, plots, report, violation_plots
from simlab.present.summary import format_timeline
from simlab.scenario import load_scenario
from tests.text_layout import text_problems

BUDGET, LAG = "sagas.consistency_retry.max_attempts", "projections.accounts.median_lag_s"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plots")
    run_batch_to(load_scenario("reconnect_race"), 80, 1, root / "race", workers=2)
    run_batch_to(load_scenario("chaos_swarm"), 6, 1, root / "chaos", workers=2)
    grid = Grid.model_validate(
        {"parameters": {BUDGET: [2, 12], LAG: [0.5, 2.0]}, "conditions": [LAG], "saga_type": "BrokerDisconnectionSaga"}
    )
    run_sweep(load_scenario("broker_disconnection"), grid, 4, 11, root / "sweep", workers=2)
    return {"race": root / "race", "chaos": root / "chaos", "sweep": root / "sweep"}


@pytest.fixture(scope="module")
def race(folders: dict[str, Path]) -> Results:
    results = load_results(folders["race"])
    assert set(results.violations["invariant"]) == {"no_data_loss", "no_orphans"}  # what these tests are about
    return results


@pytest.fixture(scope="module")
def late_violation(race: Results) -> RunResult:
    """A run whose violation is found at the horizon (600 s), long after its sagas finished."""
    row = race.violations[race.violations["invariant"] == "no_orphans"].iloc[0]
    result = run_once(load_scenario("reconnect_race"), int(row["seed"]), keep_trace=True)
    assert max(r.t for r in result.trace) < 100 and {v.t for v in result.violations} == {600.0}
    return result


def _runs_violating(results: Results, invariant: str) -> int:
    of = results.violations[results.violations["invariant"] == invariant]
    return len(of[["run"]].drop_duplicates())


# -- violations --------------------------------------------------------------------------------


def test_the_violation_figure_has_one_bar_per_violated_invariant_with_its_wilson_interval(race: Results):
    fig = violation_plots.violations_by_invariant(race)
    (ax,) = fig.axes
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    invariants = [t.get_text() for t in ax.get_yticklabels()]
    assert invariants == ["no_data_loss", "no_orphans"] and len(bars) == 2
    n = len(race.runs)
    segments = bars.errorbar.lines[2][0].get_segments()
    for invariant, bar, segment in zip(invariants, bars, segments, strict=True):
        k = _runs_violating(race, invariant)
        assert bar.get_width() == pytest.approx(k / n)
        assert (segment[0][0], segment[1][0]) == pytest.approx(analysis.wilson_interval(k, n))
    assert ax.xaxis.get_major_formatter()(0.5, 0) == "50%"
    assert fig.get_suptitle() == f"Runs violating each invariant ({n} runs)"


def test_for_a_sweep_the_violation_figure_has_a_panel_per_invariant_and_a_bar_per_setting(folders):
    sweep = load_results(folders["sweep"])
    fig = violation_plots.violations_by_invariant(sweep)
    invariants = sorted(set(sweep.violations["invariant"]))
    assert [ax.get_title() for ax in fig.axes] == invariants
    settings = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert settings == ["max_attempts=2, median_lag_s=0.5", "max_attempts=2, median_lag_s=2.0",
                        "max_attempts=12, median_lag_s=0.5", "max_attempts=12, median_lag_s=2.0"]  # fmt: skip
    points = [(2, 0.5), (2, 2.0), (12, 0.5), (12, 2.0)]
    for ax, invariant in zip(fig.axes, invariants, strict=True):
        (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
        of = sweep.violations[sweep.violations["invariant"] == invariant]
        expected = [
            len(of[(of[BUDGET] == budget) & (of[LAG] == lag)]["run"].unique()) / 4 for budget, lag in points
        ]  # 4 runs per point
        assert [bar.get_width() for bar in bars] == pytest.approx(expected)


def test_without_violations_the_figure_says_so(race: Results):
    clean = dataclasses.replace(race, violations=race.violations.iloc[:0])
    fig = violation_plots.violations_by_invariant(clean)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == [f"No invariant was violated in any of the {len(race.runs)} runs."]


def test_the_timing_figure_puts_one_dot_per_violation_at_its_simulated_time(race: Results):
    fig = violation_plots.violation_times(race)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    counts = race.violations.groupby("invariant").size()
    assert labels == [f"{name} ({counts[name]})" for name in ["no_data_loss", "no_orphans"]]
    times = np.sort(np.concatenate([c.get_offsets()[:, 0] for c in ax.collections]))
    assert times.tolist() == sorted(race.violations["t"].tolist())
    assert ax.get_xlim()[1] >= race.violations["t"].max()


# -- split by saga type, log counts -----------------------------------------------------------


def test_durations_and_retries_are_split_by_saga_type(race: Results):
    types = sorted(set(race.sagas["saga_type"]))
    assert len(types) == 2
    durations = plots.duration_cdf(race)
    assert [line.get_label() for line in durations.axes[0].get_lines() if not line.get_label().startswith("_")] == types
    retries = plots.retry_histogram(race)
    (ax,) = retries.axes
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in retries.legends[0].get_texts()] == types
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    for saga_type, container in zip(types, bars, strict=True):
        sagas = race.sagas[race.sagas["saga_type"] == saga_type]
        assert sorted(p.get_height() for p in container) == sorted(sagas.groupby("retries").size().tolist())


# -- broker load and fault families -------------------------------------------------------------


def test_broker_load_ends_near_its_last_active_bin_even_when_a_fault_lasts_far_longer(folders):
    chaos = load_results(folders["chaos"])
    long = chaos.faults.assign(end=np.where(chaos.faults["family"] == "redis", 5000.0, chaos.faults["end"]))
    fig = plots.broker_load(dataclasses.replace(chaos, faults=long))
    load = analysis.broker_load(chaos)
    active = load[load["max_calls_per_s"] > 0]
    first, last = float(active["t"].min()), float(active["t"].max()) + 1.0
    low, high = fig.axes[-1].get_xlim()
    assert last <= high <= last + 0.03 * (last - first)
    assert first - 0.03 * (last - first) <= low <= first
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "redis (until 5000 s)" in legend


def test_broker_load_cuts_a_sparse_late_tail_and_says_what_it_cut(folders):
    # One stray call at 5,000 s after a batch whose calls end near 650 s: the axis keeps 99% of the
    # calls, not the empty seconds in between, and its label says what is past the edge.
    chaos = load_results(folders["chaos"])
    late = chaos.broker_calls.iloc[[0]].assign(start=5000.2, end=5000.3)
    results = dataclasses.replace(chaos, broker_calls=pd.concat([chaos.broker_calls, late], ignore_index=True))
    fig = plots.broker_load(results)
    load = analysis.broker_load(results)
    calls = load.groupby("t")["mean_calls_per_s"].sum()
    bulk_end = float(calls.index[(calls.cumsum() >= 0.99 * calls.sum()).to_numpy().argmax()]) + 1.0
    first = float(load.loc[load["max_calls_per_s"] > 0, "t"].min())
    low, high = fig.axes[-1].get_xlim()
    assert high == pytest.approx(bulk_end + 0.02 * (bulk_end - first)) and bulk_end < 1000 and low < first
    share = calls[calls.index >= bulk_end].sum() / calls.sum()
    label = fig.axes[-1].get_xlabel()
    assert label == f"simulated time (s); {share:.1%} of the calls, the last at 5000 s, are past the right edge"


def test_each_fault_family_has_its_own_lane_colour_and_legend_entry(folders):
    chaos = load_results(folders["chaos"])
    families = sorted(set(chaos.faults["family"]))
    assert len(families) >= 5
    fig = plots.broker_load(chaos)
    strip = fig.axes[0]
    # A window that outlasts the broker calls says when it ends: the axis stops with the calls.
    assert [t.get_text().split(" (until")[0] for t in strip.get_legend().get_texts()] == families
    lanes = [c for c in strip.collections if isinstance(c, PolyCollection)]
    colours = {tuple(np.round(c.get_facecolor()[0], 3)) for c in lanes}
    assert len(lanes) == len(families) == len(colours)
    rows = sorted({round(float(c.get_paths()[0].vertices[:, 1].mean())) for c in lanes})
    assert rows == list(range(len(families)))  # one lane each


# -- heatmap and Pareto -----------------------------------------------------------------------


def test_heatmap_text_is_white_on_dark_cells_and_black_on_light_ones():
    summary = pd.DataFrame({"a": [1, 1, 2, 2], "b": [1, 2, 1, 2], "violation_rate": [0.0, 0.5, 1.0, 0.45]})
    fig = plots.heatmap(summary.set_index(["a", "b"]), "a", "b")
    colours = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    # RdYlGn_r: 0 is dark green, 1 dark red, the middle pale yellow
    assert colours == {"0%": "white", "100%": "white", "50%": "black", "45%": "black"}


def test_pareto_names_its_condition_labels_every_setting_inside_the_axes_and_fits_its_axes(folders):
    sweep = load_results(folders["sweep"])
    summary = analysis.config_summary(sweep, saga_type="BrokerDisconnectionSaga")
    part = summary[summary.index.get_level_values(LAG) == 2.0]
    chosen = analysis.recommend(part, objective="clean_rate", given=[LAG])
    fig = plots.pareto(part, rate="clean_rate", recommended=chosen.index[0], max_violation_rate=0.0)
    ax = fig.axes[0]
    assert ax.get_title() == "Clean rate against p99 duration when median_lag_s=2.0"
    labels = " ".join(t.get_text() for t in ax.texts)
    assert re.search(r"max_attempts=2\b", labels) and re.search(r"max_attempts=12\b", labels)
    assert "★ max_attempts=12" in labels  # the recommendation, named
    front = [line for line in ax.get_lines() if line.get_label().startswith("Pareto front")]
    assert len(front) == 1 and front[0].get_linewidth() >= 2
    y, x = part["clean_rate"].to_numpy(), part["p99_s"].to_numpy()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 <= x.min() and x.max() <= x1 and x1 - x0 < 1.5 * (x.max() - x.min()) + 1
    assert y0 <= y.min() and y.max() < y1 <= 1.02
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    for text in ax.texts:
        box = text.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, text


# -- the replay timeline ------------------------------------------------------------------------


def test_the_timeline_shows_a_violation_found_at_the_horizon_on_the_chart(late_violation: RunResult):
    fig = plots.replay_timeline(late_violation)
    low, high = fig.axes[-1].get_xlim()
    assert low < 0 and high > 600.0
    dashed = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert {float(line.get_xdata()[0]) for line in dashed} == {600.0}
    assert not [t for t in fig.axes[0].texts if t.get_text().startswith("later")]
    assert 600.0 in fig.axes[-1].get_xticks()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "red label: saga named in a violation" in legend


def test_the_replay_text_names_each_sagas_connection_beside_its_id(late_violation: RunResult):
    text = format_timeline(late_violation)
    violation = late_violation.violations[0]
    connection = re.search(r"connection (\S+) ", violation.explanation)
    assert connection is not None
    for saga_id in violation.saga_ids:
        lines = [line for line in text.splitlines() if f" {saga_id[:8]} " in line]
        assert lines and all(f" {saga_id[:8]} conn {connection.group(1)[:8]} " in line for line in lines)


# -- no two texts overlap ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_figures(folders: dict[str, Path]) -> dict[str, list[tuple[str, Figure]]]:
    """Every figure ``simlab report`` draws for each folder, by title, caught as the report embeds it."""
    caught: dict[str, list[tuple[str, Figure]]] = {}
    drawn: list[tuple[str, Figure]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report._Figures, "add", lambda self, title, caption, figure: drawn.append((title, figure)))
        for name, folder in folders.items():
            report.build_report(folder)
            caught[name] = drawn.copy()
            drawn.clear()
    return caught


@pytest.mark.parametrize("name", ["race", "chaos", "sweep"])
def test_no_two_texts_of_a_report_figure_overlap_or_leave_it(report_figures, name: str):
    figures = report_figures[name]
    titles = [title for title, _ in figures]
    assert titles.index("Which invariants were violated") == titles.index("How the sagas ended") + 1
    if name == "sweep":
        assert sum(t.startswith("Clean rate against p99 duration when") for t in titles) == 2
    problems = {title: text_problems(fig) for title, fig in figures}
    assert {title: found for title, found in problems.items() if found} == {}


def test_no_two_texts_of_the_replay_timeline_overlap_or_leave_it(late_violation: RunResult):
    assert text_problems(plots.replay_timeline(late_violation, title="reconnect_race, the late violation")) == []


def test_the_overlap_check_finds_overlapping_and_clipped_texts():
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "first label", transform=ax.transAxes)
    ax.text(0.52, 0.5, "second label", transform=ax.transAxes)
    ax.text(1.3, 0.2, "runs off the edge", transform=ax.transAxes)
    ax.add_line(Line2D([0, 1], [0, 1]))
    problems = text_problems(fig)
    assert any(p.startswith("overlap: 'first label'") and "'second label'" in p for p in problems)
    assert any(p.startswith("outside the 400x300 figure: 'runs off the edge'") for p in problems)
    assert len(problems) == 2


# -- the reports as a browser draws them ------------------------------------------------------

VERDICT_BACKGROUND = {"bad": (0xFF, 0xEB, 0xEE), "good": (0xE8, 0xF5, 0xE9), "neutral": (0xEC, 0xEF, 0xF1)}


@pytest.mark.parametrize("kind", ["race", "chaos", "sweep"])
def test_a_report_in_chromium_opens_with_its_verdict_and_draws_its_violations(folders, kind, tmp_path):
    """A batch, a chaos_swarm batch and a sweep, rendered by headless Chromium: the verdict box is the first
    thing under the title, and the violation figure's bars are on the page."""
    import os
    import shutil
    import subprocess

    import PIL.Image
    from matplotlib import colors

    browser = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does)")
        pytest.skip("no chromium on this machine (CI installs it)")
    page = report.write_report(folders[kind], tmp_path / f"{kind}.html")
    tone = re.search(r'<div class="verdict (\w+)" id="verdict">', page.read_text())
    assert tone is not None
    shot = tmp_path / f"{kind}.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1300,16000",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    with PIL.Image.open(shot) as drawn:
        pixels = np.asarray(drawn.convert("RGB"), dtype=np.int16)

    def rows_of(colour: tuple[int, ...], run: int) -> np.ndarray:
        """Rows of the page holding at least ``run`` pixels of ``colour`` side by side."""
        match = (np.abs(pixels - np.array(colour, dtype=np.int16)) <= 2).all(axis=2)
        ones = np.cumsum(np.pad(match, ((0, 0), (1, 0))), axis=1, dtype=np.int32)
        return np.flatnonzero(((ones[:, run:] - ones[:, :-run]) == run).any(axis=1))

    verdict = rows_of(VERDICT_BACKGROUND[tone.group(1)], 600)  # the box spans the text column
    assert verdict.size and verdict.min() < 300, "the verdict box is not at the top of the page"
    results = load_results(folders[kind])
    bars = rows_of(tuple(round(255 * c) for c in colors.to_rgb(violation_plots.VIOLATION_COLOUR)), 20)
    bars = bars[bars > verdict.max()]  # below the verdict (whose border has this colour too)
    if not results.violations.empty:
        assert bars.size, f"{kind}: no violation bars on the page"
    elif "compensation_failed" not in set(results.sagas["status"]):  # whose bars share the colour
        assert not bars.size, f"{kind}: violation-coloured bars without a violation"


def test_the_pareto_star_names_the_recommended_setting_and_only_says_which_others_share_its_point(folders):
    sweep = load_results(folders["sweep"])
    summary = analysis.config_summary(sweep, saga_type="BrokerDisconnectionSaga")
    part = summary[summary.index.get_level_values(LAG) == 2.0].copy()
    chosen = analysis.recommend(part, objective="clean_rate", given=[LAG]).index[0]
    other = next(index for index in part.index if index != chosen)
    part.loc[other, ["p99_s", "clean_rate"]] = part.loc[chosen, ["p99_s", "clean_rate"]].to_numpy()  # one point
    fig = plots.pareto(part, rate="clean_rate", recommended=chosen, max_violation_rate=0.0)
    labels = [t.get_text() for t in fig.axes[0].texts]
    budget = dict(zip(part.index.names, chosen, strict=True))[BUDGET]
    shared = dict(zip(part.index.names, other, strict=True))[BUDGET]
    assert f"★ max_attempts={budget} (same point: max_attempts={shared})" in labels
