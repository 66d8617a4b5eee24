"""balancer.normalize: equivalent URLs share a key, different renders never do, bad targets 400."""

from __future__ import annotations

import base64
import os
import random
import re
from decimal import Decimal
from urllib.parse import quote, unquote_plus

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from balancer.normalize import (
    DEFAULT_DENYLIST,
    NormalizeError,
    Route,
    make_normalizer,
    normalize_path,
)
from pixring import schema
from pixring.schema import PARAMS
from pixring.wire import MAX_TARGET_LENGTH
from tests.unit.test_schema import VALUE_TEXT

PROPERTY = settings(deadline=None, max_examples=int(os.environ.get("PIXRING_HYPOTHESIS_EXAMPLES", 300)))

imgix = make_normalizer("imgix")
imgix_uncached = make_normalizer("imgix", cache_size=0)
generic = make_normalizer("generic")


def key(target: str | bytes) -> str:
    return imgix(target.encode() if isinstance(target, str) else target).key


# ---------------------------------------------------------------------------- examples

@pytest.mark.parametrize("target, expected", [
    ("/photos/cat.jpg?W=400.0&fm=jpeg&utm_source=x", "/photos/cat.jpg?fm=jpg&w=400"),
    ("/photos/cat.jpg?w=400&h=300&fit=crop&fm=webp", "/photos/cat.jpg?fit=crop&fm=webp&h=300&w=400"),
    ("/photos/cat.jpg?fm=webp&fit=crop&h=300&w=400", "/photos/cat.jpg?fit=crop&fm=webp&h=300&w=400"),
    ("/photos/cat.jpg?width=400&height=300&f=crop", "/photos/cat.jpg?fit=crop&h=300&w=400"),
    ("/photos/cat.jpg?w64=NDAw", "/photos/cat.jpg?w=400"),
    ("/photos/cat.jpg?crop=top,left&fit=crop", "/photos/cat.jpg?crop=left,top&fit=crop"),
    ("/photos/cat.jpg?crop=left%2Ctop&fit=crop", "/photos/cat.jpg?crop=left,top&fit=crop"),
    ("/photos/cat.jpg?bg=0fff&dpr=1.0&fit=clip&q=75&rot=0&w=10", "/photos/cat.jpg?w=10"),
    ("/photos/cat.jpg?bg=fff&w=10", "/photos/cat.jpg?bg=ffffff&w=10"),
    ("/photos/cat.jpg?bg=ff0000&w=10", "/photos/cat.jpg?bg=ff0000&w=10"),
    ("/photos/cat.jpg?bg=red&w=10", "/photos/cat.jpg?bg=ff0000&w=10"),
    ("/photos/cat.jpg?auto=format&auto=compress&q=75", "/photos/cat.jpg?auto=compress,format&q=75"),
    ("/photos/cat.jpg?dpr=1.50", "/photos/cat.jpg?dpr=1.5"),
    ("/photos/cat.jpg?txt=hello&mark=logo.png&s=abc", "/photos/cat.jpg?mark=logo.png&txt=hello"),
    ("/a.jpg?t=Hi+there%21&utm_source=x&cb=123", "/a.jpg?txt=Hi%20there!"),
    ("/a.jpg?txt=a%26b%3Dc%2B%23&txtclr=F00", "/a.jpg?txt=a%26b%3Dc%2B%23&txt-color=ff0000"),
    ("/a.jpg?txt=%E2%9C%93&expires=1700000000&nr=20&colors=6", "/a.jpg?txt=%E2%9C%93"),
    ("/photos/cat.jpg?", "/photos/cat.jpg"),
    ("/photos/cat.jpg?&&w=10&&", "/photos/cat.jpg?w=10"),
    ("/photos/cat.jpg?w=", "/photos/cat.jpg"),
    ("/photos//./a/../cat.jpg", "/photos/cat.jpg"),
    ("/photos/%63at.jpg", "/photos/cat.jpg"),
    ("/photos/a%2fb.jpg", "/photos/a%2Fb.jpg"),
    ("/photos/%2e%2E/cat.jpg", "/cat.jpg"),
    ("/photos/%e2%82%ac.jpg", "/photos/%E2%82%AC.jpg"),
    ("/photos/a%20b.jpg", "/photos/a%20b.jpg"),
    ("/photos/", "/photos/"),
    ("/", "/"),
])
def test_key_examples(target, expected):
    route = imgix(target.encode())
    assert route == Route(expected, expected.encode())


