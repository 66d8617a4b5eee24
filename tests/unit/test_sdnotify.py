"""The service notifications as systemd receives them: datagrams on a real AF_UNIX socket."""

from __future__ import annotations

import os
import socket
import time

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


def test_without_a_socket_or_with_a_dead_one_nothing_fails(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    Notifier().ready("up")  # not started by systemd: nothing to say it to
    Notifier(str(tmp_path / "gone")).stopping("down")  # the manager's socket is gone: ignored
