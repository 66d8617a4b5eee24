"""pixring in front of HTTP servers it did not write, with its default options.

The backends are Python's own ``http.server`` (404 for every path but its files, the
probe path included), a server that answers 400 to anything but an image (as thumbor
answers ``/healthz``), and a closed port. Only the probe interval is shortened, so that
many more probes than ``--probe-fall`` pass while the test watches; what a probe accepts
is the default.
"""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from loadtest.fleet import free_port, http
from tests.e2e.faultkit import FaultFleet

pytestmark = pytest.mark.e2e

PROBE_INTERVAL = 0.1
WATCH_S = 1.5  # 15 probe rounds: five times the default --probe-fall of 3


def _jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (seed * 40 % 256, 90, 200)).save(out, "JPEG", quality=80)
    return out.getvalue()


class ImagesOr400(BaseHTTPRequestHandler):
    """Answers its images, and 400 to every other path (thumbor's answer to /healthz)."""

    images: dict[str, bytes] = {}

    def do_GET(self):
        image = self.images.get(self.path.split("?")[0])
        if image is not None:
            status, body, kind = 200, image, "image/jpeg"
        else:
            status, body, kind = 400, b"bad request: unknown path", "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def images(tmp_path) -> dict[str, bytes]:
    (tmp_path / "files" / "photos").mkdir(parents=True)
    made = {}
    for i in range(6):
        made[f"/photos/p{i}.jpg"] = _jpeg(i)
        (tmp_path / "files" / "photos" / f"p{i}.jpg").write_bytes(made[f"/photos/p{i}.jpg"])
    return made


@pytest.fixture
def thumbor_like(images):
    ImagesOr400.images = images
    server = ThreadingHTTPServer(("127.0.0.1", 0), ImagesOr400)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_plain_http_servers_stay_routable_and_a_closed_port_is_down_with_the_reason(tmp_path, images, thumbor_like):
    with FaultFleet(tmp_path / "logs") as fleet:
        files = fleet.static_file_nodes(["f1", "f2", "f3"], tmp_path / "files")
        balancer = fleet.balancer(
            files, workers=1, extra=["--profile", "generic", "--probe-interval", str(PROBE_INTERVAL)],
            urls={"thumbor": thumbor_like, "closed": f"http://127.0.0.1:{free_port()}"},
        )
        time.sleep(WATCH_S)
        status = balancer.status()
        states = {m["id"]: m["state"] for m in status["members"]}
        results = {m["id"]: m["health_by_worker"]["0"]["last_probe"]["result"] for m in status["members"]}
        print(f"after {WATCH_S}s of probes every {PROBE_INTERVAL}s: {states}; last probes {results}")
        assert states == {"f1": "up", "f2": "up", "f3": "up", "thumbor": "up", "closed": "down"}
        assert results["f1"] == "GET /healthz answered 404"
        assert results["thumbor"] == "GET /healthz answered 400"
        assert results["closed"] == "GET /healthz: cannot connect: Connection refused"
        assert balancer.readyz()[0] == 200

        # Every image comes back byte for byte, tracking parameters and all, from the
        # node that has it; nothing is sent to the closed port.
        for path, body in images.items():
            for query in ("", "?utm_source=news", "?w=100&utm_campaign=x"):
                code, headers, got = http("GET", balancer.base + path + query)
                assert (code, got) == (200, body), (path + query, code, headers.get("X-Pixring-Node"))
                assert headers["X-Pixring-Node"] in ("f1", "f2", "f3", "thumbor")
        metrics = balancer.metrics()
        assert metrics.value("pixring_upstream_attempts_total", node="closed") == 0
        assert metrics.value("pixring_requests_total", node="-") == 0, "pixring answered none itself"

        # The log says which member went down, probing which path, and what it got.
        (down,) = [e for e in balancer.health_events() if e["event"] == "health.down"]
        assert down["member"] == "closed"
        assert down["detail"] == "first probe failed: GET /healthz: cannot connect: Connection refused"
        assert not [e for e in balancer.health_events()
                    if e["member"] in ("f1", "f2", "f3", "thumbor") and e["event"] != "health.up"]


def test_probe_expect_narrows_what_alive_means(tmp_path, images, thumbor_like):
    # http.server answers / with its directory listing (200); the thumbor-like node, 400.
    with FaultFleet(tmp_path / "logs") as fleet:
        files = fleet.static_file_nodes(["f1"], tmp_path / "files")
        balancer = fleet.balancer(files, workers=1, urls={"thumbor": thumbor_like},
                                  extra=["--profile", "generic", "--probe-path", "/",
                                         "--probe-expect", "200", "--probe-interval", str(PROBE_INTERVAL)])
        status = balancer.status()
        states = {m["id"]: m["state"] for m in status["members"]}
        assert states == {"f1": "up", "thumbor": "down"}, states
        (down,) = [e for e in balancer.health_events() if e["event"] == "health.down"]
        assert down["detail"] == "first probe failed: GET / answered 400 (expected 200)"
