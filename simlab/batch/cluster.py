"""Batches and sweeps on a Dask cluster: the same shards as the process pool, the same tables, bit for bit.

How this works: each missing shard becomes one Dask task whose key names what it computes
(the scenario's config hash, the root seed, its first and last run, and its folder), never who
runs it or when. The task runs ``run_shard`` on a worker, which writes the shard's tables and
marker into the output folder itself (a folder every worker reaches: a shared mount); the driver
receives (runs, violations, worker), never tables. The marker is what makes a shard finished,
whatever ran it, so a batch resumes on the cluster or on the process pool alike.

Before any work (``DaskRunner.check``), every worker must run the same lab code and the same
libraries that decide a run's bytes as the driver, and be able to write in the output folders.
Each run posts one event on a topic the driver follows, so the progress bar moves run by run.
A worker that dies loses its unfinished shard, which Dask runs again elsewhere (the rewrite
replaces any debris); a shard that kills every worker Dask tries it on is given up and named
with its runs and seeds once the other shards are done. ``audit`` re-runs a sample of the shards
on another worker and compares their tables' digests with the markers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import platform
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from simlab.batch.batches import Batch, Notice, code_hash, config_hash, run_shard, shard_rows
from simlab.batch.interrupts import WorkerDied, terminate_workers
from simlab.batch.runner import seed_of_run
from simlab.batch.shards import TABLES, Shard, marker_path, nearest_existing, output_problem, table_bytes
from simlab.scenario.limits import shown

CONNECT_SECONDS = 5
"""How long a scheduler has to answer, and a cluster to show a worker, before the command gives up."""
VERSIONED = ("simpy", "fakeredis", "redis", "pyarrow", "pydantic")
"""The libraries whose versions decide a run's bytes: the simulated clock, Redis, the table files, the scenario."""
QUIET_HOUSEKEEPING = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}
"""Dask settings for a LocalCluster the lab starts. The workers' profiler walks every thread's stack each
10 ms (with the simulation's deep stacks, about a tenth of a worker's time, for a dashboard panel the lab
does not need), and 20 ms ticks and 100 ms memory checks wake every process's event loop: a scheduler and
two workers then take 14% of a core doing nothing, 2% with these, on the cores the runs need."""
_ADDRESS = re.compile(r"(?:(tcp|tls)://)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})")


class ClusterError(ValueError):
    """The cluster cannot run this work (unreachable, other code, an unwritable folder): one line, exit 2."""


class AuditMismatch(RuntimeError):
    """A shard run twice on two workers gave different tables: the lab is not deterministic there."""


def parse_address(text: str) -> str:
    """``local``, or a scheduler address as ``tcp://HOST:PORT`` (the scheme defaults to tcp); ValueError if neither."""
    if text == "local":
        return text
    match = _ADDRESS.fullmatch(text)
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"expected 'local' or a scheduler address such as tcp://10.0.0.5:8786, got {shown(text)}")
    return f"{match.group(1) or 'tcp'}://{match.group(2)}:{match.group(3)}"


