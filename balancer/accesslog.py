"""JSON access log lines, buffered and written off the request path.

Each finished request appends one line to an in-memory buffer; a timer flushes it
every ``flush_interval`` seconds, or sooner when it grows past ``max_buffer`` bytes,
with one write call. A log destination that cannot keep up (a full pipe) costs at
most one blocking write per flush, never one per request.

A request's line (``request``) is one ``bytes %`` of a literal template: values that
repeat are rendered as JSON once and kept by the caller (a target's path and key with
its cached route, a node's id with the member), and the rest are numbers or plain ASCII
by construction. The line is a small object for CPython's own allocator; orjson's
output buffers go to malloc, whose trimming at every flush cost more than the encoding
at benchmark rates.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from typing import Final

import orjson

__all__ = ["AccessLog", "json_text", "target_fields"]

_PLAIN: Final = re.compile(rb"[ !#-\[\]-~]*")  # printable ASCII except " and \, as JSON needs no escape
# "000" .. "999": the digits after a decimal point, three at a time.
_DIGITS3: Final = tuple(b"%03d" % n for n in range(1000))


def json_text(value: bytes) -> bytes:
    """``value`` as a JSON string, quotes included (bytes read as latin-1, as ever)."""
    if _PLAIN.fullmatch(value):
        return b'"' + value + b'"'
    return orjson.dumps(value.decode("latin-1"))


def target_fields(path: bytes, key: str | None) -> bytes:
    """The ``"path"`` and ``"key"`` members of a line: rendered once per target."""
    return b'"path":' + json_text(path) + b',"key":' + (b"null" if key is None else orjson.dumps(key))


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

    def request(self, when: float, request_id: bytes, client: bytes, method: bytes, target: bytes, node: bytes,
                status: int, sent: int, attempts: int, total_ms: float, upstream_ms: float | None,
                aborted: bool) -> None:
        """One request's line: ``when`` in Unix seconds, durations in milliseconds.

        ``target`` is ``target_fields(path, key)``; ``node`` a JSON value (``json_text``
        of the member id, or ``b"null"``). ``request_id``, ``client`` and ``method`` must be
        plain ASCII without quote or backslash: pixring's ids are hex and digits, a client's id is
        kept only if it is (``balancer.headers.is_valid_request_id``), the client is an
        IP address and the method a token httptools accepted.
        """
        if not self.enabled:
            return
        # The format strings are literals with only %s (bytes) and %d (int) so that, compiled,
        # mypyc builds each line in one allocation (CPyBytes_Build) instead of running
        # bytes.__mod__; times go in as integer microseconds split at the point, the same
        # text as %.6f / %.3f without a float-to-decimal conversion each.
        when_us = int(when * 1_000_000 + 0.5)
        fraction = when_us % 1_000_000
        total_us = int(total_ms * 1000 + 0.5)
        if upstream_ms is None:
            line = (
                b'{"time":%d.%s%s,"request_id":"%s","client":"%s","method":"%s",%s,"node":%s,"status":%d,'
                b'"bytes":%d,"attempts":%d,"total_ms":%d.%s,"upstream_ms":null}\n'
                % (when_us // 1_000_000, _DIGITS3[fraction // 1000], _DIGITS3[fraction % 1000], request_id,
                   client, method, target, node, status, sent, attempts, total_us // 1000, _DIGITS3[total_us % 1000])
            )
        else:
            upstream_us = int(upstream_ms * 1000 + 0.5)
            line = (
                b'{"time":%d.%s%s,"request_id":"%s","client":"%s","method":"%s",%s,"node":%s,"status":%d,'
                b'"bytes":%d,"attempts":%d,"total_ms":%d.%s,"upstream_ms":%d.%s}\n'
                % (when_us // 1_000_000, _DIGITS3[fraction // 1000], _DIGITS3[fraction % 1000], request_id,
                   client, method, target, node, status, sent, attempts, total_us // 1000, _DIGITS3[total_us % 1000],
                   upstream_us // 1000, _DIGITS3[upstream_us % 1000])
            )
        if aborted:
            line = line[:-2] + b',"aborted":true}\n'
        self._append(line)

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