def test_raw_non_ascii_bytes_are_percent_encoded_like_a_browser_would():
    assert key(b"/caf\xc3\xa9.jpg?w=10") == key(b"/caf%C3%A9.jpg?w=10") == "/caf%C3%A9.jpg?w=10"
    assert key(b"/a{b}|c.jpg") == "/a%7Bb%7D%7Cc.jpg"
    assert key(b"/a\\..\\b.jpg") == "/a%5C..%5Cb.jpg"  # a backslash is data, never a separator


@pytest.mark.parametrize("different", [
    ("/a.jpg?w=400", "/a.jpg?w=0.5"),
    ("/a.jpg?w=1", "/a.jpg?w=1.0"),  # pixels (clamped to 2) vs the whole source width
    ("/a.jpg?w=400", "/a.jpg?w=401"),
    ("/a.jpg?w=400", "/a.jpg?h=400"),
    ("/a.jpg?fp-x=0.5&crop=focalpoint", "/a.jpg?fp-x=0.51&crop=focalpoint"),
    ("/a.jpg?auto=compress", "/a.jpg?auto=compress&q=75"),  # q defaults to 45 under compress
    ("/a.jpg?auto=compress", "/a.jpg?auto=format"),
    ("/a.jpg?bg=fff", "/a.jpg?bg=0fff"),  # ARGB: fully transparent white
    ("/a.jpg?bg=fff", "/a.jpg"),  # imgix's default is transparent white, 0fff
    ("/a.jpg?bg=00000000", "/a.jpg?bg=00ffffff"),
    ("/a.jpg?crop=top", "/a.jpg?crop=bottom"),
    ("/a.jpg?ar=16:9", "/a.jpg?ar=9:16"),
    ("/a.jpg?rect=0,0,10,20", "/a.jpg?rect=0,0,20,10"),
    ("/a.jpg?orient=1", "/a.jpg"),  # overriding Exif with 1 differs from honouring it
    ("/a.jpg?fm=jpg", "/a.jpg?fm=pjpg"),
    ("/a.jpg?fm=jpg", "/a.jpg"),
    ("/a.jpg?flip=h", "/a.jpg?flip=hv"),
    ("/a.jpg", "/A.jpg"),
    ("/a.jpg", "/a.jpg/"),
    ("/a%2Fb.jpg", "/a/b.jpg"),
    ("/a%20b.jpg", "/a+b.jpg"),
])
def test_urls_that_could_render_differently_get_different_keys(different):
    first, second = different
    assert key(first) != key(second)


# ---------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("absolute, origin", [
    (b"http://pix.example/a.jpg?h=10&w=20", b"/a.jpg?h=10&w=20"),
    (b"HTTPS://pix.example:8443/a.jpg?W=20&h=10", b"/a.jpg?W=20&h=10"),
    (b"http://[::1]:8080/a/../b.jpg", b"/a/../b.jpg"),
    (b"http://pix.example?w=20", b"/?w=20"),
    (b"http://pix.example", b"/"),
])
def test_an_absolute_form_target_routes_as_its_path_and_query(absolute, origin):
    for normalize in (imgix, generic):
        assert normalize(absolute) == normalize(origin)


@pytest.mark.parametrize("target", [
    b"evil.example:443", b"*", b"", b"a.jpg", b"?w=10", b" /a.jpg",
    b"ftp://evil.example/a.jpg", b"http:/a.jpg", b"http://user:pw@evil.example/a.jpg", b"http:///a.jpg",
    b"http://evil example/a.jpg", b"http://evil.example/a.jpg#x",
])
def test_anything_but_origin_or_absolute_form_is_refused(target):
    with pytest.raises(NormalizeError) as caught:
        imgix(target)
    assert caught.value.status == 400
    assert caught.value.reason


