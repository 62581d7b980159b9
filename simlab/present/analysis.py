"""From the runner's tables to decisions: rates with intervals, quantiles, load, recovery, the Pareto front.

Every function reads a ``Results`` (``simlab.batch.batches.load_results`` of a batch or a
sweep folder) and nothing else, and groups by the swept parameters unless told
otherwise (``by=[...]``); a plain batch is one group. Intervals come from scipy:
Wilson score intervals for rates (``binomtest(...).proportion_ci``), percentile
bootstrap for quantiles (``scipy.stats.bootstrap`` with a fixed seed, so a report
is reproducible too).

Vocabulary:

- a saga ends **clean** when it completed, aborted by design (a re-validation said
  "nothing to do"), or was compensated without a failing compensation. ``timed_out``
  and ``compensation_failed`` are not clean, and neither is a saga still running at
  the horizon;
- a run **violates** when any invariant was violated in it.

Choosing a configuration from ``config_summary`` (``pareto_front``, ``recommend``,
``describe_choice``) lives in ``simlab.present.choice`` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sagas.engine.trace import Outcome, Phase
from simlab.batch.batches import Results
from simlab.present.choice import OBJECTIVES as OBJECTIVES
from simlab.present.choice import describe_choice as describe_choice
from simlab.present.choice import display_names
from simlab.present.choice import pareto_front as pareto_front
from simlab.present.choice import recommend as recommend

CLEAN_STATUSES = ("completed", "aborted", "compensated")
DONE_STATUSES = ("completed", "aborted")  # did what was asked, or found by design that nothing was to be done
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 999
BOOTSTRAP_SEED = 20261127


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a rate (NaN, NaN without trials)."""
    if trials <= 0:
        return (float("nan"), float("nan"))
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def quantile_interval(
    values: Sequence[float] | np.ndarray, q: float, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """(estimate, low, high) of the ``q`` quantile, the interval by a seeded percentile bootstrap."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return (float("nan"), float("nan"), float("nan"))
    estimate = float(np.quantile(data, q))
    if data.size < 2 or np.all(data == data[0]):
        return (estimate, estimate, estimate)
    result = stats.bootstrap(
        (data,),
        lambda sample, axis: np.quantile(sample, q, axis=axis),
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        batch=100,  # resamples at a time: bounded memory for tens of thousands of durations
        random_state=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return (estimate, float(result.confidence_interval.low), float(result.confidence_interval.high))


# -- grouping ----------------------------------------------------------------------------------


def _by(results: Results, by: Sequence[str] | None) -> list[str]:
    return list(results.params if by is None else by)


def _groups(frame: pd.DataFrame, by: list[str]) -> Iterator[tuple[tuple[Any, ...], pd.DataFrame]]:
    if frame.empty:
        return
    if not by:
        yield (), frame
        return
    for key, group in frame.groupby(by, sort=True, dropna=False):  # a swept `null` is a setting too
        yield (key if isinstance(key, tuple) else (key,)), group


def _configs(results: Results, by: list[str]) -> list[tuple[Any, ...]]:
    return [key for key, _ in _groups(results.runs, by)]


def _select(frame: pd.DataFrame, by: list[str], key: tuple[Any, ...]) -> pd.DataFrame:
    if frame.empty or not by:
        return frame
    mask = np.ones(len(frame), dtype=bool)
    for column, value in zip(by, key, strict=True):
        mask &= (frame[column].isna() if pd.isna(value) else frame[column] == value).to_numpy()
    return frame[mask]


def _run_id(frame: pd.DataFrame) -> list[str]:
    """The columns that identify a run: a sweep's points reuse run indices (and seeds), so the point counts too."""
    return ["point", "run"] if "point" in frame.columns else ["run"]


def _of_type(sagas: pd.DataFrame, saga_type: str | None) -> pd.DataFrame:
    return sagas if saga_type is None or sagas.empty else sagas[sagas["saga_type"] == saga_type]


def short_names(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with swept settings' dotted paths shortened for display (index levels and columns).

    Each path keeps as many trailing parts as it takes to stay distinct from the others:
    ``sagas.consistency_retry.max_attempts`` becomes ``max_attempts``.
    """
    axes = [*frame.index.names, *frame.columns.names, *frame.columns]
    short = display_names(str(n) for n in axes if n is not None and "." in str(n))
    renamed = frame.rename(columns=short)
    renamed.index = renamed.index.set_names([short.get(str(n), n) for n in renamed.index.names])
    renamed.columns = renamed.columns.set_names([short.get(str(n), n) for n in renamed.columns.names])
    return renamed


# -- outcomes ----------------------------------------------------------------------------------


def outcome_rates(
    results: Results, *, by: Sequence[str] | None = None, saga_type: str | None = None, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Per configuration, saga type and final status: count, sagas, rate and its Wilson interval."""
    keys = _by(results, by)
    rows = []
    for key, group in _groups(_of_type(results.sagas, saga_type), [*keys, "saga_type"]):
        n = len(group)
        for status, count in group["status"].value_counts().sort_index().items():
            low, high = wilson_interval(int(count), n, confidence)
            rows.append({**dict(zip([*keys, "saga_type"], key, strict=True)), "status": status,
                         "count": int(count), "sagas": n, "rate": count / n, "low": low, "high": high})  # fmt: skip
    return pd.DataFrame(rows, columns=[*keys, "saga_type", "status", "count", "sagas", "rate", "low", "high"])


def config_summary(
    results: Results,
    *,
    by: Sequence[str] | None = None,
    saga_type: str | None = None,
    confidence: float = CONFIDENCE,
    load_window: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """One row per configuration: the figures a tuning decision rests on, each with its interval.

    Columns: runs and sagas; ``clean_rate`` (share of sagas ending clean) with ``clean_low``/``clean_high``;
    ``completed_rate`` (share that completed, or aborted by design: no compensation) with its interval;
    ``success_rate`` (share of runs whose sagas all ended clean with no violation) with its interval;
    ``violation_rate`` (share of runs with any invariant violation) with its interval; duration
    ``p50_s`` and ``p99_s`` of finished sagas, p99 with a bootstrap interval; ``mean_retries``;
    ``calls_per_saga`` (broker calls per saga, the retry amplification) and ``peak_calls_per_s``
    (the mean over runs of each run's busiest second at the brokers; only within ``load_window``,
    in simulated seconds, when given: for example from the end of an outage, to see the herd).
    """
    keys = _by(results, by)
    sagas = _of_type(results.sagas, saga_type)
    load = _per_run_peaks(results, keys, window=load_window)
    rows = [
        {**dict(zip(keys, key, strict=True)), **_config_row(results, keys, key, sagas, load, confidence)}
        for key in _configs(results, keys)
    ]
    frame = pd.DataFrame(rows)
    return frame.set_index(keys) if keys else frame


def _config_row(
    results: Results, keys: list[str], key: tuple[Any, ...], sagas: pd.DataFrame, load: pd.DataFrame, confidence: float
) -> dict[str, Any]:
    """``config_summary``'s figures for the configuration ``key`` (``sagas``: those of the chosen type)."""
    runs = _select(results.runs, keys, key)
    these = _select(sagas, keys, key)
    clean = int(these["status"].isin(CLEAN_STATUSES).sum()) if len(these) else 0
    done = int(these["status"].isin(DONE_STATUSES).sum()) if len(these) else 0
    violating = int((runs["violations"] > 0).sum())
    rid = _run_id(runs)
    unclean = these.loc[~these["status"].isin(CLEAN_STATUSES), rid] if len(these) else runs[rid].iloc[:0]
    bad_runs = set(unclean.itertuples(index=False)) | set(runs.loc[runs["violations"] > 0, rid].itertuples(index=False))
    succeeded = len(runs) - len(bad_runs)
    durations = these["duration_s"].to_numpy(dtype=float) if len(these) else np.array([])
    p99, p99_low, p99_high = quantile_interval(durations, 0.99, confidence)
    calls = _select(results.broker_calls, keys, key)
    all_sagas = len(_select(results.sagas, keys, key))
    peaks = _select(load, keys, key)
    return {
        "runs": len(runs),
        "sagas": len(these),
        "clean_rate": clean / len(these) if len(these) else float("nan"),
        **_interval("clean", clean, len(these), confidence),
        "completed_rate": done / len(these) if len(these) else float("nan"),
        **_interval("completed", done, len(these), confidence),
        "success_rate": succeeded / len(runs) if len(runs) else float("nan"),
        **_interval("success", succeeded, len(runs), confidence),
        "violation_rate": violating / len(runs) if len(runs) else float("nan"),
        **_interval("violation", violating, len(runs), confidence),
        "p50_s": float(np.nanquantile(durations, 0.5)) if np.any(~np.isnan(durations)) else float("nan"),
        "p99_s": p99,
        "p99_low": p99_low,
        "p99_high": p99_high,
        "mean_retries": float(these["retries"].mean()) if len(these) else float("nan"),
        "calls_per_saga": len(calls) / all_sagas if all_sagas else float("nan"),
        # Runs without a call in the window count as a peak of 0.
        "peak_calls_per_s": float(peaks["peak_calls_per_s"].sum() / len(runs)) if len(runs) else 0.0,
    }


def duration_quantiles(
    results: Results,
    *,
    by: Sequence[str] | None = None,
    saga_type: str | None = None,
    quantiles: Sequence[float] = (0.5, 0.9, 0.99, 0.999),
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Per configuration and quantile: the duration of finished sagas with its bootstrap interval.

    Columns: the configuration, ``q``, ``sagas`` (finished ones), ``duration_s``, ``low``, ``high``.
    """
    keys = _by(results, by)
    sagas = _of_type(results.sagas, saga_type)
    rows = []
    for key, group in _groups(sagas, keys):
        values = group["duration_s"].dropna().to_numpy(dtype=float)
        for q in quantiles:
            estimate, low, high = quantile_interval(values, q, confidence)
            rows.append({**dict(zip(keys, key, strict=True)), "q": q, "sagas": int(values.size),
                         "duration_s": estimate, "low": low, "high": high})  # fmt: skip
    return pd.DataFrame(rows, columns=[*keys, "q", "sagas", "duration_s", "low", "high"])


def _interval(prefix: str, successes: int, trials: int, confidence: float) -> dict[str, float]:
    low, high = wilson_interval(successes, trials, confidence)
    return {f"{prefix}_low": low, f"{prefix}_high": high}


# -- broker load and retries --------------------------------------------------------------------


def _per_run_peaks(
    results: Results, keys: list[str], bin_s: float = 1.0, window: tuple[float, float] | None = None
) -> pd.DataFrame:
    calls = results.broker_calls
    if window is not None and not calls.empty:
        calls = calls[(calls["start"] >= window[0]) & (calls["start"] < window[1])]
    if calls.empty:
        return pd.DataFrame(columns=[*keys, "run", "peak_calls_per_s"])
    rid = _run_id(calls)
    binned = calls.assign(bin=np.floor(calls["start"] / bin_s).astype(int))
    per_bin = binned.groupby([*keys, *rid, "bin"]).size().rename("calls").reset_index()
    peaks = per_bin.groupby([*keys, *rid])["calls"].max().rename("peak_calls_per_s").reset_index()
    peaks["peak_calls_per_s"] = peaks["peak_calls_per_s"] / bin_s
    return peaks


def broker_load(results: Results, *, by: Sequence[str] | None = None, bin_s: float = 1.0) -> pd.DataFrame:
    """Broker calls per second over simulated time, per configuration: the mean over runs and the busiest run.

    Columns: the configuration, ``t`` (start of the bin, seconds), ``mean_calls_per_s``, ``max_calls_per_s``
    (the most calls any single run made in that bin).
    Every run counts in the mean, including runs with no call in a bin.
    """
    keys = _by(results, by)
    calls = results.broker_calls
    columns = [*keys, "t", "mean_calls_per_s", "max_calls_per_s"]
    if calls.empty:
        return pd.DataFrame(columns=columns)
    runs_per_config = results.runs.groupby(keys).size() if keys else pd.Series({(): len(results.runs)})
    binned = calls.assign(bin=np.floor(calls["start"] / bin_s).astype(int))
    per_run = binned.groupby([*keys, "bin", *_run_id(calls)]).size().rename("calls").reset_index()
    grouped = per_run.groupby([*keys, "bin"])["calls"]
    frame = pd.DataFrame({"total": grouped.sum(), "max": grouped.max()}).reset_index()
    if keys:
        index = pd.MultiIndex.from_frame(frame[keys]) if len(keys) > 1 else pd.Index(frame[keys[0]])
        runs = runs_per_config.reindex(index).to_numpy()
    else:
        runs = np.full(len(frame), len(results.runs))
    frame["mean_calls_per_s"] = frame["total"] / runs / bin_s
    frame["max_calls_per_s"] = frame["max"] / bin_s
    # Seconds without a call are zeros, not gaps: every configuration gets every bin.
    bins = np.arange(int(frame["bin"].min()), int(frame["bin"].max()) + 1)
    full = []
    for key, group in _groups(frame, keys):
        filled = group.set_index("bin")[["mean_calls_per_s", "max_calls_per_s"]].reindex(bins, fill_value=0.0)
        for column, value in zip(keys, key, strict=True):
            filled[column] = value
        full.append(filled.rename_axis("bin").reset_index())
    frame = pd.concat(full, ignore_index=True)
    frame["t"] = frame["bin"] * bin_s
    return frame[columns].reset_index(drop=True)


def retry_counts(results: Results, *, by: Sequence[str] | None = None, saga_type: str | None = None) -> pd.DataFrame:
    """How many sagas needed how many retries, per configuration (columns: config, retries, sagas)."""
    keys = _by(results, by)
    sagas = _of_type(results.sagas, saga_type)
    if sagas.empty:
        return pd.DataFrame(columns=[*keys, "retries", "sagas"])
    return sagas.groupby([*keys, "retries"]).size().rename("sagas").reset_index()


# -- compensations and recovery -----------------------------------------------------------------


def compensations_by_step(results: Results, *, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Which step failed in sagas that did not complete, and how their compensation ended.

    One row per (configuration, saga type, failing step, final status) with the number of sagas.
    The failing step is the step of the saga's last execution attempt that did not complete.
    """
    keys = _by(results, by)
    columns = [*keys, "saga_type", "failing_step", "status", "sagas"]
    sagas, attempts = results.sagas, results.attempts
    if sagas.empty or attempts.empty:
        return pd.DataFrame(columns=columns)
    ended = sagas[sagas["status"].isin(("compensated", "compensation_failed", "timed_out"))]
    failed = attempts[(attempts["phase"] == Phase.EXECUTE) & (attempts["outcome"] != Outcome.COMPLETED)]
    ids = [*dict.fromkeys([*keys, *_run_id(attempts), "saga_id"])]
    last = failed.groupby(ids, sort=False).tail(1)[[*ids, "step"]]
    merged = ended.merge(last, on=ids, how="left")
    merged["failing_step"] = merged["step"].fillna("(none: saga deadline or crash)")
    table = merged.groupby([*keys, "saga_type", "failing_step", "status"]).size().rename("sagas").reset_index()
    return table.sort_values([*keys, "sagas"], ascending=[True] * len(keys) + [False]).reset_index(drop=True)[columns]


def compensation_attempts(results: Results, *, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Compensation attempts per (configuration, saga type, step, outcome)."""
    keys = _by(results, by)
    attempts = results.attempts
    if attempts.empty:
        return pd.DataFrame(columns=[*keys, "saga_type", "step", "outcome", "attempts"])
    comp = attempts[attempts["phase"] == Phase.COMPENSATE]
    return comp.groupby([*keys, "saga_type", "step", "outcome"]).size().rename("attempts").reset_index()


def time_to_recover(
    results: Results,
    *,
    by: Sequence[str] | None = None,
    saga_type: str = "ConnectionRecoverySaga",
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Per configuration: how many recoveries succeeded (with interval) and how long they took (quantiles)."""
    keys = _by(results, by)
    sagas = _of_type(results.sagas, saga_type)
    rows = []
    for key in _configs(results, keys):
        these = _select(sagas, keys, key)
        done = these[these["status"] == "completed"] if len(these) else these
        durations = done["duration_s"].to_numpy(dtype=float) if len(done) else np.array([])
        p99, low, high = quantile_interval(durations, 0.99, confidence)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "recoveries": len(these),
                "recovered_rate": len(done) / len(these) if len(these) else float("nan"),
                **_interval("recovered", len(done), len(these), confidence),
                "p50_s": float(np.quantile(durations, 0.5)) if durations.size else float("nan"),
                "p90_s": float(np.quantile(durations, 0.9)) if durations.size else float("nan"),
                "p99_s": p99,
                "p99_low": low,
                "p99_high": high,
            }
        )
    frame = pd.DataFrame(rows)
    return frame.set_index(keys) if keys and len(frame) else frame


# -- findings ----------------------------------------------------------------------------------


def findings(results: Results, *, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Invariant violations grouped per (configuration, invariant): counts, runs, seeds and one explanation."""
    keys = _by(results, by)
    columns = [*keys, "invariant", "violations", "runs", "seeds", "example"]
    violations = results.violations
    if violations.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in _groups(violations, [*keys, "invariant"]):
        seeds = list(dict.fromkeys(int(s) for s in group["seed"]))
        rows.append(
            {
                **dict(zip([*keys, "invariant"], key, strict=True)),
                "violations": len(group),
                "runs": len(group[_run_id(group)].drop_duplicates()),
                "seeds": seeds,
                "example": str(group.iloc[0]["explanation"]),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def violation_rates(
    results: Results, *, by: Sequence[str] | None = None, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Per (configuration, invariant): the share of runs that violated it, with its Wilson interval.

    One row for every configuration and every invariant violated anywhere in ``results`` (so a
    setting where an invariant held shows a rate of 0 with its interval). Columns: the
    configuration, ``invariant``, ``runs`` (runs with at least one violation of it), ``total``
    (the configuration's runs), ``rate``, ``low``, ``high``, ``violations`` (how many in all).
    """
    keys = _by(results, by)
    columns = [*keys, "invariant", "runs", "total", "rate", "low", "high", "violations"]
    violations = results.violations
    if violations.empty:
        return pd.DataFrame(columns=columns)
    invariants = sorted(violations["invariant"].astype(str).unique())
    rows = []
    for key in _configs(results, keys):
        total = len(_select(results.runs, keys, key))
        these = _select(violations, keys, key)
        for invariant in invariants:
            of = these[these["invariant"] == invariant]
            runs = len(of[_run_id(of)].drop_duplicates())
            low, high = wilson_interval(runs, total, confidence)
            rows.append({**dict(zip(keys, key, strict=True)), "invariant": invariant, "runs": runs, "total": total,
                         "rate": runs / total if total else float("nan"), "low": low, "high": high,
                         "violations": len(of)})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
