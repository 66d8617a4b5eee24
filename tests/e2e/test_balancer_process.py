"""`pixring balancer` as a real process: CLI contract, access log, drain on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pixring.cpus import cpu_cgroup_dirs
from tests.e2e.notifysocket import NotifySocket
from tests.e2e.proctree import alive, descendants

pytestmark = pytest.mark.e2e

PIXRING = [sys.executable, "-m", "pixring.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlowNode(BaseHTTPRequestHandler):
    """A render node that takes ``?delay=`` seconds to answer a small body."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        delay = float(self.path.rpartition("delay=")[2] or 0) if "delay=" in self.path else 0.0
        time.sleep(delay)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class NodeServer(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's 5 drops the SYNs of a burst: pixring's connects would time out


@pytest.fixture
def node():
    server = NodeServer(("127.0.0.1", 0), SlowNode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def start_balancer(node_port: int, tmp_path, *extra: str):
    port, admin = free_port(), free_port()
    log = tmp_path / "access.log"
    proc = subprocess.Popen(
        [*PIXRING, "balancer", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
         "--workers", "1", "--node", f"n1=http://127.0.0.1:{node_port}", "--profile", "generic",
         "--access-log", str(log), *extra],
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_ready(proc, admin)
    return proc, port, admin, log


def start_from_config(config, *, workers: int) -> tuple[subprocess.Popen, int, int]:
    """A balancer reading ``config`` (so SIGHUP can reload it), stderr captured; not waited for."""
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [*PIXRING, "balancer", "--config", str(config), "--listen", f"127.0.0.1:{port}",
         "--admin", f"127.0.0.1:{admin}", "--workers", str(workers), "--access-log", "off"],
        stderr=subprocess.PIPE, text=True,
    )
    return proc, port, admin


def wait_ready(proc: subprocess.Popen, admin: int, timeout: float = 30.0) -> None:
    """Until the admin listener answers /readyz with 200; fails the test if the balancer
    exits first or is not ready in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"balancer exited: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("balancer not ready")


def test_version_and_help_document_every_option():
    version = subprocess.run([*PIXRING, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("pixring ")
    for command, options in {
        "balancer": ["--listen", "--admin", "--node", "--workers", "--config", "--print-config", "--profile",
                     "--connect-timeout", "--upstream-timeout", "--drain-timeout", "--access-log"],
        "renderer": ["--listen", "--origin"],
        "up": ["--renderers", "--port", "--admin-port", "--workers"],
    }.items():
        result = subprocess.run([*PIXRING, command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0
        for option in options:
            assert option in result.stdout, (command, option)
        assert "default" in result.stdout


def test_print_config_shows_the_merged_layers(tmp_path):
    config = tmp_path / "pixring.toml"
    config.write_text('workers = 3\nnodes = ["a=http://10.0.0.1:9000"]\n')
    result = subprocess.run(
        [*PIXRING, "balancer", "--config", str(config), "--print-config", "--connect-timeout", "0.25"],
        capture_output=True, text=True, env={**os.environ, "PIXRING_PROFILE": "generic"},
    )
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["workers"] == 3
    assert effective["connect_timeout"] == 0.25
    assert effective["profile"] == "generic"
    assert effective["nodes"] == ["a=http://10.0.0.1:9000;weight=1"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--node", "a=http://h:1", "--workers", "many"], "--workers"),
        (["--node", "ftp://h:1"], "only http://"),
        ([], "no membership source"),
        (["--node", "a=http://h:1", "--listen", "nowhere"], "--listen"),
    ],
)
def test_bad_config_exits_2_naming_the_field(args, message):
    result = subprocess.run([*PIXRING, "balancer", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr


def start_expecting_refusal(port: int, admin: int, node_port: int) -> subprocess.CompletedProcess:
    """A balancer on 127.0.0.1:``port`` (admin ``admin``), run to its end: it should refuse."""
    return subprocess.run(
        [*PIXRING, "balancer", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
         "--node", f"n1=http://127.0.0.1:{node_port}", "--workers", "1"],
        capture_output=True, text=True, timeout=30,
    )


def test_port_in_use_is_a_clear_error(node, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = start_expecting_refusal(port, free_port(), node)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_second_balancer_on_a_port_a_balancer_serves_is_refused_and_the_first_keeps_serving(node, tmp_path):
    config = tmp_path / "pixring.toml"
    config.write_text(f'nodes = ["n1=http://127.0.0.1:{node}"]\nprofile = "generic"\n')
    proc, port, admin = start_from_config(config, workers=1)
    try:
        wait_ready(proc, admin)
        # SO_REUSEPORT would let the second share the port and take part of its connections.
        second = start_expecting_refusal(port, free_port(), node)
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: address already in use by another process" in second.stderr
        # The admin address too (the first's, with a free public port).
        third = start_expecting_refusal(free_port(), admin, node)
        assert third.returncode == 1 and f"cannot listen on admin 127.0.0.1:{admin}" in third.stderr
        # The first still answers every request, and a reload's new generation still
        # shares the port with the old one (SIGHUP).
        for i in range(12):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/k{i}.jpg", timeout=5) as response:
                assert response.status == 200 and response.headers["X-Pixring-Node"] == "n1"
        config.write_text(f'nodes = ["n1=http://127.0.0.1:{node}"]\nprofile = "generic"\nnode_header = "X-Served-By"\n')
        proc.send_signal(signal.SIGHUP)
        deadline, served_by = time.monotonic() + 20, None
        while served_by is None and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/after.jpg", timeout=5) as response:
                assert response.status == 200
                served_by = response.headers.get("X-Served-By")
        assert served_by == "n1", "the reload never took over the port"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr


def test_access_log_lines_are_json_with_the_documented_fields(node, tmp_path):
    proc, port, _, log = start_balancer(node, tmp_path)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/a/b.jpg?z=1&a=2&utm_source=x", headers={"X-Request-Id": "rid-42"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        for i in range(20):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/more/{i}.jpg", timeout=5) as response:
                assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 21
    records = [json.loads(line) for line in lines]
    # Timed finer than the event loop's clock, which moves in whole milliseconds: an
    # exchange with a local node takes a fraction of one, so on that clock most would
    # log 0 and every duration would be a whole number of milliseconds.
    assert all(r["total_ms"] >= r["upstream_ms"] > 0 for r in records), [(r["total_ms"], r["upstream_ms"]) for r in records]
    assert any(r["total_ms"] != int(r["total_ms"]) for r in records), [r["total_ms"] for r in records]
    record = records[0]
    assert record["request_id"] == "rid-42"
    assert record["method"] == "GET"
    assert record["path"] == "/a/b.jpg?z=1&a=2&utm_source=x"
    assert record["key"] == "/a/b.jpg?a=2&z=1"
    assert record["node"] == "n1"
    assert record["status"] == 200
    assert record["bytes"] > 0
    assert record["total_ms"] >= record["upstream_ms"] > 0


def test_more_workers_than_cpus_starts_with_a_warning_naming_both(node, tmp_path):
    cpu = min(os.sched_getaffinity(0))
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [*PIXRING, "balancer", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--workers", "2",
         "--node", f"n1=http://127.0.0.1:{node}", "--profile", "generic", "--access-log", "off"],
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    try:
        wait_ready(proc, admin)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/a.jpg", timeout=5) as response:
            assert response.status == 200  # a warning, not a refusal: both workers serve
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "warning: 2 workers on 1 CPU (this process's affinity allows 1)" in stderr, stderr
    assert stderr.index("warning: 2 workers") < stderr.index("balancer ready")


def _make_cgroup(quota_cpus: float) -> Path:
    """A new cgroup below this process's own, limited to ``quota_cpus``; skips if it cannot be made."""
    dirs = cpu_cgroup_dirs(Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text())
    period = 100_000
    seen: set[int] = set()
    for directory, version in dirs:  # innermost first
        if version in seen:
            continue  # an ancestor: the new cgroup goes right below this process's own
        seen.add(version)
        parent = Path(directory)
        if version == 2 and "cpu" not in _read(parent / "cgroup.subtree_control").split():
            continue  # cpu.max exists only where the parent hands the cpu controller down
        child = parent / f"pixring-test-{os.getpid()}-{time.monotonic_ns()}"
        try:
            child.mkdir()
        except OSError as exc:
            pytest.skip(f"cannot make a cgroup in {parent}: {exc}")
        if version == 1:
            (child / "cpu.cfs_period_us").write_text(f"{period}\n")
            (child / "cpu.cfs_quota_us").write_text(f"{int(quota_cpus * period)}\n")
        else:
            (child / "cpu.max").write_text(f"{int(quota_cpus * period)} {period}\n")
        return child
    pytest.skip("no cgroup hierarchy with the cpu controller to make a limited cgroup in")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _remove_cgroup(cgroup: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            cgroup.rmdir()  # only an empty cgroup can go; its last process may still be exiting
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_one_worker_per_cpu_of_the_cgroup_quota(node):
    """`--workers 0` in a real cgroup made for the test, limited to one CPU: one worker. Skipped
    where cgroups cannot be written (not root, no hierarchy with the cpu controller)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs in the affinity for a one-CPU quota to change the count")
    cgroup = _make_cgroup(1.0)
    port, admin = free_port(), free_port()
    try:
        proc = subprocess.Popen(
            [*PIXRING, "balancer", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
             "--workers", "0", "--node", f"n1=http://127.0.0.1:{node}", "--profile", "generic",
             "--access-log", "off"],
            stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: (cgroup / "cgroup.procs").write_text(f"{os.getpid()}\n"),
        )
        try:
            wait_ready(proc, admin)
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=5) as response:
                config = json.load(response)["config"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/a.jpg", timeout=5) as response:
                assert response.status == 200
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        _remove_cgroup(cgroup)
    print("cpus as the balancer saw them:", config["cpus_usable"])
    assert config["cpus_usable"] == {"count": 1, "affinity": len(os.sched_getaffinity(0)), "cgroup_quota": 1.0}
    assert config["workers_effective"] == 1
    assert ", 1 worker)" in stderr, stderr
    assert "warning" not in stderr, stderr  # one worker on one CPU shares nothing


def test_sigterm_lets_in_flight_requests_finish(node, tmp_path):
    proc, port, admin, log = start_balancer(node, tmp_path)
    results: dict[str, object] = {}

    def slow_request():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/slow.jpg?delay=1.0", timeout=10) as response:
                results["status"] = response.status
                results["body"] = response.read()
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            results["error"] = exc

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.3)  # the request is now waiting on the node
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    thread.join(15)
    assert results.get("status") == 200, results
    assert json.loads(results["body"])["path"] == "/slow.jpg?delay=1.0"
    assert proc.wait(timeout=30) == 0
    print(f"exited {time.monotonic() - sent:.2f}s after SIGTERM")
    assert json.loads(log.read_text().splitlines()[-1])["status"] == 200


def test_sighup_reloads_the_config_without_dropping_requests_and_refuses_a_bad_one(node, tmp_path):
    config = tmp_path / "pixring.toml"
    config.write_text(f'nodes = ["n1=http://127.0.0.1:{node}"]\nnode_header = "X-Pixring-Node"\nprofile = "generic"\n'
                      'admin_open_loopback = true\n')
    proc, port, admin = start_from_config(config, workers=2)
    try:
        wait_ready(proc, admin)
        failures: list[str] = []
        headers_seen: set[str] = set()
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/a.jpg", timeout=5) as response:
                        headers_seen.add("X-Served-By" if response.headers.get("X-Served-By") else "X-Pixring-Node")
                except Exception as exc:  # noqa: BLE001 - every failure is reported
                    failures.append(repr(exc))

        not_ready: list[int] = []

        def watch_readiness():
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=5):
                        pass
                except urllib.error.HTTPError as exc:
                    not_ready.append(exc.code)
                time.sleep(0.02)

        def slow_requests():
            # Requests in flight keep the old generation draining for a while.
            for _ in range(3):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/slow.jpg?delay=0.8", timeout=10).read()
                except Exception as exc:  # noqa: BLE001 - every failure is reported
                    failures.append(repr(exc))

        threads = [threading.Thread(target=load) for _ in range(4)]
        threads += [threading.Thread(target=watch_readiness), threading.Thread(target=slow_requests)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        config.write_text(f'nodes = ["n1=http://127.0.0.1:{node}"]\nnode_header = "X-Served-By"\nprofile = "generic"\n')
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "X-Served-By" not in headers_seen and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # the old workers drain and exit under load
        stop.set()
        for thread in threads:
            thread.join()
        assert "X-Served-By" in headers_seen, "the reloaded config never took effect"
        assert failures == [], failures[:5]
        assert not_ready == [], "readiness dropped during a reload"

        config.write_text("workers = -3\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/b.jpg", timeout=5) as response:
            assert response.status == 200 and response.headers.get("X-Served-By") == "n1"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "reload refused" in stderr and "workers" in stderr


def test_a_reload_whose_workers_find_no_membership_is_refused_and_the_running_ones_keep_serving(node, tmp_path):
    config = tmp_path / "pixring.toml"
    config.write_text(f'nodes = ["n1=http://127.0.0.1:{node}"]\nprofile = "generic"\nwarmup_timeout = 0.5\n')
    proc, port, admin = start_from_config(config, workers=2)
    try:
        wait_ready(proc, admin)
        # Valid, but its membership never comes (think: Consul down at the time of the reload).
        config.write_text(f'nodes_file = "{tmp_path / "missing.json"}"\nprofile = "generic"\nwarmup_timeout = 0.5\n')
        proc.send_signal(signal.SIGHUP)
        answers: list[int] = []
        readiness: list[int] = []
        deadline = time.monotonic() + 3.0  # the new workers give up after 0.5 s
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/a.jpg", timeout=5) as response:
                answers.append(response.status)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=5) as response:
                    readiness.append(response.status)
            except urllib.error.HTTPError as exc:
                readiness.append(exc.code)
            time.sleep(0.02)
        print(f"{len(answers)} requests and readiness checks during and after the refused reload")
        assert set(answers) == {200} and set(readiness) == {200}
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=5) as response:
            status = json.loads(response.read())
        assert status["config"]["nodes_file"] == "" and len(status["workers"]) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "reload failed, keeping the running workers" in stderr
    assert "found no membership within 0.5s" in stderr, stderr


def test_control_signals_during_start_up_are_honoured_not_fatal(node, tmp_path):
    config = tmp_path / "pixring.toml"
    config.write_text(f'nodes = ["n1=http://127.0.0.1:{node}"]\nnode_header = "X-Pixring-Node"\nprofile = "generic"\n'
                      'admin_open_loopback = true\n')
    proc, port, admin = start_from_config(config, workers=2)
    try:
        # The admin listener answers before the workers have started: reload now.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.01)
        config.write_text(config.read_text().replace("X-Pixring-Node", "X-Served-By"))
        proc.send_signal(signal.SIGHUP)
        # A static balancer has nothing to confirm; the workers must shrug it off.
        confirm = urllib.request.Request(f"http://127.0.0.1:{admin}/discovery/confirm", method="POST")
        urllib.request.urlopen(confirm, timeout=5).close()
        wait_ready(proc, admin)
        deadline = time.monotonic() + 20
        served_by = None
        while served_by is None and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/a.jpg", timeout=5) as response:
                served_by = response.headers.get("X-Served-By")
            time.sleep(0.05)
        assert served_by == "n1", "the SIGHUP sent during start-up was never acted on"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "exited with code" not in stderr, stderr  # no worker died of a signal


def wait_for_workers(proc: subprocess.Popen, count: int, timeout: float = 20.0) -> set[int]:
    """Until ``proc`` has ``count`` live worker processes; their pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = {pid for pid in descendants(proc.pid) if alive(pid)}
        if len(workers) >= count:
            return workers
        time.sleep(0.02)
    pytest.fail(f"{count} workers never ran")


def test_sigterm_while_a_reload_is_starting_its_workers_abandons_the_reload_and_exits_cleanly(node, tmp_path):
    config = tmp_path / "pixring.toml"
    config.write_text(f'nodes = ["n1=http://127.0.0.1:{node}"]\nprofile = "generic"\n')
    proc, port, admin = start_from_config(config, workers=2)
    try:
        wait_ready(proc, admin)
        # The new generation waits for a membership that will not come before the SIGTERM.
        config.write_text(f'nodes_file = "{tmp_path / "missing.json"}"\nprofile = "generic"\nwarmup_timeout = 60\n')
        proc.send_signal(signal.SIGHUP)
        workers = wait_for_workers(proc, 4)
        proc.send_signal(signal.SIGHUP)  # a second one while the first reload runs changes nothing
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/a.jpg", timeout=5) as response:
            assert response.status == 200  # the old generation serves meanwhile
    finally:
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=45)
    took = time.monotonic() - sent
    print(f"exited {took:.2f}s after the SIGTERM")
    assert proc.returncode == 0, stderr
    assert "reload abandoned: shutting down" in stderr, stderr
    assert "reload failed" not in stderr and "exited with code" not in stderr, stderr
    assert took < 30, "the shutdown waited for the abandoned generation's warm-up"
    assert not [pid for pid in workers if alive(pid)], "a worker outlived the balancer"


def test_sigterm_during_start_up_stops_the_starting_workers_without_waiting_for_their_warm_up(tmp_path):
    config = tmp_path / "pixring.toml"
    config.write_text(f'nodes_file = "{tmp_path / "missing.json"}"\nprofile = "generic"\nwarmup_timeout = 60\n')
    proc, _, _ = start_from_config(config, workers=2)
    try:
        workers = wait_for_workers(proc, 2)
    finally:
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=45)
    took = time.monotonic() - sent
    print(f"exited {took:.2f}s after the SIGTERM")
    assert proc.returncode == 0, stderr
    assert "shutting down during start-up" in stderr and "ready" not in stderr, stderr
    assert took < 30, "the shutdown waited for the warm-up"
    assert not [pid for pid in workers if alive(pid)], "a worker outlived the balancer"


@pytest.mark.parametrize("after", [0.0, 0.1, 0.3, 0.6, 1.0])
def test_ctrl_c_at_any_moment_of_start_up_exits_quietly_and_leaves_no_process(tmp_path, after):
    config = tmp_path / "pixring.toml"
    config.write_text(f'nodes_file = "{tmp_path / "missing.json"}"\nprofile = "generic"\nwarmup_timeout = 60\n')
    proc = subprocess.Popen(
        [*PIXRING, "balancer", "--config", str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
         "--workers", "2", "--access-log", "off"],
        stderr=subprocess.PIPE, text=True, start_new_session=True,  # its own group, as under a terminal
    )
    time.sleep(after)
    started = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    _, stderr = proc.communicate(timeout=45)
    print(f"SIGINT after {after}s with {len(started)} workers started: exit {proc.returncode}")
    # Killed by it before Python runs, 130 while it imports, 0 once the supervisor handles it.
    assert proc.returncode in (-signal.SIGINT, 128 + signal.SIGINT, 0), stderr
    assert "Traceback" not in stderr and "exited with code" not in stderr, stderr
    assert not [pid for pid in started if alive(pid)], "a worker outlived the balancer"


def test_systemd_hears_ready_reloading_and_stopping_from_the_supervisor_alone(node, tmp_path):
    """A Type=notify unit with NotifyAccess=main: systemd takes READY=1 from the main
    process only, and only once the workers listen with their membership."""
    notify = NotifySocket(tmp_path / "notify")
    config = tmp_path / "pixring.toml"
    config.write_text(f'nodes = ["n1=http://127.0.0.1:{node}"]\nprofile = "generic"\n')
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [*PIXRING, "balancer", "--config", str(config), "--listen", f"127.0.0.1:{port}",
         "--admin", f"127.0.0.1:{admin}", "--workers", "2", "--access-log", "off"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "NOTIFY_SOCKET": notify.path},
    )
    try:
        assert notify.hear()[0] == "READY=1"
        # Ready means routable, not merely started.
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/a.jpg", timeout=5) as response:
            assert response.status == 200
        config.write_text(config.read_text() + "drain_timeout = 2.0\n")
        proc.send_signal(signal.SIGHUP)
        assert notify.hear()[0] == "RELOADING=1"
        assert notify.hear() == ["READY=1", f"STATUS=serving on port {port} with 2 workers"]
        proc.send_signal(signal.SIGTERM)
        assert notify.hear()[0] == "STOPPING=1"
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    print("heard: " + notify.describe())
    assert proc.returncode == 0, stderr
    assert notify.senders() == {proc.pid}, "a worker spoke to the service manager"