@contextmanager
def connect(address: str, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address``: a new ``LocalCluster`` of ``workers`` single-threaded worker
    processes for ``local``, else the scheduler there (``ClusterError`` if it does not answer in time)."""
    try:
        import dask
        import distributed
    except ImportError:
        raise ClusterError("--dask needs Dask: pip install 'saga-lab[cluster]'") from None
    if address == "local":
        with dask.config.set(QUIET_HOUSEKEEPING):
            cluster = _local_cluster(distributed, workers)
        with cluster, distributed.Client(cluster) as client:
            yield client
        return
    _probe(address)
    try:
        client = distributed.Client(address, timeout=f"{CONNECT_SECONDS}s")
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"no Dask scheduler answered at {address} within {CONNECT_SECONDS} s ({error})") from None
    with client:
        yield client


def _probe(address: str) -> None:
    """Refuse, within ``CONNECT_SECONDS``, an address where no Dask scheduler answers: nothing listens (Dask would
    retry until its timeout), or something that never answers, or answers something else (a web server)."""
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise ClusterError(f"no Dask scheduler answered at {address} ({reason})") from None
    try:  # Dask's own handshake, under a deadline of ours (its timeout does not cover a peer that stays silent)
        asyncio.run(asyncio.wait_for(_handshake(address), CONNECT_SECONDS))
    except TimeoutError:
        raise ClusterError(f"no Dask scheduler answered at {address} within {CONNECT_SECONDS} s") from None
    except Exception as error:  # noqa: BLE001 (whatever else listens there: a web server's reply read as a frame)
        raise ClusterError(
            f"what answered at {address} is not a Dask scheduler ({type(error).__name__}); give the scheduler's "
            "address (tcp://HOST:8786 by default), not its dashboard's"
        ) from None


async def _handshake(address: str) -> None:
    from distributed.comm import connect as open_comm

    comm = await open_comm(address, timeout=CONNECT_SECONDS)
    await comm.close()


def _local_cluster(distributed: Any, workers: int | None) -> Any:
    return distributed.LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,  # a run holds the GIL throughout: a second thread would only wait
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )


def lab_versions() -> dict[str, str]:
    """What decides a run's bytes besides (scenario, seed): the lab's code, Python, and the VERSIONED libraries."""
    return dict(_versions())


@functools.cache  # (the code hash reads every source file: once per process is enough, the code cannot change)
def _versions() -> dict[str, str]:
    found = {"lab code hash": code_hash(), "Python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def worker_facts(folders: Sequence[str], tokens: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Run on each worker before any work: its versions, why it cannot write in a folder, and which of the files
    the driver just wrote (path, content) it does not see as the driver wrote them (None: all is well)."""
    problems = (f"{folder}: {problem}" for folder in folders if (problem := output_problem(Path(folder))))
    unseen = (path for path, content in tokens if _read(Path(path)) != content)
    return {"versions": lab_versions(), "cannot_write": next(problems, None), "unseen": next(unseen, None)}


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


@contextmanager
def _tokens(folders: Sequence[Path]) -> Iterator[list[tuple[str, str]]]:
    """A small file written by the driver in the nearest existing folder of each of ``folders`` (path, content),
    removed afterwards: a worker that does not read it back does not share the folder with the driver."""
    written: list[tuple[str, str]] = []
    try:
        for folder in folders:
            existing = nearest_existing(folder.resolve())
            with contextlib.suppress(OSError):  # (a folder the driver cannot write is refused before this)
                content = f"simlab {os.getpid()} {time.monotonic_ns()}"
                handle, name = tempfile.mkstemp(prefix=".simlab-shared-", dir=existing)
                with os.fdopen(handle, "w") as token:
                    token.write(content)
                written.append((name, content))
        yield written
    finally:
        for name, _ in written:
            Path(name).unlink(missing_ok=True)


@dataclass
class DaskRunner:
    """Runs a batch's shards on the Dask cluster of ``client`` (a ``ShardRunner`` for ``run_batches``).

    ``audit``: the fraction of the shards run now that are run a second time on another worker and compared.
    ``owns_workers``: the workers are this process's own (a LocalCluster it started), so a stop kills them.
    """

    client: Any
    audit: float = 0.0
    owns_workers: bool = False
    _counts: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, folders: Sequence[Path]) -> None:
        """Refuse a cluster without workers, a worker with other code or libraries, one that cannot write the
        output folders, or one that does not share them with this machine (``ClusterError``, one line)."""
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except TimeoutError:
            raise ClusterError(f"the Dask cluster has no worker (waited {CONNECT_SECONDS} s)") from None
        with _tokens(folders) as tokens:
            facts = self.client.run(worker_facts, [str(f.resolve()) for f in folders], tokens, on_error="return")
        here = lab_versions()
        for address, fact in sorted(facts.items()):
            if isinstance(fact, BaseException):  # it could not even load the check: not this lab's code
                raise ClusterError(
                    f"worker {address} cannot run this lab's code ({type(fact).__name__}: {shown(str(fact))}); "
                    "install the same lab and libraries there"
                )
            differs = [f"{name} {theirs} (here {here[name]})" for name, theirs in fact["versions"].items()
                       if here.get(name) != theirs]  # fmt: skip
            if differs:
                raise ClusterError(
                    f"worker {address} differs from this machine: {', '.join(differs)}; its runs would not be "
                    "this lab's runs: install the same lab and libraries there"
                )
        for address, fact in sorted(facts.items()):
            if fact["cannot_write"] or fact["unseen"]:
                problem = fact["cannot_write"] or f"{fact['unseen']}, just written here, is not there"
                raise ClusterError(
                    f"worker {address} cannot write the results: {problem}; every worker writes its shards "
                    "itself: give a folder all of them share with this machine (a shared mount, at the same path)"
                )

    def run(
        self,
        todo: Sequence[tuple[Batch, Shard]],
        done: Callable[[int, int], None],
        live_progress: Callable[[int, int], None],
        notice: Callable[[str], None] | None = None,
    ) -> None:
        """Run every shard of ``todo`` as one task; report each written shard, and the runs as they finish."""
        topic = f"simlab-progress-{os.getpid()}-{time.monotonic_ns()}"
        self._counts.clear()
        self.client.subscribe_topic(topic, self._on_event)
        futures = {
            self.client.submit(
                _shard_task, batch.scenario, batch.root_seed, shard, str(batch.out.resolve()), topic,
                key=shard_key(batch, shard), pure=False,
            ): (batch, shard)
            for batch, shard in todo
        }  # fmt: skip
        try:
            ran_on, given_up = self._collect(futures, done, live_progress)
            named = [self._alone(batch, shard, ran_on, done) for batch, shard in given_up]
        except BaseException as error:
            self.client.cancel(list(futures))
            if isinstance(error, KeyboardInterrupt):
                self._stopped(notice)
            if _lost_scheduler(error):
                raise WorkerDied(
                    f"the connection to the Dask scheduler was lost ({type(error).__name__}); the finished shards "
                    "are kept: run the same command again to complete the batch"
                ) from None
            raise
        finally:
            self.client.unsubscribe_topic(topic)
        if any(named):
            raise WorkerDied("\n".join(line for line in named if line))
        if self.audit > 0:
            audit(self.client, [(b, s, ran_on[shard_key(b, s)]) for b, s in todo], self.audit, notice)

    def _stopped(self, notice: Callable[[str], None] | None) -> None:
        """After a stop: no shard may be sealed once the runs kept are counted, or the count would be wrong."""
        if self.owns_workers:
            terminate_workers()  # the LocalCluster's worker processes are ours: their running shards go too
        elif notice:
            notice("the shards already running on the cluster's workers finish there and are kept whole")

    def _on_event(self, event: tuple[float, tuple[str, int, int]]) -> None:
        key, runs, violations = event[1]
        with self._lock:  # (called on the client's own thread)
            self._counts[key] = (runs, violations)  # a shard run again after its worker died starts from 0

    def _live(self) -> tuple[int, int]:
        with self._lock:
            return sum(c[0] for c in self._counts.values()), sum(c[1] for c in self._counts.values())

    def _collect(
        self,
        futures: dict[Any, tuple[Batch, Shard]],
        done: Callable[[int, int], None],
        live_progress: Callable[[int, int], None],
    ) -> tuple[dict[str, str], list[tuple[Batch, Shard]]]:
        from distributed import KilledWorker, wait

        ran_on: dict[str, str] = {}
        given_up: list[tuple[Batch, Shard]] = []
        pending, shown_counts = set(futures), (0, 0)
        while pending:
            with contextlib.suppress(TimeoutError):  # none finished meanwhile: the bar still moves with the runs
                wait(pending, timeout=0.25, return_when="FIRST_COMPLETED")
            finished = {future for future in pending if future.done()}
            pending -= finished
            for future in sorted(finished, key=lambda f: futures[f][1].index):
                batch, shard = futures[future]
                try:
                    runs, violations, worker = future.result()
                except KilledWorker:
                    given_up.append((batch, shard))
                    continue
                ran_on[shard_key(batch, shard)] = worker
                done(runs, violations)
            counts = self._live()
            if counts != shown_counts:
                live_progress(*counts)
                shown_counts = counts
        return ran_on, given_up

    def _alone(
        self, batch: Batch, shard: Shard, ran_on: dict[str, str], done: Callable[[int, int], None]
    ) -> str | None:
        """A shard Dask gave up on, run once more with nothing else running: Dask blames every task a dying
        worker held, so a shard may only have shared a worker with the one that kills. The line naming it if
        it kills its worker again (None: it ran)."""
        from distributed import KilledWorker

        key = shard_key(batch, shard)
        future = self.client.submit(
            _shard_task, batch.scenario, batch.root_seed, shard, str(batch.out.resolve()), "", key=f"{key}-alone",
            pure=False,
        )  # fmt: skip
        try:
            runs, violations, ran_on[key] = future.result()
        except KilledWorker:
            tries = 1 + int(self.client.run_on_scheduler(_allowed_failures))
            seeds = [
                seed_of_run(batch.scenario, i, batch.root_seed)
                for i in range(shard.start, min(shard.stop, shard.start + 3))
            ]
            more = ", ..." if shard.runs > len(seeds) else ""
            return (
                f"{batch.out}: shard {shard.index} (runs {shard.start}..{shard.stop - 1}, seeds "
                f"{', '.join(map(str, seeds))}{more}) killed its worker each of the {tries} times Dask ran it, "
                f"and again alone; it is not run again (the other shards are kept): replay its runs one by one "
                f"to find the one that kills, from simlab replay {batch.out} --run {shard.start}"
            )
        done(runs, violations)
        return None


