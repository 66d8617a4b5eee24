"""JSON-lines logs on stderr: one object per line, the only log format of the renderer.

Rules: every line has ``ts`` (Unix seconds) and ``event``; fields are plain JSON values;
a line is written whole (one ``write`` of a line-buffered text stream), so lines from
concurrent requests never interleave. Kept minimal: one access line per request, plus
start-up, shutdown and unexpected errors. Health probes (``GET /healthz``, a few a second from
every balancer worker) are not access-logged unless asked for (``--log-probes``): they would
be most of an idle node's log and bury the requests a person looks for.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import orjson
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

__all__ = ["JsonAccessLogger", "QuietProbesAccessLogger", "log_event"]

_MAX_LOGGED_TARGET = 512  # a log line is not the place for a 64 KB URL
_MAX_LOGGED_ID = 128  # the longest id the balancer passes on (balancer.headers.is_valid_request_id)


def log_event(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    record = {"ts": round(time.time(), 3), "event": event, **fields}
    out = stream if stream is not None else sys.stderr
    out.write(orjson.dumps(record, default=str).decode() + "\n")


class JsonAccessLogger(AbstractAccessLogger):
    """aiohttp access logger writing one JSON line per request to stderr.

    ``request_id`` is the request's ``X-Request-Id``, which the balancer sets on every
    request it forwards (and logs with the same value), so one request is followed
    through both logs by one id; None for a request that came without one."""

    skipped_paths: frozenset[str] = frozenset()

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if request.path in self.skipped_paths and response.status < 400:
            return
        target = request.raw_path
        if len(target) > _MAX_LOGGED_TARGET:
            target = target[:_MAX_LOGGED_TARGET] + "..."
        request_id = request.headers.get("X-Request-Id")
        log_event(
            "access",
            request_id=request_id[:_MAX_LOGGED_ID] if request_id is not None else None,
            method=request.method,
            target=target,
            status=response.status,
            bytes_sent=response.body_length,  # headers included
            ms=round(time * 1000, 2),
            cache=response.headers.get("X-Render-Cache"),
            remote=request.remote,
        )


class QuietProbesAccessLogger(JsonAccessLogger):
    """The access log without successful health probes (a failing probe is still logged:
    a node answering its own health check with an error is what a person looks for)."""

    skipped_paths = frozenset({"/healthz"})
