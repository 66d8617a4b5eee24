"""JSON access log lines, buffered and written off the request path.

Each finished request appends one orjson-encoded line to an in-memory buffer; a
timer flushes it every ``flush_interval`` seconds, or sooner when it grows past
``max_buffer`` bytes, with one write call. A log destination that cannot keep up
(a full pipe) costs at most one blocking write per flush, never one per request.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import orjson

__all__ = ["AccessLog"]


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

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
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