def _lost_scheduler(error: BaseException) -> bool:
    """Whether ``error`` says the driver lost the scheduler (not that a task failed)."""
    from concurrent.futures import CancelledError

    from distributed.comm.core import CommClosedError

    return isinstance(error, CancelledError | CommClosedError)


def audit(client: Any, ran: Sequence[tuple[Batch, Shard, str]], fraction: float, notice: Notice | None) -> None:
    """Run a ``fraction`` of the shards just written (sampled by key) again, preferably on another worker than
    the one that wrote each, and compare their tables' digests with its marker (``AuditMismatch`` if any differ)."""
    chosen = audit_sample([(shard_key(b, s), (b, s, w)) for b, s, w in ran], fraction)
    workers = sorted(client.scheduler_info()["workers"])
    futures = {
        client.submit(
            _audit_task, batch.scenario, batch.root_seed, shard, key=f"simlab-audit-{shard_key(batch, shard)}",
            workers=[w for w in workers if w != worker] or None, allow_other_workers=True, pure=False,
        ): (batch, shard, worker)
        for batch, shard, worker in chosen
    }  # fmt: skip
    mismatches, elsewhere, unrun = [], 0, []
    for future, (batch, shard, worker) in futures.items():
        try:
            again, where = future.result()
        except Exception as error:  # noqa: BLE001 (a worker that died under it: the audit of this shard is void)
            unrun.append(f"shard {shard.index} of {batch.out} ({type(error).__name__})")
            continue
        elsewhere += where != worker
        sealed = json.loads(marker_path(batch.out, shard).read_text())["tables"]
        differ = [name for name in TABLES if sealed[name]["sha256"] != again[name]]
        if differ:
            mismatches.append(
                f"shard {shard.index} of {batch.out} (runs {shard.start}..{shard.stop - 1}, key "
                f"{shard_key(batch, shard)}): its {', '.join(differ)} table(s) on {where} differ from those "
                f"written by {worker}"
            )
    if mismatches:
        raise AuditMismatch("determinism audit failed: " + "; ".join(mismatches))
    if notice:
        audited = len(futures) - len(unrun)
        void = f"; not audited, its worker died: {', '.join(unrun)}" if unrun else ""
        notice(f"determinism audit: {audited} shard(s) run again ({elsewhere} on another worker), identical{void}")


