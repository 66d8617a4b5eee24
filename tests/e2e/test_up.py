"""End to end: `pixring up` as a real process tree (balancer workers + reference renderers).

The tests in this module share one cluster and run in file order; the ones that
kill a renderer and stop the cluster come last.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.proctree import alive, descendants
from PIL import Image

pytestmark = pytest.mark.e2e

SAMPLE = "photos/small-640x427.jpg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]






def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class Cluster:
    def __init__(self, proc: subprocess.Popen, port: int, admin_port: int) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin_port}"

    def renderer_pids(self) -> dict[int, int]:
        """renderer port -> pid, read from the process tree."""
        out = {}
        for pid in descendants(self.proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"renderer" in argv and b"--listen" in argv:
                out[int(argv[argv.index(b"--listen") + 1].rsplit(b":", 1)[1])] = pid
        return out


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("samples")


@pytest.fixture(scope="module")
def cluster(samples_dir, tmp_path_factory):
    port, admin_port = free_port(), free_port()
    # A file, not a pipe: the children log to it for the whole module, and a pipe
    # nobody drains would block them once full.
    up_dir = tmp_path_factory.mktemp("up")
    log_path = up_dir / "up.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixring.cli", "up", "--renderers", "3", "--port", str(port),
         "--admin-port", str(admin_port), "--workers", "2", "--origin", str(samples_dir),
         "--log-dir", str(up_dir / "logs"), "--watch-interval", "0.2"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    started = time.monotonic()
    while "Ctrl-C stops everything" not in log_path.read_text():  # `up` prints this once ready
        if proc.poll() is not None or time.monotonic() - started > 60:
            proc.kill()
            pytest.fail("pixring up did not become ready:\n" + log_path.read_text()[-3000:])
        time.sleep(0.1)
    print(f"cluster ready in {time.monotonic() - started:.1f}s")
    cluster = Cluster(proc, port, admin_port)
    cluster.log_path = log_path
    cluster.log_dir = up_dir / "logs"
    yield cluster
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_equivalent_urls_land_on_one_renderer_and_render_the_right_size(cluster):
    forms = [
        f"/{SAMPLE}?w=200&h=100&fit=crop&fm=png",
        f"/{SAMPLE}?fm=png&fit=crop&h=100&w=200",
        f"/{SAMPLE}?W=200.0&H=100&FIT=crop&FM=png&utm_source=mail&fbclid=xyz",
        f"/{SAMPLE}?width=200&height=100&fit=crop&fm=png&q=75",
        "//photos/./small-640x427.jpg?h=100&w=200&fit=crop&fm=png",
    ]
    nodes = set()
    for form in forms:
        status, headers, body = get(cluster.base + form)
        assert status == 200, (form, body[:200])
        nodes.add(headers["X-Pixring-Node"])
        image = Image.open(io.BytesIO(body))
        image.load()
        assert image.format == "PNG"
        assert image.size == (200, 100)
    assert len(nodes) == 1, nodes


def test_the_imgix_api_beyond_size_reaches_the_renderer_and_its_spellings_share_one_render(cluster):
    """Text, a watermark, stylize and a parameter the renderer does not draw, through the
    balancer: kept in the key and the forwarded URL (dropping them would merge different
    pictures), spelled two ways onto one node and one render, the renderer's headers passed
    back to the client."""
    plain = f"/{SAMPLE}?w=200&fm=png&sepia=60&txt=Tom%20%26%20Jerry&mark=/graphics/icon-alpha-256.png&face-blur=40"
    respelled = (f"/{SAMPLE}?FM=png&t=Tom+%26+Jerry&width=200.0&m=%2Fgraphics%2Ficon-alpha-256.png&SEPIA=60"
                 f"&face-blur=40.0&utm_source=mail&dl=")
    status, first_headers, first = get(cluster.base + plain)
    assert status == 200, first[:300]
    assert first_headers["X-Render-Ignored"] == "face-blur"
    status, second_headers, second = get(cluster.base + respelled)
    assert status == 200, second[:300]
    assert second_headers["X-Pixring-Node"] == first_headers["X-Pixring-Node"]
    assert second_headers["X-Render-Cache"] == "hit" and second == first

    status, _, without = get(f"{cluster.base}/{SAMPLE}?w=200&fm=png&sepia=60&face-blur=40")
    assert status == 200 and without != first  # the text and the watermark were drawn
    status, headers, _ = get(f"{cluster.base}/{SAMPLE}?w=50&dl=cat%20photo.jpg")
    assert status == 200 and headers["Content-Disposition"].startswith('attachment; filename="cat photo.jpg"')
    status, _, body = get(f"{cluster.base}/{SAMPLE}?w=50&mark=https://elsewhere.example/m.png")
    assert status == 400 and b"mark" in body  # the renderer never fetches what a URL names


def test_distinct_urls_spread_over_every_renderer(cluster):
    counts: dict[str, int] = {}
    for width in range(20, 320):
        status, headers, _ = get(f"{cluster.base}/{SAMPLE}?w={width}")
        assert status == 200
        counts[headers["X-Pixring-Node"]] = counts.get(headers["X-Pixring-Node"], 0) + 1
    print(f"300 URLs over renderers: {counts}")
    assert set(counts) == {"r1", "r2", "r3"}
    # 100 each is the ideal; 60 is five standard deviations below it.
    assert min(counts.values()) >= 60


def test_one_request_id_follows_a_request_through_the_balancers_and_the_renderers_logs(cluster):
    status, headers, _ = get(f"{cluster.base}/{SAMPLE}?w=77", headers={"X-Request-Id": "trace-up-77"})
    assert status == 200

    def lines_with_the_id() -> list[dict]:
        found = []
        for line in "".join(path.read_text() for path in sorted(cluster.log_dir.glob("*.log"))).splitlines():
            if line.startswith("{") and "trace-up-77" in line:
                found.append(json.loads(line))
        return found

    deadline = time.monotonic() + 10  # the balancer writes its log every 0.2 s
    while len(lines_with_the_id()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    balancer_line, renderer_line = sorted(lines_with_the_id(), key=lambda line: "event" in line)
    assert balancer_line["request_id"] == "trace-up-77" and balancer_line["node"] == headers["X-Pixring-Node"]
    assert renderer_line["event"] == "access" and renderer_line["request_id"] == "trace-up-77"
    assert renderer_line["target"] == balancer_line["key"]  # the balancer forwards the canonical key


def test_the_terminal_gets_events_and_the_json_logs_go_to_the_files_the_banner_names(cluster):
    terminal = cluster.log_path.read_text()
    assert not [line for line in terminal.splitlines() if line.startswith("{")]  # no JSON on the terminal
    assert f"logs       {cluster.log_dir}/" in terminal
    assert {path.name for path in cluster.log_dir.glob("*.log")} == {"r1.log", "r2.log", "r3.log", "balancer.log"}
    # The example image URL on the balancer's port, ready to run: scripts read it.
    example = next(line for line in terminal.splitlines() if line.lstrip().startswith("try"))
    url = example.split("'")[1]
    assert url.startswith(cluster.base + "/") and get(url)[0] == 200
    # The renderers were probed all along, and their logs do not say so.
    time.sleep(1.0)
    renderer_lines = [json.loads(line) for name in ("r1", "r2", "r3")
                      for line in (cluster.log_dir / f"{name}.log").read_text().splitlines() if line.startswith("{")]
    assert [line for line in renderer_lines if line.get("event") == "access"]
    assert not [line for line in renderer_lines if line.get("target") == "/healthz"]


def test_the_status_page_shows_every_member(cluster):
    status, headers, body = get(cluster.admin + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    for node in ("r1", "r2", "r3"):
        assert f'data-member="{node}"' in page
    assert page.count('data-state="up"') == 3 and "READY" in page


def test_operator_endpoints(cluster):
    status, _, body = get(cluster.admin + "/healthz")
    assert status == 200
    status, _, body = get(cluster.admin + "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True

    time.sleep(1.2)  # workers report once a second
    status, _, body = get(cluster.admin + "/status")
    assert status == 200
    doc = json.loads(body)
    assert [m["id"] for m in doc["members"]] == ["r1", "r2", "r3"]
    for member in doc["members"]:
        assert member["address"].startswith("127.0.0.1:")
        assert member["state"] == "up"
        assert member["requests_total"] > 0
    assert doc["ring"]["members"] == 3 and doc["ring"]["workers_agree"] is True
    assert len(doc["workers"]) == 2
    assert doc["config"]["workers_effective"] == 2

    status, headers, body = get(cluster.admin + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")

    # The admin token `up` made for the balancer: a file only this user reads, named in the
    # printed instructions, required by the POST endpoints, and never on a command line.
    token_file = Path(re.search(r"\$\(cat (\S+)\)", cluster.log_path.read_text()).group(1))
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert not any(token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
                   for pid in descendants(cluster.proc.pid) if Path(f"/proc/{pid}/cmdline").exists())

    def confirm(headers: dict[str, str]) -> int:
        request = urllib.request.Request(cluster.admin + "/discovery/confirm", method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert confirm({}) == 401
    assert confirm({"Authorization": f"Bearer {token}"}) == 200
    text = body.decode()
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("pixring_requests_total{") and 'node="r' in line
    )
    assert total >= 305  # every request of the earlier tests, from both workers
    for name in ("pixring_request_duration_seconds_bucket", "pixring_upstream_duration_seconds_bucket",
                 "pixring_ring_members 3.0", "pixring_workers 2.0", "pixring_ready 1.0", "pixring_ring_versions 1.0"):
        assert name in text, name


def test_killed_renderer_costs_nothing_and_other_keys_stay_put(cluster):
    placement = {}
    for width in range(400, 460):
        status, headers, _ = get(f"{cluster.base}/{SAMPLE}?w={width}")
        assert status == 200
        placement[width] = headers["X-Pixring-Node"]
    pids = cluster.renderer_pids()
    status_doc = json.loads(get(cluster.admin + "/status")[2])
    port_of = {m["id"]: int(m["address"].rsplit(":", 1)[1]) for m in status_doc["members"]}
    victim = "r2"
    os.kill(pids[port_of[victim]], signal.SIGKILL)
    time.sleep(0.3)
    moved_to = set()
    for width, node in placement.items():
        started = time.monotonic()
        status, headers, body = get(f"{cluster.base}/{SAMPLE}?w={width}")
        elapsed = time.monotonic() - started
        assert status == 200, body  # the dead node's keys are retried on their next member
        if node == victim:
            assert headers["X-Pixring-Node"] != victim
            moved_to.add(headers["X-Pixring-Node"])
            assert elapsed < 2.0, f"a dead node's key took {elapsed:.2f}s"
        else:
            assert headers["X-Pixring-Node"] == node  # no other key moved
    assert moved_to <= {"r1", "r3"} and moved_to
    # The terminal says so in one line, naming the failed probe.
    deadline = time.monotonic() + 20
    while "member r2 is down" not in cluster.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    line = next(line for line in cluster.log_path.read_text().splitlines() if "member r2 is down" in line)
    print(line)
    assert "GET /healthz" in line


def test_up_stops_every_child_on_sigterm(cluster):
    children = descendants(cluster.proc.pid)
    assert len(children) >= 3
    cluster.proc.send_signal(signal.SIGTERM)
    assert cluster.proc.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]


def test_up_exits_non_zero_when_a_child_fails_at_start(samples_dir):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pixring.cli", "up", "--renderers", "1", "--port", str(free_port()),
         "--admin-port", str(free_port()), "--workers", "1", "--origin", str(samples_dir),
         "--renderer-arg=--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(f"failed start-up reported in {time.monotonic() - started:.1f}s")
    assert result.returncode != 0
    assert "--no-such-flag" in result.stderr  # the child's own error reaches the user
    assert "renderer r1 exited" in result.stderr
    assert "--no-such-flag" not in result.stdout  # the banner and events only
