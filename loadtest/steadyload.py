"""A steady load on a balancer, and what it measured: for the fault tests and the failover benchmark.

Rules of this module:

* The load is open-loop (requests start on a fixed schedule whatever the answers take,
  as real clients do), over keep-alive connections, and aiohttp's silent one-time retry
  of an idempotent request on a dropped keep-alive connection is switched off: every
  failure the balancer causes is counted, none is hidden by the client.
* Times are ``time.monotonic()`` of this process: the load thread and the test share the
  clock, so a request's send time can be compared with the moment a signal was sent.
* Nothing here asserts: the tests decide what must hold, and the benchmark prints.

Documents relied on: RFC 9112 section 9.3.1 (retrying requests on a closed persistent
connection).
"""

from __future__ import annotations

import asyncio
import errno
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import aiohttp

__all__ = ["Result", "SteadyLoad", "percentile", "shares", "summarize"]


@dataclass(frozen=True, slots=True)
class Result:
    url: str
    sent: float  # monotonic, when the client started the request
    done: float
    status: int  # 0 when no HTTP answer came
    node: str | None  # X-Pixring-Node
    error: str | None  # refused, connect, disconnected, reset, timeout, other:<type>
    retry_after: str | None

    @property
    def latency(self) -> float:
        return self.done - self.sent

    @property
    def ok(self) -> bool:
        return self.status == 200


def _classify(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused" if exc.os_error.errno == errno.ECONNREFUSED else "connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    return f"other:{type(exc).__name__}"


class SteadyLoad:
    """An open-loop load at ``rate`` requests per second, cycling over ``urls``, in a thread.

    Use as a context manager or ``start()`` / ``stop()``; ``results`` grows as answers
    arrive and may be read at any time (a list append is atomic under the GIL).
    """

    def __init__(self, base: str, urls: Sequence[str], rate: float = 200.0, timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError("SteadyLoad needs at least one URL")
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
        self.base = base
        self.urls = list(urls)
        self.rate = rate
        self.timeout = timeout
        self.results: list[Result] = []
        self.started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    def __enter__(self) -> "SteadyLoad":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._main, name="steady-load", daemon=True)
        self._thread.start()

    def stop(self) -> list[Result]:
        """Stop sending, wait for the answers still due, return every result."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 10)
            self._thread = None
        if self._crash is not None:
            raise RuntimeError("the load generator failed") from self._crash
        return self.results

    def between(self, start: float, end: float) -> list[Result]:
        return [r for r in list(self.results) if start <= r.sent < end]

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self._crash = exc

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            # Count every failure: no silent retry of a GET on a dropped keep-alive connection.
            session._retry_connection = False  # type: ignore[attr-defined]
            pending: set[asyncio.Task] = set()
            interval = 1.0 / self.rate
            origin = time.monotonic()
            sent = 0
            while not self._stop.is_set():
                due = origin + sent * interval
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                    continue
                if now - due > 1.0:  # the process stalled: do not fire a second of requests at once
                    origin += now - due
                task = asyncio.create_task(self._one(session, self.urls[sent % len(self.urls)]))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            if pending:
                await asyncio.gather(*pending)

    async def _one(self, session: aiohttp.ClientSession, url: str) -> None:
        sent = time.monotonic()
        try:
            async with session.get(self.base + url) as response:
                await response.read()
                result = Result(url, sent, time.monotonic(), response.status,
                                response.headers.get("X-Pixring-Node"), None, response.headers.get("Retry-After"))
        except Exception as exc:  # noqa: BLE001 - every failure is a measurement
            result = Result(url, sent, time.monotonic(), 0, None, _classify(exc), None)
        self.results.append(result)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(results: Sequence[Result]) -> dict:
    """Counts, failures by kind, and latency percentiles in milliseconds."""
    latencies = [r.latency for r in results]
    failures = Counter(r.error or str(r.status) for r in results if not r.ok)
    return {
        "requests": len(results),
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
    }


def shares(results: Iterable[Result]) -> dict[str, float]:
    """Fraction of answered requests each node served."""
    counts = Counter(r.node for r in results if r.node)
    total = sum(counts.values())
    return {node: round(n / total, 3) for node, n in sorted(counts.items())} if total else {}