@pytest.mark.parametrize("target, words", [
    (b"/../etc/passwd", "root"),
    (b"/a/../../etc/passwd", "root"),
    (b"/a/%2e%2e/%2e%2e/x", "root"),
    (b"/a/%2E%2E/%2e./x", "root"),
    (b"/a%00.jpg", "NUL"),
    (b"/a.jpg?x=%00", "NUL"),
    (b"/a%0a.jpg", "control"),
    (b"/a\x00.jpg", "control"),
    (b"/a\r\n.jpg", "control"),
    (b"/a\x7f.jpg", "control"),
    (b"/a b.jpg", "space"),
    (b"/a.jpg#frag", "fragment"),
    (b"/a%zz.jpg", "percent-escape"),
    (b"/a.jpg?w=%4", "percent-escape"),
    (b"/a.jpg?w=abc", "'w'"),
    (b"/a.jpg?width=abc", "'w'"),
    (b"/a.jpg?fm=bmp", "'fm'"),
    (b"/a.jpg?w64=!!", "'w'"),
])
def test_bad_targets_are_400_naming_the_problem(target, words):
    with pytest.raises(NormalizeError) as caught:
        imgix(target)
    assert caught.value.status == 400
    assert words in caught.value.reason
    assert caught.value.reason.isascii()


def test_a_bad_parameter_is_named_on_the_error():
    with pytest.raises(NormalizeError) as caught:
        imgix(b"/a.jpg?F=stretch")
    assert caught.value.param == "fit"


def test_too_long_targets_are_414():
    with pytest.raises(NormalizeError) as caught:
        imgix(b"/" + b"a" * MAX_TARGET_LENGTH)
    assert caught.value.status == 414


def test_the_generic_profile_refuses_the_same_targets():
    for target in (b"evil:80", b"http://u@evil/", b"/../x", b"/a%00", b"/a\nb"):
        with pytest.raises(NormalizeError):
            generic(target)


def test_configuration_errors():
    with pytest.raises(ValueError, match="profile"):
        make_normalizer("nginx")
    with pytest.raises(ValueError, match="cache_size"):
        make_normalizer(cache_size=-1)
    with pytest.raises(ValueError, match="denylist"):
        make_normalizer("generic", denylist=["ut*m"])
    with pytest.raises(ValueError, match="denylist"):
        make_normalizer("generic", denylist=[""])


# ---------------------------------------------------------------------------- paths

@pytest.mark.parametrize("path, expected", [
    ("/a/b", "/a/b"), ("/a//b", "/a/b"), ("/a/./b", "/a/b"), ("/a/b/.", "/a/b/"),
    ("/a/b/..", "/a/"), ("/a/b/../", "/a/"), ("/a/..", "/"), ("//", "/"), ("/.", "/"),
    ("/a/.hidden", "/a/.hidden"), ("/a/...", "/a/..."), ("/a/..b", "/a/..b"),
    ("/%7euser/%41", "/~user/A"), ("/%2F..", "/%2F.."), ("/a%2fb", "/a%2Fb"),
])
def test_normalize_path(path, expected):
    assert normalize_path(path) == expected


# ---------------------------------------------------------------------------- strategies

