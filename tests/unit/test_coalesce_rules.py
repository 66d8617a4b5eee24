"""Which requests may share one upstream request, and which answers may be shared."""

from __future__ import annotations

import pytest

from balancer.coalesce import CoalesceError, CoalescePolicy, shareable_head, variant


def fields(*pairs: tuple[bytes, bytes]) -> list[bytes]:
    out: list[bytes] = []
    for name, value in pairs:
        out += (name, b": ", value, b"\r\n")
    return out


def test_the_variant_is_accept_and_accept_encoding_whatever_their_order_among_other_fields():
    a = variant(b"GET", fields((b"Accept", b"image/webp"), (b"User-Agent", b"x"), (b"Accept-Encoding", b"gzip")))
    b = variant(b"GET", fields((b"accept-encoding", b"gzip"), (b"ACCEPT", b"image/webp"), (b"Referer", b"y")))
    assert a == b is not None
    assert variant(b"GET", fields((b"Accept", b"image/avif"))) != variant(b"GET", fields((b"Accept", b"image/webp")))
    # Accept: gzip is not Accept-Encoding: gzip.
    assert variant(b"GET", fields((b"Accept", b"gzip"))) != variant(b"GET", fields((b"Accept-Encoding", b"gzip")))
    assert variant(b"GET", []) == variant(b"GET", fields((b"User-Agent", b"z")))


def test_repeated_variant_fields_are_all_compared():
    one = variant(b"GET", fields((b"Accept", b"image/webp"), (b"Accept", b"image/avif")))
    assert one != variant(b"GET", fields((b"Accept", b"image/webp")))


@pytest.mark.parametrize("name", [b"Authorization", b"Cookie", b"Range", b"If-None-Match", b"If-Modified-Since",
                                  b"If-Match", b"If-Unmodified-Since", b"If-Range", b"cookie"])
def test_a_request_whose_answer_may_be_its_own_has_no_variant(name):
    assert variant(b"GET", fields((b"Accept", b"*/*"), (name, b"x"))) is None


@pytest.mark.parametrize("method", [b"HEAD", b"POST", b"OPTIONS"])
def test_only_a_get_coalesces(method):
    assert variant(method, []) is None


@pytest.mark.parametrize("status, pairs, shared", [
    (200, [(b"Cache-Control", b"public, max-age=31536000"), (b"Content-Type", b"image/webp")], True),
    (404, [], True),
    (200, [(b"Vary", b"Accept, Accept-Encoding")], True),
    (200, [(b"Vary", b"accept")], True),
    (200, [(b"Set-Cookie", b"a=1")], False),
    (200, [(b"set-cookie", b"a=1")], False),
    (200, [(b"Cache-Control", b"max-age=60, private")], False),
    (200, [(b"Cache-Control", b"private=\"Set-Cookie\"")], False),
    (200, [(b"cache-control", b"No-Store")], False),
    (200, [(b"Vary", b"*")], False),
    (200, [(b"Vary", b"Accept, User-Agent")], False),
    (206, [], False),
    (304, [], False),
    (301, [], False),
    (500, [], False),
    (503, [(b"Retry-After", b"1")], False),
])
def test_which_answers_are_shared(status, pairs, shared):
    assert shareable_head(status, fields(*pairs)) is shared


@pytest.mark.parametrize("bad", [-1, 1.5, True, "8"])
def test_a_policy_with_a_bad_limit_names_it(bad):
    with pytest.raises(CoalesceError, match="max_body"):
        CoalescePolicy(max_body=bad)
