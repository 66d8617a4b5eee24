"""Header rules and framing (balancer/headers.py), RFC 9110 section 7.6 and RFC 9112 section 6."""

from balancer.headers import (
    Framing,
    client_response_head,
    is_valid_request_id,
    response_framing,
    upstream_request_head,
)


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    lines = head.split(b"\r\n")[1:]
    out = []
    for line in lines:
        if not line:
            break
        name, _, value = line.partition(b": ")
        out.append((name.lower(), value))
    return out


def test_upstream_head_sets_host_and_forwarding_fields_and_drops_hop_by_hop():
    head = upstream_request_head(
        b"GET",
        b"/a.jpg?w=1",
        [
            (b"Host", b"evil.example:80"),
            (b"Connection", b"keep-alive, X-Secret"),
            (b"X-Secret", b"1"),
            (b"Keep-Alive", b"timeout=5"),
            (b"TE", b"trailers"),
            (b"Accept", b"image/webp"),
            (b"If-None-Match", b'"abc"'),
            (b"X-Forwarded-For", b"10.0.0.1"),
            (b"X-Forwarded-Proto", b"https"),
            (b"Via", b"1.1 cdn"),
        ],
        host=b"127.0.0.1:9001",
        client_ip=b"192.0.2.7",
        request_id=b"rid-1",
        via=b"pixring",
    )
    assert head.startswith(b"GET /a.jpg?w=1 HTTP/1.1\r\n")
    assert head.endswith(b"\r\n\r\n")
    fields = _fields(head)
    names = [n for n, _ in fields]
    assert (b"host", b"127.0.0.1:9001") in fields
    assert names.count(b"host") == 1
    for dropped in (b"connection", b"x-secret", b"keep-alive", b"te"):
        assert dropped not in names
    assert (b"accept", b"image/webp") in fields
    assert (b"if-none-match", b'"abc"') in fields
    assert (b"x-forwarded-for", b"10.0.0.1, 192.0.2.7") in fields
    assert (b"x-forwarded-proto", b"http") in fields
    assert (b"via", b"1.1 cdn, 1.1 pixring") in fields
    assert (b"x-request-id", b"rid-1") in fields


def test_client_head_passes_end_to_end_fields_and_adds_ours():
    head = client_response_head(
        200,
        [
            (b"Content-Type", b"image/webp"),
            (b"Content-Length", b"1234"),
            (b"ETag", b'"e1"'),
            (b"Cache-Control", b"public, max-age=60"),
            (b"Vary", b"Accept"),
            (b"Connection", b"keep-alive"),
            (b"Keep-Alive", b"timeout=75"),
        ],
        framing=Framing.LENGTH,
        content_length=b"1234",
        keep_alive=True,
        client_http11=True,
        extra=[(b"X-Pixring-Node", b"r1")],
        via=b"pixring",
    )
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    fields = _fields(head)
    for kept in ((b"content-type", b"image/webp"), (b"etag", b'"e1"'), (b"vary", b"Accept"),
                 (b"cache-control", b"public, max-age=60"), (b"content-length", b"1234"),
                 (b"x-pixring-node", b"r1"), (b"via", b"1.1 pixring")):
        assert kept in fields
    names = [n for n, _ in fields]
    assert b"keep-alive" not in names and b"connection" not in names
    assert names.count(b"content-length") == 1


def test_unknown_length_is_rechunked_for_http11_and_closed_for_http10():
    assert response_framing(status=200, head_request=False, has_length=False, client_http11=True) is Framing.CHUNKED
    assert response_framing(status=200, head_request=False, has_length=False, client_http11=False) is Framing.CLOSE
    assert response_framing(status=200, head_request=False, has_length=True, client_http11=False) is Framing.LENGTH
    for status in (204, 304, 101):
        assert response_framing(status=status, head_request=False, has_length=True, client_http11=True) is Framing.NONE
    assert response_framing(status=200, head_request=True, has_length=True, client_http11=True) is Framing.NONE

    chunked = client_response_head(200, [(b"Transfer-Encoding", b"chunked")], framing=Framing.CHUNKED,
                                   content_length=None, keep_alive=True, client_http11=True, extra=[], via=b"p")
    assert _fields(chunked).count((b"transfer-encoding", b"chunked")) == 1
    closing = client_response_head(200, [], framing=Framing.CLOSE, content_length=None, keep_alive=True,
                                   client_http11=False, extra=[], via=b"p")
    assert closing.startswith(b"HTTP/1.0 200")
    assert (b"connection", b"close") in _fields(closing)


def test_head_response_keeps_the_length_of_the_body_a_get_would_get():
    head = client_response_head(200, [(b"Content-Length", b"99")], framing=Framing.NONE, content_length=b"99",
                                keep_alive=True, client_http11=True, extra=[], via=b"p")
    assert (b"content-length", b"99") in _fields(head)
    not_modified = client_response_head(304, [(b"Content-Length", b"99")], framing=Framing.NONE,
                                        content_length=b"99", keep_alive=True, client_http11=True, extra=[], via=b"p")
    assert b"content-length" not in [n for n, _ in _fields(not_modified)]


def test_http10_keep_alive_is_announced():
    head = client_response_head(200, [], framing=Framing.LENGTH, content_length=b"0", keep_alive=True,
                                client_http11=False, extra=[], via=b"p")
    assert (b"connection", b"keep-alive") in _fields(head)


def test_request_id_validation():
    assert is_valid_request_id(b"abc-123")
    assert not is_valid_request_id(b"")
    assert not is_valid_request_id(b"a b")
    assert not is_valid_request_id(b"x" * 129)
    assert not is_valid_request_id("é".encode())
