"""The report's tables for a reader: readable headers with units, each rate merged with its interval.

``simlab.present.analysis`` names its columns for code (``clean_rate``, ``clean_low``,
``clean_high``, ``peak_calls_per_s``); a team lead reads "clean sagas (95% CI)" and one
value, ``99.20% (98.10-99.70%)`` (an en dash between the ends). The functions here only
rename, merge and format the figures analysis computed; they compute none.
``summary_notes`` says, one line per column, what each figure counts: a share of sagas
next to a share of runs must not read as a contradiction.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

DASH = "\N{EN DASH}"
"""Between the two ends of an interval, as typeset."""

PERCENT_DIGITS = 2
"""Decimals of a rate in a table: a 99.9% target must be told from 99.85%."""


def percent(value: float, digits: int = 1) -> str:
    """``value`` (a share) as a percentage with ``digits`` decimals, ``""`` for NaN.

    Only an exact 0 or 1 shows as ``0%`` or ``100%``: a rate of 0.9996 is never rounded up to
    "100.0%" (nor 0.0004 down to "0.0%"); it gets the decimals that keep it apart.
    """
    if pd.isna(value):
        return ""
    if value in (0, 1):
        return f"{value:.0%}"
    for places in range(digits, digits + 4):
        text = f"{value * 100:.{places}f}"
        if float(text) not in (0.0, 100.0):
            return text + "%"
    # Closer to 0 or 1 than the most decimals shown can tell: said as a bound, never as 0% or 100%.
    return (
        f"<{10.0 ** -(digits + 3):.{digits + 3}f}%"
        if value < 0.5
        else f">{100 - 10.0 ** -(digits + 3):.{digits + 3}f}%"
    )


def interval(value: float, low: float, high: float, digits: int = 1) -> str:
    """A rate and its interval: ``5.5% (4.6-6.6%)`` (with an en dash, ``DASH``)."""
    if pd.isna(value):
        return ""
    return f"{percent(value, digits)} ({percent(low, digits).removesuffix('%')}{DASH}{percent(high, digits)})"


def seconds_interval(value: float, low: float, high: float) -> str:
    """A duration in seconds and its interval: ``2.93 (2.10-4.24)`` (with an en dash)."""
    if pd.isna(value):
        return ""
    return f"{value:.2f} ({low:.2f}{DASH}{high:.2f})"


RATE_HEADERS: dict[str, str] = {
    "clean": "clean sagas (95% CI)",
    "completed": "completed sagas (95% CI)",
    "success": "successful runs (95% CI)",
    "violation": "runs with a violation (95% CI)",
}
"""The rates of ``analysis.config_summary`` (``PREFIX_rate``, ``PREFIX_low``, ``PREFIX_high``), as headed."""

P99_HEADER = "p99 duration (s, 95% CI)"

PLAIN_HEADERS: dict[str, str] = {
    "runs": "runs",
    "sagas": "sagas",
    "p50_s": "median duration (s)",
    "mean_retries": "retries per saga (mean)",
    "calls_per_saga": "broker calls per saga",
    "peak_calls_per_s": "peak broker calls per s (mean over runs)",
}
"""The other columns of ``analysis.config_summary`` the report shows, as headed."""


def summary_notes(saga_type: str | None) -> list[str]:
    """One line per column of ``readable_summary``: exactly what it counts (``analysis.config_summary``'s definitions).

    ``saga_type``: the one saga type the saga figures are about (None: all of them).
    """
    one = f"{saga_type} saga" if saga_type else "saga"
    sagas = one + "s"
    return [
        f"clean sagas: share of {sagas} that ended completed, aborted or compensated (not timed_out, not "
        "compensation_failed, not still running at the horizon).",
        f"completed sagas: share of {sagas} that completed or aborted by design, so nothing had to be compensated.",
        f"successful runs: share of runs in which every one of the {sagas} ended clean and nothing was violated.",
        "runs with a violation: share of runs with at least one violation (an invariant broken, or a saga task "
        "that crashed), whatever the saga type. It counts runs, not sagas: one saga in a run of many can break "
        "an invariant, and a saga can end clean yet leave a broken rule behind (a live connection purged, an "
        "orphaned account), so a clean-saga rate near 100% beside a violation rate above 0% is no contradiction.",
        f"durations: simulated seconds from start to end of the {sagas} that finished; the p99 interval is a "
        "bootstrap interval.",
        f"retries per saga: retries scheduled per {one}, on average.",
        "broker calls per saga: calls that reached the brokers (refused ones included) per saga of any type: the "
        "retry amplification.",
        "peak broker calls per s: each run's busiest simulated second at the brokers, averaged over runs.",
        "Intervals are 95% Wilson intervals for rates (0 in 100 runs still allows up to about 3.7%).",
    ]


def readable_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """``analysis.config_summary``'s table as the report shows it: readable headers, rates with intervals."""
    shown = pd.DataFrame(index=summary.index)
    shown["runs"] = summary["runs"].map(_count)
    shown["sagas"] = summary["sagas"].map(_count)
    for prefix, header in RATE_HEADERS.items():
        shown[header] = _rates(summary, prefix)
    shown[PLAIN_HEADERS["p50_s"]] = summary["p50_s"].map(_number)
    shown[P99_HEADER] = [
        seconds_interval(v, lo, hi)
        for v, lo, hi in zip(summary["p99_s"], summary["p99_low"], summary["p99_high"], strict=True)
    ]
    for column in ("mean_retries", "calls_per_saga", "peak_calls_per_s"):
        shown[PLAIN_HEADERS[column]] = summary[column].map(_number)
    return shown


def readable_choice(chosen: pd.DataFrame, objective: str) -> pd.DataFrame:
    """``analysis.recommend``'s table as the report shows it (rank, the objective, violations, p99, confidence)."""
    shown = pd.DataFrame(index=chosen.index)
    shown["rank"] = chosen["rank"]
    prefix = objective.removesuffix("_rate")
    shown[RATE_HEADERS[prefix]] = _rates(chosen, prefix)
    shown[RATE_HEADERS["violation"]] = _rates(chosen, "violation")
    shown[P99_HEADER] = [
        seconds_interval(v, lo, hi)
        for v, lo, hi in zip(chosen["p99_s"], chosen["p99_low"], chosen["p99_high"], strict=True)
    ]
    shown["meets the target with confidence"] = chosen["confident"].map({True: "yes", False: "no"})
    return shown


OUTCOME_HEADERS: Mapping[str, str] = {
    "saga_type": "saga type",
    "status": "final status",
    "count": "sagas ending so",
    "sagas": "sagas of the type",
}


def readable_outcomes(outcomes: pd.DataFrame) -> pd.DataFrame:
    """``analysis.outcome_rates``' table as the report shows it: each status's share with its interval."""
    keys = [c for c in outcomes.columns if c not in ("saga_type", "status", "count", "sagas", "rate", "low", "high")]
    shown = outcomes[[*keys, *OUTCOME_HEADERS]].rename(columns=dict(OUTCOME_HEADERS))
    shown["share of the type's sagas (95% CI)"] = [
        interval(v, lo, hi, PERCENT_DIGITS)
        for v, lo, hi in zip(outcomes["rate"], outcomes["low"], outcomes["high"], strict=True)
    ]
    return shown


def _rates(frame: pd.DataFrame, prefix: str) -> list[str]:
    return [
        interval(v, lo, hi, PERCENT_DIGITS)
        for v, lo, hi in zip(frame[f"{prefix}_rate"], frame[f"{prefix}_low"], frame[f"{prefix}_high"], strict=True)
    ]


def _count(value: float) -> str:
    return "" if pd.isna(value) else f"{int(value):,}"


def _number(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.2f}"
