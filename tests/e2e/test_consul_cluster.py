"""End to end with Consul: renderers register themselves, balancers follow the catalog.

Real processes throughout: the Consul double (tests/consul_double, a faithful copy of
the agent's HTTP API, since no Consul binary can be installed here), reference
renderers started with ``--consul``, and balancers started with ``--consul-service``.
Keys are mapped with requests for missing files: the renderer answers 404 at once,
and the balancer still names the node it chose. Tests share one cluster, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.e2e

PIXRING = [sys.executable, "-m", "pixring.cli"]
SERVICE = "pixring-renderer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:  # not listening (yet)
        return 0, str(exc).encode()


def wait_for(what: str, predicate, timeout: float = 20.0, interval: float = 0.05) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            elapsed = time.monotonic() - started
            print(f"{what}: {elapsed:.2f}s")
            return elapsed
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g}s waiting for: {what}")


def read_line(proc: subprocess.Popen, marker: str, timeout: float = 30.0) -> str:
    started = time.monotonic()
    for line in proc.stdout:
        if marker in line:
            return line.strip()
        if time.monotonic() - started > timeout:
            break
    pytest.fail(f"process {proc.args} never printed {marker!r} (exit {proc.poll()})")


class Cluster:
    def __init__(self, tmp: Path, samples: Path) -> None:
        self.tmp = tmp
        self.samples = samples
        self.procs: list[subprocess.Popen] = []
        self.renderers: dict[str, subprocess.Popen] = {}
        self.consul_addr = ""

    def spawn(self, argv, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, **kwargs)
        self.procs.append(proc)
        return proc

    def start_consul(self) -> None:
        proc = self.spawn(
            [sys.executable, "-m", "tests.consul_double", "--port", "0", "--min-check-interval", "100ms",
             "--reap-interval", "200ms", "--min-deregister-after", "500ms"],
            stdout=subprocess.PIPE, text=True,
        )
        self.consul_addr = read_line(proc, "listening on").rsplit("http://", 1)[1]

    def start_renderer(self, node_id: str) -> None:
        proc = self.spawn(
            [*PIXRING, "renderer", "--listen", "127.0.0.1:0", "--origin", str(self.samples), "--render-workers", "1",
             "--no-access-log", "--consul", "--consul-addr", self.consul_addr, "--consul-id", node_id,
             "--consul-check-interval", "0.2", "--consul-deregister-after", "1"],
            stdout=subprocess.PIPE, text=True,
        )
        read_line(proc, "listening on")
        self.renderers[node_id] = proc

    def start_balancer(self, workers: int, *extra: str) -> "Balancer":
        port, admin = free_port(), free_port()
        self.spawn(
            [*PIXRING, "balancer", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
             "--workers", str(workers), "--consul-service", SERVICE, "--consul-addr", self.consul_addr,
             "--consul-wait", "5", "--access-log", "off",
             # These tests check what discovery and the ring decide. Bounded load would
             # (rightly) overflow a momentarily busy node under the concurrent key mapping,
             # and slow start would (rightly) hand a new node its keys over 30 s; both are
             # tested on their own (tests/unit/test_picker.py, tests/e2e/test_faults.py).
             "--balance-factor", "0", "--slow-start", "0", *extra],
        )
        balancer = Balancer(port, admin)
        wait_for("balancer ready", lambda: http("GET", balancer.admin + "/readyz")[0] == 200, timeout=30)
        return balancer

    def consul(self, method: str, path: str, body: dict | None = None):
        return http(method, f"http://{self.consul_addr}{path}", body)

    def stop(self) -> None:
        # Newest first, one at a time: balancers, then renderers (which deregister), then Consul.
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Balancer:
    def __init__(self, port: int, admin: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin}"

    def status(self) -> dict:
        return json.loads(http("GET", self.admin + "/status")[1])

    def ring_ids(self) -> set[str] | None:
        """The members every worker routes over, or None while the workers disagree."""
        doc = self.status()
        if not doc["ring"]["workers_agree"]:
            return None
        return {m["id"] for m in doc["members"]}

    def placement(self, count: int, start: int = 0) -> dict[int, str]:
        return asyncio.run(_placement(self.base, range(start, start + count)))


async def _placement(base: str, keys) -> dict[int, str]:
    out: dict[int, str] = {}
    queue = list(keys)

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            key = queue.pop()
            async with session.get(f"{base}/missing/k{key}.jpg") as response:
                assert response.status == 404, await response.text()
                out[key] = response.headers["X-Pixring-Node"]

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:
        await asyncio.gather(*(worker(session) for _ in range(16)))
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from renderer.samples import SAMPLES, ensure_samples

    samples = tmp_path_factory.mktemp("samples")
    ensure_samples(samples, [s for s in SAMPLES if s.width * s.height < 1_000_000])
    cluster = Cluster(tmp_path_factory.mktemp("consul"), samples)
    try:
        cluster.start_consul()
        for node_id in ("r1", "r2", "r3"):
            cluster.start_renderer(node_id)
        cluster.balancer = cluster.start_balancer(2)
        yield cluster
    finally:
        cluster.stop()


def test_routes_over_exactly_the_registered_renderers(cluster):
    balancer = cluster.balancer
    wait_for("three members in every worker", lambda: balancer.ring_ids() == {"r1", "r2", "r3"})
    counts: dict[str, int] = {}
    for node in balancer.placement(300).values():
        counts[node] = counts.get(node, 0) + 1
    print(f"300 keys: {counts}")
    assert set(counts) == {"r1", "r2", "r3"}
    assert min(counts.values()) >= 60


def test_a_fourth_renderer_takes_about_a_quarter_of_the_keys_and_no_others_move(cluster):
    balancer = cluster.balancer
    before = balancer.placement(2000)
    registered = time.monotonic()
    cluster.start_renderer("r4")
    wait_for("r4 in every worker's ring", lambda: balancer.ring_ids() == {"r1", "r2", "r3", "r4"})
    print(f"registration to ring: {time.monotonic() - registered:.2f}s (includes renderer start-up)")
    after = balancer.placement(2000)
    moved = [k for k in before if before[k] != after[k]]
    wrong = [(k, before[k], after[k]) for k in moved if after[k] != "r4"]
    assert not wrong, f"{len(wrong)} keys moved between old members, e.g. {wrong[:5]}"
    share = len(moved) / len(before)
    print(f"keys moved to r4: {share:.3f} (ideal 0.25)")
    assert 0.15 <= share <= 0.35


def test_two_balancers_on_one_consul_agree_on_10000_keys(cluster):
    second = cluster.start_balancer(1, "--admin-token", "t0ken")
    wait_for("second balancer sees four members", lambda: second.ring_ids() == {"r1", "r2", "r3", "r4"})
    first_map = cluster.balancer.placement(10_000)
    second_map = second.placement(10_000)
    disagree = [k for k in first_map if first_map[k] != second_map[k]]
    assert not disagree, f"{len(disagree)} keys differ, e.g. {disagree[:5]}"
    assert cluster.balancer.status()["ring"]["version"] == second.status()["ring"]["version"]

    # Operator confirmation is an admin POST and needs the token when one is set.
    assert http("POST", second.admin + "/discovery/confirm")[0] == 401
    status, body = http("POST", second.admin + "/discovery/confirm", headers={"Authorization": "Bearer t0ken"})
    assert status == 200 and json.loads(body)["confirmed"] is True


def test_consul_outage_keeps_routing_and_reports_stale(cluster):
    balancer = cluster.balancer
    before = balancer.placement(200)
    assert cluster.consul("PUT", "/_double/faults", {"status": 500, "body": "rpc error: No cluster leader"})[0] == 200
    try:
        wait_for(
            "readyz says discovery is stale",
            lambda: "stale" in json.loads(http("GET", balancer.admin + "/readyz")[1])["reason"],
        )
        status, body = http("GET", balancer.admin + "/readyz")
        assert status == 200, body  # stale, but routable with the last good membership
        assert balancer.placement(200) == before
        assert "pixring_discovery_stale 1.0" in http("GET", balancer.admin + "/metrics")[1].decode()
    finally:
        cluster.consul("PUT", "/_double/faults", {})
    wait_for(
        "discovery recovers by itself",
        lambda: "stale" not in json.loads(http("GET", balancer.admin + "/readyz")[1])["reason"],
        timeout=40,
    )
    assert balancer.placement(200) == before


def test_graceful_shutdown_deregisters_and_keys_return(cluster):
    balancer = cluster.balancer
    with_r4 = balancer.placement(1000)
    proc = cluster.renderers.pop("r4")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    status, body = cluster.consul("GET", "/v1/agent/services")
    assert status == 200 and "r4" not in json.loads(body)
    wait_for("r4 leaves every ring", lambda: balancer.ring_ids() == {"r1", "r2", "r3"})
    without = balancer.placement(1000)
    assert all(without[k] == with_r4[k] for k in with_r4 if with_r4[k] != "r4")
    assert {without[k] for k in with_r4 if with_r4[k] == "r4"} <= {"r1", "r2", "r3"}


def test_killed_renderer_leaves_when_its_check_goes_critical(cluster):
    balancer = cluster.balancer
    proc = cluster.renderers.pop("r3")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for("r3 leaves every ring", lambda: balancer.ring_ids() == {"r1", "r2"}, timeout=20)
    assert set(balancer.placement(200).values()) == {"r1", "r2"}
