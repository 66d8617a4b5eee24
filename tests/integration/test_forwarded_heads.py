"""What crosses the proxy, field by field, for any mix of header fields.

The front and the upstream pool classify each field as httptools parses it and lay the
heads out on the spot (``balancer.headers``). Here real ``ClientConnection`` and
``UpstreamConnection`` objects, on a real event loop but with transports that record
what is written, are fed generated requests and responses, and what they write is
compared with the rules of RFC 9110 section 7.6 stated independently below: hop-by-hop
fields and the fields Connection names are dropped, X-Forwarded-For and Via are
extended, Host, Forwarded, X-Real-IP, X-Forwarded-Proto, X-Request-Id and the framing are
pixring's own (a client's X-Forwarded-* and X-Pixring-* never pass), and every other field
passes unchanged and in order.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from balancer.accesslog import AccessLog
from balancer.front import ClientConnection, FrontContext, FrontLimits
from balancer.normalize import make_normalizer
from balancer.routing import RoutingTable
from balancer.stats import WorkerStats
from balancer.upstream import UpstreamConnection, UpstreamPool
from loadtest.transports import RecordingTransport
from pixring.membership import Member, Membership

HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
              b"te", b"trailer", b"transfer-encoding", b"upgrade"}
SET_BY_PIXRING_REQUEST = {b"host", b"x-forwarded-proto", b"x-forwarded-host", b"content-length", b"expect",
                          b"x-request-id", b"forwarded", b"x-real-ip"}
PIXRINGS_REQUEST_PREFIXES = (b"x-pixring-", b"x-forwarded-")
SET_BY_PIXRING_RESPONSE = {b"content-length", b"x-request-id", b"x-pixring-node"}
MEMBER = Member("n1", "127.0.0.1", 9001)
CLIENT_IP = b"192.0.2.7"


def _named(pairs: list[tuple[bytes, bytes]]) -> set[bytes]:
    named: set[bytes] = set()
    for name, value in pairs:
        if name.lower() == b"connection":
            named |= {t.strip().lower() for t in value.split(b",")}
    return named


def expected_upstream_head(target: bytes, pairs: list[tuple[bytes, bytes]], request_id: bytes) -> bytes:
    named = _named(pairs)
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: " + MEMBER.address.encode()]
    forwarded_for, via = [], []
    for name, value in pairs:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named:
            continue
        if lower == b"x-forwarded-for":
            forwarded_for.append(value)
        elif lower == b"via":
            via.append(value)
        elif lower not in SET_BY_PIXRING_REQUEST and not lower.startswith(PIXRINGS_REQUEST_PREFIXES):
            lines.append(name + b": " + value)
    hosts = [value for name, value in pairs if name.lower() == b"host"]
    lines += [
        b"X-Forwarded-For: " + b", ".join(forwarded_for + [CLIENT_IP]),
        # The Host line names the node; the client's Host goes on as X-Forwarded-Host.
        *([b"X-Forwarded-Host: " + hosts[-1]] if hosts else []),
        b"X-Forwarded-Proto: http",
        b"Forwarded: for=" + CLIENT_IP + b";proto=http",
        b"X-Real-IP: " + CLIENT_IP,
        b"Via: " + b", ".join(via + [b"1.1 pixring"]),
        b"X-Request-Id: " + request_id,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def expected_client_head(pairs: list[tuple[bytes, bytes]], body: bytes, request_id: bytes,
                         client_closes: bool = False) -> bytes:
    named = _named(pairs)
    lines = [b"HTTP/1.1 200 OK"]
    via = []
    for name, value in pairs:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named:
            continue
        if lower == b"via":
            via.append(value)
        elif lower not in SET_BY_PIXRING_RESPONSE:
            lines.append(name + b": " + value)
    lines += [
        b"Via: " + b", ".join(via + [b"1.1 pixring"]),
        b"X-Request-Id: " + request_id,
        b"X-Pixring-Node: " + MEMBER.id.encode(),
        b"Content-Length: %d" % len(body),
    ]
    if client_closes:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _exchange(request: bytes, response: bytes) -> tuple[bytes, bytes]:
    """Feed one request and its node's response through a front; return what the node
    and the client received."""

    async def run() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        pool = UpstreamPool(loop, connect_timeout=1.0, read_timeout=30.0, max_idle=4, idle_timeout=30.0)
        ctx = FrontContext(
            loop=loop, normalize=make_normalizer("generic", cache_size=0), pool=pool, stats=WorkerStats(),
            access_log=AccessLog("off", loop), node_header="X-Pixring-Node", via="pixring",
            limits=FrontLimits(max_request_line=8192, max_header_bytes=65536, header_timeout=10.0,
                               idle_timeout=60.0),
        )
        ctx.set_table(RoutingTable.build(Membership.of([MEMBER])))
        upstream, node_side = UpstreamConnection(pool, MEMBER), RecordingTransport()
        upstream.connection_made(node_side)  # type: ignore[arg-type]
        pool.release(upstream)
        client, client_side = ClientConnection(ctx), RecordingTransport(CLIENT_IP.decode())
        client.connection_made(client_side)  # type: ignore[arg-type]
        client.data_received(request)
        await asyncio.sleep(0)  # the turn ends: its writes leave (balancer.outbox)
        sent_upstream = b"".join(node_side.written)
        upstream.data_received(response)
        await asyncio.sleep(0)
        return sent_upstream, b"".join(client_side.written)

    return asyncio.run(run())


def _spellings(name: str) -> st.SearchStrategy[bytes]:
    return st.sampled_from([name.lower(), name.title(), name.upper()]).map(str.encode)


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12)
_VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20).map(str.encode)
_OTHER_NAME = st.one_of(
    _TOKEN.map(lambda t: ("X-" + t).encode()),
    _TOKEN.map(lambda t: ("X-Pixring-" + t).encode()),
    _TOKEN.map(lambda t: ("x-FORWARDED-" + t).encode()),
    st.sampled_from([b"Accept", b"Accept-Encoding", b"ETag", b"Cache-Control", b"If-None-Match", b"Date"]),
)
_CONNECTION_VALUE = st.lists(
    st.one_of(st.sampled_from([b"keep-alive", b"Keep-Alive", b"close"]), _OTHER_NAME,
              st.sampled_from([b"Via", b"x-forwarded-for"])),
    min_size=1, max_size=3,
).map(lambda tokens: b", ".join(tokens))


def _field(*special: str) -> st.SearchStrategy[tuple[bytes, bytes]]:
    return st.one_of(
        st.tuples(_OTHER_NAME, _VALUE),
        st.tuples(st.one_of(*(_spellings(n) for n in special)), _VALUE),
        st.tuples(_spellings("connection"), _CONNECTION_VALUE),
    )


_REQUEST_FIELDS = st.lists(_field("keep-alive", "te", "trailer", "proxy-authorization", "x-forwarded-for", "via",
                                  "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip",
                                  "forwarded", "x-pixring-node", "expect"), max_size=8)
_RESPONSE_FIELDS = st.lists(_field("keep-alive", "trailer", "proxy-authenticate", "via", "x-request-id"), max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_REQUEST_FIELDS, st.integers(0, 8), _RESPONSE_FIELDS, st.binary(max_size=64))
def test_heads_cross_as_the_rules_say(request_fields, host_at, response_fields, body):
    request_fields = list(request_fields)
    request_fields.insert(min(host_at, len(request_fields)), (b"Host", b"images.example"))
    target = b"/photos/cat.jpg?w=400"
    request = b"GET " + target + b" HTTP/1.1\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in request_fields) + b"\r\n"
    response = (b"HTTP/1.1 200 OK\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in response_fields)
                + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    sent_upstream, sent_client = _exchange(request, response)

    request_id = sent_upstream.split(b"\r\nX-Request-Id: ", 1)[1].split(b"\r\n", 1)[0]
    assert sent_upstream == expected_upstream_head(target, request_fields, request_id)
    client_closes = b"close" in _named(request_fields)
    assert sent_client == expected_client_head(response_fields, body, request_id, client_closes) + body


def test_a_connection_field_that_names_earlier_fields_drops_them_in_both_directions():
    request_fields = [(b"Host", b"h"), (b"X-Secret", b"1"), (b"Via", b"1.1 cdn"), (b"Connection", b"X-Secret, via")]
    response_fields = [(b"X-Node-Secret", b"2"), (b"ETag", b'"e"'), (b"Connection", b"keep-alive, x-node-secret")]
    request = b"GET /a.jpg HTTP/1.1\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in request_fields) + b"\r\n"
    response = b"HTTP/1.1 200 OK\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in response_fields) + \
        b"Content-Length: 2\r\n\r\nok"
    sent_upstream, sent_client = _exchange(request, response)
    assert b"X-Secret" not in sent_upstream and b"cdn" not in sent_upstream
    assert b"Node-Secret" not in sent_client and b'ETag: "e"\r\n' in sent_client
    request_id = sent_upstream.split(b"\r\nX-Request-Id: ", 1)[1].split(b"\r\n", 1)[0]
    assert sent_upstream == expected_upstream_head(b"/a.jpg", request_fields, request_id)
    assert sent_client == expected_client_head(response_fields, b"ok", request_id) + b"ok"
