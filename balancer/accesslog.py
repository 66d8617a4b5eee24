"""JSON access log lines, buffered and written off the request path.

Each finished request appends one line to an in-memory buffer; a timer flushes it
every ``flush_interval`` seconds, or sooner when it grows past ``max_buffer`` bytes,
with one write call. A log destination that cannot keep up (a full pipe) costs at
most one blocking write per flush, never one per request.

A proxied request's line (``request``) is filled into a fixed template with one
``bytes %`` when every string in it is plain printable ASCII without ``"`` or ``\\``,
which is what JSON needs no escape for; anything else (a client's odd target or
request id, an aborted exchange, a request no node saw) goes through orjson with the
same fields. The template line is a small object for CPython's own allocator, where
orjson's output buffers go to malloc, whose trimming cost more than the encoding at
benchmark rates.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from typing import Any

import orjson

__all__ = ["AccessLog"]

_PLAIN = re.compile(rb"[ !#-\[\]-~]*")  # printable ASCII except " and \
_REQUEST_LINE = (
    b'{"time":%.6f,"request_id":"%s","client":"%s","method":"%s","path":"%s","key":"%s","node":"%s",'
    b'"status":%d,"bytes":%d,"attempts":%d,"total_ms":%.3f,"upstream_ms":%.3f}\n'
)


class AccessLog:
    def __init__(
        self,
        destination: str,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        flush_interval: float = 0.2,
        max_buffer: int = 256 * 1024,
    ) -> None:
        self.enabled = destination != "off"
        self._loop = loop
        self._fd: int | None = None
        self._own_fd = False
        if self.enabled:
            if destination == "-":
                self._fd = sys.stdout.fileno()
            else:
                self._fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self._own_fd = True
        self._buffer: list[bytes] = []
        self._size = 0
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._timer: asyncio.TimerHandle | None = None

    def request(self, when: float, request_id: bytes, client: bytes, method: bytes, path: bytes, key: str | None,
                node: str | None, status: int, sent: int, attempts: int, total_ms: float,
                upstream_ms: float | None, aborted: bool) -> None:
        """One request's line: ``when`` in Unix seconds, durations in milliseconds."""
        if not self.enabled:
            return
        plain = _PLAIN.fullmatch
        if (key is not None and node is not None and upstream_ms is not None and not aborted
                and plain(path) and plain(request_id) and key.isascii() and node.isascii()):
            key_bytes, node_bytes = key.encode(), node.encode()
            if plain(key_bytes) and plain(node_bytes):
                self._append(_REQUEST_LINE % (when, request_id, client, method, path, key_bytes, node_bytes, status,
                                              sent, attempts, total_ms, upstream_ms))
                return
        record = {
            "time": when, "request_id": request_id.decode("latin-1"), "client": client.decode("latin-1"),
            "method": method.decode("latin-1"), "path": path.decode("latin-1"), "key": key, "node": node,
            "status": status, "bytes": sent, "attempts": attempts, "total_ms": round(total_ms, 3),
            "upstream_ms": None if upstream_ms is None else round(upstream_ms, 3),
        }
        if aborted:
            record["aborted"] = True
        self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

    def _append(self, line: bytes) -> None:
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= self._max_buffer:
            self.flush()
        elif self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self._flush_interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer or self._fd is None:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                continue
            except OSError:
                return  # a closed stdout must not take the proxy down with it
            view = view[written:]

    def close(self) -> None:
        self.flush()
        if self._own_fd and self._fd is not None:
            os.close(self._fd)
        self._fd = None
