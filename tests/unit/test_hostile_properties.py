"""Property tests (hypothesis) of what hostile input meets first: normalization against a
plain statement of its rules, the renderer's parameter parser, and their agreement.

The normalizer does its work in passes over the whole target (``balancer/normalize.py``);
here each rule is restated the slow, obvious way (a Python step per byte, per escape, per
segment) and the two must agree on every input, refusals included.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer import normalize as fast
from balancer.normalize import NormalizeError, make_normalizer
from pixring import schema
from renderer.errors import BadParam
from renderer.params import spec_from_query

UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
ALLOWED = UNRESERVED | frozenset(b"!$&'()*+,;=:@/?%")


def slow_escapes(text: str) -> str:
    def canonical(match: re.Match[str]) -> str:
        code = int(match.group(1), 16)
        return chr(code) if code in UNRESERVED else f"%{code:02X}"

    return re.sub(r"%([0-9A-Fa-f]{2})", canonical, text)


def slow_target_text(raw: bytes) -> str:
    out = []
    for byte in raw:
        if byte <= 0x20 or byte == 0x7F:
            raise NormalizeError("control")
        if byte == 0x23:
            raise NormalizeError("fragment")
        out.append(chr(byte) if byte in ALLOWED else f"%{byte:02X}")
    text = "".join(out)
    if re.search(r"%(?![0-9A-Fa-f]{2})", text) or "%00" in text:
        raise NormalizeError("escape")
    return slow_escapes(text)


def slow_path(path: str) -> str:
    for digits in re.findall(r"%([0-9A-Fa-f]{2})", path):
        if int(digits, 16) < 0x20 or int(digits, 16) == 0x7F:
            raise NormalizeError("control")
    path = slow_escapes(path)
    segments = path.split("/")[1:]
    kept: list[str] = []
    trailing = False
    for index, segment in enumerate(segments):
        if segment == "..":
            if not kept:
                raise NormalizeError("climb")
            kept.pop()
        elif segment not in (".", ""):
            kept.append(segment)
            continue
        trailing = index == len(segments) - 1
    if not kept:
        return "/"
    return "/" + "/".join(kept) + ("/" if trailing else "")


def outcome(function, *args):  # type: ignore[no-untyped-def]
    try:
        return function(*args)
    except NormalizeError:
        return NormalizeError


TARGET_BYTES = st.one_of(
    st.binary(max_size=80),
    st.lists(st.sampled_from([b"/", b".", b"..", b"%", b"%2e", b"%2E", b"%41", b"%ff", b"%0a", b"%00", b"a", b"\xff",
                              b"\xc3\xa9", b"?", b"&", b"=", b"+", b"#", b" ", b"%2F", b"~", b"%7e", b"%25"]),
             max_size=30).map(b"".join),
)


@settings(max_examples=300, deadline=None)
@given(TARGET_BYTES)
def test_the_target_text_is_what_the_rules_say(raw):
    raw = b"/" + raw
    assert outcome(fast._target_text, raw) == outcome(slow_target_text, raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "%41", "%2F", "%0A"]), max_size=12))
def test_path_normalization_is_what_the_rules_say(segments):
    path = "/" + "/".join(segments)
    assert outcome(fast.normalize_path, path) == outcome(slow_path, path)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "+", "%41", "%2B", "%C3%A9", "%FF", "%e2%82", "w", "%3D"]), max_size=10))
def test_form_decoding_is_unquote(pieces):
    text = "".join(pieces)
    assert fast._form_decode(text) == unquote(text.replace("+", " "), errors="surrogateescape")


QUERY_PART = st.one_of(
    st.sampled_from(["w=100", "w=abc", "W=200", "width=300", "q=1000", "q=-5", "rot=720", "rot=-90", "blur=99999999",
                     "dpr=4.99999999", "dpr=2.625", "fm=png", "fm=jpeg", "auto=format", "auto=compress", "crop=top",
                     "bri=150", "sat=-300", "sharp=500", "w64=NDAw", "h=0.5", "fit=scale", "", "utm_source=x",
                     "%77=%31%30", "q=%31%30%30%30", "w+=1", "bg=fff", "bg=00ff0000"]),
    st.tuples(st.sampled_from(sorted(schema.PARAMS)), st.text(alphabet="0123456789.-,:abcf", max_size=8))
    .map(lambda pair: f"{pair[0]}={pair[1]}"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(QUERY_PART, max_size=8))
def test_the_renderer_renders_what_the_key_says(parts):
    """For any query the balancer routes, the renderer makes the same picture of the raw
    query and of the normalized one: equal keys can only mean equal renders, and the
    clamps are the same on both sides."""
    raw = "/a.jpg?" + "&".join(parts)
    try:
        route = make_normalizer(cache_size=0)(raw.encode())
    except NormalizeError:
        return
    raw_pairs = [tuple(fast._form_decode(side) for side in part.partition("=")[::2]) for part in parts if part]
    key_pairs = [tuple(part.partition("=")[::2]) for part in route.key.partition("?")[2].split("&") if part]
    try:
        from_raw = spec_from_query(raw_pairs)
    except BadParam:
        with pytest.raises(BadParam):
            spec_from_query(key_pairs)
        return
    assert spec_from_query(key_pairs).canonical() == from_raw.canonical()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=8))
def test_the_renderers_parser_refuses_only_with_a_400_naming_the_parameter(pairs):
    try:
        spec = spec_from_query(pairs)
    except BadParam as error:
        assert error.status == 400 and error.message
        assert error.param is None or error.param in schema.PARAMS
        return
    assert spec.canonical() == spec_from_query(pairs).canonical()  # deterministic
    assert 0 <= spec.q <= 100 and 0 <= spec.rot < 360 and 0 <= spec.blur <= 2000
    assert all(-100 <= getattr(spec, name) <= 100 for name in ("bri", "con", "exp", "gam", "sat"))


@pytest.mark.parametrize("same", ["q=1000", "q=2000", "q=100.0"])
def test_values_beyond_the_effective_range_share_the_clamped_key(same):
    normalize = make_normalizer(cache_size=0)
    assert normalize(b"/a.jpg?w=333&" + same.encode()).key == normalize(b"/a.jpg?w=333&q=100").key


@pytest.mark.parametrize("given, clamped", [
    ("rot=720", ""), ("rot=-90", "rot=270"), ("blur=99999999", "blur=2000"), ("dpr=4.99999999", "dpr=5"),
    ("bri=150", "bri=100"), ("sharp=500", "sharp=100"), ("q=-3", "q=0"),
])
def test_the_issues_examples_share_a_key_with_their_clamped_value(given, clamped):
    normalize = make_normalizer(cache_size=0)
    suffix = f"&{clamped}" if clamped else ""
    assert normalize(f"/a.jpg?w=10&{given}".encode()).key == normalize(f"/a.jpg?w=10{suffix}".encode()).key
