"""A fresh image asked for by many clients at once, and a hot image, through real processes.

The nodes are ``tests/fault_node.py`` processes: they do not coalesce (each request is
answered on its own, after a delay, as thumbor renders each one) and count the image
requests they answered, so what the test measures is what reached the fleet.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, defaultdict

import pytest

from loadtest.fleet import SAMPLE, http, wait_until
from tests.e2e.faultkit import FaultFleet

pytestmark = pytest.mark.e2e

WORKERS = 2
CLIENTS = 40


@pytest.fixture
def fleet(tmp_path):
    with FaultFleet(tmp_path / "logs") as fleet:
        yield fleet


def answered(nodes) -> dict[str, int]:
    """Image requests each node answered with a 200 (its own count; probes excluded)."""
    counts = {}
    for name, node in nodes.items():
        status, _, body = http("GET", node.url + "/_fault")
        assert status == 200
        counts[name] = json.loads(body)["answers"].get("200", 0)
    return counts


def at_once(url: str, clients: int) -> list[int]:
    """``clients`` GETs of ``url``, each on its own connection, released together."""
    statuses = [0] * clients
    start = threading.Barrier(clients)

    def one(i: int) -> None:
        start.wait()
        statuses[i] = http("GET", url, timeout=20)[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("coalesce", [True, False])
def test_a_fresh_url_asked_by_forty_clients_at_once_reaches_the_fleet_once_per_worker(fleet, coalesce):
    nodes = fleet.fault_nodes(["n1", "n2", "n3"])
    for node in nodes.values():
        node.set("slow", delay=0.5, healthz="ok")  # a render: long enough for every client to arrive
    balancer = fleet.balancer(nodes, workers=WORKERS, extra=["--coalesce", str(coalesce).lower()])
    statuses = at_once(f"http://127.0.0.1:{balancer.port}/photos/fresh.jpg?w=640", CLIENTS)
    counts = answered(nodes)
    print(f"coalesce={coalesce}: {CLIENTS} clients, answers per node {counts}")
    assert statuses == [200] * CLIENTS
    if coalesce:
        upstream = sum(counts.values())
        assert 1 <= upstream <= WORKERS
        # The operator sees it: every request that did not reach a node is counted as coalesced.
        assert wait_until(lambda: balancer.metrics().value("pixring_coalesced_total") == CLIENTS - upstream, 10)
        workers = balancer.status()["workers"]
        assert sum(w["coalescing"]["followers"] for w in workers) == CLIENTS - upstream
    else:
        # Without coalescing every request is rendered: the contrast the feature removes.
        assert sum(counts.values()) == CLIENTS


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    from renderer.samples import SAMPLES, ensure_samples

    origin = tmp_path_factory.mktemp("samples")
    ensure_samples(origin, [s for s in SAMPLES if s.name == SAMPLE])
    return origin


def test_a_hot_image_is_spread_over_its_replicas_each_rendering_it_once_and_the_tail_stays(fleet, samples):
    renderers = fleet.renderers(["r1", "r2", "r3"], samples)
    balancer = fleet.balancer(renderers, workers=WORKERS)
    hot = f"/{SAMPLE}?w=300&fm=png"
    tail = [f"/{SAMPLE}?w={w}" for w in range(100, 220)]
    stream = [hot] * 240 + tail * 3  # the hot image takes 40% of the requests
    random.Random(7).shuffle(stream)
    served: dict[str, set[str]] = defaultdict(set)
    renders: Counter[tuple[str, str]] = Counter()  # (url, node) -> answers that were renders
    for url in stream:  # one at a time: every render is seen, none shared
        status, headers, _ = http("GET", f"http://127.0.0.1:{balancer.port}{url}", timeout=20)
        assert status == 200, url
        node = headers["X-Pixring-Node"]
        served[url].add(node)
        if headers.get("X-Render-Cache") == "miss":
            renders[(url, node)] += 1
    hot_nodes = sorted(served[hot])
    print(f"hot image served by {hot_nodes}; its renders per node "
          f"{ {node: renders[(hot, node)] for node in hot_nodes} }")
    assert len(hot_nodes) > 1
    assert all(renders[(hot, node)] <= 1 for node in hot_nodes)
    moved = [url for url in tail if len(served[url]) != 1]
    assert not moved, f"tail URLs served by more than one node: {moved}"
    # The operator sees it: requests spread, and the image among each worker's hot keys.
    assert wait_until(lambda: balancer.metrics().value("pixring_hot_spread_total") > 0, 10)
    listed = [entry for w in balancer.status()["workers"] for entry in w["hot_keys"]]
    assert any(entry["key"].startswith(f"/{SAMPLE}") and entry["replicas"] > 1 for entry in listed), listed
