"""What crosses the proxy in each direction: header rules and message framing.

Pure functions and tables over byte strings, so the front and the pool only move
bytes. Each field is classified once, by name, as it is parsed (``NameKinds``); an
end-to-end field is laid out on the spot as ``name, b": ", value, b"\r\n"`` in a flat
list, and the heads are assembled from those lists in one join.

The rules follow RFC 9110 section 7.6 (intermediaries): hop-by-hop fields
(``Connection`` and every field it names, ``Keep-Alive``, ``TE``, ``Trailer``,
``Transfer-Encoding``, ``Upgrade``, ``Proxy-*``) are connection-specific and never
forwarded; each hop adds itself to ``Via`` (section 7.6.3). Everything else is
end-to-end and is passed on, so a render node sees the client's ``Accept`` (its
``auto=format`` depends on it) and conditional headers, and the client sees the
node's ``ETag``, ``Cache-Control``, ``Vary`` and ``Last-Modified``.

Framing towards the client (RFC 9112 section 6): a response to HEAD, a 1xx, 204
or 304 has no body; a body of known length keeps its ``Content-Length``; a body of
unknown length (chunked or read-until-close upstream) is re-chunked for an
HTTP/1.1 client and delimited by closing the connection for an HTTP/1.0 one.
"""

from __future__ import annotations

import re
from enum import Enum
from http import HTTPStatus
from typing import Final

__all__ = [
    "CONNECTION",
    "CONTENT_LENGTH",
    "DROP",
    "EXPECT",
    "FORWARDED_FOR",
    "Framing",
    "HOP_BY_HOP",
    "HOST",
    "HostSyntax",
    "NameKinds",
    "PASS",
    "PLAIN_CONNECTION",
    "REQUEST_ID",
    "REQUEST_KINDS",
    "RESPONSE_KINDS",
    "RETRY_AFTER",
    "TRANSFER_ENCODING",
    "VALID_HOST",
    "VIA",
    "answer_rendered",
    "connection_tokens",
    "forwarded_node",
    "forwarding_fields",
    "host_line",
    "interim_head",
    "is_valid_request_id",
    "local_head",
    "reason_phrase",
    "response_framing",
    "response_head",
    "response_kinds",
    "without_named",
]

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authentication-info",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# What pixring does with a field, by its name. Every header rule is a row of the two
# tables below.
PASS: Final = 0  # end-to-end: forwarded as it is
DROP: Final = 1  # hop-by-hop, or a field pixring sets itself: never forwarded
CONNECTION: Final = 2  # hop-by-hop, and its tokens name more hop-by-hop fields
HOST: Final = 3
FORWARDED_FOR: Final = 4
VIA: Final = 5
REQUEST_ID: Final = 6
CONTENT_LENGTH: Final = 7
TRANSFER_ENCODING: Final = 8
EXPECT: Final = 9
RETRY_AFTER: Final = 10  # end-to-end, forwarded; noted, since with a 503 it means "shedding load"

# A client-sent X-Forwarded-For is extended rather than replaced (as nginx's
# $proxy_add_x_forwarded_for does), Via is extended (RFC 9110 section 7.6.3); the other
# fields that say something about the connection are pixring's: a client's Forwarded,
# X-Real-IP, any X-Forwarded-* and any X-Pixring-* never reach a node, and pixring writes
# its own Forwarded, X-Real-IP and X-Forwarded-Proto, so a client cannot choose what the
# node believes about the connection (docs/security.md has the table).
_REQUEST_KINDS: Final = {
    **{name: DROP for name in HOP_BY_HOP},
    b"connection": CONNECTION,
    b"host": HOST,
    b"x-forwarded-for": FORWARDED_FOR,
    b"via": VIA,
    b"x-request-id": REQUEST_ID,
    b"x-forwarded-proto": DROP,
    b"x-forwarded-host": DROP,
    b"x-forwarded-port": DROP,
    b"x-real-ip": DROP,
    b"forwarded": DROP,
    b"content-length": DROP,
    # Dropped like the rest of the hop-by-hop fields, and noted: an HTTP/1.0 request
    # with it closes its connection (RFC 9112 section 6.1).
    b"transfer-encoding": TRANSFER_ENCODING,
    # Answered by pixring (100 Continue), never forwarded: the node gets no body.
    b"expect": EXPECT,
}
# Request field names dropped by their beginning, whatever follows: pixring's own
# namespace, and every X-Forwarded-* (Port, Server, Prefix, Ssl...) a client could use to
# pose as a proxy in front of pixring.
_REQUEST_DROPPED_PREFIXES: Final = (b"x-pixring-", b"x-forwarded-")
# In a response, X-Request-Id and the node header (``X-Pixring-Node`` unless configured
# otherwise) are pixring's to set: a node's own would be a second, conflicting one.
_RESPONSE_KINDS: Final = {
    **{name: DROP for name in HOP_BY_HOP},
    b"connection": CONNECTION,
    b"via": VIA,
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"x-request-id": DROP,
    b"retry-after": RETRY_AFTER,
}
# Fields that most requests or responses carry, spelled as clients and servers spell
# them: found by their exact spelling without lowercasing anything.
_COMMON: Final = (
    b"Accept", b"Accept-Encoding", b"Accept-Language", b"Accept-Ranges", b"Age", b"Cache-Control",
    b"Content-Type", b"Date", b"ETag", b"Etag", b"Expires", b"If-Modified-Since", b"If-None-Match",
    b"Last-Modified", b"Referer", b"Server", b"User-Agent", b"Vary", b"X-Cache",
)


