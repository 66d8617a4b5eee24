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
        # Nor hot-key spreading: a few URLs take most of this small workload, and a hot URL is
        # served by several nodes on purpose (the summary names it as a reason).
        "--balancer-arg=--hot-keys=false",
        "--max-p99", "60000",  # a busy machine's cold renders must not make the load phase "break"
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
    # The cold warm-up apart from the warm load, and the load's figures as the capacity.
    assert [(p["name"], p["counted"]) for p in summary["phases"]] == [("warm-up", False), ("load", True)]
    assert summary["capacity_rps"] == summary["phases"][1]["rps"] > 0
    assert summary["affinity"]["main_node_share"] == 1.0 == summary["affinity"]["expected_main_node_share"]
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
    assert "HTTP 503 from pixring" in result.stdout and "FAIL: 100.00% failed" in result.stdout  # who answered
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


class _Congested(BaseHTTPRequestHandler):
    """A node whose answers slow down with the requests in flight, as a full fleet does:
    50 ms alone, 50 ms x n² with n in flight. One user holds a 250 ms p99; three do not."""

    inflight = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
        with self.lock:
            type(self).inflight += 1
            n = type(self).inflight
        try:
            time.sleep(0.05 * n * n)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.send_header("X-Pixring-Node", "n1")
            self.end_headers()
            self.wfile.write(b"ok")
        finally:
            with self.lock:
                type(self).inflight -= 1

    def log_message(self, *_args: object) -> None:
        pass


def test_find_capacity_with_a_master_and_one_worker_stops_at_the_knee(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Congested)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out = tmp_path / "out"
    try:
        result, seen, wall = run_capacity(
            "--host", f"http://127.0.0.1:{server.server_port}", "--find-capacity", "--locust-workers", "1",
            "--run-time", "20s", "--warm-up", "2s", "--step-time", "3s", "--start-users", "1", "--step-users", "2",
            "--max-p99", "250", "--out", str(out))
    finally:
        server.shutdown()
        server.server_close()
    print(result.stdout)
    print(f"find-capacity run: {wall:.1f}s wall")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [p["name"] for p in summary["phases"]][:3] == ["warm-up", "step 1", "step 2"]
    assert summary["phases"][0]["counted"] is False
    assert summary["limit_hit"] == "p99" and summary["capacity"]["broke_at"]["phase"] == "step 2"
    assert summary["capacity"]["users_at_capacity"] == 1
    assert summary["capacity_rps"] > 0 and summary["p99_ms_at_capacity"] <= 250
    assert summary["error_ratio_at_capacity"] == 0
    assert "step 3" not in [p["name"] for p in summary["phases"]]  # the run stopped at the break
    assert summary["nodes"]["n1"] > 0  # the worker's answers reached the master's tally
    assert (out / "locust-worker-1.log").exists() and (out / "locust.html").exists()
    assert "broke at step 2" in result.stdout and "PASS: capacity found" in result.stdout
    assert [pid for pid in seen if alive(pid)] == []
