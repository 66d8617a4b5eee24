"""The least proxy pixring's design can be: ``python -m loadtest.skeleton PORT BACKEND_PORT...``.

A measuring stick for ``make bench``, not a product: the shape of pixring's front
(an ``asyncio.Protocol`` on uvloop, httptools callbacks, no Task per request, a LIFO
keep-alive pool of ``asyncio.Protocol`` connections) with none of its features. It
hashes the raw target onto the backends with xxh3 modulo their count, drops
hop-by-hop request and response fields, adds X-Forwarded-For and forwards the body in
one write with the head; no normalization, ring, health, retries, limits, timeouts,
statistics or access log, and GET with Content-Length answers only. The distance
between its row and pixring's in the same round is what pixring's features cost per
request; the distance between its row and nginx's is what Python and this design cost.
It is the "raw asyncio.Protocol server + own pool" row of ``../shared/bench/README.md``,
written again for this benchmark.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import httptools
import uvloop
import xxhash

_NOT_FORWARDED = frozenset({b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade",
                         b"proxy-connection", b"host"})


class _Upstream(asyncio.Protocol):
    def __init__(self, idle: list["_Upstream"]) -> None:
        self.idle = idle
        self.parser = httptools.HttpResponseParser(self)
        self.client: _Client | None = None
        self.transport: asyncio.Transport | None = None
        self.head: list[bytes] = []
        self.sent = b""  # the request in flight, sent again if the backend closes first

    def send(self, client: "_Client", request: bytes) -> None:
        # A fresh head: one left from an answer whose client had gone (its body dropped,
        # its head never sent) would otherwise be sent in front of this one.
        self.client, self.sent, self.head = client, request, []
        self.transport.write(request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        # nginx closes a keep-alive connection after keepalive_requests (1000): an idle
        # one leaves the pool, a request in flight (none of its answer read) goes again.
        if self in self.idle:
            self.idle.remove(self)
        elif self.client is not None and not self.client.closed:
            self.client.send(self.sent)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _NOT_FORWARDED:
            self.head += (name, b": ", value, b"\r\n")

    def on_headers_complete(self) -> None:
        self.head = [b"HTTP/1.1 %d OK\r\n" % self.parser.get_status_code(), *self.head, b"\r\n"]

    def on_body(self, body: bytes) -> None:
        if self.client.closed:  # type: ignore[union-attr]
            return  # read to the end and dropped: the connection stays reusable
        if self.head:
            self.client.transport.writelines((b"".join(self.head), body))  # type: ignore[union-attr]
            self.head = []
        else:
            self.client.transport.write(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        self.idle.append(self)
        client.done()  # type: ignore[union-attr]


class _Client(asyncio.Protocol):
    def __init__(self, ports: list[int], idle: dict[int, list[_Upstream]]) -> None:
        self.ports = ports
        self.idle = idle
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: list[tuple[bytes, list[bytes]]] = []
        self.busy = False
        self.url = b""
        self.fields: list[bytes] = []
        self.client_ip = b"-"
        self.port = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_ip = transport.get_extra_info("peername")[0].encode()

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.queue.clear()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _NOT_FORWARDED:
            self.fields += (name, b": ", value, b"\r\n")

    def on_message_complete(self) -> None:
        self.queue.append((self.url, self.fields))
        self.url, self.fields = b"", []
        if not self.busy:
            self.next()

    def next(self) -> None:
        if not self.queue:
            self.busy = False
            return
        self.busy = True
        url, fields = self.queue.pop(0)
        port = self.ports[xxhash.xxh3_64_intdigest(url) % len(self.ports)]
        self.port = port
        self.send(b"".join((b"GET ", url, b" HTTP/1.1\r\nHost: 127.0.0.1\r\n", *fields,
                            b"X-Forwarded-For: ", self.client_ip, b"\r\n\r\n")))

    def send(self, request: bytes) -> None:
        idle = self.idle[self.port]
        if idle:
            idle.pop().send(self, request)
        else:
            asyncio.get_running_loop().create_task(self._connect(request))

    async def _connect(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        port = self.port
        _, upstream = await loop.create_connection(lambda: _Upstream(self.idle[port]), "127.0.0.1", port)
        upstream.send(self, request)

    def done(self) -> None:
        self.next()


async def serve(port: int, backend_ports: list[int]) -> None:
    idle: dict[int, list[_Upstream]] = {p: [] for p in backend_ports}
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: _Client(backend_ports, idle), "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: python -m loadtest.skeleton PORT BACKEND_PORT...")
    uvloop.run(serve(int(sys.argv[1]), [int(p) for p in sys.argv[2:]]))


if __name__ == "__main__":
    main()
