"""Ceilings on issue 12's levers: instructions per run with whole layers of a run made free.

Run it as a script (it needs ``valgrind``; it is not a test)::

    .venv/bin/python benchmarks/ceiling.py                          # reconnect_race, every layer
    .venv/bin/python benchmarks/ceiling.py --scenarios reconnect_race chaos_swarm --jobs 2

A lever on a layer (a Redis of our own, copy-on-change snapshots, cheaper checks...) can at best
make that layer cost nothing. This measures what a run would cost then: for each layer below, the
layer's work is replaced by the cheapest stand-in there is, usually a replay of what it returned in
a normal run of the same seed (a list popped in order), and the run is counted under callgrind
exactly as ``instructions.py`` counts it (runs N..M-1, start-up cancelled, ``setarch -R``). The
difference to the plain count is the most any lever on that layer can save; the count with every
layer free is the floor of a run whose engine, domain, simulator and workload stay the code that ships.

Layers made free (``--layers`` picks some):

- ``redis``: every Redis command and pipeline (fakeredis, and redis-py's client under
  ``SimulatedRedis.execute_command``) answers with its recorded reply. The simulated latency around
  a command is kept: it is the lab's model, not the backend's cost.
- ``checks``: the post-run evidence and invariant checks return their recorded verdict.
- ``hash``: the trace hash returns its recorded value.
- ``rows``: the result rows (saga rows, broker calls, reach counts) are the recorded ones.
- ``snapshots``: saved states are not deep-copied (``json_copy`` in ``sagas.engine.state`` returns
  its argument), the ceiling of copy-on-change snapshots. Steps still get copies of their own.
- ``steps``: step definitions are not validated (``SagaStep`` checks and the list check skipped,
  retry policies shared), the ceiling of caching validated definitions. ``define_steps`` still runs.
- ``collector``: garbage collection off (``gc.disable()`` before anything is imported).

Verified (else it stops): before anything is counted, a plain process runs the scenario's runs
with each configuration's layers free (the trace hash recomputed even where ``hash`` is free) and
must give the normal runs' trace hashes and violations, so a stand-in that changed what a run does
is refused, never counted. Each counted process also checks every run's violations.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instructions import HERE, RUNS, callgrind  # a script beside this one

Recording = list[dict[str, Any]]  # per run: what each layer returned, in order


# -- the child: record a scenario's runs, or run them with layers free ------------------------------


class _Runs:
    """Which run is under way, so that a replay pops that run's recordings."""

    index = 0


def _spy(owner: Any, name: str, record: Callable[[tuple[Any, ...], Any], None]) -> None:
    """Wrap ``owner.name`` so that every call's arguments and answer (its value or error) go to ``record``."""
    real = getattr(owner, name)

    def spied(*args: Any, **kwargs: Any) -> Any:
        try:
            value = real(*args, **kwargs)
        except Exception as error:
            record(args, (False, error))
            raise
        record(args, (True, value))
        return value

    setattr(owner, name, spied)


def _replay(answers: deque[tuple[bool, Any]], what: str) -> Any:
    if not answers:
        raise SystemExit(f"run {_Runs.index}: {what} was called more often than in the recorded run")
    ok, value = answers.popleft()
    if ok:
        return value
    raise value


def _record(scenario_name: str, runs: int, path: Path) -> None:
    from simlab.batch import runner
    from simlab.sim import clocked_redis

    recording: Recording = [{} for _ in range(runs)]

    def into(key: str) -> Callable[[tuple[Any, ...], Any], None]:
        return lambda args, answer: recording[_Runs.index].setdefault(key, []).append(answer)

    def command(args: tuple[Any, ...], answer: tuple[bool, Any]) -> None:  # args: the client, then the command
        recording[_Runs.index].setdefault("redis", []).append((str(args[1]).upper(), *answer))

    _spy(clocked_redis.SimulatedRedis, "execute_command", command)
    _spy(clocked_redis.SimulatedPipeline, "execute", into("pipelines"))
    for name in ("check_invariants", "trace_hash", "saga_rows", "broker_calls", "run_reach"):
        _spy(runner, name, into(name))
    _run_all(scenario_name, runs)
    path.write_bytes(pickle.dumps(recording))


