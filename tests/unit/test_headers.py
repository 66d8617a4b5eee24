"""Header rules and framing (balancer/headers.py), RFC 9110 section 7.6 and RFC 9112 section 6.

How whole requests and responses cross the proxy, field by field as the front and the
pool parse them, is checked against an independent statement of the rules in
``tests/integration/test_forwarded_heads.py``; this file checks the pieces.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.headers import (
    DROP,
    PASS,
    REQUEST_KINDS,
    RESPONSE_KINDS,
    Framing,
    HostSyntax,
    NameKinds,
    connection_tokens,
    forwarded_node,
    forwarding_fields,
    host_line,
    is_valid_request_id,
    response_framing,
    response_head,
    without_named,
)
from balancer.headers import _general_response_head


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    lines = head.split(b"\r\n")[1:]
    out = []
    for line in lines:
        if not line:
            break
        name, _, value = line.partition(b": ")
        out.append((name.lower(), value))
    return out


def _laid_out(*pairs: tuple[bytes, bytes]) -> list[bytes]:
    out: list[bytes] = []
    for name, value in pairs:
        out += (name, b": ", value, b"\r\n")
    return out


def test_every_spelling_of_a_hop_by_hop_name_is_dropped_and_others_pass():
    for kinds in (REQUEST_KINDS, RESPONSE_KINDS):
        for name in (b"Connection", b"connection", b"CONNECTION", b"cOnNeCtIoN", b"Keep-Alive", b"kEEP-aLIVE",
                     b"TE", b"Trailer", b"Transfer-Encoding", b"Upgrade", b"Proxy-Authorization"):
            kind = kinds.exact.get(name)
            assert (kinds(name) if kind is None else kind) != PASS, name
        for name in (b"Accept", b"X-Custom", b"x-CUSTOM-2", b"ETag"):
            kind = kinds.exact.get(name)
            assert (kinds(name) if kind is None else kind) == PASS, name


def test_the_spelling_memo_is_bounded():
    kinds = NameKinds({b"connection": DROP}, limit=64)
    base = len(kinds.exact)
    for i in range(1000):
        assert kinds(b"X-Invented-%d" % i) == PASS
    assert len(kinds.exact) == max(base, 64)
    assert kinds(b"CoNNection") == DROP  # past the bound, still classified (lowercased each time)


def test_upstream_head_sets_host_and_forwarding_fields():
    head = b"GET /a.jpg?w=1" + host_line(b"127.0.0.1:9001") + forwarding_fields(
        _laid_out((b"Accept", b"image/webp"), (b"If-None-Match", b'"abc"')),
        b"10.0.0.1", b"1.1 cdn", b"192.0.2.7", b"rid-1", b"pixring")
    assert head.startswith(b"GET /a.jpg?w=1 HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert _fields(head) == [
        (b"host", b"127.0.0.1:9001"),
        (b"accept", b"image/webp"),
        (b"if-none-match", b'"abc"'),
        (b"x-forwarded-for", b"10.0.0.1, 192.0.2.7"),
        (b"x-forwarded-proto", b"http"),
        (b"forwarded", b"for=192.0.2.7;proto=http"),
        (b"x-real-ip", b"192.0.2.7"),
        (b"via", b"1.1 cdn, 1.1 pixring"),
        (b"x-request-id", b"rid-1"),
    ]
    bare = forwarding_fields([], b"", b"", b"192.0.2.7", b"rid-2", b"pixring")
    assert b"X-Forwarded-For: 192.0.2.7\r\n" in bare and b"Via: 1.1 pixring\r\n" in bare


def test_connection_tokens_and_the_fields_they_name():
    assert connection_tokens(b"keep-alive") == frozenset()
    assert connection_tokens(b"Keep-Alive, X-Secret ,close") == {b"x-secret"}
    fields = _laid_out((b"X-Secret", b"1"), (b"Accept", b"*/*"), (b"x-secret", b"2"), (b"X-Other", b"3"))
    assert without_named(fields, frozenset({b"x-secret"})) == _laid_out((b"Accept", b"*/*"), (b"X-Other", b"3"))


def test_client_head_passes_end_to_end_fields_and_adds_ours():
    head = response_head(
        200,
        _laid_out((b"Content-Type", b"image/webp"), (b"ETag", b'"e1"'), (b"Cache-Control", b"public, max-age=60"),
                  (b"Vary", b"Accept")),
        b"", Framing.LENGTH, b"1234", True, True, b"X-Pixring-Node: r1\r\n", b"pixring",
    )
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    fields = _fields(head)
    for kept in ((b"content-type", b"image/webp"), (b"etag", b'"e1"'), (b"vary", b"Accept"),
                 (b"cache-control", b"public, max-age=60"), (b"content-length", b"1234"),
                 (b"x-pixring-node", b"r1"), (b"via", b"1.1 pixring")):
        assert kept in fields
    names = [n for n, _ in fields]
    assert b"connection" not in names
    assert names.count(b"content-length") == 1


_LINE = st.builds(lambda name, value: b"%s: %s\r\n" % (name, value),
                  st.sampled_from([b"Content-Type", b"ETag", b"Vary", b"X-Render-Cache", b"Set-Cookie"]),
                  st.binary(max_size=12).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")))


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from([200, 200, 201, 204, 206, 304, 404, 503, 599]), fields=st.lists(_LINE, max_size=5),
       prior_via=st.sampled_from([b"", b"1.1 cdn", b"1.0 a, 1.1 b"]), framing=st.sampled_from(list(Framing)),
       content_length=st.sampled_from([None, b"0", b"1234"]), keep_alive=st.booleans(), http11=st.booleans(),
       extra=st.sampled_from([b"", b"X-Pixring-Node: r1\r\n"]), via=st.sampled_from([b"pixring", b"edge-7"]))
def test_the_head_of_the_usual_answer_is_the_bytes_of_the_general_rules(
        status, fields, prior_via, framing, content_length, keep_alive, http11, extra, via):
    # response_head builds a 200 with a length for a keep-alive HTTP/1.1 client in one
    # literal: whatever the inputs, it must say what the general rules say.
    assert response_head(status, fields, prior_via, framing, content_length, keep_alive, http11, extra, via) == \
        _general_response_head(status, fields, prior_via, framing, content_length, keep_alive, http11, extra, via)


def test_the_usual_answer_head_in_full():
    head = response_head(200, [b"Content-Type: image/webp\r\n"], b"1.1 cdn", Framing.LENGTH, b"42", True, True,
                         b"X-Pixring-Node: r1\r\n", b"pixring")
    assert head == (b"HTTP/1.1 200 OK\r\nContent-Type: image/webp\r\nVia: 1.1 cdn, 1.1 pixring\r\n"
                    b"X-Pixring-Node: r1\r\nContent-Length: 42\r\n\r\n")


def test_unknown_length_is_rechunked_for_http11_and_closed_for_http10():
    assert response_framing(status=200, head_request=False, has_length=False, client_http11=True) is Framing.CHUNKED
    assert response_framing(status=200, head_request=False, has_length=False, client_http11=False) is Framing.CLOSE
    assert response_framing(status=200, head_request=False, has_length=True, client_http11=False) is Framing.LENGTH
    for status in (204, 304, 101):
        assert response_framing(status=status, head_request=False, has_length=True, client_http11=True) is Framing.NONE
    assert response_framing(status=200, head_request=True, has_length=True, client_http11=True) is Framing.NONE

    chunked = response_head(200, [], b"", Framing.CHUNKED, None, True, True, b"", b"p")
    assert _fields(chunked).count((b"transfer-encoding", b"chunked")) == 1
    closing = response_head(200, [], b"", Framing.CLOSE, None, True, False, b"", b"p")
    assert closing.startswith(b"HTTP/1.0 200")
    assert (b"connection", b"close") in _fields(closing)


def test_head_response_keeps_the_length_of_the_body_a_get_would_get():
    head = response_head(200, [], b"", Framing.NONE, b"99", True, True, b"", b"p")
    assert (b"content-length", b"99") in _fields(head)
    not_modified = response_head(304, [], b"", Framing.NONE, b"99", True, True, b"", b"p")
    assert b"content-length" not in [n for n, _ in _fields(not_modified)]


def test_http10_keep_alive_is_announced_and_unknown_statuses_get_a_line():
    head = response_head(200, [], b"", Framing.LENGTH, b"0", True, False, b"", b"p")
    assert (b"connection", b"keep-alive") in _fields(head)
    assert response_head(599, [], b"", Framing.LENGTH, b"0", True, True, b"", b"p").startswith(b"HTTP/1.1 599 Unknown\r\n")


def test_request_id_validation():
    assert is_valid_request_id(b"abc-123")
    assert not is_valid_request_id(b"")
    assert not is_valid_request_id(b"a b")
    assert not is_valid_request_id(b"x" * 129)
    assert not is_valid_request_id("é".encode())
    assert not is_valid_request_id(b'a"b') and not is_valid_request_id(b"a\\b")  # logged unescaped


@pytest.mark.parametrize("value, valid", [
    (b"img.example.com", True), (b"img.example.com:8080", True), (b"127.0.0.1", True), (b"[::1]:443", True),
    (b"[v1.fe80::a+en1]", True), (b"", True), (b"a,b", True), (b"caf%C3%A9.example", True), (b"host:", True),
    (b"a b", False), (b"a/b", False), (b"user@host", False), (b"x:abc", False), (b"[::1", False),
    (b"::1", False), (b"%zz", False), (b"%4", False), (b"a\x00b", False), (b"h\xc3\xa9", False), (b"a:1:2", False),
])
def test_host_syntax_follows_rfc_3986_uri_host_and_port(value, valid):
    assert HostSyntax()(value) is valid


def test_host_syntax_remembers_a_bounded_number_of_valid_values_only():
    check = HostSyntax(limit=2)
    for value in (b"a", b"b", b"c", b"a b", b"a b"):
        check(value)
    assert check._valid == {b"a", b"b"}  # c found valid but past the limit; the invalid one never kept
    assert check(b"c") and not check(b"a b")  # and still answered right


def test_every_proxy_authentication_field_stays_with_its_hop():
    """RFC 9110 section 11.7: Proxy-Authenticate, Proxy-Authorization and
    Proxy-Authentication-Info are for the proxy on that hop, not for the next one."""
    for name in (b"Proxy-Authenticate", b"Proxy-Authorization", b"Proxy-Authentication-Info"):
        assert RESPONSE_KINDS(name) == DROP and REQUEST_KINDS(name) == DROP


def _kind(name: bytes) -> int:
    kind = REQUEST_KINDS.exact.get(name)
    return REQUEST_KINDS(name) if kind is None else kind


@pytest.mark.parametrize("name", [
    b"Forwarded", b"FORWARDED", b"X-Real-IP", b"x-real-ip", b"X-Forwarded-Port", b"X-Forwarded-Server",
    b"x-forwarded-prefix", b"X-Forwarded-Ssl", b"X-Forwarded-Host", b"X-Forwarded-Proto", b"X-Pixring-Node",
    b"x-pixring-anything", b"X-PIXRING-CACHE",
])
def test_a_clients_forwarding_fields_never_reach_a_node(name):
    assert _kind(name) != PASS


@pytest.mark.parametrize("name", [b"X-Forwarded", b"X-Pixringed", b"X-Real", b"Forwarded-By", b"X-Custom"])
def test_names_that_only_look_like_forwarding_fields_pass(name):
    assert _kind(name) == PASS


def test_pixrings_own_view_of_the_connection_is_sent():
    head = b"GET / HTTP/1.1\r\n" + forwarding_fields(
        _laid_out((b"Accept", b"*/*")), b"203.0.113.9", b"", b"198.51.100.4", b"rid", b"pixring")
    fields = _fields(head)
    assert (b"x-forwarded-for", b"203.0.113.9, 198.51.100.4") in fields  # extended (nginx's rule)
    assert (b"forwarded", b"for=198.51.100.4;proto=http") in fields  # what pixring saw, only
    assert (b"x-real-ip", b"198.51.100.4") in fields
    assert [name for name, _ in fields].count(b"forwarded") == 1


@pytest.mark.parametrize("ip, node", [
    (b"192.0.2.1", b"192.0.2.1"), (b"2001:db8::1", b'"[2001:db8::1]"'), (b"-", b"unknown"), (b"", b"unknown"),
])
def test_forwarded_node_syntax(ip, node):
    assert forwarded_node(ip) == node
