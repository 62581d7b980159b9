"""The lab's mutation score: plausible saga bugs, planted one at a time, must each be caught (a benchmark).

Each mutant is a small, plausible bug in the engine or the safe sagas, written as an exact
snippet replacement. For every mutant this script copies ``sagas/``, ``simlab/`` and
``scenarios/`` into a temporary folder, plants the bug there (the snippet must occur exactly
once, so a mutant that no longer applies fails loudly instead of scoring), and runs every
shipped scenario with all-safe variants in processes whose imports resolve to that copy: run 0
of every scenario, then run 1 of every scenario, and so on, until the first invariant violation
or ``--runs`` runs of each. A catch is then replayed with ``simlab replay`` of the copy, which
must print the same violation. The unmutated code runs the same runs first and must be clean:
otherwise a catch would mean nothing.

    .venv/bin/python benchmarks/mutation_score.py                     # every mutant, up to 1,000 runs each
    .venv/bin/python benchmarks/mutation_score.py --runs 200 --only compensation_order
    .venv/bin/python benchmarks/mutation_score.py --list

It prints one line per mutant (caught or escaped, which scenario and invariant caught it, the
run index of the first catch, whether the replay reproduces it) and the score. An escape is a
finding about the lab: a missing fault, invariant or scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAFE = {f"sagas.variants.{switch}": "safe" for switch in ("disconnect_lock", "child_wait", "purge")}


@dataclass(frozen=True)
class Mutant:
    """One planted bug: in ``path``, the snippet ``old`` becomes ``new``."""

    name: str
    what: str
    path: str
    old: str
    new: str


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "compensation_order",
        "compensations run first-to-last instead of last-first",
        "sagas/engine/execution.py",
        "return [s for s in reversed(steps) if s.name in touched and s.name not in done]",
        "return [s for s in steps if s.name in touched and s.name not in done]",
    ),
    Mutant(
        "possibly_applied_forgotten",
        "a step cut off by its deadline is not compensated (only completed steps are)",
        "sagas/engine/execution.py",
        "touched = set(state.completed_steps) | set(state.possibly_applied)",
        "touched = set(state.completed_steps)",
    ),
    Mutant(
        "retry_limit_off_by_one",
        "a step gets one attempt more than its policy allows",
        "sagas/engine/retry.py",
        "if attempts_made >= config.max_attempts or not config.is_retryable(error):",
        "if attempts_made > config.max_attempts or not config.is_retryable(error):",
    ),
    Mutant(
        "equal_jitter_too_wide",
        "equal jitter draws from [0, d] instead of [d/2, d]",
        "sagas/engine/retry.py",
        "return base / 2.0 + rng.uniform(0.0, base / 2.0)  # equal",
        "return rng.uniform(0.0, base)  # equal",
    ),
    Mutant(
        "failed_compensation_stops_the_rest",
        "after one compensation fails, the remaining ones are skipped",
        "sagas/engine/execution.py",
        "            (state.compensated_steps if ok else state.failed_compensations).append(step.name)\n"
        "            await self._persist()\n",
        "            (state.compensated_steps if ok else state.failed_compensations).append(step.name)\n"
        "            await self._persist()\n"
        "            if not ok:\n"
        "                break\n",
    ),
    Mutant(
        "duplicate_trigger_starts_twice",
        "a redelivered trigger event starts a second saga",
        "sagas/engine/manager.py",
        "        if owner != saga_id:\n",
        "        if owner != saga_id and False:\n",
    ),
    Mutant(
        "resume_reruns_completed_steps",
        "a resumed saga runs its completed steps again",
        "sagas/engine/execution.py",
        "remaining = [step for step in self.steps if step.name not in completed]",
        "remaining = list(self.steps)",
    ),
    Mutant(
        "lock_release_without_owner_check",
        "the safe lock's release deletes the key whoever holds it",
        "sagas/infra/locks.py",
        "                if holder is None or text(holder) != owner:\n",
        "                if holder is None:\n",
    ),
    Mutant(
        "resumed_step_trusted",
        "after a crash, the step that was in flight is not treated as possibly applied",
        "sagas/engine/execution.py",
        "            state.possibly_applied.append(in_flight)\n            write = True\n",
        "            pass\n",
    ),
    # -- the safe design ------------------------------------------------------------------------
    Mutant(
        "fence_accepts_stale_tokens",
        "the write model accepts a write carrying an older lock token than one it already took",
        "sagas/trading/fencing.py",
        "        if token < newest:\n",
        "        if token < newest and False:\n",
    ),
    Mutant(
        "purge_not_conditional",
        "the safe purge no longer asks the write model to purge only a still-disconnected connection",
        "sagas/trading/sagas/disconnection.py",
        'expected_status="disconnected" if safe else None,',
        "expected_status=None,",
    ),
    Mutant(
        "purge_ignores_remaining_accounts",
        "the safe purge no longer requires the connection to have no accounts left",
        "sagas/trading/sagas/disconnection.py",
        "                require_no_accounts=safe,\n",
        "                require_no_accounts=False,\n",
    ),
    Mutant(
        "deletion_ignores_reconnect",
        "a safe disconnection deletes accounts even after the user reconnected",
        "sagas/trading/sagas/disconnection.py",
        "                    only_if_disconnected=guarded,\n",
        "                    only_if_disconnected=False,\n",
    ),
    Mutant(
        "link_into_disconnected",
        "a slow connection saga links accounts into a connection that was disconnected meanwhile",
        "sagas/trading/sagas/connection.py",
        "                    only_if_connected=guarded,\n",
        "                    only_if_connected=False,\n",
    ),
    Mutant(
        "compensation_unlinks_others",
        "a connection saga's compensation unlinks accounts another saga linked",
        "sagas/trading/sagas/connection.py",
        "                    only_own=own,\n",
        "                    only_own=False,\n",
    ),
    Mutant(
        "link_not_idempotent",
        "linking an account twice creates a second account for the same broker account",
        "sagas/trading/platform/accounts.py",
        "            if account.external_id == command.external_id:\n                return account.account_id\n",
        "            if account.external_id == command.external_id and False:\n"
        "                return account.account_id\n",
    ),
    Mutant(
        "connection_saga_skips_lock",
        "the safe connection saga discovers and links without taking the connection's lock",
        "sagas/trading/sagas/connection.py",
        "                token = await self.acquire_connection_lock(context)\n",
        "                token = None\n",
    ),
    Mutant(
        "failed_children_ignored",
        "a safe user deletion declares the user deleted although a child disconnection failed",
        "sagas/trading/sagas/user_deletion.py",
        "        if unfinished:\n",
        "        if unfinished and False:\n",
    ),
    Mutant(
        "late_children_not_awaited",
        "a safe user deletion waits only for the child sagas that exist so far",
        "sagas/trading/sagas/user_deletion.py",
        '        while len(sagas.children()) < context["disconnected_count"]:\n',
        '        while False and len(sagas.children()) < context["disconnected_count"]:\n',
    ),
    # -- leases (issue 10) ------------------------------------------------------------------------
    Mutant(
        "recover_ignores_leases",
        "recover() takes over a saga whose owner still holds its lease",
        "sagas/stores/memory.py",
        "        if held is not None and held[1] > now and not succeeds(owner, held[0]):\n",
        "        if False:\n",
    ),
    Mutant(
        "lost_lease_not_acted_on",
        "a manager whose lease ran out or was refused lets the saga run on until its next write",
        "sagas/engine/leases.py",
        "        if execution.lease_lost or execution.state.status.is_terminal:\n            return\n",
        "        if True:\n            return\n",
    ),
)


# -- the worker: runs inside a copy of the code -----------------------------------------------------


def _worker(scenarios: list[str], runs: int) -> dict[str, object]:
    """Run ``scenarios`` (all-safe) round-robin up to ``runs`` each; stop at the first violation."""
    import simlab
    from simlab.batch.runner import run_once, run_seed
    from simlab.batch.sweep import with_settings
    from simlab.scenario import load_scenario

    chosen = [with_settings(load_scenario(name), SAFE) for name in scenarios]
    started = time.perf_counter()
    executed = 0
    for index in range(runs):
        for scenario in chosen:
            seed = run_seed(index, scenario.seed)
            result = run_once(scenario, seed)
            executed += 1
            if result.violations:
                first = result.violations[0]
                return {
                    "caught": True,
                    "scenario": scenario.name,
                    "run": index,
                    "seed": seed,
                    "invariant": first.invariant,
                    "explanation": first.explanation,
                    "executed": executed,
                    "seconds": time.perf_counter() - started,
                    "code": simlab.__file__,
                }
    return {"caught": False, "executed": executed, "seconds": time.perf_counter() - started, "code": simlab.__file__}


# -- the driver ---------------------------------------------------------------------------------------


def _copy_code(into: Path) -> None:
    for part in ("sagas", "simlab", "scenarios"):
        shutil.copytree(ROOT / part, into / part, ignore=shutil.ignore_patterns("__pycache__"))


def _plant(copy: Path, mutant: Mutant) -> None:
    path = copy / mutant.path
    text = path.read_text()
    found = text.count(mutant.old)
    if found != 1:
        raise SystemExit(f"mutant {mutant.name}: its snippet occurs {found} times in {mutant.path}, expected once")
    path.write_text(text.replace(mutant.old, mutant.new))


def _in_copy(copy: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, check=False)


def _shipped() -> list[str]:
    return sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))


def _hunt(copy: Path, scenarios: list[str], runs: int) -> dict[str, object]:
    """The first catch over ``scenarios`` in ``copy``, in one worker process importing the copy."""
    done = _in_copy(copy, [__file__, "--worker", "--runs", str(runs), *scenarios])
    if done.returncode != 0:
        raise SystemExit(f"worker failed in {copy}:\n{done.stderr[-3000:]}")
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    if not str(found["code"]).startswith(str(copy)):
        raise SystemExit(f"the worker imported {found['code']}, not the copy in {copy}")
    return found


def _hunt_split(copy: Path, scenarios: list[str], runs: int, workers: int) -> dict[str, object]:
    """The first catch over ``scenarios`` in ``copy``, the scenarios split over ``workers`` processes."""
    groups = [scenarios[i::workers] for i in range(workers) if scenarios[i::workers]]
    with ThreadPoolExecutor(len(groups)) as pool:
        found = list(pool.map(lambda group: _hunt(copy, group, runs), groups))
    catches = [f for f in found if f["caught"]]
    executed = sum(int(str(f["executed"])) for f in found)
    if not catches:
        return {"caught": False, "executed": executed}
    first = min(catches, key=lambda f: (int(str(f["run"])), str(f["scenario"])))
    return {**first, "executed": executed}


def _replays(copy: Path, found: dict[str, object]) -> bool:
    """Whether ``simlab replay`` of the copy, given the catching run's seed, prints the same violation."""
    from simlab.batch.sweep import with_settings
    from simlab.scenario import load_scenario

    scenario = with_settings(load_scenario(str(found["scenario"])), SAFE)
    path = copy / "replay.yaml"
    import yaml

    path.write_text(yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False))
    done = _in_copy(copy, ["-m", "simlab", "replay", str(path), "--seed", str(found["seed"])])
    return done.returncode == 0 and f"VIOLATION {found['invariant']} " in done.stdout


