"""Clients that never read their answer, against a real balancer process (uvloop, libuv's reads).

The figure that matters is the worker's resident memory: before the front paused reading
from the node within a turn, one such client made a worker hold most of an 8 MiB image
(about 6.7 MiB each, measured with ``python -m loadtest.stalled_clients``).
"""

from __future__ import annotations

import time

import pytest

from loadtest.fleet import StaticFileNode
from loadtest.stalled_clients import rss_kib, stall
from tests.e2e.faultkit import FaultFleet

pytestmark = pytest.mark.e2e

CLIENTS = 50
SIZE = 8 * 1024 * 1024


def test_fifty_clients_that_never_read_an_8_mib_answer_add_less_than_64_mib(tmp_path):
    files = tmp_path / "files" / "photos"
    files.mkdir(parents=True)
    (files / "large.jpg").write_bytes(b"\xff" * SIZE)
    with FaultFleet(tmp_path / "logs") as fleet:
        nodes = fleet.start_nodes({"files": StaticFileNode("files", tmp_path / "files", fleet.log_dir)})
        balancer = fleet.balancer(nodes, workers=1)
        (worker,) = balancer.worker_pids()
        before = rss_kib(worker)
        held = stall(balancer.port, "/photos/large.jpg", CLIENTS)
        time.sleep(2.0)  # a fast local node has sent everything it could by now
        added_mib = (rss_kib(worker) - before) / 1024
        print(f"{CLIENTS} stalled clients of {SIZE >> 20} MiB answers: worker +{added_mib:.1f} MiB "
              f"({added_mib * 1024 / CLIENTS:.0f} KiB each)")
        assert added_mib < 64
        for sock in held:
            sock.close()
        # The worker still serves: the node's connections were held, not lost.
        status = balancer.status()
        assert status["ready"]
