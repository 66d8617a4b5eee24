"""End to end: ``python -m loadtest.capacity`` as a real process, with its real locust and,
for the first test, the real cluster it starts.

What could go wrong and is checked: the command does not end by itself or ends non-zero,
locust sends nothing or the summary misreads its files, a node outside the cluster shows up,
equivalent spellings split over nodes, a process outlives the command, a failing fleet
passes the CI gate, traffic leaves loopback without ``--allow-remote``. Durations are
printed, never asserted.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.proctree import alive, descendants

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
# Small samples render in a few ms, so a 5 s run on a busy 2-core machine still answers
# hundreds of requests over a catalogue small enough for every hot URL to be repeated.
SMALL_SOURCES = "graphics/icon-alpha-256.png,photos/small-640x427.jpg,photos/rotated-exif6-600x900.jpg"


def run_capacity(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, set[int], float]:
    """The command to its end; every process seen below it while it ran; its wall time."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "loadtest.capacity", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:  # the tree changes while it runs: cluster, then locust
        while not stop.is_set():
            seen.update(descendants(proc.pid))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        stop.set()
        watcher.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seen, time.monotonic() - started


def test_capacity_run_against_its_own_cluster(tmp_path):
    out_dir = tmp_path / "out"
    result, seen, wall = run_capacity(
        "--run-time", "5s", "--users", "4", "--renderers", "3", "--origin", str(tmp_path / "samples"),
        "--sources", SMALL_SOURCES, "--urls-per-source", "5", "--variant-share", "0.5", "--out", str(out_dir),
        # No bounded-load overflow: the affinity measured is the normalizer's alone (with 4
        # users it could not overflow anyway: bound_floor is 8 requests in flight).
        "--balancer-arg=--balance-factor=0",
    )
    print(result.stdout)
    print(f"capacity run: {wall:.1f}s wall, {len(seen)} processes below it")
    assert result.returncode == 0, result.stdout + result.stderr

    # A person saw what it was doing: the cluster, the progress, the summary.
    assert "starting a local cluster" in result.stdout
    assert "req/s" in result.stdout.split("capacity summary")[0]
    assert "capacity summary" in result.stdout and "PASS" in result.stdout

    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["requests"] > 0
    assert summary["failures"] == 0 and summary["failures_by_kind"] == {}
    assert summary["untagged"] == 0
    assert set(summary["nodes"]) <= {"r1", "r2", "r3"} and summary["unknown_nodes"] == []
    assert sum(summary["nodes"].values()) == summary["requests"]
    affinity = summary["affinity"]
    assert affinity["groups"] > 0 and affinity["split"] == [] and affinity["ratio"] == 1.0
    cache = summary["cache"]
    assert cache["answers"] == summary["requests"] and cache["hits"] > 0  # hot URLs repeat
    print(f"figures: {summary['requests']} requests, {summary['rps']} req/s, p99 {summary['latency_ms']['p99']} ms, "
          f"nodes {summary['nodes']}, {affinity['groups']} equivalent groups, "
          f"cache hit ratio {cache['hit_ratio']:.2f}")

    # Nothing outlives it: pixring up, its renderers and balancer workers, locust.
    assert len(seen) >= 5, seen
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in seen) and time.monotonic() < deadline:
        time.sleep(0.1)  # a child reaped by its own parent may take a moment to vanish
    assert [pid for pid in seen if alive(pid)] == []


class _Failing(BaseHTTPRequestHandler):
    """A fleet that is down: every request a 503, and no node header."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_a_failing_fleet_fails_the_gate_and_is_explained(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result, seen, wall = run_capacity("--host", f"http://127.0.0.1:{server.server_port}", "--run-time", "2s",
                                          "--users", "2", "--out", str(tmp_path / "out"))
    finally:
        server.shutdown()
        server.server_close()
    print(result.stdout)
    print(f"failing run: {wall:.1f}s wall")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "HTTP 503" in result.stdout and "FAIL: 100.00% failed" in result.stdout
    assert "--node-header" in result.stdout  # the answers named no node, and the summary says so
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failures"] == summary["requests"] > 0
    assert [pid for pid in seen if alive(pid)] == []


def test_a_non_loopback_host_is_refused_before_any_traffic(tmp_path):
    # 0.0.0.0 is not a loopback address, but on Linux a connection to it reaches this
    # listener: had the guard let it through, locust's requests would arrive here.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result, seen, wall = run_capacity("--host", f"http://0.0.0.0:{port}", "--run-time", "5s",
                                          "--out", str(tmp_path / "out"), timeout=60)
        print(f"refused in {wall:.1f}s: {result.stderr.strip().splitlines()[-1]}")
        assert result.returncode == 2
        assert "refusing to send load to --host http://0.0.0.0:" in result.stderr
        assert "--allow-remote" in result.stderr
        assert result.stdout == ""  # no cluster, no locust, no progress
        assert seen == set()
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()
