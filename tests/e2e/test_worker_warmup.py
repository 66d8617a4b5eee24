"""A worker listens only once it has a membership: real worker processes, real sockets.

The worker is started the way the supervisor starts it (``python -m pixring.cli.worker``
with its config in the environment and a bound socket to listen on), its membership
from a nodes file that does not exist yet, so the test decides when the first
membership comes; the node is a fault node process. Intervals are short (the file
source polls every second); the assertions are on the order of events.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from balancer.config import load_config
from balancer.worker import CONFIG_ENV, EXIT_NO_MEMBERSHIP, LISTENER_FD_ENV, WARMUP_ENV, bind_reuseport
from loadtest.fleet import http, wait_until
from tests.e2e.faultkit import FaultFleet

pytestmark = pytest.mark.e2e


@pytest.fixture
def fleet(tmp_path):
    with FaultFleet(tmp_path / "logs") as fleet:
        yield fleet


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except ConnectionRefusedError:
        return False


def state(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / "worker-0.json").read_bytes())
    except (OSError, ValueError):
        return None


def start_worker(tmp_path: Path, nodes_file: Path, *, warmup_timeout: float, strict: bool):
    config = load_config(environ={}, flags={"nodes_file": str(nodes_file), "warmup_timeout": warmup_timeout,
                                            "profile": "generic", "access_log": "off"})
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    # As the supervisor does: a bound socket, not listening, handed to the worker.
    with bind_reuseport("127.0.0.1", 0, listen=False) as listener:
        env = {**os.environ, CONFIG_ENV: orjson.dumps(config.as_flags()).decode(), "PIXRING_WORKER_INDEX": "0",
               "PIXRING_STATE_DIR": str(state_dir), LISTENER_FD_ENV: str(listener.fileno())}
        env.pop(WARMUP_ENV, None)
        if strict:
            env[WARMUP_ENV] = "strict"
        proc = subprocess.Popen([sys.executable, "-m", "pixring.cli.worker"], env=env, stderr=subprocess.PIPE, text=True,
                                pass_fds=(listener.fileno(),))
        return proc, listener.getsockname()[1], state_dir


def waited(what: str, predicate, timeout: float = 20.0) -> None:
    elapsed = wait_until(predicate, timeout, interval=0.02)
    assert elapsed is not None, f"timed out after {timeout:g}s waiting for: {what}"
    print(f"{what}: {elapsed:.2f}s")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    if proc.poll() is None:
        proc.terminate()
    _, stderr = proc.communicate(timeout=20)
    return proc.returncode, stderr


def test_a_worker_takes_no_connection_before_its_first_membership_and_serves_the_first_one_after(fleet, tmp_path):
    node = fleet.fault_nodes(["n1"])["n1"]
    nodes_file = tmp_path / "nodes.json"
    proc, port, state_dir = start_worker(tmp_path, nodes_file, warmup_timeout=60, strict=False)
    try:
        waited("the worker reports, warming", lambda: (state(state_dir) or {}).get("pid") == proc.pid)
        assert state(state_dir)["listening"] is False
        time.sleep(0.5)  # a running, reporting worker: still nothing listens
        assert not accepts(port), "the worker listened before it had a membership"
        nodes_file.write_text(json.dumps([{"id": "n1", "host": "127.0.0.1", "port": node.port}]))
        waited("the worker listens", lambda: accepts(port))
        status, headers, _ = http("GET", f"http://127.0.0.1:{port}/a.jpg")
        assert status == 200 and headers["X-Pixring-Node"] == "n1"  # the first connection is served
        assert state(state_dir)["listening"] is True
    finally:
        code, stderr = stop(proc)
    assert code == 0, stderr
    assert "no membership" not in stderr


def test_at_start_a_worker_without_membership_listens_after_the_warmup_and_says_why(tmp_path):
    proc, port, state_dir = start_worker(tmp_path, tmp_path / "missing.json", warmup_timeout=0.5, strict=False)
    try:
        waited("the worker listens anyway", lambda: accepts(port))
        status, _, body = http("GET", f"http://127.0.0.1:{port}/a.jpg")
        print(body.decode())
        assert status == 503 and b"no render node" in body
        assert state(state_dir)["listening"] is True
    finally:
        code, stderr = stop(proc)
    assert code == 0, stderr
    assert "no membership after 0.5s" in stderr and "listening anyway" in stderr
    assert "missing.json" in stderr  # the source's own reason, for the operator


def test_a_reload_generation_without_membership_gives_up_without_ever_listening(tmp_path):
    proc, port, _ = start_worker(tmp_path, tmp_path / "missing.json", warmup_timeout=0.5, strict=True)
    refused = 0
    while proc.poll() is None:
        assert not accepts(port), "a strict worker listened without a membership"
        refused += 1
        time.sleep(0.05)
    code, stderr = stop(proc)
    print(f"connection refused {refused} times before the worker gave up")
    assert refused > 0
    assert code == EXIT_NO_MEMBERSHIP, stderr
    assert "no membership after 0.5s" in stderr and "giving up" in stderr
