"""The protocol-level front and the upstream pool, over real sockets.

A real aiohttp server plays the render node; raw sockets play the client, so the
tests see exactly the bytes pixring writes (pipelining, framing, limits).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
from http import HTTPStatus

import httptools
import pytest
from aiohttp import web

from balancer.accesslog import AccessLog
from balancer.front import ClientConnection, FrontContext, FrontLimits
from balancer.normalize import make_normalizer
from balancer.routing import RoutingTable
from balancer.stats import WorkerStats
from balancer.upstream import UpstreamPool
from pixring.membership import Member, Membership

BIG = 16 * 1024 * 1024


def backend_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = json.dumps(
            {"path": request.path_qs, "headers": {k.lower(): v for k, v in request.headers.items()}}
        ).encode()
        return web.Response(body=body, content_type="application/json", headers={"ETag": '"e1"'})

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(5):
            await response.write(f"part{i};".encode())
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.Response(text="late")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * BIG, content_type="application/octet-stream")

    async def not_modified(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(text="fresh", headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_get("/chunked.jpg", chunked)
    app.router.add_get("/slow.jpg", slow)
    app.router.add_get("/big.jpg", big)
    app.router.add_get("/cond.jpg", not_modified)
    app.router.add_get("/{tail:.*}", echo)
    return app


class Harness:
    def __init__(self, ctx: FrontContext, port: int) -> None:
        self.ctx = ctx
        self.port = port

    async def connect(self):
        return await asyncio.open_connection("127.0.0.1", self.port)


async def start_front(members: list[Member], *, profile: str = "generic", **limits) -> Harness:
    loop = asyncio.get_running_loop()
    ctx = FrontContext(
        loop=loop,
        normalize=make_normalizer(profile),
        pool=UpstreamPool(loop, connect_timeout=1.0, read_timeout=limits.pop("read_timeout", 2.0), max_idle=8, idle_timeout=30.0),
        stats=WorkerStats(),
        access_log=AccessLog("off"),
        limits=FrontLimits(
            max_request_line=limits.get("max_request_line", 8192),
            max_header_bytes=limits.get("max_header_bytes", 16384),
            header_timeout=limits.get("header_timeout", 10.0),
            idle_timeout=limits.get("idle_timeout", 60.0),
        ),
        node_header="X-Pixring-Node",
        via="pixring",
    )
    ctx.set_table(RoutingTable.build(Membership.of(members)))
    ctx.start()
    ctx.pool.start()
    server = await loop.create_server(lambda: ClientConnection(ctx), "127.0.0.1", 0)
    return Harness(ctx, server.sockets[0].getsockname()[1])


@pytest.fixture
async def backend(aiohttp_server):
    return await aiohttp_server(backend_app())


@pytest.fixture
async def front(backend):
    return await start_front([Member("n1", "127.0.0.1", backend.port)])


class Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.complete = False

    def on_header(self, name, value):
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        self.complete = True


class _Stream:
    """Collects every response on one connection; one parser handles pipelined messages."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[Response] = []
        self.current: Response | None = None

    def on_message_begin(self):
        self.current = Response()

    def on_header(self, name, value):
        self.current.on_header(name, value)

    def on_headers_complete(self):
        self.current.status = self.parser.get_status_code()

    def on_body(self, body):
        self.current.body += body

    def on_message_complete(self):
        self.current.complete = True
        self.done.append(self.current)


async def read_responses(reader, count: int, *, head: bool = False, timeout: float = 5.0) -> list[Response]:
    """Parse ``count`` responses off a raw stream (HEAD responses have no body)."""
    if head:
        # httptools cannot be told a response answers HEAD: parse the head by hand.
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                raise ConnectionError("closed")
            buffer += chunk
        lines = buffer.partition(b"\r\n\r\n")[0].split(b"\r\n")
        response = Response()
        response.status = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(b": ")
            response.on_header(name, value)
        return [response]
    stream = _Stream()
    while len(stream.done) < count:
        chunk = await asyncio.wait_for(reader.read(65536), timeout)
        if not chunk:
            break
        stream.parser.feed_data(chunk)
    return stream.done


async def request(harness: Harness, raw: bytes, *, head: bool = False) -> Response:
    reader, writer = await harness.connect()
    writer.write(raw)
    try:
        return (await read_responses(reader, 1, head=head))[0]
    finally:
        writer.close()