def _replayed(recording: Recording, key: str) -> Callable[..., Any]:
    """A stand-in answering each call with the current run's next recorded answer under ``key``."""
    answers = [deque(run.get(key, ())) for run in recording]
    return lambda *args, **kwargs: _replay(answers[_Runs.index], key)


def _free_redis(recording: Recording) -> None:
    from simlab.sim import clocked_redis

    commands = [deque(run.get("redis", ())) for run in recording]

    def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        name, pending = str(args[0]).upper(), commands[_Runs.index]
        # NOTE: a spare client's reset (FLUSHALL) happens only where the collector has returned a spare.
        while pending and pending[0][0] == "FLUSHALL" != name:
            pending.popleft()
        if name == "FLUSHALL" and not (pending and pending[0][0] == "FLUSHALL"):
            return True
        if not pending or pending[0][0] != name:
            raise SystemExit(f"run {_Runs.index}: Redis command {name} was not the recorded run's next")
        _, ok, value = pending.popleft()
        if ok:
            return value
        raise value

    clocked_redis.SimulatedRedis.execute_command = execute_command  # type: ignore[method-assign]
    clocked_redis.SimulatedPipeline.execute = _replayed(recording, "pipelines")  # type: ignore[method-assign]


def _free_checks(recording: Recording) -> None:
    from simlab.batch import runner

    verdicts = _replayed(recording, "check_invariants")
    runner.Evidence.gather = lambda *args, **kwargs: None  # type: ignore[method-assign,assignment]
    runner.check_invariants = lambda *args: tuple(list(part) for part in verdicts())


def _free_hash(recording: Recording) -> None:
    from simlab.batch import runner

    runner.trace_hash = _replayed(recording, "trace_hash")


def _free_rows(recording: Recording) -> None:
    from simlab.batch import runner

    runner.saga_rows = _replayed(recording, "saga_rows")
    runner.broker_calls = _replayed(recording, "broker_calls")
    runner.run_reach = _replayed(recording, "run_reach")


def _free_snapshots(recording: Recording) -> None:
    from sagas.engine import state

    state.json_copy = lambda value, path="value": value


def _free_steps(recording: Recording) -> None:
    from sagas.engine import saga, step
    from sagas.engine.retry import RetryConfig
    from sagas.trading.sagas import base

    policies: dict[tuple[Any, Any], RetryConfig] = {}

    def post_init(self: step.SagaStep) -> None:
        if self.retry is None:
            key = (self.retry_count, self.retry_delay_base)
            policy = policies.get(key) or policies.setdefault(key, RetryConfig.from_seed(*key))
            object.__setattr__(self, "retry", policy)
        if self.compensation_retry is None:
            object.__setattr__(self, "compensation_retry", self.retry)

    step.SagaStep.__post_init__ = post_init  # type: ignore[method-assign]
    saga.validate_steps = base.validate_steps = lambda saga_type, steps: tuple(steps)


def _free_collector(recording: Recording) -> None:
    gc.disable()  # also done before any import (see `child`); here for a caller that did not


_STAND_INS: dict[str, Callable[[Recording], None]] = {
    "redis": _free_redis,
    "checks": _free_checks,
    "hash": _free_hash,
    "rows": _free_rows,
    "snapshots": _free_snapshots,
    "steps": _free_steps,
    "collector": _free_collector,
}
LAYERS = tuple(_STAND_INS)
# NOTE: the collector is not a lever: with it off a run executes more instructions (memory the collector would
# free for reuse is fresh memory instead), so it is measured only on request and kept out of "all of them".
DEFAULT_LAYERS = tuple(layer for layer in LAYERS if layer != "collector")


