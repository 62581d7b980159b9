"""What ``simlab shrink`` writes, and the smallest reproductions ``simlab report`` shows.

A shrink's folder holds ``repro.yaml`` (the shrunk scenario; its header says the exact ``simlab replay``
command that reproduces the failure), ``test_repro.py`` (a pytest file that fails while the failure is
there and passes once it is fixed), ``timeline.png`` (the repro's replay figure, as ``simlab replay
--plot`` draws it), ``shrink.json`` (the signature, the seed and the sizes before and after, which the
report reads) and, for every violation of another signature met on the way, ``other-K.yaml`` (the
candidate that showed it). The folder is written under a temporary name and renamed into place, so a
shrink cut short leaves either the previous folder or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml

from simlab.batch.shrink import RunSize, ShrinkResult, Signature
from simlab.present.commands import simlab_command
from simlab.scenario.model import Expect, Scenario

SUMMARY_FILE = "shrink.json"
SHRUNK_DIR = "shrunk"


def repro_scenario(scenario: Scenario, seed: int) -> Scenario:
    """``scenario`` as a repro file: one run, seeded ``seed`` (``run_seeds``: ``simlab run`` on it runs the
    failing run itself), and no batch expectation (it describes one run's failure)."""
    return scenario.model_copy(update={"runs": 1, "run_seeds": (seed,), "expect": Expect()})


def scenario_yaml(scenario: Scenario, header: list[str]) -> str:
    """``scenario`` as YAML that ``load_scenario`` reads back equal, under ``header`` as comment lines."""
    body = yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False, default_flow_style=None, width=120)
    return "".join(f"# {line}\n" for line in header) + body


def replay_command(repro: Path, seed: int) -> str:
    """The command that replays the repro's failing run."""
    return f"{simlab_command()} replay {shlex.quote(str(repro))} --seed {seed}"


def write_shrunk(result: ShrinkResult, out: Path, *, source: str) -> Path:
    """Write ``result``'s repro, test, figure and summary into the folder ``out``, atomically; return ``out``."""
    from simlab.present.timeline import save_replay_figure  # the plotting stack: only once there is a result

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        repro = out / "repro.yaml"
        command = replay_command(repro, result.seed)
        header = [
            f"simlab shrink: the smallest scenario found that still shows {result.target}",
            f"with run seed {result.seed} (shrunk from {source}).",
            f"Reproduce it: {command}",
            f"Before: {result.original_size}.",
            f"After: {result.best_size}.",
        ]
        (tmp / "repro.yaml").write_text(
            scenario_yaml(repro_scenario(result.best, result.seed), header), encoding="utf-8"
        )
        (tmp / "test_repro.py").write_text(repro_test(result.target, result.seed), encoding="utf-8")
        save_replay_figure(result.best_result, str(tmp / "timeline.png"), title=f"shrunk: {result.target}")
        for k, other in enumerate(result.others):
            note = [
                f"simlab shrink met another failure: {other.signature}",
                f"with run seed {result.seed}: {other.size}.",
            ]
            text = scenario_yaml(repro_scenario(other.scenario, result.seed), note)
            (tmp / f"other-{k}.yaml").write_text(text, encoding="utf-8")
        summary = _summary(result, source, command)
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; a previous ``out`` is moved aside first and removed only after."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _summary(result: ShrinkResult, source: str, command: str) -> dict[str, Any]:
    return {
        "signature": dataclasses.asdict(result.target),
        "seed": result.seed,
        "source": source,
        "before": dataclasses.asdict(result.original_size),
        "after": dataclasses.asdict(result.best_size),
        "stopped": result.stopped,
        "candidates": result.candidates,
        "kept": result.kept,
        "command": command,
        "others": [
            {"signature": dataclasses.asdict(o.signature), "file": f"other-{k}.yaml"}
            for k, o in enumerate(result.others)
        ],
    }


def repro_test(target: Signature, seed: int) -> str:
    """A pytest file that fails while ``repro.yaml`` beside it shows ``target`` with ``seed``."""
    return f'''"""Generated by `simlab shrink`: fails while repro.yaml (beside this file) still shows the failure.

The failure: {target}, with run seed {seed}. Once the bug is fixed, this test passes.
"""

from pathlib import Path

from simlab.batch.runner import run_once
from simlab.batch.shrink import Signature, signatures
from simlab.scenario import load_scenario

REPRO = Path(__file__).with_name("repro.yaml")
SEED = {seed}
SIGNATURE = Signature({target.invariant!r}, {target.saga_type!r}, {target.step!r}, {target.error_type!r})


def test_the_shrunk_failure_is_gone() -> None:
    result = run_once(load_scenario(str(REPRO)), SEED, keep_trace=True)
    assert SIGNATURE not in signatures(result), f"still reproduced: {{SIGNATURE}}"
'''


@dataclasses.dataclass(frozen=True)
class ShrunkExample:
    """One shrink kept in a batch folder's ``shrunk/``: what it reproduces, how small, and how to replay it."""

    invariant: str
    failure: str
    source: str
    size: RunSize
    command: str


def shrunk_examples(folder: Path) -> list[ShrunkExample]:
    """Per invariant, the smallest reproduction in ``folder/shrunk/`` (fewest sagas, then faults).

    A summary that does not read as one ``simlab shrink`` wrote is skipped: the report shows what it can trust.
    """
    best: dict[str, ShrunkExample] = {}
    for path in sorted((folder / SHRUNK_DIR).glob(f"*/{SUMMARY_FILE}")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            example = ShrunkExample(
                str(data["signature"]["invariant"]),
                str(Signature(**data["signature"])),
                str(data["source"]),
                RunSize(**data["after"]),
                str(data["command"]),
            )
        except (OSError, ValueError, KeyError, TypeError):  # not written by simlab shrink: not shown
            continue
        kept = best.get(example.invariant)
        if kept is None or (example.size.sagas, example.size.faults) < (kept.size.sagas, kept.size.faults):
            best[example.invariant] = example
    return [best[name] for name in sorted(best)]