SEGMENT = st.text("abcXYZ019-._~!$'()*,;=:@", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
PATHS = st.lists(SEGMENT, min_size=1, max_size=4).map(lambda segments: "/" + "/".join(segments))
JUNK_NAMES = ["utm_source", "utm_campaign", "fbclid", "gclid", "_ga", "cb", "v", "s", "ixlib", "foo"]
assert not any(schema.canonical_name(name) for name in JUNK_NAMES)
DEFAULT_TEXTS = {
    "dpr": ["1", "1.0", "1.00"], "fit": ["clip", "CLIP"], "fp-x": ["0.5", ".50"], "fp-y": ["0.5"],
    "lossless": ["0", "false"], "rot": ["0", "0.0", "-0"], "bg": ["0fff", "0FFF", "00ffffff"],
    "blur": ["0"], "sharp": ["0.0"], "bri": ["0"], "con": ["0"], "exp": ["0"], "gam": ["0"],
    "sat": ["0"], "q": ["75", "75.0"],
}
# The rest of the catalogue's defaults, spelled canonically (decoded: they go through the
# same escaping as every other value below).
for _name, _param in PARAMS.items():
    if _param.default is not None and _name not in DEFAULT_TEXTS:
        DEFAULT_TEXTS[_name] = [unquote_plus(schema.format_value(_name, _param.default))]
assert set(DEFAULT_TEXTS) == {name for name, p in PARAMS.items() if p.default is not None}

PARAM_TEXTS = st.dictionaries(st.sampled_from(sorted(PARAMS)), st.just(None), max_size=6).flatmap(
    lambda chosen: st.fixed_dictionaries({name: VALUE_TEXT[name] for name in chosen}))


def url(path: str, pairs: list[tuple[str, str]]) -> str:
    """A URL of decoded name/value pairs: each value escaped where a query needs it."""
    return path + ("?" + "&".join(f"{n}={quote(v, safe=QUERY_SAFE)}" for n, v in pairs) if pairs else "")


# Characters a query value may carry unescaped (no &, =, +, #, %, space or non-ASCII).
QUERY_SAFE = "-._~!$'()*,;:@/"


def valid(params: dict[str, str]) -> bool:
    try:
        schema.parse_query(params.items())
    except schema.ParamError:
        return False
    return True


UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def encode_some(text: str, rng: random.Random, only_unreserved: bool = False, value: bool = False) -> str:
    """Percent-encode some characters, with random hex case.

    In a path only unreserved characters may be encoded without changing the URL
    (RFC 3986 section 2.2); query values are form-decoded, so any character may be.
    """
    out = []
    for char in text:
        must = value and not (char.isascii() and (char.isalnum() or char in QUERY_SAFE))
        if must or (rng.random() < 0.2 and (char in UNRESERVED or not only_unreserved)):
            escape = "".join("%{:02X}".format(byte) for byte in char.encode("utf-8"))
            out.append(escape.lower() if rng.random() < 0.5 else escape)
        else:
            out.append(char)
    return "".join(out)


def respell_number(name: str, text: str) -> str:
    if "." in text:
        return text + "0"
    if PARAMS[name].kind == schema.DIMENSION and int(text) in (0, 1):
        return "0" + text if not text.startswith("-") else text  # "1.0" would be a fraction
    return text + ".0"


def respell_value(name: str, text: str, rng: random.Random) -> str:
    param = PARAMS[name]
    kind = param.kind
    if kind in (schema.INTEGER, schema.NUMBER, schema.UNIT_SCALAR, schema.DIMENSION):
        if name == "orient":
            return {"6": "90", "3": "180", "8": "270"}.get(text, text)
        return respell_number(name, text)
    if kind == schema.ENUM:
        text = {"jpg": "jpeg"}.get(text, text)
        return text.upper() if rng.random() < 0.5 else text
    if kind == schema.LIST:
        items = text.split(",")
        items.append(rng.choice(items))  # a repeat is dropped, ordered or not
        if not param.ordered:
            rng.shuffle(items)
        return ",".join(item.upper() if rng.random() < 0.3 else item for item in items)
    if kind == schema.RATIO:
        width, height = (Decimal(part) * 2 for part in text.split(":"))
        return f"{width}:{height}"
    if kind == schema.COLOR:
        if len(text) == 3 and all(c in "0123456789abcdefABCDEF" for c in text):
            return "".join(c * 2 for c in text)
        if len(text) == 6 and all(c in "0123456789abcdefABCDEF" for c in text):
            return "FF" + text
        return text.upper()
    if kind == schema.BOOLEAN:
        return {"1": "true", "0": "false", "true": "1", "false": "0"}.get(text.lower(), text)
    if kind == schema.RADIUS and "," not in text:
        return ",".join([text] * 4)  # four equal radii are one
    if kind == schema.FRAMES and text.isdigit():
        return f"{text}-{text}"  # an interval of one frame is that frame
    if kind == schema.TUPLE:
        return ",".join(respell_value_item(item, part, rng) for item, part in zip(param.items, text.split(",")))
    if kind == schema.RECT:
        return ",".join(respell_number("rect", part) if part not in ("0", "1") and part[:1].isdigit() else part
                        for part in text.split(","))
    return text


def respell_value_item(item: schema.Param, text: str, rng: random.Random) -> str:
    if item.kind == schema.COLOR:
        return text.upper()
    if item.kind == schema.INTEGER and text.lstrip("-").isdigit():
        return text + ".0"
    return text


@st.composite
def equivalent_urls(draw) -> tuple[str, str]:
    """(a plain URL, an equivalent URL written as differently as imgix allows)."""
    path = draw(PATHS)
    params = draw(PARAM_TEXTS.filter(valid))
    rng = random.Random(draw(st.integers(0, 2**32)))
    plain = url(path, sorted(params.items()))

    pairs: list[tuple[str, str]] = []
    for name, text in params.items():
        param = PARAMS[name]
        spelling = rng.choice((name, *param.aliases))
        spelling = "".join(c.upper() if rng.random() < 0.3 else c for c in spelling)
        value = respell_value(name, text, rng) if rng.random() < 0.7 else text
        if param.base64 and rng.random() < 0.25:
            spelling += "64"
            value = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
        pairs.append((spelling, value))
    rng.shuffle(pairs)
    # A scalar given twice: the last one counts, so an earlier different value is harmless.
    for name, text in params.items():
        if PARAMS[name].kind != schema.LIST and rng.random() < 0.2:
            other = draw(VALUE_TEXT[name])
            if valid({name: other}):
                index = next(i for i, (n, _) in enumerate(pairs) if schema.canonical_name(n.removesuffix("64")) == name)
                pairs.insert(rng.randint(0, index), (name, other))
    compressing = "compress" in schema.parse_query(params.items()).get("auto", ())
    for name, texts in DEFAULT_TEXTS.items():
        if name not in params and rng.random() < 0.2 and not (name == "q" and compressing):
            pairs.insert(rng.randint(0, len(pairs)), (name, rng.choice(texts)))
    for junk in JUNK_NAMES:
        if rng.random() < 0.2:
            pairs.insert(rng.randint(0, len(pairs)), (junk, "x1"))
    if rng.random() < 0.3:
        pairs.insert(rng.randint(0, len(pairs)), ("", ""))
    query = "&".join(f"{encode_some(n, rng)}={encode_some(v, rng, value=True).replace(',', rng.choice([',', '%2C']))}"
                     for n, v in pairs)

    segments = path.split("/")[1:]
    written = []
    for segment in segments:
        if rng.random() < 0.2:
            written.append(".")
        if rng.random() < 0.2:
            written += ["junk", ".."]
        if rng.random() < 0.1:
            written.append("")
        written.append(encode_some(segment, rng, only_unreserved=True))
    messy = "/" + "/".join(written) + ("?" + query if query or rng.random() < 0.5 else "")
    return plain, messy


# ---------------------------------------------------------------------------- properties

@PROPERTY
@given(equivalent_urls())
def test_equivalent_urls_share_a_key(case):
    plain, messy = case
    assert key(messy) == key(plain)


@PROPERTY
@given(equivalent_urls())
def test_the_key_is_a_fixed_point(case):
    _, messy = case
    route = imgix(messy.encode())
    assert route.upstream_target == route.key.encode("ascii")
    assert key(route.key) == route.key


@PROPERTY
@given(PATHS, PARAM_TEXTS.filter(valid), st.data())
def test_a_different_effective_value_gives_a_different_key(path, params, data):
    changed = dict(params)
    name = data.draw(st.sampled_from(sorted(PARAMS)))
    if data.draw(st.booleans()) and name in changed:
        del changed[name]
    else:
        changed[name] = data.draw(VALUE_TEXT[name].filter(lambda text: valid({name: text})))

    def effective(p: dict[str, str]) -> dict[str, object]:
        return schema.without_defaults(schema.parse_query(p.items()))

    same_render = effective(params) == effective(changed)
    event("same render" if same_render else "different render")
    assert (key(url(path, sorted(params.items()))) == key(url(path, sorted(changed.items())))) == same_render


@PROPERTY
@given(st.one_of(st.binary(max_size=120), st.binary(max_size=120).map(lambda b: b"/" + b),
                 st.text(max_size=80).map(lambda t: ("/" + t).encode("utf-8", "surrogatepass")),
                 st.lists(st.sampled_from(["/", "..", ".", "%2e", "%2E", "%", "%00", "%2F", "?", "&",
                                           "=", "w", "w64", "64", "auto", "#", "+", "a", "\xff",
                                           "fm", "jpeg", "0.5", ","]), max_size=20)
                 .map(lambda parts: ("/" + "".join(parts)).encode("utf-8"))))
def test_arbitrary_bytes_give_a_route_or_a_normalize_error(raw):
    for normalize in (imgix, generic):
        try:
            route = normalize(raw)
        except NormalizeError as error:
            assert error.status in (400, 414) and error.reason
            continue
        assert route.key.startswith("/") and route.key.isascii()
        if normalize is imgix:
            assert route.upstream_target == route.key.encode("ascii")
            assert key(route.key) == route.key
        else:
            assert route.upstream_target == raw


@PROPERTY
@given(st.lists(st.sampled_from(["/a.jpg?w=10", "/b.jpg?w=10", "/a.jpg?W=10.0", "/c.jpg?fm=jpeg",
                                 "/a.jpg?w=bad", "/../x"]), max_size=30))
def test_the_cache_never_changes_an_answer(targets):
    small = make_normalizer("imgix", cache_size=2)
    for target in targets:
        raw = target.encode()
        outcomes = []
        for normalize in (small, imgix_uncached, imgix):
            try:
                outcomes.append(normalize(raw))
            except NormalizeError as error:
                outcomes.append((error.status, error.reason))
        assert outcomes[0] == outcomes[1] == outcomes[2]


def test_non_bytes_buffers_are_accepted():
    assert imgix(bytearray(b"/a.jpg?w=10")) == imgix(memoryview(b"/a.jpg?w=10")) == imgix(b"/a.jpg?w=10")


# ---------------------------------------------------------------------------- generic profile

GENERIC_NAMES = st.sampled_from(["a", "b", "B", "w", "id", "utm_source", "UTM_Medium", "utm_", "fbclid",
                                 "gclid", "_ga", "mc_cid", "ref", "x%5Fy", "utm%5Fsource"])
GENERIC_VALUES = st.text("abc019-._~!$'()*+,;:@/?%", max_size=6).map(
    lambda v: v.replace("%", "%25"))


@PROPERTY
@given(PATHS, st.lists(st.tuples(GENERIC_NAMES, GENERIC_VALUES), max_size=8))
def test_generic_forwards_the_raw_target_and_drops_only_denylisted_names(path, pairs):
    raw = (path + "?" + "&".join(f"{n}={v}" for n, v in pairs)).encode()
    route = generic(raw)
    assert route.upstream_target == raw
    assert route.key.split("?")[0] == normalize_path(path)

    def denied(name: str) -> bool:
        folded = name.replace("%5F", "_").lower()
        return folded in {"fbclid", "gclid", "_ga", "mc_cid"} or folded.startswith("utm_")

    def unescape_unreserved(text: str) -> str:  # RFC 3986 section 6.2.2.2
        return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m[1], 16)) if chr(int(m[1], 16)) in UNRESERVED
                      else "%" + m[1].upper(), text)

    kept = [unescape_unreserved(f"{n}={v}") for n, v in pairs if not denied(n)]
    expected = sorted(kept, key=lambda part: part.partition("=")[0])  # stable: repeats keep order
    in_key = route.key.partition("?")[2]
    assert (in_key.split("&") if in_key else []) == expected