def _run_all(scenario_name: str, runs: int) -> list[tuple[str, str]]:
    from simlab.batch.runner import run_once, run_seed
    from simlab.scenario.loader import load_scenario

    scenario = load_scenario(scenario_name)
    outcomes = []
    for index in range(runs):
        _Runs.index = index
        result = run_once(scenario, run_seed(index, scenario.seed))
        outcomes.append((result.trace_hash, repr(sorted(map(repr, result.violations)))))
    return outcomes


def child(argv: list[str]) -> None:
    """``record SCENARIO RUNS FILE`` or ``run SCENARIO RUNS FILE LAYERS`` (comma-separated, maybe empty)."""
    mode, scenario_name, runs, path = argv[:4]
    layers = [layer for layer in (argv[4] if len(argv) > 4 else "").split(",") if layer]
    if "collector" in layers:
        gc.disable()
    if mode == "record":
        _record(scenario_name, int(runs), Path(path))
        return
    recording = pickle.loads(Path(path).read_bytes())
    # NOTE: out of the collector's sight: else every full collection walks the recording, and more of it in
    # configurations that replay less of it (a replay pops what it answered), which skewed CPU figures by 20%.
    gc.freeze()
    for layer in layers:
        _STAND_INS[layer](recording)
    started = time.process_time()
    outcomes = _run_all(scenario_name, int(runs))
    print("CPU", time.process_time() - started)  # the runs alone: no imports, no loading of the recording
    print("OUTCOMES", json.dumps(outcomes))


# -- the parent: record, verify, count --------------------------------------------------------------


def _plain(args: list[str]) -> str:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(HERE)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], cwd=HERE, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def _outcomes(printed: str) -> list[tuple[str, str]]:
    line = next(line for line in printed.splitlines() if line.startswith("OUTCOMES "))
    return [tuple(pair) for pair in json.loads(line.removeprefix("OUTCOMES "))]


def _verify(scenario: str, runs: int, recorded: Path, layers: list[str], normal: list[tuple[str, str]]) -> None:
    # The hash recomputed (not replayed): a stand-in that changed what the run did must show.
    checked = [layer for layer in layers if layer != "hash"]
    got = _outcomes(_plain(["run", scenario, str(runs), str(recorded), ",".join(checked)]))
    if got != normal:
        first = next(i for i, (a, b) in enumerate(zip(got, normal, strict=True)) if a != b)
        problem = f"with {'+'.join(layers)} free, run {first} differs: that stand-in changed the run"
        raise SystemExit(f"{scenario}: {problem}")


def _per_run(scenario: str, first: int, last: int, recorded: Path, layers: list[str], normal: Any) -> float:
    counts = []
    for runs in (first, last):
        args = [__file__, "--child", "run", scenario, str(runs), str(recorded), ",".join(layers)]
        instructions, printed = callgrind(HERE, args)
        got = _outcomes(printed)
        if [violations for _, violations in got] != [violations for _, violations in normal[:runs]]:
            raise SystemExit(f"{scenario}: with {'+'.join(layers) or 'nothing'} free, the violations differ")
        counts.append(instructions)
    return (counts[1] - counts[0]) / (last - first)


def _cpu_per_run(scenario: str, runs: int, recorded: Path, layers: list[str]) -> float:
    printed = _plain(["run", scenario, str(runs), str(recorded), ",".join(layers)])
    return float(next(line for line in printed.splitlines() if line.startswith("CPU ")).split()[1]) / runs


def _cpu_ratios(scenario: str, runs: int, recorded: Path, configurations: list[list[str]], repeat: int) -> list[float]:
    """Each configuration's CPU per run in plain processes, one at a time, in alternating rounds: the medians."""
    figures: list[list[float]] = [[] for _ in configurations]
    for round_ in range(repeat):
        for index in _rotated(range(len(configurations)), round_):  # no configuration always first
            figures[index].append(_cpu_per_run(scenario, runs, recorded, configurations[index]))
    return [statistics.median(column) for column in figures]


