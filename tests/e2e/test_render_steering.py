"""Render steering through real processes: a balancer of two workers in front of three
caching nodes (``tests/fault_node.py`` in mode cache: one render at a time, RFC 9211's
Cache-Status on every answer, a header pixring was not written for).

While one node is busy with a long render, new images whose owner it is go to their second
node instead of queueing behind it; every image is rendered once, and its later requests
find it where it was rendered, whichever worker takes them.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from loadtest.fleet import http, wait_until
from tests.e2e.faultkit import FaultFleet

pytestmark = pytest.mark.e2e

WORKERS = 2
LONG_RENDER_S = 6.0
SHORT_RENDER_S = 0.05
NEW_IMAGES = 20


@pytest.fixture
def fleet(tmp_path):
    with FaultFleet(tmp_path / "logs") as fleet:
        yield fleet


def fault(node) -> dict:
    status, _, body = http("GET", node.url + "/_fault")
    assert status == 200
    return json.loads(body)


def steering_workers(balancer) -> list[bool]:
    return [bool(w["steering"] and w["steering"]["on"]) for w in balancer.status()["workers"]]


@pytest.mark.parametrize("steer", [True, False])
def test_new_images_go_around_a_node_that_is_rendering_and_are_rendered_once(fleet, steer):
    nodes = fleet.fault_nodes(["n1", "n2", "n3"])
    for node in nodes.values():
        node.set("cache", delay=SHORT_RENDER_S, healthz="ok")
    balancer = fleet.balancer(nodes, workers=WORKERS, extra=[
        "--profile", "generic", "--render-limit-header", "Cache-Status", "--steer-renders", str(steer).lower()])
    base = f"http://127.0.0.1:{balancer.port}"

    # Steering waits until the nodes confirm that images new to the balancer render.
    warm = 0
    while steer and not all(steering_workers(balancer)) and warm < 400:
        status, headers, _ = http("GET", f"{base}/warm/{warm}.jpg", timeout=10)
        assert status == 200 and "fwd=miss" in headers["Cache-Status"]
        warm += 1
    if steer:
        assert all(steering_workers(balancer)), balancer.status()["workers"]
    print(f"steering on in every worker after {warm} new images")

    long_answer: dict[str, object] = {}

    def long_render() -> None:
        status, headers, _ = http("GET", f"{base}/long.jpg?render={LONG_RENDER_S}", timeout=30)
        long_answer.update(status=status, node=headers.get("X-Pixring-Node"))

    started = time.monotonic()
    thread = threading.Thread(target=long_render)
    thread.start()
    assert wait_until(lambda: any(fault(n)["rendering"] for n in nodes.values()), 10) is not None
    busy = next(name for name, n in nodes.items() if fault(n)["rendering"])

    # New images, one at a time, while the long render runs on ``busy``.
    first: dict[str, tuple[str, float]] = {}
    for i in range(NEW_IMAGES):
        url = f"/new/{i}.jpg"
        sent = time.monotonic()
        status, headers, _ = http("GET", base + url, timeout=30)
        assert status == 200 and "fwd=miss" in headers["Cache-Status"], (url, headers)
        first[url] = (headers["X-Pixring-Node"], time.monotonic() - sent)
    during = time.monotonic() - started
    thread.join()
    assert long_answer == {"status": 200, "node": busy}
    waited = {url: round(s, 2) for url, (node, s) in first.items() if s > LONG_RENDER_S / 4}
    on_busy = [url for url, (node, _) in first.items() if node == busy]
    steered = balancer.metrics().value("pixring_steered_total")
    print(f"steer={steer}: {busy} rendered the long image; of {NEW_IMAGES} new images {len(on_busy)} went to it, "
          f"{len(waited)} waited behind it {waited}; steered {steered:g}; new images sent in {during:.2f}s")
    assert during < LONG_RENDER_S or not steer, "the new images were not all sent while the long render ran"
    if steer:
        assert not waited, "a new image queued behind the long render"
        assert steered >= 1
    else:
        assert waited, "without steering, the long render's node took some of the new images (the contrast)"
        assert steered == 0

    # Later requests, from either worker, find each image where it was rendered.
    for url, (node, _) in first.items():
        for _ in range(2 * WORKERS):
            status, headers, _ = http("GET", base + url, timeout=10)
            assert status == 200
            assert (headers["X-Pixring-Node"], headers["Cache-Status"]) == (node, "fault-node; hit"), url
    renders = sum(fault(n)["renders"].get(url, 0) for n in nodes.values() for url in first)
    assert renders == NEW_IMAGES
