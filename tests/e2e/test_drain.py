"""End to end: SIGTERM to the balancer under load cuts off no request it had taken.

Real processes: fault nodes (``tests/fault_node.py``) slow enough that dozens of
requests are in flight when the signal lands, one ``pixring balancer``, and the
open-loop client of ``steadyload``. A request the client started before SIGTERM must
complete with 200. After SIGTERM, the listener closes: a new connection may be refused
and an idle keep-alive connection may be closed under a request the client had just
written; both are counted apart and printed, never hidden (RFC 9112 section 9.3.1 lets
a client retry such a request). Connections that were already waiting in the kernel's
accept queue are the balancer's to serve, and the second test checks that they are.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter

import pytest

from loadtest.fleet import wait_until
from loadtest.steadyload import SteadyLoad, summarize
from tests.e2e.faultkit import FaultFleet, opaque_urls

pytestmark = pytest.mark.e2e

NODE_DELAY = 0.3  # seconds each answer takes: at 200 req/s about 60 are in flight at any time
DRAIN_TIMEOUT = 5.0


@pytest.fixture
def fleet(tmp_path):
    with FaultFleet(tmp_path / "logs") as fleet:
        yield fleet


def test_sigterm_under_load_finishes_every_request_in_flight(fleet):
    nodes = fleet.fault_nodes(["n1", "n2", "n3"], delay=NODE_DELAY)
    balancer = fleet.balancer(nodes, workers=2, extra=["--drain-timeout", str(DRAIN_TIMEOUT)])

    with SteadyLoad(balancer.base, opaque_urls(60), rate=200.0) as load:
        time.sleep(2.0)
        terminated = time.monotonic()
        balancer.send(signal.SIGTERM)
        exited = wait_until(lambda: balancer.popen.poll() is not None, timeout=DRAIN_TIMEOUT + 15)
        time.sleep(0.5)  # the load goes on against a closed port
    code = balancer.popen.wait(timeout=1)
    results = load.results

    before = [r for r in results if r.sent < terminated]
    in_flight = [r for r in before if r.done > terminated]
    after = [r for r in results if r.sent >= terminated]
    after_kinds = Counter("200" if r.ok else (r.error or str(r.status)) for r in after)
    print(f"started before SIGTERM: {summarize(before)}; of them in flight at SIGTERM: {len(in_flight)}")
    print(f"started after SIGTERM: {dict(after_kinds)}; balancer exited {exited}s after SIGTERM, code {code}")

    assert len(in_flight) >= 10, "too few requests in flight: the test did not test the drain"
    assert [(r.status, r.error) for r in before if not r.ok] == [], "a request taken before SIGTERM was cut off"
    # After the signal: served, refused (listener closed) or closed idle keep-alive, nothing else.
    assert set(after_kinds) <= {"200", "refused", "disconnected", "reset"}, after_kinds
    assert code == 0


def test_connections_waiting_in_the_accept_queue_are_served_not_reset(fleet):
    nodes = fleet.fault_nodes(["n1"])
    balancer = fleet.balancer(nodes, workers=1, extra=["--drain-timeout", str(DRAIN_TIMEOUT)])
    (worker,) = balancer.worker_pids()
    queued = 20

    clients: list[socket.socket] = []
    try:
        os.kill(worker, signal.SIGSTOP)  # the worker cannot accept; the kernel queues connections
        for i in range(queued):
            sock = socket.create_connection(("127.0.0.1", balancer.port), timeout=10)
            sock.sendall(f"GET /queued/{i}.jpg HTTP/1.1\r\nHost: pixring\r\nConnection: close\r\n\r\n".encode())
            clients.append(sock)
        balancer.send(signal.SIGTERM)
        time.sleep(0.5)  # the supervisor is draining and has signalled the (stopped) worker
        os.kill(worker, signal.SIGCONT)
        answers = [_read_all(sock) for sock in clients]
    finally:
        for sock in clients:
            sock.close()
    code = balancer.popen.wait(timeout=DRAIN_TIMEOUT + 15)

    heads = [answer.split(b"\r\n", 1)[0] for answer in answers]
    print(f"answers to the queued connections: {[h.decode(errors='replace') for h in heads]}")
    print([line for line in balancer.log().splitlines() if "accept queue" in line])
    assert heads == [b"HTTP/1.1 200 OK"] * queued
    for i, answer in enumerate(answers):
        assert f"/queued/{i}.jpg".encode() in answer  # each got its own answer
    assert code == 0


def test_a_connection_accepted_before_sigterm_gets_its_first_request_answered(fleet):
    nodes = fleet.fault_nodes(["n1"], delay=1.0)
    balancer = fleet.balancer(nodes, workers=1, extra=["--drain-timeout", str(DRAIN_TIMEOUT)])
    with socket.create_connection(("127.0.0.1", balancer.port), timeout=10) as busy, \
            socket.create_connection(("127.0.0.1", balancer.port), timeout=10) as early:
        # One request in flight keeps the worker draining; the other connection has sent nothing yet.
        busy.sendall(b"GET /busy.jpg HTTP/1.1\r\nHost: pixring\r\n\r\n")
        time.sleep(0.3)  # both accepted
        balancer.send(signal.SIGTERM)
        time.sleep(0.5)  # the worker has closed its listener and its idle keep-alive connections
        early.sendall(b"GET /early.jpg HTTP/1.1\r\nHost: pixring\r\n\r\n")
        answer = _read_all(early)
        busy_answer = _read_all(busy)
    code = balancer.popen.wait(timeout=DRAIN_TIMEOUT + 15)
    first_lines = [text.partition(b"\r\n")[0] for text in (answer, busy_answer)]
    print(f"late first request: {first_lines[0]!r}; the one in flight: {first_lines[1]!r}")
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"/early.jpg" in answer
    assert b"\r\nconnection: close\r\n" in answer.lower()  # answered, then closed: the worker is leaving
    assert busy_answer.startswith(b"HTTP/1.1 200 OK")
    assert code == 0


def _read_all(sock: socket.socket) -> bytes:
    """Everything the balancer sends until it closes; a reset reads as what came before it."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)