class NameKinds:
    """The kind of a field name, looked up by its exact spelling.

    ``exact.get(name)`` answers for every spelling seen before (the hot path's one dict
    lookup); a new spelling is lowercased once by calling the object. The memo is
    bounded, so a client inventing names cannot grow it: past ``limit`` spellings, a new
    one is lowercased on every request instead.
    """

    __slots__ = ("exact", "_by_lower", "_limit", "_dropped_prefixes")

    def __init__(self, by_lower: dict[bytes, int], limit: int = 2048,
                 dropped_prefixes: tuple[bytes, ...] = ()) -> None:
        self._by_lower = by_lower
        self._limit = limit
        self._dropped_prefixes = dropped_prefixes
        self.exact: dict[bytes, int] = {}
        for name in (*by_lower, *(n.lower() for n in _COMMON)):
            for spelling in (name, name.title(), name.upper()):
                self.exact[spelling] = by_lower.get(name, PASS)
        for name in _COMMON:
            self.exact[name] = by_lower.get(name.lower(), PASS)

    def __call__(self, name: bytes) -> int:
        lower = name.lower()
        kind = self._by_lower.get(lower, PASS)
        if kind == PASS and self._dropped_prefixes and lower.startswith(self._dropped_prefixes):
            kind = DROP
        if len(self.exact) < self._limit:
            self.exact[name] = kind
        return kind


def response_kinds(node_header: bytes) -> NameKinds:
    """The response rules, with ``node_header`` (pixring's own) dropped from nodes' answers."""
    return NameKinds({**_RESPONSE_KINDS, node_header.lower(): DROP} if node_header else _RESPONSE_KINDS)


REQUEST_KINDS: Final = NameKinds(_REQUEST_KINDS, dropped_prefixes=_REQUEST_DROPPED_PREFIXES)
RESPONSE_KINDS: Final = response_kinds(b"X-Pixring-Node")

# Connection values that name nothing beyond what is dropped by name anyway (Keep-Alive
# is hop-by-hop itself): nearly every Connection field says one of these.
PLAIN_CONNECTION: Final = frozenset({b"keep-alive", b"Keep-Alive", b"close", b"Close"})
_PLAIN_TOKENS: Final = frozenset({b"keep-alive", b"close", b""})

_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}


class Framing(Enum):
    NONE = "none"  # no body at all
    LENGTH = "length"  # Content-Length passed through
    CHUNKED = "chunked"  # re-chunked towards an HTTP/1.1 client
    CLOSE = "close"  # streamed, then the client connection is closed (HTTP/1.0 client)


def connection_tokens(value: bytes) -> frozenset[bytes]:
    """The fields one Connection value names beyond Keep-Alive (lowercased; RFC 9110
    section 7.6.1). Empty for the usual values."""
    return frozenset(token.strip().lower() for token in value.split(b",")) - _PLAIN_TOKENS


def without_named(fields: list[bytes], named: frozenset[bytes]) -> list[bytes]:
    """End-to-end ``fields`` (laid out in fours) minus those a Connection field named.

    A Connection field may come after the fields it names, so this runs once the head
    is complete; it is rare, and the common case never calls it.
    """
    kept: list[bytes] = []
    for i in range(0, len(fields), 4):
        if fields[i].lower() not in named:
            kept += fields[i:i + 4]
    return kept


def is_valid_request_id(value: bytes) -> bool:
    """A client's X-Request-Id is kept only if it is short, visible ASCII without quote or
    backslash: it ends up in headers and, unescaped, in the JSON access log."""
    return 0 < len(value) <= 128 and all(0x21 <= byte <= 0x7E and byte != 0x22 and byte != 0x5C for byte in value)


