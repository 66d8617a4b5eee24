"""The service notifications as systemd receives them: datagrams on a real AF_UNIX socket."""

from __future__ import annotations

import os
import socket
import time

from pixring import sdnotify
from pixring.sdnotify import Notifier


def listener(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_each_notification_is_one_datagram_of_assignments(tmp_path):
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        notifier = Notifier(path)
        notifier.ready("serving on port 8080 with 2 workers")
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notifier.reloading("reloading")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notifier.stopping("draining")
        ready, reloading, stopping = (sock.recv(4096).decode().split("\n") for _ in range(3))
    assert ready == ["READY=1", "STATUS=serving on port 8080 with 2 workers"]
    assert reloading[0] == "RELOADING=1" and reloading[2] == "STATUS=reloading"
    name, _, usec = reloading[1].partition("=")
    assert name == "MONOTONIC_USEC" and before <= int(usec) <= after  # systemd's clock: CLOCK_MONOTONIC, µs
    assert stopping == ["STOPPING=1", "STATUS=draining"]


def test_an_address_starting_with_at_is_in_the_abstract_namespace():
    name = f"pixring-test-{os.getpid()}"
    with listener("\0" + name) as sock:
        Notifier("@" + name).ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_not_started_by_systemd_nothing_is_sent(monkeypatch):
    """Without $NOTIFY_SOCKET there is nobody to tell: no socket is even opened."""
    opened = []
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setattr(sdnotify.socket, "socket", lambda *args: opened.append(args))
    notifier = Notifier()
    notifier.ready("up")
    notifier.stopping("down")
    assert opened == []


def test_a_dead_manager_socket_is_ignored_and_tried_again_next_time(tmp_path):
    """The service manager's bookkeeping never stops the service: a send to a socket nobody
    listens on any more fails quietly, and the next notification is sent when it is back."""
    path = str(tmp_path / "notify")
    listener(path).close()  # the socket file stays, nobody reads it: sends are refused
    notifier = Notifier(path)
    notifier.stopping("down")
    os.unlink(path)
    with listener(path) as sock:
        notifier.ready("up again")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up again"