async def test_forwards_normalized_request_with_forwarding_headers(backend):
    harness = await start_front([Member("n1", "127.0.0.1", backend.port)], profile="imgix")
    response = await request(
        harness,
        b"GET /photos/cat.jpg?W=400.0&fm=jpeg&utm_source=news HTTP/1.1\r\nHost: evil.example\r\n"
        b"Accept: image/webp\r\nX-Request-Id: client-id-1\r\n\r\n",
    )
    assert response.status == 200
    seen = json.loads(response.body)
    assert seen["path"] == "/photos/cat.jpg?fm=jpg&w=400"
    assert seen["headers"]["host"] == f"127.0.0.1:{backend.port}"  # the client's Host chooses nothing
    assert seen["headers"]["accept"] == "image/webp"
    assert seen["headers"]["x-request-id"] == "client-id-1"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["via"] == "1.1 pixring"
    assert response.headers["x-pixring-node"] == "n1"
    assert response.headers["x-request-id"] == "client-id-1"
    assert response.headers["etag"] == '"e1"'
    assert response.headers["via"] == "1.1 pixring"


async def test_generated_request_id_reaches_node_and_client(front):
    response = await request(front, b"GET /a.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    seen = json.loads(response.body)
    assert response.headers["x-request-id"] == seen["headers"]["x-request-id"]
    assert len(response.headers["x-request-id"]) >= 8


async def test_keep_alive_reuses_one_upstream_connection(front):
    reader, writer = await front.connect()
    for i in range(3):
        writer.write(f"GET /k{i}.jpg HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        (response,) = await read_responses(reader, 1)
        assert json.loads(response.body)["path"] == f"/k{i}.jpg"
    writer.close()
    assert front.ctx.pool.connects == 1


async def test_pipelined_requests_are_answered_in_order(front):
    reader, writer = await front.connect()
    writer.write(b"".join(f"GET /p{i}.jpg HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(4)))
    responses = await read_responses(reader, 4)
    assert [json.loads(r.body)["path"] for r in responses] == ["/p0.jpg", "/p1.jpg", "/p2.jpg", "/p3.jpg"]
    writer.close()


async def test_head_has_no_body_but_keeps_length(front):
    reader, writer = await front.connect()
    writer.write(b"HEAD /h.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    (response,) = await read_responses(reader, 1, head=True)
    assert response.status == 200
    assert int(response.headers["content-length"]) > 0
    # The connection is still usable: the next response starts right after the head.
    writer.write(b"GET /after-head.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    (after,) = await read_responses(reader, 1)
    assert json.loads(after.body)["path"] == "/after-head.jpg"
    writer.close()


async def test_conditional_request_passes_304(front):
    response = await request(front, b'GET /cond.jpg HTTP/1.1\r\nHost: x\r\nIf-None-Match: "v1"\r\n\r\n', head=True)
    assert response.status == 304
    assert response.headers["etag"] == '"v1"'


async def test_chunked_upstream_is_rechunked_for_http11_and_closed_for_http10(front):
    response = await request(front, b"GET /chunked.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.body == b"part0;part1;part2;part3;part4;"

    reader, writer = await front.connect()
    writer.write(b"GET /chunked.jpg HTTP/1.0\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)  # EOF delimits the body
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"Connection: close" in head
    assert body == b"part0;part1;part2;part3;part4;"


async def _raw_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response's head and Content-Length body, read off a raw stream."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(int(line.partition(b":")[2]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head, await asyncio.wait_for(reader.readexactly(length), 5)


@pytest.mark.parametrize("version, connection, keeps_alive", [
    (b"1.1", None, True), (b"1.1", b"close", False), (b"1.1", b"keep-alive", True), (b"1.1", b"Upgrade", True),
    (b"1.0", None, False), (b"1.0", b"keep-alive", True), (b"1.0", b"close", False),
])
async def test_the_answer_speaks_the_clients_version_and_keeps_alive_as_asked(front, version, connection,
                                                                               keeps_alive):
    """RFC 9112 section 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive"."""
    reader, writer = await front.connect()
    field = b"Connection: " + connection + b"\r\n" if connection else b""
    writer.write(b"GET /v1.jpg HTTP/" + version + b"\r\nHost: x\r\n" + field + b"\r\n")
    head, body = await _raw_response(reader)
    assert head.startswith(b"HTTP/" + version + b" 200 "), head
    assert json.loads(body)["path"] == "/v1.jpg"
    if keeps_alive:
        writer.write(b"GET /v2.jpg HTTP/" + version + b"\r\nHost: x\r\n" + field + b"\r\n")
        head, body = await _raw_response(reader)
        assert json.loads(body)["path"] == "/v2.jpg"
    else:
        assert b"connection: close" in head.lower()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # pixring closed the connection
    writer.close()


async def test_an_absolute_form_target_is_served_by_a_discovered_node_never_by_the_host_it_names(front, backend):
    """RFC 9112 section 3.2.2: a server MUST accept absolute-form; the authority stands
    in for the Host, and neither chooses where pixring connects."""
    reader, writer = await front.connect()
    writer.write(b"GET http://evil.example:81/x.jpg?b=2&a=1 HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n"
                 b"GET HTTPS://evil.example?a=1 HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n")
    first, second = await read_responses(reader, 2)
    writer.close()
    assert (first.status, first.headers["x-pixring-node"]) == (200, "n1")
    seen = json.loads(first.body)
    # The node got the origin-form target and its own address as the Host.
    assert seen["path"] == "/x.jpg?b=2&a=1" and seen["headers"]["host"] == f"127.0.0.1:{backend.port}"
    assert (second.status, json.loads(second.body)["path"]) == (200, "/?a=1")


@pytest.mark.parametrize(
    "raw, status, closes",
    [
        (b"GARBAGE\r\n\r\n", 400, True),
        (b"GET /x.jpg HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, True),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, True),
        (b"GET /x.jpg HTTP/1.1\r\nHost: x\r\n" + b"X-Fill: " + b"f" * 17000 + b"\r\n\r\n", 431, True),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, False),  # asterisk form: OPTIONS only, and not served
        (b"GET http://user@evil.example/x.jpg HTTP/1.1\r\nHost: evil.example\r\n\r\n", 400, False),
        (b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400, False),
        (b"GET /x.jpg HTTP/1.1\r\n\r\n", 400, False),  # HTTP/1.1 without Host
        (b"GET /x.jpg HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, False),
        (b"POST /x.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 405, False),
    ],
)
async def test_bad_requests_get_a_clear_4xx(front, raw, status, closes):
    reader, writer = await front.connect()
    writer.write(raw)
    (response,) = await read_responses(reader, 1)
    assert response.status == status
    body = json.loads(response.body)
    assert body["status"] == status and body["error"]
    if closes:
        # A request we could not parse leaves the stream in an unknown state: closed.
        assert await asyncio.wait_for(reader.read(), 5) == b""
    else:
        # A well-formed request we refuse leaves the connection usable.
        writer.write(b"GET /next.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
        (after,) = await read_responses(reader, 1)
        assert after.status == 200
    writer.close()


async def test_healthz_on_the_public_port(front):
    response = await request(front, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 200 and json.loads(response.body) == {"status": "ok"}


async def test_no_members_is_503_with_retry_after():
    harness = await start_front([])
    response = await request(harness, b"GET /a.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 503
    assert response.headers["retry-after"] == "1"
    assert "no render node" in json.loads(response.body)["error"]


async def test_connect_failure_is_502_and_fast():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    harness = await start_front([Member("dead", "127.0.0.1", dead_port)])
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await request(harness, b"GET /a.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    elapsed = loop.time() - started
    print(f"502 after {elapsed * 1000:.1f} ms")
    assert response.status == 502
    assert response.headers["x-pixring-node"] == "dead"
    assert "connect to dead" in json.loads(response.body)["error"]
    assert harness.ctx.stats.upstream_errors[("dead", "connect")] == 1
    assert elapsed < 1.0  # connection refused needs no timeout; generous bound


async def test_upstream_timeout_is_504(backend):
    harness = await start_front([Member("n1", "127.0.0.1", backend.port)], read_timeout=0.3)
    response = await request(harness, b"GET /slow.jpg?s=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 504
    assert harness.ctx.stats.upstream_errors[("n1", "timeout")] == 1


async def test_partial_head_times_out_with_408(backend):
    harness = await start_front([Member("n1", "127.0.0.1", backend.port)], header_timeout=0.3)
    reader, writer = await harness.connect()
    writer.write(b"GET /a.jpg HTTP/1.1\r\nHost: x\r\n")  # never finished
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_idle_keep_alive_connection_is_closed(backend):
    harness = await start_front([Member("n1", "127.0.0.1", backend.port)], idle_timeout=0.3)
    reader, writer = await harness.connect()
    writer.write(b"GET /a.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_responses(reader, 1)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by pixring, without a response
    writer.close()


async def test_slow_client_does_not_make_pixring_buffer_the_whole_body(front):
    reader, writer = await front.connect()
    writer.write(b"GET /big.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.read(1024), 5)  # the response has started
    await asyncio.sleep(0.5)  # the client stops reading for a while
    (conn,) = front.ctx.connections
    buffered = conn.transport.get_write_buffer_size()
    print(f"buffered while the client stalls: {buffered} bytes of {BIG}")
    assert conn.writing_paused
    assert buffered < BIG // 4
    received = 1024
    while received < BIG:
        chunk = await asyncio.wait_for(reader.read(1 << 20), 5)
        assert chunk
        received += len(chunk)
    writer.close()


async def test_stale_pooled_connection_is_retried_once():
    """A node that closes a kept-alive connection without answering: one fresh retry."""
    loop = asyncio.get_running_loop()
    served: list[int] = []

    class FlakyNode(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.count = 0

        def data_received(self, data):
            self.count += 1
            if self.count == 1:
                served.append(1)
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            else:
                self.transport.close()  # as if its keep-alive timer fired just now

    server = await loop.create_server(FlakyNode, "127.0.0.1", 0)
    harness = await start_front([Member("flaky", "127.0.0.1", server.sockets[0].getsockname()[1])])
    reader, writer = await harness.connect()
    for _ in range(2):
        writer.write(b"GET /a.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
        (response,) = await read_responses(reader, 1)
        assert response.status == 200 and response.body == b"ok"
    writer.close()
    assert len(served) == 2 and harness.ctx.pool.connects == 2
    assert harness.ctx.stats.upstream_errors[("flaky", "reset")] == 1
    server.close()


async def test_a_cached_route_follows_the_ring_when_membership_changes(aiohttp_server):
    """The front keeps each target's owner with its route; a new table must re-decide it."""
    backends = [await aiohttp_server(backend_app()) for _ in range(3)]
    members = [Member(f"n{i}", "127.0.0.1", b.port) for i, b in enumerate(backends)]
    harness = await start_front(members)
    targets = [b"/photos/%d.jpg?w=400" % i for i in range(60)]

    async def owners() -> dict[bytes, str]:
        seen = {}
        for target in targets:
            response = await request(harness, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert response.status == 200
            seen[target] = response.headers["x-pixring-node"]
        return seen

    before = await owners()
    assert set(before.values()) == {"n0", "n1", "n2"}  # every target cached, spread over all three
    harness.ctx.set_table(RoutingTable.build(Membership.of(members[:2])))
    after = await owners()
    moved = [t for t in targets if before[t] == "n2"]
    assert moved and all(after[t] in ("n0", "n1") for t in moved)
    assert all(after[t] == before[t] for t in targets if t not in moved)  # nobody else moves
    harness.ctx.set_table(RoutingTable.build(Membership.of(members)))
    back = await owners()  # n2 is back, slow-starting: its keys return gradually
    assert all(back[t] == before[t] for t in targets if t not in moved)
    assert all(back[t] in (before[t], after[t]) for t in moved)


@pytest.mark.parametrize("size", [2, 0])
async def test_the_route_cache_is_bounded_and_drops_the_least_recently_used_target(size):
    loop = asyncio.get_running_loop()
    normalize = make_normalizer("generic", cache_size=0)
    normalized: list[bytes] = []

    def counting(target: bytes):
        normalized.append(target)
        return normalize(target)

    ctx = FrontContext(
        loop=loop, normalize=counting, stats=WorkerStats(), access_log=AccessLog("off"),
        pool=UpstreamPool(loop, connect_timeout=1.0, read_timeout=2.0, max_idle=8, idle_timeout=30.0),
        limits=FrontLimits(max_request_line=8192, max_header_bytes=16384, header_timeout=10.0, idle_timeout=60.0),
        node_header="X-Pixring-Node", via="pixring", route_cache_size=size,
    )
    ctx.set_table(RoutingTable.build(Membership.of([Member("n0", "127.0.0.1", 9)])))
    for target in (b"/a.jpg", b"/b.jpg", b"/a.jpg", b"/c.jpg", b"/a.jpg", b"/b.jpg"):
        assert ctx.route(target).owner == "n0"
        assert len(ctx.routes) <= size
    if size:
        # /a.jpg was used after /b.jpg, so /c.jpg pushed /b.jpg out, not /a.jpg
        assert normalized == [b"/a.jpg", b"/b.jpg", b"/c.jpg", b"/b.jpg"]
    else:
        assert len(normalized) == 6  # nothing kept


async def _read_all(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything up to pixring's close."""
    return await asyncio.wait_for(reader.read(), timeout)


def _status_lines(data: bytes) -> list[bytes]:
    """The status lines in a stream of responses (whose bodies here never hold one)."""
    return re.findall(rb"HTTP/1\.[01] \d{3} [A-Za-z -]+(?=\r\n)", data)


@pytest.mark.parametrize("raw, status", [
    (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 405),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 200),
    (b"GET /up.jpg HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 200),
    (b"GET /up.jpg HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 400),  # no Host
])
async def test_a_request_asking_to_switch_protocols_gets_one_plain_answer_then_close(front, raw, status):
    """llhttp parses nothing after an upgrade request or a CONNECT; pixring switches to
    nothing, so the request is answered as a plain one and is the connection's last. A
    request pipelined behind it must not receive a second answer meant for the first."""
    reader, writer = await front.connect()
    writer.write(raw + b"GET /behind.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await _read_all(reader)
    assert _status_lines(data) == [b"HTTP/1.1 %d %s" % (status, reason(status))], data
    assert b"\r\nConnection: close\r\n" in data
    writer.close()


def reason(status: int) -> bytes:
    return HTTPStatus(status).phrase.encode()


async def test_trailer_fields_are_not_merged_into_the_head(front):
    """RFC 9110 section 6.5.1: a chunked body's trailer is not header fields. Merged, it
    could set what the head was checked for (a second Host) or what the node trusts."""
    reader, writer = await front.connect()
    writer.write(b"GET /t.jpg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
                 b"Host: second\r\nX-Request-Id: from-trailer\r\nX-Forwarded-For: 6.6.6.6\r\nX-Trailer: yes\r\n\r\n")
    (response,) = await read_responses(reader, 1)
    assert response.status == 200
    seen = json.loads(response.body)["headers"]
    assert "x-trailer" not in seen
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert response.headers["x-request-id"] != "from-trailer"
    writer.write(b"GET /after.jpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and the stream is still in step
    (after,) = await read_responses(reader, 1)
    assert json.loads(after.body)["path"] == "/after.jpg"
    writer.close()


async def test_an_http10_request_with_transfer_encoding_is_the_connections_last(front):
    """RFC 9112 section 6.1: its framing may be faulty, so what follows is not read as a request."""
    reader, writer = await front.connect()
    writer.write(b"GET /ten.jpg HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                 b"GET /smuggled.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await _read_all(reader)
    assert len(_status_lines(data)) == 1 and data.startswith(b"HTTP/1.0 200 "), data
    assert b"/smuggled.jpg" not in data and b"\r\nConnection: close\r\n" in data
    writer.close()


async def test_a_header_field_that_never_ends_gets_431_without_being_buffered(backend):
    """httptools gathers a field's value until its line ends; pixring counts the bytes as
    they come instead, so one endless field is refused at the head limit, not at the
    header timeout after holding everything sent."""
    harness = await start_front([Member("n1", "127.0.0.1", backend.port)], header_timeout=30.0)
    reader, writer = await harness.connect()
    writer.write(b"GET /x.jpg HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    piece, sent = b"v" * 65536, 0
    answer = asyncio.ensure_future(reader.read(65536))
    while not answer.done() and sent < 64 * 1024 * 1024:
        writer.write(piece)
        sent += len(piece)
        try:
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0)
    data = await asyncio.wait_for(answer, 5)
    print(f"sent {sent} bytes of one field before the answer")
    assert data.startswith(b"HTTP/1.1 431 "), data[:80]
    assert sent < 64 * 1024 * 1024  # refused while the field was still coming
    writer.close()


async def test_a_malformed_request_in_a_pipeline_is_answered_after_those_before_it(front):
    reader, writer = await front.connect()
    writer.write(b"GET /slow.jpg?s=0.2 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2.jpg HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /p3.jpg HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\nGET /p4.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await _read_all(reader)
    assert _status_lines(data) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request"], data
    assert data.index(b"late") < data.index(b"/p2.jpg") < data.index(b"malformed request")
    writer.close()


async def test_nothing_is_answered_after_a_request_that_asked_to_close(front):
    """RFC 9112 section 9.6: the request that says close is the last one processed; what
    follows it is neither served nor refused."""
    reader, writer = await front.connect()
    writer.write(b"GET /slow.jpg?s=0.2 HTTP/1.1\r\nHost: x\r\n\r\nGET /c2.jpg HTTP/1.1\r\nHost: x\r\n"
                 b"Connection: close\r\n\r\nGET /c3.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await _read_all(reader)
    assert _status_lines(data) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK"], data
    assert b"/c2.jpg" in data and b"/c3.jpg" not in data
    writer.close()


@pytest.mark.parametrize("method, then", [(b"GET", 200), (b"POST", 405)])
async def test_expect_100_continue_is_answered_before_the_body_comes(front, method, then):
    """RFC 9110 section 10.1.1: the client may wait for 100 Continue before sending the
    body, and pixring reads (and drops) a body before answering."""
    reader, writer = await front.connect()
    writer.write(method + b" /e.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"0123456789")
    (response,) = await read_responses(reader, 1)
    assert response.status == then
    if then == 200:
        assert "expect" not in json.loads(response.body)["headers"]  # the node gets no body to expect
    writer.close()


async def test_100_continue_waits_its_turn_in_a_pipeline(front):
    """An interim answer belongs to its request: it must not cut into the answer ahead."""
    reader, writer = await front.connect()
    writer.write(b"GET /slow.jpg?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /e.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    so_far = await asyncio.wait_for(reader.readuntil(b"HTTP/1.1 100 Continue\r\n\r\n"), 5)
    assert so_far.index(b"late") < so_far.index(b"100 Continue")  # the first answer is whole, then the 100
    writer.write(b"body")
    (second,) = await read_responses(reader, 1)
    assert json.loads(second.body)["path"] == "/e.jpg"
    writer.close()


async def test_an_http10_expectation_is_ignored(front):
    """RFC 9110 section 10.1.1: a 100-continue in an HTTP/1.0 request MUST be ignored."""
    reader, writer = await front.connect()
    writer.write(b"GET /e.jpg HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.3)
    writer.write(b"ok")
    data = await _read_all(reader)
    assert data.startswith(b"HTTP/1.0 200 ") and b"100 Continue" not in data
    writer.close()


@pytest.mark.parametrize("hosts, status", [
    ([b"a b/c@d"], 400), ([b"x:abc"], 400), ([b"[::1"], 400), ([b"%zz"], 400), ([b"a/b"], 400),
    ([b"user@host"], 400), ([b"a", b"b"], 400),
    ([b"img.example.com"], 200), ([b"127.0.0.1:8080"], 200), ([b"[::1]:80"], 200), ([b"a,b"], 200),
    ([b"caf%C3%A9.example"], 200), ([b""], 200),
])
@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
async def test_host_fields_the_rfc_refuses_get_400(front, hosts, status, version):
    """RFC 9112 section 3.2: more than one Host line, or an invalid one, is a 400 whatever
    the version (reg-name, IP literal and port syntax of RFC 3986 section 3.2.2)."""
    fields = b"".join(b"Host: " + host + b"\r\n" for host in hosts)
    response = await request(front, b"GET /h.jpg HTTP/" + version + b"\r\n" + fields + b"\r\n")
    assert response.status == status, hosts
    if status == 400:
        assert "Host" in json.loads(response.body)["error"]


async def test_a_partial_head_behind_an_answered_request_gets_its_408(backend):
    """The next head, begun while the one ahead was answered, has the header timeout from
    the moment the connection is free, not the (longer) idle timeout."""
    harness = await start_front([Member("n1", "127.0.0.1", backend.port)], header_timeout=0.3, idle_timeout=30.0)
    for first in (b"GET /slow.jpg?s=0.2 HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"):
        reader, writer = await harness.connect()
        writer.write(first + b"GET /next.jpg HTTP/1.1\r\nHost: x\r\n")  # the second head never ends
        data = await _read_all(reader)
        assert _status_lines(data) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 408 Request Timeout"], data
        writer.close()


async def test_a_client_that_closes_its_side_is_taken_as_gone(backend):
    """A FIN while the request is with the node: pixring abandons the exchange (the client
    left, nginx's 499) rather than render for nobody; it does not wait for the node."""
    harness = await start_front([Member("n1", "127.0.0.1", backend.port)])
    reader, writer = await harness.connect()
    writer.write(b"GET /slow.jpg?s=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.1)
    writer.write_eof()
    started = asyncio.get_running_loop().time()
    assert await _read_all(reader) == b""
    waited = asyncio.get_running_loop().time() - started
    print(f"closed {waited * 1000:.0f} ms after the client's FIN")
    assert waited < 2.5  # the node takes 3 s
    assert harness.ctx.stats.inflight.get("n1") == 0  # the try was ended, not left to run
    writer.close()


# -- nodes that misbehave ------------------------------------------------------------
# A scripted node: raw bytes per request path, so each test shows exactly what a node
# sent and what the client got for it. ``requests`` records (connection number, path).

class ScriptedNode:
    def __init__(self, script: dict[bytes, list]) -> None:
        self.script = script  # path -> list of bytes to write, "rst", "close", or seconds to wait
        self.requests: list[tuple[int, bytes]] = []
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None
        self.playing: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def start(self) -> int:
        node = self

        class Conn(asyncio.Protocol):
            def connection_made(self, transport):
                node.connections += 1
                self.number, self.transport, self.buffer = node.connections, transport, b""

            def data_received(self, data):
                self.buffer += data
                while b"\r\n\r\n" in self.buffer:
                    head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
                    path = head.split(b" ", 2)[1]
                    node.requests.append((self.number, path))
                    steps = node.script.get(path, [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
                    task = asyncio.ensure_future(self.play(steps))
                    node.playing.add(task)
                    task.add_done_callback(node.playing.discard)

            async def play(self, steps: list) -> None:
                for step in steps:
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    elif step == "rst":
                        sock = self.transport.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.transport.abort()
                    elif step == "close":
                        self.transport.close()
                    else:
                        self.transport.write(step)

        self.server = await asyncio.get_running_loop().create_server(Conn, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]


async def scripted_front(script: dict[bytes, list], **limits) -> tuple[Harness, ScriptedNode]:
    node = ScriptedNode(script)
    port = await node.start()
    return await start_front([Member("n1", "127.0.0.1", port)], **limits), node


async def test_interim_answers_are_passed_on_and_the_final_one_follows():
    """RFC 9110 section 15.2: a 1xx is interim, the final answer comes on the same
    exchange, and a proxy passes 1xx on (to HTTP/1.1 clients only). Taken as final, the
    real answer was left on the pooled connection for the next request to receive."""
    harness, node = await scripted_front({b"/hints.jpg": [
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: keep-alive\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"]})
    reader, writer = await harness.connect()
    writer.write(b"GET /hints.jpg HTTP/1.1\r\nHost: x\r\n\r\nGET /other.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while data.count(b"HTTP/1.1 200") < 2:
        data += await asyncio.wait_for(reader.read(65536), 5)
    assert _status_lines(data) == [b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK"], data
    interim, _, rest = data.partition(b"\r\n\r\n")
    assert b"Link: </a.css>; rel=preload" in interim and b"Connection" not in interim
    assert rest.index(b"final") < rest.index(b"\r\n\r\nok")
    writer.close()

    reader, writer = await harness.connect()
    writer.write(b"GET /hints.jpg HTTP/1.0\r\n\r\n")
    data = await _read_all(reader)
    assert _status_lines(data) == [b"HTTP/1.0 200 OK"] and data.endswith(b"final")


@pytest.mark.parametrize("method, answer", [
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nPHANTOM"),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
    (b"GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\nPHANTOM"),
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nPHANTOM"),
])
async def test_bytes_after_a_response_are_never_taken_as_the_next_one(method, answer):
    """RFC 9112 section 6.3: a client must not process data after a complete response as
    a separate response. It came in the same read as the response; the next request,
    pipelined behind, must get its own answer on another connection."""
    harness, node = await scripted_front({b"/extra.jpg": [answer]})
    reader, writer = await harness.connect()
    writer.write(method + b" /extra.jpg HTTP/1.1\r\nHost: x\r\n\r\nGET /next.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, data
        data += chunk
    assert b"PHANTOM" not in data
    assert len(_status_lines(data)) == 2
    assert node.requests[1][0] != node.requests[0][0]  # the next request went on a fresh connection
    writer.close()


@pytest.mark.parametrize("answer, error", [
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW", "101"),
    (b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok", "invalid status 600"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "transfer coding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", "transfer coding"),
])
async def test_answers_a_proxy_cannot_pass_on_are_a_502(answer, error):
    """A 101 to a request that asked for no upgrade (RFC 9110 section 7.8), a status past
    599 (section 15), a body in a coding pixring cannot undo (RFC 9112 section 6.1)."""
    harness, node = await scripted_front({b"/odd.jpg": [answer]})
    response = await request(harness, b"GET /odd.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 502
    assert error in json.loads(response.body)["error"]
    assert harness.ctx.stats.upstream_errors[("n1", "protocol")] == 1
    after = await request(harness, b"GET /fine.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    assert after.status == 200 and after.body == b"ok"


async def test_an_oversized_response_head_is_a_502_not_a_buffer():
    pad = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    harness, node = await scripted_front({b"/fat.jpg": [b"HTTP/1.1 200 OK\r\n", *[pad * 16] * 12,
                                                         b"Content-Length: 2\r\n\r\nok"]})
    response = await request(harness, b"GET /fat.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 502
    assert "response head over" in json.loads(response.body)["error"]


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
async def test_a_body_delimited_by_close_and_cut_by_a_reset_is_not_complete(version):
    """RFC 9112 sections 6.3 and 8: a close ends such a body, a reset cuts it. The client
    must be able to tell: an HTTP/1.1 one gets no last chunk, an HTTP/1.0 one (whose
    body ends at the close) a reset rather than a close."""
    harness, node = await scripted_front({b"/cut.jpg": [b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\nhello",
                                                        0.2, "rst"]})  # the head leaves before the reset
    reader, writer = await harness.connect()
    writer.write(b"GET /cut.jpg HTTP/" + version + b"\r\nHost: x\r\n\r\n")
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 5):
            data += chunk
        ended = "close"
    except ConnectionResetError:
        ended = "reset"
    assert data.startswith(b"HTTP/" + version + b" 200 ") and b"hello" in data
    assert not data.endswith(b"0\r\n\r\n")
    assert ended == "reset"
    writer.close()


async def test_a_slow_client_does_not_make_the_node_late():
    """pixring stops reading the node while the client is slow: that pause is not the
    node's silence, so the read timeout must not fire nor count against the node."""
    body = b"x" * (8 * 1024 * 1024)
    harness, node = await scripted_front(
        {b"/big.jpg": [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body]}, read_timeout=0.3)
    reader, writer = await harness.connect()
    writer.write(b"GET /big.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # the answer has started
    await asyncio.sleep(1.0)  # the client stops reading for three read timeouts
    received = 0
    while received < len(body):
        chunk = await asyncio.wait_for(reader.read(1 << 20), 5)
        assert chunk, f"cut after {received} bytes"
        received += len(chunk)
    assert not harness.ctx.stats.upstream_errors
    writer.close()


async def test_a_client_that_reads_nothing_for_the_idle_timeout_is_cut():
    """The bound on a stalled client (nginx's send_timeout), now that the node's read
    timeout no longer is one: the connection, and the node's held for it, are dropped."""
    body = b"x" * (16 * 1024 * 1024)
    harness, node = await scripted_front(
        {b"/big.jpg": [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body]},
        read_timeout=0.3, idle_timeout=0.6)
    reader, writer = await harness.connect()
    writer.write(b"GET /big.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.read(1024), 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while harness.ctx.connections and loop.time() - started < 5:
        await asyncio.sleep(0.05)
    print(f"cut {loop.time() - started:.2f} s after the client stopped reading")
    assert not harness.ctx.connections
    assert harness.ctx.pool.idle_count() == 0 and not harness.ctx.pool._busy
    assert not harness.ctx.stats.upstream_errors  # the node did nothing wrong
    writer.close()


async def test_an_answer_that_fails_in_the_turn_it_starts_is_taken_back_and_retried(aiohttp_server):
    """A bad chunk in the same read as the head: nothing of the answer has left pixring
    yet, so it is taken back and the request fails over like any failed try (here to
    the next member), rather than the client getting a bare reset."""
    node = ScriptedNode({b"/bad.jpg": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"]})
    good = await aiohttp_server(backend_app())
    members = [Member("bad", "127.0.0.1", await node.start()), Member("good", "127.0.0.1", good.port)]
    harness = await start_front(members)
    alone = await start_front(members[:1])
    target = next(b"/bad.jpg?k=%d" % i for i in range(200)
                  if harness.ctx.route(b"/bad.jpg?k=%d" % i).owner == "bad")
    node.script[target] = node.script[b"/bad.jpg"]
    response = await request(harness, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 200 and response.headers["x-pixring-node"] == "good"
    assert harness.ctx.stats.upstream_errors[("bad", "protocol")] == 1

    reader, writer = await alone.connect()
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    (failed,) = await read_responses(reader, 1)
    assert failed.status == 502 and "bad response from bad" in json.loads(failed.body)["error"]
    writer.write(b"GET /fine.jpg HTTP/1.1\r\nHost: x\r\n\r\n")  # a whole answer: the connection lives on
    (after,) = await read_responses(reader, 1)
    assert after.status == 200
    writer.close()


async def test_a_slow_reader_is_not_cut_by_the_idle_timeout():
    """The kernel reports a slow reader's socket writable only once a good part of its
    send buffer has drained, so 'no write for the idle timeout' is not 'read nothing':
    pixring looks at what the client acknowledged."""
    body = b"x" * (24 * 1024 * 1024)
    harness, node = await scripted_front(
        {b"/big.jpg": [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body]}, idle_timeout=0.5)
    reader, writer = await harness.connect()
    transport_sock = writer.get_extra_info("socket")
    transport_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    writer.write(b"GET /big.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    loop = asyncio.get_running_loop()
    started, received = loop.time(), 0
    while loop.time() - started < 2.5:  # five idle timeouts, reading 64 KiB every 0.1 s
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, f"cut after {received} bytes"
        received += len(chunk)
        await asyncio.sleep(0.1)
    print(f"read {received} bytes slowly over {loop.time() - started:.1f} s without being cut")
    assert harness.ctx.connections
    writer.close()