def test_generic_keeps_parameter_order_of_repeats_and_normalizes_escapes():
    route = generic(b"/a//b/./c.jpg?z=1&a=2&a=1&utm_source=x&FBCLID=y&c=%7e%2f&Gclid=1")
    assert route.key == "/a/b/c.jpg?a=2&a=1&c=~%2F&z=1"
    assert route.upstream_target == b"/a//b/./c.jpg?z=1&a=2&a=1&utm_source=x&FBCLID=y&c=%7e%2f&Gclid=1"


def test_generic_does_not_canonicalize_image_parameters():
    assert generic(b"/a.jpg?W=400.0&fm=jpeg").key == "/a.jpg?W=400.0&fm=jpeg"


def test_generic_denylist_is_configurable():
    custom = make_normalizer("generic", denylist=["session", "trk_*"])
    assert custom(b"/a?session=1&trk_x=2&utm_source=3&b=4").key == "/a?b=4&utm_source=3"
    assert "utm_*" in DEFAULT_DENYLIST


def test_generic_empty_query_after_dropping_has_no_question_mark():
    assert generic(b"/a.jpg?utm_source=x").key == "/a.jpg"
    assert generic(b"/a.jpg?").key == "/a.jpg"


def test_the_cores_import_no_io_framework():
    import subprocess
    import sys

    code = ("import sys, balancer.normalize, pixring.schema; "
            "bad = [m for m in ('asyncio', 'aiohttp', 'uvloop', 'renderer') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_target_length_limit_is_the_balancers_setting():
    short = make_normalizer("generic", max_target_length=32)
    assert short(b"/" + b"a" * 31).key == "/" + "a" * 31
    with pytest.raises(NormalizeError) as caught:
        short(b"/" + b"a" * 32)
    assert caught.value.status == 414 and "32 bytes" in caught.value.reason
