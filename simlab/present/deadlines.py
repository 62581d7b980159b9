"""Step deadlines against step attempts: the deadline each step ran under, and how many attempts it cut off.

The ``attempts`` table records each attempt's start, end and outcome, not the deadline it ran
under: a deadline is configuration (the step's definition, overridden by the scenario's
``sagas.steps.Saga.step.timeout_s``). So the deadlines are read from the scenario the batch ran
(its results folder keeps it as ``scenario.yaml``), through the sagas' own definitions, and
everything measured comes from the loaded ``attempts`` table. An attempt is **cut off** when its
step's deadline ended it (outcome ``timed_out``); an attempt the saga's own deadline cancelled is not.
"""

from __future__ import annotations

import pandas as pd

from sagas.engine.trace import Outcome, Phase
from sagas.trading.wiring import definition_deps, trading_sagas
from simlab.batch.batches import Results
from simlab.scenario.model import Scenario

CUTS_COLUMNS = ["saga_type", "step", "deadline_s", "attempts", "cut_off", "p50_s", "p99_s", "max_s"]


def step_deadlines(scenario: Scenario) -> pd.DataFrame:
    """One row per step of every trading saga, in definition order: ``saga_type``, ``step``, ``deadline_s``
    (the step's deadline under ``scenario``'s saga settings)."""
    config = scenario.sagas.to_config()
    rows = [
        {"saga_type": saga.get_saga_type(), "step": step.name, "deadline_s": float(step.timeout_seconds)}
        for saga in trading_sagas(definition_deps(config))
        for step in saga.validated_steps()
    ]
    return pd.DataFrame(rows, columns=["saga_type", "step", "deadline_s"])


def step_attempts(results: Results) -> pd.DataFrame:
    """The step attempts (phase ``execute``) of the attempts table, with their ``duration_s``."""
    attempts = results.attempts
    steps = attempts[attempts["phase"] == Phase.EXECUTE]
    return steps.assign(duration_s=steps["end"] - steps["start"])


def deadline_cuts(results: Results, scenario: Scenario) -> pd.DataFrame:
    """Per step that ran, in definition order: its deadline, its attempts, how many the deadline cut off,
    and the p50, p99 and longest attempt (simulated seconds).

    ``results`` is a batch of ``scenario`` (or one point of a sweep, ``results.where({...})``, with
    that point's scenario): the deadlines are ``scenario``'s.
    """
    attempts = step_attempts(results)
    rows = []
    for saga_type, step, deadline in step_deadlines(scenario).itertuples(index=False):
        these = attempts[(attempts["saga_type"] == saga_type) & (attempts["step"] == step)]
        if these.empty:
            continue
        durations = these["duration_s"]
        rows.append(
            {
                "saga_type": saga_type,
                "step": step,
                "deadline_s": deadline,
                "attempts": len(these),
                "cut_off": int((these["outcome"] == Outcome.TIMED_OUT).sum()),
                "p50_s": float(durations.quantile(0.5)),
                "p99_s": float(durations.quantile(0.99)),
                "max_s": float(durations.max()),
            }
        )
    return pd.DataFrame(rows, columns=CUTS_COLUMNS)
