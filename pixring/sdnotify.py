"""systemd's service notifications: ready, reloading, stopping (a ``Type=notify`` unit).

With ``Type=notify`` systemd counts a service as started only once it says
``READY=1``, so ``systemctl start`` (and a unit ordered ``After=`` it) waits until the
balancer's workers listen with their membership, or the renderer listens (and is
registered), instead of until the process was exec'd. Shared by both, as the schema is.
``RELOADING=1`` and ``STOPPING=1`` show a reload or a drain in ``systemctl status``;
``STATUS=`` is the line it prints.

The protocol (sd_notify(3), https://www.freedesktop.org/software/systemd/man/sd_notify.html):
one datagram of newline-separated ``KEY=VALUE`` assignments to the AF_UNIX socket named
by ``$NOTIFY_SOCKET``, a name starting with ``@`` being in the abstract namespace.
``MONOTONIC_USEC`` goes with ``RELOADING=1`` (systemd 253's ``Type=notify-reload``
needs it; older ones ignore it). Without ``$NOTIFY_SOCKET`` (not started that way)
nothing is sent. A failed send is ignored: the service manager's bookkeeping must
never stop the balancer.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["NOTIFY_SOCKET_ENV", "Notifier"]

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        if address is None:
            address = os.environ.get(NOTIFY_SOCKET_ENV, "")
        # "@name" is "\0name" on the wire: a socket in the abstract namespace.
        self.address = "\0" + address[1:] if address.startswith("@") else address

    def _send(self, *assignments: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(assignments).encode(), self.address)
        except OSError:
            pass

    def ready(self, status: str) -> None:
        self._send("READY=1", f"STATUS={status}")

    def reloading(self, status: str) -> None:
        self._send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                   f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self._send("STOPPING=1", f"STATUS={status}")