# RFC 9112 section 3.2: Host = uri-host [ ":" port ], with uri-host an IP literal in
# brackets, an IPv4 address or a reg-name (RFC 3986 section 3.2.2: unreserved,
# pct-encoded and sub-delims characters; possibly empty). IP literals are checked for
# their character set only: pixring routes by nothing in the Host, so the check is for
# syntax the RFC makes a server refuse, not for reachability.
_HOST_SYNTAX: Final = re.compile(
    rb"(?:\[[0-9A-Za-z:._~!$&'()*+,;=-]+\]"
    rb"|(?:[0-9A-Za-z._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)"
    rb"(?::[0-9]*)?"
)


class HostSyntax:
    """Whether a Host field value is well formed (a 400 if not: RFC 9112 section 3.2).

    The regular expression costs about 0.4 µs; the values a worker sees are a handful
    (its own names and addresses), so those found valid are remembered, up to ``limit``
    of them, and the usual check is one set lookup. Invalid values are not remembered:
    they are rare, and a client cannot fill the memo with them.
    """

    __slots__ = ("_valid", "_limit")

    def __init__(self, limit: int = 256) -> None:
        self._valid: set[bytes] = set()
        self._limit = limit

    def __call__(self, value: bytes) -> bool:
        if value in self._valid:
            return True
        if _HOST_SYNTAX.fullmatch(value) is None:
            return False
        if len(self._valid) < self._limit:
            self._valid.add(value)
        return True


VALID_HOST: Final = HostSyntax()


def host_line(host: bytes) -> bytes:
    """What follows the upstream request's target: the version and the node's own Host."""
    return b" HTTP/1.1\r\nHost: " + host + b"\r\n"


def forwarding_fields(fields: list[bytes], forwarded_for: bytes, prior_via: bytes, client_ip: bytes,
                      request_id: bytes, via: bytes, host: bytes = b"", https: bool = False,
                      client_node: bytes | None = None) -> bytes:
    """The upstream request after its Host line, to the end of the head: the client's
    end-to-end ``fields``, then pixring's. The request pixring sends is always HTTP/1.1,
    keep-alive, without a body.

    pixring's view of the connection: X-Forwarded-For extended with the peer's address;
    Forwarded (RFC 7239) and X-Real-IP saying only what pixring saw (the peer, and the
    listener's scheme), since a client's own are dropped; X-Forwarded-Proto. The Host line
    carries the node's own address (or a source's ``upstream_host``), so the client's Host
    goes on as ``X-Forwarded-Host`` (a client's own X-Forwarded-Host is dropped, as are the
    other fields pixring sets): a multi-tenant backend tells its tenants apart by it.
    ``client_node`` is ``forwarded_node(client_ip)``, which a connection can keep.
    """
    if client_node is None:
        client_node = forwarded_node(client_ip)
    # One %-literal of %s only: compiled, one allocation for the whole tail (a join of a
    # tuple unpacked from ``fields`` built a list and a tuple first, 4,000 instructions).
    # Two literals rather than one with an X-Forwarded-Host line of empty parts: the single
    # one of 15 parts measured 680 instructions a request more (request_path_bench, callgrind).
    joined = b"".join(fields)
    for_sep = b", " if forwarded_for else b""
    via_sep = b", " if prior_via else b""
    proto = b"https" if https else b"http"
    if host:
        return (b"%sX-Forwarded-For: %s%s%s\r\nX-Forwarded-Host: %s\r\nX-Forwarded-Proto: %s\r\n"
                b"Forwarded: for=%s;proto=%s\r\nX-Real-IP: %s\r\nVia: %s%s1.1 %s\r\nX-Request-Id: %s\r\n\r\n") % (
            joined, forwarded_for, for_sep, client_ip, host, proto, client_node, proto, client_ip,
            prior_via, via_sep, via, request_id)
    return (b"%sX-Forwarded-For: %s%s%s\r\nX-Forwarded-Proto: %s\r\n"
            b"Forwarded: for=%s;proto=%s\r\nX-Real-IP: %s\r\nVia: %s%s1.1 %s\r\nX-Request-Id: %s\r\n\r\n") % (
        joined, forwarded_for, for_sep, client_ip, proto, client_node, proto, client_ip,
        prior_via, via_sep, via, request_id)


_COLON: Final = ord(":")


def forwarded_node(client_ip: bytes) -> bytes:
    """RFC 7239 section 6: an IPv6 address is bracketed and quoted, an unknown peer is
    ``unknown``."""
    # The byte's value, not b":": CPython 3.11's ``bytes in bytes`` first tries its argument
    # as an integer, raising and formatting a TypeError on every request (ten times slower).
    if _COLON in client_ip:
        return b'"[' + client_ip + b']"'
    if not client_ip or client_ip == b"-":
        return b"unknown"
    return client_ip


def response_framing(status: int, head_request: bool, has_length: bool, client_http11: bool) -> Framing:
    if head_request or status < 200 or status in (204, 304):
        return Framing.NONE
    if has_length:
        return Framing.LENGTH
    return Framing.CHUNKED if client_http11 else Framing.CLOSE


