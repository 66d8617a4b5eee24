"""What crosses the proxy in each direction: header rules and message framing.

Pure functions over byte strings, so the front and the pool only move bytes. The
rules follow RFC 9110 section 7.6 (intermediaries): hop-by-hop fields
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

from enum import Enum
from http import HTTPStatus

__all__ = [
    "Framing",
    "HOP_BY_HOP",
    "client_response_head",
    "is_valid_request_id",
    "response_framing",
    "upstream_request_head",
]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Request fields pixring sets itself. A client-sent X-Forwarded-For is extended
# rather than replaced (as nginx's $proxy_add_x_forwarded_for does); the others are
# rewritten so a client cannot choose what the node believes about the connection.
_REWRITTEN_REQUEST = frozenset(
    {b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"via", b"x-request-id",
     b"content-length", b"expect"}
)
_REWRITTEN_RESPONSE = frozenset({b"content-length", b"via"})

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class Framing(Enum):
    NONE = "none"  # no body at all
    LENGTH = "length"  # Content-Length passed through
    CHUNKED = "chunked"  # re-chunked towards an HTTP/1.1 client
    CLOSE = "close"  # streamed, then the client connection is closed (HTTP/1.0 client)


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def is_valid_request_id(value: bytes) -> bool:
    """A client's X-Request-Id is kept only if it is short, visible ASCII: it ends up in logs."""
    return 0 < len(value) <= 128 and all(0x21 <= byte <= 0x7E for byte in value)


def upstream_request_head(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    host: bytes,
    client_ip: bytes,
    request_id: bytes,
    via: bytes,
) -> bytes:
    """The request pixring sends to a node: HTTP/1.1, keep-alive, no body."""
    named_by_connection = _connection_tokens(headers)
    out = [method, b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    forwarded_for = b""
    prior_via = b""
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named_by_connection:
            continue
        if lower in _REWRITTEN_REQUEST:
            if lower == b"x-forwarded-for":
                forwarded_for = forwarded_for + b", " + value if forwarded_for else value
            elif lower == b"via":
                prior_via = prior_via + b", " + value if prior_via else value
            continue
        out += (name, b": ", value, b"\r\n")
    forwarded_for = forwarded_for + b", " + client_ip if forwarded_for else client_ip
    own_via = b"1.1 " + via
    out += (
        b"X-Forwarded-For: ", forwarded_for, b"\r\n",
        b"X-Forwarded-Proto: http\r\n",
        b"Via: ", prior_via + b", " + own_via if prior_via else own_via, b"\r\n",
        b"X-Request-Id: ", request_id, b"\r\n\r\n",
    )
    return b"".join(out)


def response_framing(
    *, status: int, head_request: bool, has_length: bool, client_http11: bool
) -> Framing:
    if head_request or status < 200 or status in (204, 304):
        return Framing.NONE
    if has_length:
        return Framing.LENGTH
    return Framing.CHUNKED if client_http11 else Framing.CLOSE


def client_response_head(
    status: int,
    headers: list[tuple[bytes, bytes]],
    *,
    framing: Framing,
    content_length: bytes | None,
    keep_alive: bool,
    client_http11: bool,
    extra: list[tuple[bytes, bytes]],
    via: bytes,
) -> bytes:
    """The response head pixring sends to its client for a node's response.

    ``content_length`` is the node's value, passed on for LENGTH framing and for HEAD
    (where it tells the size of the body a GET would get).
    """
    named_by_connection = _connection_tokens(headers)
    version = b"HTTP/1.1 " if client_http11 else b"HTTP/1.0 "
    out = [version, str(status).encode(), b" ", _REASONS.get(status, b"Unknown"), b"\r\n"]
    prior_via = b""
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named_by_connection:
            continue
        if lower in _REWRITTEN_RESPONSE:
            if lower == b"via":
                prior_via = prior_via + b", " + value if prior_via else value
            continue
        out += (name, b": ", value, b"\r\n")
    own_via = b"1.1 " + via
    out += (b"Via: ", prior_via + b", " + own_via if prior_via else own_via, b"\r\n")
    for name, value in extra:
        out += (name, b": ", value, b"\r\n")
    if content_length is not None and framing in (Framing.LENGTH, Framing.NONE) and status not in (204, 304) and status >= 200:
        out += (b"Content-Length: ", content_length, b"\r\n")
    elif framing is Framing.CHUNKED:
        out.append(b"Transfer-Encoding: chunked\r\n")
    if framing is Framing.CLOSE or not keep_alive:
        out.append(b"Connection: close\r\n")
    elif not client_http11:
        out.append(b"Connection: keep-alive\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def reason_phrase(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")