def _rotated(items: Iterable[int], by: int) -> list[int]:
    listed = list(items)
    by %= len(listed)
    return listed[by:] + listed[:by]


def measure(scenario: str, layers: list[str], jobs: int, cpu: tuple[int, int] | None, together: bool) -> None:
    """Record ``scenario``'s runs, verify every configuration, measure them all, print the table."""
    first, last = RUNS.get(scenario, (2, 6))
    alone = [] if together or len(layers) == 1 else [[layer] for layer in layers]
    configurations = [[], *alone, layers]
    with tempfile.TemporaryDirectory() as folder:
        recorded = Path(folder) / "recording.pickle"
        _plain(["record", scenario, str(max(last, cpu[0] if cpu else 0)), str(recorded)])
        normal = _outcomes(_plain(["run", scenario, str(last), str(recorded), ""]))
        for chosen in configurations[1:]:
            _verify(scenario, last, recorded, chosen, normal)
        if cpu is not None:
            figures = _cpu_ratios(scenario, cpu[0], recorded, configurations, cpu[1])
            what, unit, scale = f"{cpu[0]} runs, CPU ms per run, median of {cpu[1]} alternated rounds", "ms", 1e3
        else:
            with ThreadPoolExecutor(jobs) as pool:
                figures = list(pool.map(lambda c: _per_run(scenario, first, last, recorded, c, normal), configurations))
            what, unit, scale = f"runs {first}..{last - 1}, instructions per run", "M", 1e-6
    base = figures[0]
    print(f"\n{scenario}, {what} (every stand-in verified)")
    print(f"  {'free':<34} {'per run':>10} {'of plain':>9} {'saved':>7}")
    for chosen, figure in zip(configurations, figures, strict=True):
        label = "nothing (the plain run)" if not chosen else ("all of them" if len(chosen) > 1 else chosen[0])
        print(f"  {label:<34} {figure * scale:8.2f} {unit} {figure / base:9.3f} {1 - figure / base:7.1%}")
    print(f"  ceiling of every lever on these layers together: {base / figures[-1]:.2f}x less per run")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=["reconnect_race"], metavar="NAME")
    parser.add_argument(
        "--layers",
        default=",".join(DEFAULT_LAYERS),
        help=f"comma-separated, of {', '.join(LAYERS)} (default: all but collector)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="callgrind processes at once (default 2)")
    parser.add_argument("--together", action="store_true", help="only the plain run and all layers free at once")
    parser.add_argument(
        "--cpu",
        nargs=2,
        type=int,
        metavar=("RUNS", "ROUNDS"),
        help="measure CPU time instead of instructions: RUNS runs per process, ROUNDS alternated rounds",
    )
    args = parser.parse_args(argv)
    layers = [layer for layer in args.layers.split(",") if layer]
    unknown = sorted(set(layers) - set(LAYERS))
    if unknown or not layers:
        parser.error(f"--layers {args.layers!r}: expected some of {', '.join(LAYERS)}")
    if args.cpu is not None and min(args.cpu) < 1:
        parser.error(f"--cpu {args.cpu[0]} {args.cpu[1]}: expected RUNS >= 1 and ROUNDS >= 1")
    if args.cpu is None and shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected at least 1")
    from simlab.scenario.loader import ScenarioError, load_scenario

    for scenario in args.scenarios:
        try:
            load_scenario(scenario)
        except ScenarioError as error:
            parser.error(f"--scenarios {scenario}: {error}")
    for scenario in args.scenarios:
        cpu = None if args.cpu is None else (args.cpu[0], args.cpu[1])
        measure(scenario, layers, args.jobs, cpu, args.together)
    return 0


if __name__ == "__main__":
    sys.exit(main())