def response_head(status: int, fields: list[bytes], prior_via: bytes, framing: Framing,
                  content_length: bytes | None, keep_alive: bool, client_http11: bool, extra: bytes,
                  via: bytes) -> bytes:
    """The response head pixring sends its client: the node's end-to-end ``fields``, Via,
    pixring's ``extra`` lines, then the framing.

    ``content_length`` is the node's value, passed on for LENGTH framing and for HEAD
    (where it tells the size of the body a GET would get).
    """
    if (content_length is not None and framing is Framing.LENGTH and keep_alive and client_http11
            and status == 200):
        # Nearly every answer: one %-literal of %s, compiled to one allocation for the whole
        # head (the general path's list, extended and joined, cost 2,700 instructions more a
        # request: loadtest.worker_instructions). The same bytes as the general path, which
        # a property test holds it to.
        return b"%s%sVia: %s%s1.1 %s\r\n%sContent-Length: %s\r\n\r\n" % (
            _OK_HTTP11, b"".join(fields), prior_via, b", " if prior_via else b"", via, extra, content_length)
    return _general_response_head(status, fields, prior_via, framing, content_length, keep_alive, client_http11,
                                  extra, via)


def _general_response_head(status: int, fields: list[bytes], prior_via: bytes, framing: Framing,
                           content_length: bytes | None, keep_alive: bool, client_http11: bool, extra: bytes,
                           via: bytes) -> bytes:
    own_via = b"1.1 " + via
    out = [_STATUS_LINES[client_http11].get(status) or _status_line(status, client_http11)]
    out += fields
    out += (b"Via: ", prior_via + b", " + own_via if prior_via else own_via, b"\r\n", extra)
    if content_length is not None and (framing is Framing.LENGTH or framing is Framing.NONE) \
            and status >= 200 and status != 204 and status != 304:
        out += (b"Content-Length: ", content_length, b"\r\n")
    elif framing is Framing.CHUNKED:
        out.append(b"Transfer-Encoding: chunked\r\n")
    if framing is Framing.CLOSE or not keep_alive:
        out.append(b"Connection: close\r\n")
    elif not client_http11:
        out.append(b"Connection: keep-alive\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def interim_head(status: int, fields: list[bytes]) -> bytes:
    """A node's 1xx answer as passed on: its end-to-end fields, no framing (it has no
    body). Only HTTP/1.1 clients get one (RFC 9110 section 15.2)."""
    return b"".join((_STATUS_LINES[True].get(status) or _status_line(status, True), *fields, b"\r\n"))


def _status_line(status: int, http11: bool) -> bytes:
    return b"%s %d %s\r\n" % (b"HTTP/1.1" if http11 else b"HTTP/1.0", status, _REASONS.get(status, b"Unknown"))


_STATUS_LINES: Final = {http11: {status: _status_line(status, http11) for status in _REASONS} for http11 in (False, True)}
_OK_HTTP11: Final = _status_line(200, True)


def reason_phrase(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def local_head(status: int, body_length: int, client_http11: bool, keep_alive: bool, request_id: bytes | None,
               extra: list[tuple[bytes, bytes]], node_line: bytes = b"") -> bytes:
    """The head of an answer pixring writes itself (an error, ``/healthz``): a JSON body
    that no cache may keep, the request's id, the node's line when a node failed it."""
    out = [
        _STATUS_LINES[client_http11].get(status) or _status_line(status, client_http11),
        b"Content-Type: application/json\r\nContent-Length: ", str(body_length).encode(), b"\r\n",
        b"Cache-Control: no-store\r\n",
    ]
    if request_id is not None:
        out += (b"X-Request-Id: ", request_id, b"\r\n")
    out.append(node_line)
    for name, value in extra:
        out += (name, b": ", value, b"\r\n")
    if not keep_alive:
        out.append(b"Connection: close\r\n")
    elif not client_http11:
        out.append(b"Connection: keep-alive\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def answer_rendered(fields: list[bytes], header: bytes) -> int:
    """What a node's answer says of its cache: 1 it rendered, 0 it did not, -1 it did not
    say. ``fields`` are its end-to-end fields in this module's layout (name, ``": "``,
    value, CRLF), ``header`` the cache-status header's name lowercased: the reference
    renderer's ``X-Render-Cache: miss``, or RFC 9211's ``Cache-Status: ...; fwd=miss``."""
    for i in range(0, len(fields) - 2, 4):
        if fields[i].lower() == header:
            # find, not ``in``: CPython 3.11 raises and clears a TypeError for ``in``
            return 1 if fields[i + 2].lower().find(b"miss") >= 0 else 0
    return -1
