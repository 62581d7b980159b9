"""The ``--dask`` and ``--audit`` options of ``simlab run``, ``sweep`` and ``check-determinism``.

Dask is imported only when ``--dask`` is given: the process pool stays the default and needs nothing more.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.scenario.limits import shown

if TYPE_CHECKING:
    from simlab.batch.cluster import DaskRunner


def _address(text: str) -> str:
    from simlab.batch.cluster import parse_address

    try:
        return parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], such as 0.05, got {shown(text)}")
    return value


def add_cluster_options(parser: Any, *, audit: bool = True) -> None:
    """``--dask ADDRESS`` (and ``--audit FRACTION``) on a command that runs batches."""
    parser.add_argument(
        "--dask", type=_address, default=None, metavar="ADDRESS",
        help="run on Dask: 'local' (a LocalCluster of --workers processes) or a scheduler's tcp://HOST:PORT",
    )  # fmt: skip
    if audit:
        parser.add_argument(
            "--audit", type=_fraction, default=0.0, metavar="FRACTION",
            help="with --dask: run this fraction of the shards again on another worker and compare their tables",
        )  # fmt: skip


def audit_without_cluster(args: argparse.Namespace) -> str | None:
    """The one-line refusal of ``--audit`` given without ``--dask`` (None: the options agree)."""
    if getattr(args, "audit", 0.0) and args.dask is None:
        return "--audit needs --dask: the audit re-runs shards on another worker of a Dask cluster"
    return None


@contextmanager
def dask_runner(
    address: str | None, workers: int | None, folders: list[Path], audit: float = 0.0
) -> Iterator[DaskRunner | None]:
    """None without an ``address`` (``--dask``); else a runner on that cluster, connected and checked (versions,
    folders) before anything is written. Its dashboard link goes to stderr. ``ClusterError`` (a ``ValueError``)
    if it cannot be."""
    if address is None:
        yield None
        return
    from simlab.batch.cluster import DaskRunner, connect
    from simlab.batch.interrupts import BatchInterrupted, deferred_signals

    with ExitStack() as stack:
        with deferred_signals() as stopped:  # a Ctrl-C inside Dask's start-up would leave it half-built
            client = stack.enter_context(connect(address, workers))
            runner = DaskRunner(client, audit=audit, owns_workers=address == "local")
            runner.check(folders)
        if stopped:
            raise BatchInterrupted(stopped[0])  # (the stack closes the cluster on the way out)
        count = len(client.scheduler_info()["workers"])
        print(f"Dask: {count} worker(s) at {client.scheduler.address}; dashboard {client.dashboard_link}",
              file=sys.stderr)  # fmt: skip
        yield runner


def passes_folder(address: str | None) -> tuple[Path | None, str | None]:
    """Where ``check-determinism`` writes its passes (None: a temporary folder of the system's), and why it
    cannot (None: it can). On a cluster the workers write the third pass themselves: into the current folder,
    which they reach if it is the cluster's shared folder (checked with the workers before anything runs)."""
    if address is None:
        return None, None
    from simlab.batch.shards import output_problem

    here = Path.cwd()
    problem = output_problem(here)
    return here, problem and f"--dask writes its passes in the current folder, {here}: {problem}"
