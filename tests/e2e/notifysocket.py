"""systemd's side of sd_notify for tests: a datagram socket that hears a service's
notifications and who sent each (the sender's pid, as systemd checks NotifyAccess)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

__all__ = ["NotifySocket"]


class NotifySocket:
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(timeout)
        self.heard: list[tuple[int, list[str]]] = []

    def hear(self) -> list[str]:
        """The next notification's assignments (TimeoutError after ``timeout``)."""
        data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        (pid,) = [struct.unpack("iII", cdata)[0] for level, kind, cdata in ancillary
                  if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
        self.heard.append((pid, data.decode().split("\n")))
        return self.heard[-1][1]

    def senders(self) -> set[int]:
        return {pid for pid, _ in self.heard}

    def describe(self) -> str:
        return "; ".join(f"{pid}: {' '.join(lines)}" for pid, lines in self.heard)

    def close(self) -> None:
        self.sock.close()
