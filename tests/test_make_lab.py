"""``make lab``: a real JupyterLab server, started as the tests' user (root in CI and containers).

It must start as root (Jupyter refuses without ``--allow-root``), bind 127.0.0.1 only, demand a
token, print the URL to open, and serve the project's notebooks through the Jupyter server API.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def _get(url: str) -> tuple[int, bytes]:
    """(HTTP status, body); status 0 while nothing listens yet."""
    try:
        with _DIRECT.open(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except urllib.error.URLError:
        return 0, b""


@pytest.fixture
def lab_server(tmp_path: Path):
    if not (ROOT / ".venv" / ".installed").exists():
        pytest.skip("make lab runs the project's .venv, which `make test` sets up")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_TOKEN": token, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = tmp_path / "lab.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            ["make", "--no-print-directory", "lab", f"LAB_PORT={port}"], cwd=ROOT, env=env, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while _get(f"{base}/api/status?token={token}")[0] != 200:
            assert server.poll() is None, f"make lab exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no server on port {port} after 90 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield base, token, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_make_lab_serves_the_notebooks_on_loopback_behind_a_token(lab_server):
    base, token, log = lab_server
    status, body = _get(f"{base}/api/contents/01_quickstart.ipynb?token={token}")
    assert status == 200
    notebook = json.loads(body)
    assert notebook["type"] == "notebook" and notebook["content"]["cells"]
    listing = json.loads(_get(f"{base}/api/contents?token={token}")[1])
    assert {"01_quickstart.ipynb", "06_reliability_report.ipynb"} <= {item["name"] for item in listing["content"]}
    assert _get(f"{base}/api/contents/01_quickstart.ipynb")[0] == 403  # no token, no notebook
    text = log.read_text()
    assert f"JupyterLab on {base}/lab" in text  # the line make prints first
    assert f"{base}/lab?token=" in text  # Jupyter's own URL, with its token
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    for address in addresses - {"127.0.0.1"}:  # not reachable from the machine's other addresses
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((address, int(base.rsplit(":", 1)[1]))) != 0, address
