"""A deadline for the request head: a client that sends it too slowly is disconnected.

aiohttp's server has no such timeout: its keep-alive timer (an hour unless configured)
is the only bound on a connection that trickles a head a byte at a time, so 500 such
connections (a slowloris) stay open as long as their senders like. nginx calls this
``client_header_timeout``.

Rules:

- The clock starts when the connection opens, and again at the first byte that arrives
  while no request is being served (the next request on a keep-alive connection); an idle
  keep-alive connection is aiohttp's keep-alive timer's business, not this one's.
- It stops when the head is complete, which is when the request reaches the app: the
  middleware ``head_complete`` marks it, looked up by the connection's transport.
- When it fires, the connection is closed at once (no answer: a client this slow would
  not read one either).

``HeadDeadline`` wraps aiohttp's protocol object and passes every call through; the site
``HeadTimedSite`` serves through it. Both use only public aiohttp names apart from
``BaseSite``'s ``_runner`` and ``_server`` (what every site subclass sets).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from aiohttp import web

__all__ = ["HeadDeadline", "HeadTimedSite", "head_complete"]

# Transport -> its deadline: the middleware finds the connection of a request here.
_BY_TRANSPORT: dict[object, "HeadDeadline"] = {}


class HeadDeadline(asyncio.Protocol):
    def __init__(self, inner: Any, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        self._inner = inner
        self._timeout = timeout
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self.serving = False  # a request reached the app and is not answered yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        _BY_TRANSPORT[transport] = self
        self._start()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is None and not self.serving:
            self._start()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        _BY_TRANSPORT.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def head_arrived(self) -> None:
        self._stop()
        self.serving = True

    def answered(self) -> None:
        self.serving = False

    def _start(self) -> None:
        self._timer = self._loop.call_later(self._timeout, self._expire)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self.serving:
            self._transport.abort()


@web.middleware
async def head_complete(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
    """Stops the head's clock: a request that reaches the app has its head."""
    deadline = _BY_TRANSPORT.get(request.transport)
    if deadline is not None:
        deadline.head_arrived()
    try:
        return await handler(request)
    finally:
        if deadline is not None:
            deadline.answered()


class HeadTimedSite(web.BaseSite):
    """A TCP site whose connections must send each request head within ``head_timeout``."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, head_timeout: float) -> None:
        super().__init__(runner)
        self._host, self._port, self._head_timeout = host, port, head_timeout

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        timeout = self._head_timeout
        self._server = await loop.create_server(
            lambda: HeadDeadline(server(), timeout, loop), self._host, self._port, reuse_address=True
        )
