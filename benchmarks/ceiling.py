"""Ceilings on issue 12's levers: what a run costs with whole layers of it made free.

Run it as a script (it is not a test; instruction counts need ``valgrind``)::

    .venv/bin/python benchmarks/ceiling.py                          # reconnect_race, instructions
    .venv/bin/python benchmarks/ceiling.py --scenarios chaos_swarm thundering_herd --jobs 2
    .venv/bin/python benchmarks/ceiling.py --cpu 300 7 --together   # CPU time, plain vs all free

A lever on a layer (a Redis of our own, copy-on-change snapshots, cheaper checks...) can at best
make that layer cost nothing. This measures what a run costs then: each layer below is replaced by
a stand-in, mostly a replay of what it returned in a normal run of the same seed (a list popped in
order), and the run is counted under callgrind as ``instructions.py`` counts it (runs N..M-1,
start-up cancelled, ``setarch -R``), or with ``--cpu RUNS ROUNDS`` timed run by run in plain
processes (runs N..RUNS-1, the first N warming up), one process at a time, the configurations'
order rotated each round, medians taken.

Layers made free (``--layers`` picks some):

- ``redis``: every command (``SimulatedRedis.execute_command``: fakeredis and the redis-py connection
  under it) and every pipeline's ``execute`` answers with its recorded reply. The simulated latency
  around a command is kept: it is the lab's model, not the backend's cost. A pipeline under WATCH
  sends its watched reads outside ``execute``: such a scenario is refused by the verification
  (reconnect_race, chaos_swarm and thundering_herd send no pipeline).
- ``checks``: the post-run evidence and invariant checks return their recorded verdict (the Redis
  commands they send go with them).
- ``hash``: the trace hash returns its recorded value.
- ``rows``: the result rows (saga rows, broker calls, reach counts) are the recorded ones.
- ``snapshots``: saved states are not deep-copied (``json_copy`` as ``sagas.engine.state`` calls it
  returns its argument), the ceiling of copy-on-change snapshots. Steps still get copies of their own.
- ``steps``: step definitions are not validated (``SagaStep`` checks and the list check skipped,
  retry policies shared), the ceiling of caching validated definitions. ``define_steps`` still runs.
- ``collector``: garbage collection off. Not a lever, and not among the default layers: with it off,
  dead worlds are never freed, so ``redis_spares`` never gets a Redis client back and every world
  builds a new one, and memory is never reused; a run then executes more instructions, not fewer.

The stand-ins are a ceiling of these layers, not of every conceivable lever: each leaves a little of
its layer running (redis-py's command methods above ``execute_command``, a spare client's reset, the
lab's lock ledger and its GET before every lock DEL, the shells of ``to_dict``/``from_dict``, the
construction of ``SagaStep`` objects). A second reader estimated that residue, by bytecodes executed,
at about 2% of a reconnect_race run for the clearly removable parts, 11% counting everything.

Verified (else it stops), for every run that is measured: each configuration runs in a plain process
twice, once with only its stand-ins that act inside the simulation (``redis``, ``snapshots``,
``steps``, ``collector``; the hash and the checks computed, not replayed) and once with all of them,
comparing each command's arguments with the recording, and must give the plain runs' trace hashes,
violations and the digest of the rest of their results; every run must ask for every answer recorded
for it. A stand-in that changed what a run does is refused, never counted. Every measuring process
checks the violations again.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
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
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instructions import HERE, RUNS, callgrind  # a script beside this one

Recording = list[dict[str, Any]]  # per run: what each layer returned, in order


# -- the child: record a scenario's runs, or run them with layers free ------------------------------


class _Runs:
    """Which run is under way (a replay pops that run's recordings), and how closely replays are checked."""

    index = 0
    verify = False  # verification processes also compare each Redis command's arguments with the recording
    queues: ClassVar[list[list[deque[Any]]]] = []  # every replay's queues, one per run: each run must use its own up

    @classmethod
    def used_up(cls) -> None:
        """Stop unless the run just ended consumed every answer recorded for it (a spare's reset aside)."""
        for queues in cls.queues:
            left = [entry for entry in queues[cls.index] if entry[0] != "FLUSHALL"]
            if left:
                first = repr(left[0])[:120]
                raise SystemExit(f"run {cls.index}: {len(left)} recorded answer(s) not asked for, first {first}")


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


def _copied(answer: Any) -> Any:
    return pickle.loads(pickle.dumps(answer))


def _record(scenario_name: str, runs: int, path: Path) -> None:
    from simlab.batch import runner
    from simlab.sim import clocked_redis

    recording: Recording = [{} for _ in range(runs)]

    # NOTE: answers are copied as they are recorded: a caller may change what it got later (the runner appends
    # to the verdict's list of violations), and the replay must give what the layer returned.
    def into(key: str) -> Callable[[tuple[Any, ...], Any], None]:
        return lambda args, answer: recording[_Runs.index].setdefault(key, []).append(_copied(answer))

    checking = [False]  # whether the checks are under way: their commands (a SCAN for locks left) go with them

    def command(args: tuple[Any, ...], answer: tuple[bool, Any]) -> None:  # args: the client, then the command
        entry = (str(args[1]).upper(), repr(args[1:]), *_copied(answer), checking[0])
        recording[_Runs.index].setdefault("redis", []).append(entry)

    def checked(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            checking[0] = True
            try:
                return real(*args, **kwargs)
            finally:
                checking[0] = False

        return call

    runner.Evidence.gather = checked(runner.Evidence.gather)  # type: ignore[method-assign]
    runner.check_invariants = checked(runner.check_invariants)
    _spy(clocked_redis.SimulatedRedis, "execute_command", command)
    _spy(clocked_redis.SimulatedPipeline, "execute", into("pipelines"))
    for name in ("check_invariants", "trace_hash", "saga_rows", "broker_calls", "run_reach"):
        _spy(runner, name, into(name))
    _run_all(scenario_name, runs, detail=False)
    path.write_bytes(pickle.dumps(recording))


def _replayed(recording: Recording, key: str) -> Callable[..., Any]:
    """A stand-in answering each call with the current run's next recorded answer under ``key``."""
    answers = [deque(run.get(key, ())) for run in recording]
    _Runs.queues.append(answers)
    return lambda *args, **kwargs: _replay(answers[_Runs.index], key)


def _free_redis(recording: Recording) -> None:
    from simlab.sim import clocked_redis

    commands = [deque(run.get("redis", ())) for run in recording]
    _Runs.queues.append(commands)

    def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        name, pending = str(args[0]).upper(), commands[_Runs.index]
        # NOTE: a spare client's reset (FLUSHALL) happens only where the collector has returned a spare.
        while pending and pending[0][0] == "FLUSHALL" != name:
            pending.popleft()
        if name == "FLUSHALL" and not (pending and pending[0][0] == "FLUSHALL"):
            return True
        if not pending or pending[0][0] != name or (_Runs.verify and pending[0][1] != repr(args)):
            raise SystemExit(f"run {_Runs.index}: Redis command {args!r} was not the recorded run's next")
        _, _, ok, value, _ = pending.popleft()
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
# NOTE: the collector is not a lever (see the module doc): it is measured only on request, never in "all of them".
DEFAULT_LAYERS = tuple(layer for layer in LAYERS if layer != "collector")
ACTING = ("redis", "snapshots", "steps", "collector")
"""The stand-ins that act inside the simulation (the others replace work done after it): they could change a run."""


def _run_all(scenario_name: str, runs: int, detail: bool) -> tuple[list[list[str]], list[float]]:
    """Each run's trace hash, violations and (``detail``) a digest of the rest of its result; each run's CPU time."""
    from simlab.batch.runner import run_once, run_seed
    from simlab.scenario.loader import load_scenario

    scenario = load_scenario(scenario_name)
    outcomes, seconds = [], []
    for index in range(runs):
        _Runs.index = index
        started = time.process_time()
        result = run_once(scenario, run_seed(index, scenario.seed))
        seconds.append(time.process_time() - started)
        _Runs.used_up()
        outcome = [result.trace_hash, repr(sorted(map(repr, result.violations)))]
        if detail:
            rest: tuple[Any, ...] = (result.sagas, result.unchecked, result.fault_windows, result.strikes)
            rest += (result.faults_injected, result.broker_calls, result.lock_overlaps, result.reach, result.ties)
            outcome.append(hashlib.sha256(repr((*rest, result.probes)).encode()).hexdigest())
        outcomes.append(outcome)
    return outcomes, seconds


def child(argv: list[str]) -> None:
    """``record SCENARIO RUNS FILE``, or ``run SCENARIO RUNS FILE LAYERS [verify]`` (LAYERS comma-separated)."""
    mode, scenario_name, runs, path = argv[:4]
    layers = [layer for layer in (argv[4] if len(argv) > 4 else "").split(",") if layer]
    if "collector" in layers:
        gc.disable()
    if mode == "record":
        _record(scenario_name, int(runs), Path(path))
        return
    _Runs.verify = argv[5:] == ["verify"]
    recording = pickle.loads(Path(path).read_bytes())
    gc.freeze()  # the recording is never garbage: keep it out of every collection of the runs
    if "checks" in layers:  # the checks do not run: none of their Redis commands will be asked for
        for run in recording:
            run["redis"] = [entry for entry in run.get("redis", ()) if not entry[-1]]
    for layer in layers:
        _STAND_INS[layer](recording)
    outcomes, seconds = _run_all(scenario_name, int(runs), detail=_Runs.verify)
    print("CPU", json.dumps(seconds))
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


def _printed(printed: str, what: str) -> Any:
    return json.loads(next(line for line in printed.splitlines() if line.startswith(what + " ")).split(" ", 1)[1])


def _verify(scenario: str, runs: int, recorded: Path, layers: list[str], normal: list[list[str]]) -> None:
    """Stop unless ``layers`` free leave every run's whole result as it was (see the module doc)."""
    # NOTE: twice. With only the stand-ins that run inside the simulation, the hash and checks are computed, not
    # replayed, so a changed run must show; with all of them, every replay must answer in step and be used up.
    acting = [layer for layer in layers if layer in ACTING]
    for chosen in ([acting] if acting and acting != layers else []) + [layers]:
        got = _printed(_plain(["run", scenario, str(runs), str(recorded), ",".join(chosen), "verify"]), "OUTCOMES")
        if got != normal:
            first = next(i for i, (a, b) in enumerate(zip(got, normal, strict=True)) if a != b)
            problem = f"with {'+'.join(chosen)} free, run {first} differs: a stand-in changed the run"
            raise SystemExit(f"{scenario}: {problem}")


def _per_run(scenario: str, first: int, last: int, recorded: Path, layers: list[str], normal: Any) -> float:
    counts = []
    for runs in (first, last):
        args = [__file__, "--child", "run", scenario, str(runs), str(recorded), ",".join(layers)]
        instructions, printed = callgrind(HERE, args)
        if [got[1] for got in _printed(printed, "OUTCOMES")] != [run[1] for run in normal[:runs]]:
            raise SystemExit(f"{scenario}: with {'+'.join(layers) or 'nothing'} free, the violations differ")
        counts.append(instructions)
    return (counts[1] - counts[0]) / (last - first)


def _cpu_per_run(scenario: str, warm: int, runs: int, recorded: Path, layers: list[str], normal: Any) -> float:
    """CPU per run of runs ``warm..runs-1``, timed run by run inside one plain process."""
    printed = _plain(["run", scenario, str(runs), str(recorded), ",".join(layers)])
    if [got[1] for got in _printed(printed, "OUTCOMES")] != [run[1] for run in normal[:runs]]:
        raise SystemExit(f"{scenario}: with {'+'.join(layers) or 'nothing'} free, the violations differ")
    return statistics.fmean(_printed(printed, "CPU")[warm:])


def _cpu_ratios(
    scenario: str, warm: int, runs: int, recorded: Path, configurations: list[list[str]], repeat: int, normal: Any
) -> list[float]:
    """Each configuration's CPU per run in plain processes, one at a time, in alternating rounds: the medians."""
    figures: list[list[float]] = [[] for _ in configurations]
    for round_ in range(repeat):
        for index in _rotated(range(len(configurations)), round_):  # no configuration always first
            figures[index].append(_cpu_per_run(scenario, warm, runs, recorded, configurations[index], normal))
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
    runs = max(last, cpu[0] if cpu else 0)  # every run that is measured is verified
    with tempfile.TemporaryDirectory() as folder:
        recorded = Path(folder) / "recording.pickle"
        _plain(["record", scenario, str(runs), str(recorded)])
        normal = _printed(_plain(["run", scenario, str(runs), str(recorded), "", "verify"]), "OUTCOMES")
        for chosen in configurations[1:]:
            _verify(scenario, runs, recorded, chosen, normal)
        if cpu is not None:
            figures = _cpu_ratios(scenario, first, cpu[0], recorded, configurations, cpu[1], normal)
            what = f"runs {first}..{cpu[0] - 1} timed one by one, CPU per run, median of {cpu[1]} alternated rounds"
            unit, scale = "ms", 1e3
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
    if args.cpu is not None and (args.cpu[0] <= max(first for first, _ in RUNS.values()) or args.cpu[1] < 1):
        parser.error(f"--cpu {args.cpu[0]} {args.cpu[1]}: expected RUNS > 3 (the first runs warm up) and ROUNDS >= 1")
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