def shard_key(batch: Batch, shard: Shard) -> str:
    """A shard's task key: what it computes (scenario, root seed, runs, folder), so the same work has the same key."""
    place = hashlib.sha256(str(batch.out.resolve()).encode()).hexdigest()[:8]
    return f"simlab-shard-{config_hash(batch.scenario)}-{batch.root_seed}-{shard.start}-{shard.stop - 1}-{place}"


def audit_sample(items: Sequence[tuple[str, Any]], fraction: float) -> list[Any]:
    """The items whose key's hash falls below ``fraction`` (at least one when ``fraction`` > 0): the same keys
    are audited whichever worker ran them, and in whatever order they finished."""
    if fraction <= 0 or not items:
        return []
    chosen = [item for key, item in items if int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) < fraction * 2**32]
    return chosen or [items[0][1]]


PROGRESS_SECONDS = 0.25
"""How often a worker posts its shard's count of runs (wall time, for the bar only: never read by a run)."""


def _shard_task(scenario: Any, root_seed: int, shard: Shard, out: str, topic: str) -> tuple[int, int, str]:
    """On a worker: run and write one shard, posting its runs on ``topic``; (runs, violations, worker address)."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    tally = [0, 0]
    posted = [time.monotonic()]

    def on_run(violations: int) -> None:
        tally[0] += 1
        tally[1] += violations
        if topic and (time.monotonic() - posted[0] >= PROGRESS_SECONDS or tally[0] == shard.runs):
            worker.log_event(topic, (key, tally[0], tally[1]))
            posted[0] = time.monotonic()

    runs, violations = run_shard(scenario, root_seed, shard, Path(out), on_run)
    return runs, violations, worker.address


def _audit_task(scenario: Any, root_seed: int, shard: Shard) -> tuple[dict[str, str], str]:
    """On a worker: one shard's tables computed again (not written), as the sha256 its marker would seal."""
    from distributed import get_worker

    tables, _ = shard_rows(scenario, root_seed, shard, lambda _violations: None)
    digests = {name: hashlib.sha256(table_bytes(tables[name])[0]).hexdigest() for name in TABLES}
    return digests, get_worker().address


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)
