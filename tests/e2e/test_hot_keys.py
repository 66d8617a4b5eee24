"""A fresh image asked for by many clients at once, and a hot image, through real processes.

The nodes are ``tests/fault_node.py`` processes: they do not coalesce (each request is
answered on its own, after a delay, as thumbor renders each one) and count the image
requests they answered, so what the test measures is what reached the fleet.
"""

from __future__ import annotations

import json
import threading

import pytest

from loadtest.fleet import http, wait_until
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
