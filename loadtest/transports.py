"""Stand-ins for the event loop's transports, for driving pixring's protocols without sockets.

``loadtest.request_path_bench`` measures the request path with ``NullTransport`` (what is
written is dropped, so the loop costs nothing); the forwarded-heads tests read what each
side would have sent from ``RecordingTransport``. Both answer the few calls the front and
the upstream pool make of a transport, and nothing else.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["NullTransport", "RecordingTransport"]


class NullTransport:
    """Takes what the proxy writes and drops it."""

    def __init__(self, peer_ip: str = "127.0.0.1") -> None:
        self.peer = (peer_ip, 40000)

    def write(self, data: bytes) -> None:
        pass

    def writelines(self, chunks: Iterable[bytes]) -> None:
        pass

    def get_extra_info(self, name: str) -> object:
        return self.peer if name == "peername" else None

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


class RecordingTransport(NullTransport):
    """Keeps what the proxy writes, in order, in ``written``."""

    def __init__(self, peer_ip: str = "127.0.0.1") -> None:
        super().__init__(peer_ip)
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def writelines(self, chunks: Iterable[bytes]) -> None:
        self.written.extend(bytes(chunk) for chunk in chunks)