def main() -> int:
    """Score every mutant (or ``--only`` some); print one line each and the score."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs of each scenario before an escape (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="processes at a time (default 2)")
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME", help="score only these mutants")
    parser.add_argument(
        "--scenario", action="append", default=None, metavar="NAME", help="run only this shipped scenario (repeatable)"
    )
    parser.add_argument("--skip-clean", action="store_true", help="skip checking that the unmutated code is clean")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("scenarios", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.scenarios, args.runs)))
        return 0
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name:<36} {mutant.path:<38} {mutant.what}")
        return 0
    chosen = [m for m in MUTANTS if args.only is None or m.name in args.only]
    unknown = sorted(set(args.only or ()) - {m.name for m in MUTANTS})
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(unknown)}; see --list")
    scenarios = _shipped()
    missing = sorted(set(args.scenario or ()) - set(scenarios))
    if missing:
        parser.error(f"unknown scenario(s): {', '.join(missing)}; expected some of {', '.join(scenarios)}")
    scenarios = [name for name in scenarios if args.scenario is None or name in args.scenario]
    print(f"{len(chosen)} mutants x {len(scenarios)} scenarios (all-safe variants), up to {args.runs} runs each")
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        # Every copy is made and planted before anything runs: a snippet that no longer applies
        # fails at once, and editing the tree while the score runs changes nothing it measures.
        copies = {}
        for mutant in chosen:
            copies[mutant.name] = Path(tmp) / mutant.name
            _copy_code(copies[mutant.name])
            _plant(copies[mutant.name], mutant)
        if not args.skip_clean:
            clean = Path(tmp) / "clean"
            _copy_code(clean)
            started = time.perf_counter()
            found = _hunt_split(clean, scenarios, args.runs, args.workers)
            took = time.perf_counter() - started
            if found["caught"]:
                print(f"UNMUTATED CODE IS NOT CLEAN: {found['scenario']} run {found['run']} seed {found['seed']}: "
                      f"{found['invariant']}: {found['explanation']}")  # fmt: skip
                return 1
            print(f"unmutated: clean over {found['executed']} runs ({took:.0f} s)", flush=True)

        def score(mutant: Mutant) -> bool:
            started = time.perf_counter()
            found = _hunt(copies[mutant.name], scenarios, args.runs)
            took = time.perf_counter() - started
            if found["caught"]:
                replay = "replays" if _replays(copies[mutant.name], found) else "REPLAY DIFFERS"
                print(
                    f"caught   {mutant.name:<36} by {found['scenario']} / {found['invariant']} at run {found['run']} "
                    f"(seed {found['seed']}, {found['executed']} runs, {took:.0f} s), {replay}",
                    flush=True,
                )
            else:
                print(f"ESCAPED  {mutant.name:<36} {found['executed']} runs ({took:.0f} s): {mutant.what}", flush=True)
            shutil.rmtree(copies[mutant.name])
            return bool(found["caught"])

        # One process per mutant, ``--workers`` mutants at a time: a mutant stops at its first
        # catch, so splitting one mutant's scenarios over processes would waste the others' work.
        with ThreadPoolExecutor(args.workers) as pool:
            caught = sum(pool.map(score, chosen))
    print(f"score: {caught}/{len(chosen)} mutants caught within {args.runs} runs of each scenario")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