def test_connections_queued_for_a_worker_being_replaced_are_served_by_its_successor(node, tmp_path):
    config = tmp_path / "pixring.toml"
    config.write_text(f'nodes = ["n1=http://127.0.0.1:{node}"]\nnode_header = "X-Pixring-Node"\nprofile = "generic"\n'
                      "drain_timeout = 1.0\n")
    proc, port, admin = start_from_config(config, workers=1)
    clients: list[socket.socket] = []
    old_worker = 0
    try:
        wait_ready(proc, admin)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=5) as response:
            (old_worker,) = [w["pid"] for w in json.loads(response.read())["workers"]]
        os.kill(old_worker, signal.SIGSTOP)  # it cannot accept: the kernel queues what comes
        for i in range(10):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(f"GET /queued/{i}.jpg HTTP/1.1\r\nHost: pixring\r\nConnection: close\r\n\r\n".encode())
            clients.append(sock)
        config.write_text(config.read_text().replace("X-Pixring-Node", "X-Served-By"))
        proc.send_signal(signal.SIGHUP)
        answers = []
        for sock in clients:
            sock.settimeout(20)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            answers.append(b"".join(chunks))
    finally:
        if old_worker:
            os.kill(old_worker, signal.SIGCONT)  # its drain then finds nothing left to do
        for sock in clients:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    heads = [answer.partition(b"\r\n")[0] for answer in answers]
    print(f"answers to the queued connections: {heads}")
    assert heads == [b"HTTP/1.1 200 OK"] * 10
    for i, answer in enumerate(answers):
        assert f"/queued/{i}.jpg".encode() in answer and b"X-Served-By: n1" in answer  # the new generation's
    assert proc.returncode == 0, stderr


