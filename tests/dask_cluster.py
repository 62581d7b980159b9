"""A real Dask cluster for the tests: a ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

Each process is started in a session of its own and stopped by its PID (its whole process group:
a worker's nanny and the worker process it runs), so nothing outlives the tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simlab.batch.cluster import QUIET_HOUSEKEEPING

DASK = str(Path(sys.executable).with_name("dask"))
QUIET = {
    f"DASK_{key.upper().replace('.', '__').replace('-', '_')}": str(value) for key, value in QUIET_HOUSEKEEPING.items()
}
"""The lab's LocalCluster settings, as environment variables: these clusters idle beside the rest of the suite."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class DaskProcesses:
    """One scheduler and its workers, each a process started here."""

    address: str
    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        folder: Path,
        workers: list[Mapping[str, str]],
        *,
        scheduler_env: Mapping[str, str] | None = None,
        preload: Path | None = None,
        prefix: Sequence[str] = (),
    ) -> DaskProcesses:
        """Start a scheduler and one worker per entry of ``workers`` (extra environment of each); ``prefix`` is
        put before each worker's command (``setpriv ...``, say)."""
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cluster = cls(f"tcp://127.0.0.1:{port}", folder)
        cluster._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                       scheduler_env or {})  # fmt: skip
        for index, extra in enumerate(workers):
            local = folder / f"worker-{index}"
            local.mkdir(exist_ok=True)
            command = [*prefix, DASK, "worker", cluster.address, "--nthreads", "1", "--nworkers", "1",
                       "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(local)]  # fmt: skip
            if preload is not None:
                command += ["--preload", str(preload)]
            cluster._spawn(f"worker-{index}", command, extra)
        return cluster

    def _spawn(self, name: str, command: list[str], extra: Mapping[str, str]) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        env = {**os.environ, **QUIET, **extra}
        self.processes.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        )

    def wait(self, workers: int, timeout: float = 60.0) -> None:
        """Until ``workers`` workers have joined the scheduler (the logs are in the error otherwise)."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.address, timeout="5s") as client:
                    client.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in self.folder.glob("*.log"))
                    raise RuntimeError(f"the Dask cluster at {self.address} did not start:\n{logs}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop every process by its PID (its process group), workers first; kill what does not stop."""
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in reversed(self.processes):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