def test_operator_drains_a_member_and_brings_it_back_through_the_admin_api(tmp_path):
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), SlowNode) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port, admin = free_port(), free_port()
    token_file = tmp_path / "admin-token"
    token_file.write_text("s3cret\n")
    proc = subprocess.Popen(
        [*PIXRING, "balancer", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--workers", "2",
         "--node", f"n1=http://127.0.0.1:{servers[0].server_address[1]}",
         "--node", f"n2=http://127.0.0.1:{servers[1].server_address[1]}",
         "--profile", "generic", "--access-log", "off", "--admin-token-file", str(token_file), "--slow-start", "0"],
        stderr=subprocess.PIPE, text=True,
    )

    def post(path: str, token: str | None = "s3cret", **extra: str) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(extra)
        request = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def nodes_serving(count: int = 40) -> set[str]:
        seen = set()
        for i in range(count):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/k{i}.jpg", timeout=5) as response:
                seen.add(response.headers["X-Pixring-Node"])
        return seen

    def member_state(name: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=5) as response:
            return next(m["state"] for m in json.loads(response.read())["members"] if m["id"] == name)

    try:
        wait_ready(proc, admin)
        assert nodes_serving() == {"n1", "n2"}
        assert post("/members/n1/drain", token=None) == 401
        assert post("/members/n1/drain", token="wrong") == 401
        # A browser's cross-origin POST (CSRF) and a rebound name (DNS rebinding) are
        # refused even with the token a page could never have: the Host and Origin rules.
        assert post("/members/n1/maintenance", Origin="http://evil.example") == 403
        assert post("/members/n1/maintenance", Host=f"evil.example:{admin}") == 403
        assert post("/members/n1/maintenance", Origin="null") == 403
        assert post("/members/nope/drain") == 404
        assert post("/members/n1/drain") == 200
        deadline = time.monotonic() + 10
        while nodes_serving() != {"n2"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert nodes_serving() == {"n2"}  # every key of n1 now goes to its next member
        time.sleep(1.2)  # workers report once a second
        assert member_state("n1") == "draining"
        assert post("/members/n1/ready") == 200
        deadline = time.monotonic() + 10
        while nodes_serving() != {"n1", "n2"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert nodes_serving() == {"n1", "n2"}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        for server in servers:
            server.shutdown()
    assert proc.returncode == 0
