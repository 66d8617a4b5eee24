"""pixring.schema: the table against imgix's catalogue, parsing, canonical forms, round trips."""

from __future__ import annotations

import base64
import os
from decimal import Decimal
from urllib.parse import unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixring import schema
from pixring.schema import PARAMS, ParamError, canonical_name, format_value, parse_query, parse_value
from tests.reference import load_catalogue

# No deadline: the machines are shared and noisy; these are correctness properties.
PROPERTY = settings(deadline=None, max_examples=int(os.environ.get("PIXRING_HYPOTHESIS_EXAMPLES", 200)))


def parse(**given: str) -> dict[str, object]:
    return parse_query(list(given.items()))


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# ---------------------------------------------------------------------------- the catalogue

@pytest.fixture(scope="module")
def catalogue() -> dict:
    """imgix's catalogue: required in CI, a clearly named skip elsewhere (tests/reference.py)."""
    return load_catalogue()


def test_a_missing_catalogue_fails_in_ci_and_is_a_skip_naming_it_elsewhere(monkeypatch, tmp_path):
    from tests import reference

    monkeypatch.setattr(reference, "CATALOGUE", tmp_path / "imgix-parameters.json")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(BaseException) as in_ci:  # BaseException: a skip must not pass for a failure
        reference.load_catalogue()
    assert in_ci.type is pytest.fail.Exception and "CI must provide it" in str(in_ci.value)
    assert "FAIL" in reference.catalogue_status()
    monkeypatch.delenv("CI")
    with pytest.raises(BaseException) as elsewhere:
        reference.load_catalogue()
    assert elsewhere.type is pytest.skip.Exception and "imgix-parameters.json" in str(elsewhere.value)
    assert "SKIPPED" in reference.catalogue_status()


def expects(entry: dict, type_name: str) -> dict:
    return next(e for e in entry["expects"] if e.get("type") == type_name)


def test_the_schema_knows_every_parameter_of_the_catalogue_and_nothing_else(catalogue):
    assert set(PARAMS) == set(catalogue["parameters"])


def test_every_param_is_in_the_catalogue_with_its_doc_url_and_aliases(catalogue):
    for name, param in PARAMS.items():
        entry = catalogue["parameters"][name]
        # Two entries have no page; the table points them at the API's front page.
        assert param.doc_url == entry.get("url", "https://docs.imgix.com/apis/rendering"), name
        assert set(param.aliases) == set(entry.get("aliases", ())), name
        assert {a for a, target in catalogue["aliases"].items() if target == name} == set(param.aliases)
        assert param.base64 == (not entry.get("disallow_base64", False)), name


# Where the table deviates from the catalogue on purpose (the comments in pixring/schema.py).
DEFAULT_DEVIATIONS = {
    "bg",  # catalogue "fff"; the doc page: "The default is transparent white, 0FFF"
    "border-stroke-color",  # catalogue "0", not a colour: no default
    "bg-replace", "bg-replace-neg-prompt",  # catalogue false for a text prompt: no default
}


def test_defaults_are_the_catalogues_in_canonical_form(catalogue):
    for name, param in PARAMS.items():
        entry = catalogue["parameters"][name]
        published = entry.get("default", next((e["default"] for e in entry["expects"] if "default" in e), None))
        if name == "bg":
            assert published == "fff" and param.default == parse_value("bg", "0fff")
        elif name in DEFAULT_DEVIATIONS:
            assert published is not None and param.default is None, name
        elif published is None:
            assert param.default is None, name
        elif isinstance(published, bool):
            assert param.default is published, name
        else:
            assert param.default == parse_value(name, str(published)), name


RANGE_DEVIATIONS = {"usmrad": ("soft_maximum", 500), "hue": ("period", 360.0)}


def _ranges(first: dict) -> tuple:
    strict = first.get("strict_range", {})
    suggested = first.get("suggested_range", {})
    return strict.get("min"), strict.get("max"), suggested.get("min"), suggested.get("max")


def test_strict_and_suggested_ranges_match_the_catalogue(catalogue):
    numeric = (schema.INTEGER, schema.NUMBER, schema.UNIT_SCALAR, schema.DIMENSION, schema.RADIUS)
    for name, param in PARAMS.items():
        entry = catalogue["parameters"][name]
        first = entry["expects"][0]
        if param.kind in numeric and not param.choices:
            low, high, soft_low, soft_high = _ranges(first)
            if name in RANGE_DEVIATIONS:
                field, value = RANGE_DEVIATIONS[name]
                assert getattr(param, field) == value, name
                soft_high = param.soft_maximum if field == "soft_maximum" else soft_high
            assert (param.minimum, param.maximum) == (low, high), name
            assert (param.soft_minimum, param.soft_maximum) == (soft_low, soft_high), name
        if param.kind == schema.TUPLE:
            listed = [first[str(i)][0] for i in range(first["length"])]
            assert len(param.items) == len(listed), name
            for item, spec in zip(param.items, listed):
                if spec["type"] in ("integer", "unit_scalar"):
                    low, high, soft_low, soft_high = _ranges(spec)
                    assert (item.minimum, item.maximum) == (low, high), (name, item.name)
                    if name != "border":  # a border's width takes 0 for none (see the table)
                        assert (item.soft_minimum, item.soft_maximum) == (soft_low, soft_high), item.name


def test_choices_are_the_catalogues_possible_values(catalogue):
    for name, param in PARAMS.items():
        entry = catalogue["parameters"][name]
        possible = next((e["possible_values"] for e in entry["expects"] if "possible_values" in e), None)
        if param.kind in (schema.ENUM, schema.LIST, schema.ENUM_OR_URL, schema.INTEGER_OR_ENUM):
            assert param.choices == frozenset(possible), name
            assert param.renderable is None or param.renderable <= param.choices, name
        elif name == "orient":
            # the degree forms are accepted as aliases of their Exif values
            assert param.choices | set(param.value_aliases) == set(possible)
        elif param.choices is not None:
            assert param.choices == frozenset(possible), name


def test_colour_keywords_are_the_catalogues_and_match_css(catalogue):
    from PIL import ImageColor

    keywords = set(catalogue["colorKeywordValues"])
    assert set(schema._CSS_COLORS) | schema._BRAND_COLORS == keywords
    for keyword, hex_value in schema._CSS_COLORS.items():
        assert schema.rgba(hex_value)[:3] == ImageColor.getrgb(keyword), keyword


def test_kinds_agree_with_the_catalogue_types(catalogue):
    expected_types = {
        schema.DIMENSION: {"integer", "unit_scalar"}, schema.INTEGER: {"integer"},
        schema.NUMBER: {"number"}, schema.UNIT_SCALAR: {"unit_scalar"}, schema.RATIO: {"ratio"},
        schema.ENUM: {"string"}, schema.LIST: {"list"}, schema.RECT: {"list"}, schema.TUPLE: {"list"},
        schema.COLOR: {"hex_color", "color_keyword"}, schema.BOOLEAN: {"boolean"},
        schema.STRING: {"string"}, schema.FONT: {"font"}, schema.URL: {"url", "path"},
        schema.TIMESTAMP: {"timestamp"}, schema.RADIUS: {"integer", "list"},
        schema.FRAMES: {"integer", "interval"}, schema.COLOR_OR_URL: {"hex_color", "color_keyword", "url", "path"},
        schema.ENUM_OR_URL: {"string", "url", "path"}, schema.INTEGER_OR_ENUM: {"integer", "string"},
    }
    for name, param in PARAMS.items():
        types = {e["type"] for e in catalogue["parameters"][name]["expects"]}
        assert types == expected_types[param.kind], name
        free_text = any(e["type"] == "string" and "possible_values" not in e for e in catalogue["parameters"][name]["expects"])
        assert free_text == (param.kind == schema.STRING), name


# ---------------------------------------------------------------------------- names

@pytest.mark.parametrize("spelling, expected", [
    ("w", "w"), ("W", "w"), ("width", "w"), ("WIDTH", "w"), ("height", "h"), ("f", "fit"),
    ("or", "orient"), ("mono", "monochrome"), ("FP-X", "fp-x"), ("txt", "txt"), ("t", "txt"),
    ("m", "mark"), ("TXTCLR", "txt-color"), ("w64", None), ("utm_source", None), ("fbclid", None),
    ("s", None), ("", None),
])
def test_canonical_name(spelling, expected):
    assert canonical_name(spelling) == expected


def test_unknown_names_are_dropped_and_empty_values_ignored():
    assert parse(cb="123", utm_source="x", s="sig", w="", txt="") == {}


def test_expires_is_parsed_but_never_in_the_key():
    asked = parse(expires="1700000000", w="400")
    assert asked == {"expires": 1700000000, "w": 400}
    assert schema.without_defaults(asked) == {"w": 400}
    with pytest.raises(ParamError) as caught:
        parse(expires="soon")
    assert caught.value.name == "expires"


# ---------------------------------------------------------------------------- values

@pytest.mark.parametrize("name, text, value", [
    ("w", "400", 400), ("w", "400.0", 400), ("w", "0400", 400), ("w", "0.5", 0.5),
    ("w", "0.50", 0.5), ("w", ".5", 0.5), ("w", "1.0", 1.0), ("w", "0.0", 0.0),
    ("w", "9000", 8192), ("w", "1", 2), ("w", "0", 2), ("w", "-40", 2),
    ("dpr", "2", 2.0), ("dpr", "1.50", 1.5), ("dpr", "9", 5.0), ("dpr", "-1", 0.0),
    ("fp-x", "1.5", 1.0), ("fp-y", "-0.2", 0.0),
    ("q", "75", 75), ("q", "80.0", 80), ("q", "150", 100),  # clamped where the renderer clamps
    ("q", "-3", 0), ("sharp", "1000", 100.0), ("sat", "-250", -100),
    ("rot", "720", 0.0), ("rot", "-90", 270.0), ("rot", "450.5", 90.5), ("dpr", "4.99999999", 5.0),
    ("dpr", "2.625", 2.625), ("dpr", "1.33333", 1.333),
    ("blur", "5000", 2000), ("rot", "-0", 0.0), ("rot", "90.50", 90.5), ("bri", "-100", -100),
    ("fit", "CROP", "crop"), ("fm", "jpeg", "jpg"), ("fm", "JPG", "jpg"), ("flip", "hv", "hv"),
    ("orient", "90", 6), ("orient", "180", 3), ("orient", "270", 8), ("orient", "6", 6),
    ("crop", "top,left", ("left", "top")), ("crop", "left, top,left", ("left", "top")),
    ("auto", "format,compress", ("compress", "format")),
    ("ar", "16:9", (16.0, 9.0)), ("ar", "32:18", (16.0, 9.0)), ("ar", "1.5:1", (3.0, 2.0)),
    ("ar", "0.85:1", (17.0, 20.0)),
    ("rect", "10,20,300,400", (10, 20, 300, 400)), ("rect", "left,top,30,40", (0, 0, 30, 40)),
    ("rect", "-5,-5,0,0", (0, 0, 1, 1)),
    ("lossless", "1", True), ("lossless", "TRUE", True), ("lossless", "false", False),
    ("bg", "fff", "ffffff"), ("bg", "FFFFFF", "ffffff"), ("bg", "white", "ffffff"),
    ("bg", "White", "ffffff"), ("bg", "ffff", "ffffff"), ("bg", "ffffffff", "ffffff"),
    ("bg", "8f00", "ff000088"), ("bg", "80ff0000", "ff000080"), ("bg", "00000000", "00000000"),
    ("bg", "imgixorange", "imgixorange"), ("mono", "rebeccapurple", "663399"),
    # the rest of the catalogue
    ("sepia", "150", 100), ("hue", "370", 10), ("hue", "-10", 350), ("high", "20", 0),
    ("usmrad", "9999", 500.0), ("nr", "-300", -100), ("colors", "40", 16), ("pad", "-4", 0),
    ("invert", "true", True), ("inv", "0", False), ("chromasub", "444", 444),
    ("txt", "Hello, World & co", "Hello, World & co"), ("txt", "héllo", "héllo"),
    ("txt-font", "Avenir-Black", "Avenir-Black"), ("dl", "cat photo.jpg", "cat photo.jpg"),
    ("mark", "/logos/mark.png", "/logos/mark.png"), ("mark", "https://x.test/m.png", "https://x.test/m.png"),
    ("blend", "RED", "ff0000"), ("blend", "/b.png", "/b.png"), ("mask", "Ellipse", "ellipse"),
    ("mask", "/masks/star.png", "/masks/star.png"), ("video-thumbnail", "AUTO", "auto"),
    ("video-thumbnail", "12", 12),
    ("border", "4,red", (4, "ff0000")), ("border", "400, 80ff0000", (100, "ff000080")),
    ("duotone", "000,FFF", ("000000", "ffffff")), ("grid-colors", "d0d7dd,white", ("d0d7dd", "ffffff")),
    ("fill-gradient-radial-radius", "0.25,40", (0.25, 40)),
    ("object-removal-rect", "1,2,30,40", (1, 2, 30, 40)),
    ("border-radius", "8", 8), ("border-radius", "8,8,8,8", 8), ("border-radius", "1,2,3,4", (1, 2, 3, 4)),
    ("corner-radius", "-3", 0),
    ("frame", "3", 3), ("frame", "0", 1), ("frame", "2-5", (2, 5)), ("frame", "4-4", 4),
    ("frame", "3-", (3, None)), ("frame", "-6", (None, 6)),
    ("rect", "0.25,0.5,0.5,0.25", (0.25, 0.5, 0.5, 0.25)), ("rect", "center,bottom,100,50", ("center", "bottom", 100, 50)),
    ("rect", "0.0,0.0,1.0,1.0", (0, 0, 1.0, 1.0)), ("rect", "right,middle,0.5,10", ("right", "middle", 0.5, 10)),
    ("fill-gradient-linear-direction", "bottom,top", ("bottom", "top")),
    ("txt-align", "left,top", ("left", "top")), ("txt-clip", "ellipsis,end", ("ellipsis", "end")),
    ("expires", "1700000000", 1700000000),
])
def test_parse_value(name, text, value):
    parsed = parse_value(name, text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("name, text", [
    ("w", "40x"), ("w", "400.5"), ("w", "1e3"), ("w", "inf"), ("w", "nan"), ("w", " 400"),
    ("w", "4_00"), ("w", "٤٠٠"), ("w", "1" * 40), ("q", "75.5"), ("dpr", "two"),
    ("rot", "1" * 20), ("blur", "9" * 16), ("fit", "stretch"), ("fit", "clİp"), ("fm", "bmp"),
    ("crop", "top,middle"), ("auto", "format,zip"), ("flip", "vh"), ("orient", "9"),
    ("orient", "45"), ("ar", "16"), ("ar", "16x9"), ("ar", "0:9"), ("ar", "16:0"), ("ar", "-16:9"),
    ("ar", "1:" + "3" * 20), ("rect", "1,2,3"), ("rect", "middle,center,10,10"),
    ("rect", "1.5,0,10,10"), ("rect", "0,0,center,10"), ("rect", "1,2,3,4,5"), ("bg", "#fff"), ("bg", "ff"),
    ("bg", "fffff"), ("bg", "transparent"), ("bg", "ggg"), ("lossless", "yes"),
    ("txt", "x" * 1025), ("txt", "a\x00b"), ("txt", "bad \udcff utf-8"), ("mark", "/a\nb.png"),
    ("dl", "a\rb"), ("border", "4"), ("border", "4,red,blue"), ("border", "red,4"),
    ("duotone", "red"), ("border-radius", "1,2"), ("border-radius", "1,2,3,x"), ("frame", "5-2"),
    ("frame", "-"), ("frame", "a-b"), ("frame", "1.5"), ("expires", "-1"), ("expires", "1.5"),
    ("chromasub", "421"), ("video-thumbnail", "first"), ("fill", "pattern"), ("txt-align", "up"),
])
def test_bad_values_raise_param_error_naming_the_parameter(name, text):
    with pytest.raises(ParamError) as caught:
        parse_query([(name, text)])
    error = caught.value
    assert error.name == canonical_name(name)
    assert error.value == text
    assert error.expected and error.expected in str(error)
    assert repr(error.name) in str(error)
    assert str(error).isascii()


def test_long_bad_values_are_shortened_in_the_message():
    with pytest.raises(ParamError) as caught:
        parse(w="x" * 5000)
    assert len(str(caught.value)) < 400
    assert caught.value.value == "x" * 5000


# ---------------------------------------------------------------------------- repeats, base64

def test_repeated_lists_merge_and_scalars_take_the_last():
    assert parse_query([("auto", "format"), ("auto", "compress"), ("auto", "format")]) == {
        "auto": ("compress", "format")}
    assert parse_query([("w", "100"), ("width", "200"), ("W", "300")]) == {"w": 300}
    assert parse_query([("crop", "top"), ("crop", "left")]) == {"crop": ("left", "top")}


def test_base64_forms_decode_to_the_plain_value():
    assert parse_query([("w64", b64("400"))]) == {"w": 400}
    assert parse_query([("width64", b64("0.5"))]) == {"w": 0.5}
    assert parse_query([("BG64", b64("white"))]) == {"bg": "ffffff"}
    assert parse_query([("fm64", b64("jpeg") + "=")]) == {"fm": "jpg"}  # padding tolerated
    assert parse_query([("w", "100"), ("w64", b64("200"))]) == {"w": 200}


def test_auto_has_no_base64_form():
    # the catalogue marks auto disallow_base64: imgix does not know auto64, so it is ignored
    assert parse_query([("auto64", b64("format"))]) == {}


@pytest.mark.parametrize("text", ["NDAw!", "N+Aw", "N/Aw", "/w", "gA"])
def test_bad_base64_raises(text):
    with pytest.raises(ParamError) as caught:
        parse_query([("w64", text)])
    assert caught.value.name == "w"


def test_base64_of_a_bad_value_reports_the_decoded_value():
    with pytest.raises(ParamError) as caught:
        parse_query([("w64", b64("wide"))])
    assert caught.value.value == "wide"


# ---------------------------------------------------------------------------- defaults

def test_defaults_are_kept_by_parse_query_and_dropped_by_without_defaults():
    asked = parse(dpr="1", fit="clip", q="75", bg="0fff", rot="0", lossless="0", w="400")
    assert asked == {"dpr": 1.0, "fit": "clip", "q": 75, "bg": "ffffff00", "rot": 0.0,
                     "lossless": False, "w": 400}
    assert schema.without_defaults(asked) == {"w": 400}


def test_opaque_white_is_not_the_default_background():
    # imgix's default is transparent white: bg=fff flattens transparency, no bg keeps it
    assert schema.without_defaults(parse(bg="fff")) == {"bg": "ffffff"}
    assert schema.without_defaults(parse(bg="00ffffff")) == {}


def test_q_75_is_not_a_default_under_auto_compress():
    # imgix: with auto=compress the default quality is 45 unless q is given
    assert schema.without_defaults(parse(q="75", auto="compress")) == {"q": 75, "auto": ("compress",)}
    assert schema.without_defaults(parse(q="75", auto="format")) == {"auto": ("format",)}


def test_default_looks_up_aliases():
    assert schema.default("fit") == schema.default("f") == "clip"
    assert schema.default("w") is None
    assert schema.default("txt-clr") is None and schema.default("tsz") == 12
    with pytest.raises(KeyError):
        schema.default("utm_source")


# ---------------------------------------------------------------------------- renderable

def test_renderable_only_rejects_valid_imgix_values_pixring_does_not_render():
    assert parse_query([("fm", "jp2")]) == {"fm": "jp2"}
    for name, text in [("fm", "jp2"), ("fit", "facearea"), ("crop", "faces,top"),
                       ("auto", "enhance"), ("bg", "imgixblue")]:
        with pytest.raises(ParamError) as caught:
            parse_query([(name, text)], renderable_only=True)
        assert caught.value.name == name
        assert "not rendered by pixring" in str(caught.value)
    assert parse_query([("fm", "webp"), ("crop", "top"), ("bg", "red")], renderable_only=True)


# ---------------------------------------------------------------------------- formatting

@pytest.mark.parametrize("name, value, text", [
    ("w", 400.0, "400"), ("w", 400, "400"), ("w", "400.0", "400"), ("w", 0.5, "0.5"),
    ("w", 1.0, "1.0"), ("w", 0.0, "0.0"), ("h", "1.00", "1.0"), ("fm", "jpeg", "jpg"),
    ("dpr", 1.5, "1.5"), ("dpr", "1.50", "1.5"), ("dpr", 2.0, "2"), ("rot", 0.0, "0"),
    ("sharp", 1.5e-06, "0.0000015"), ("crop", ("top", "left", "top"), "left,top"),
    ("crop", "top,left", "left,top"), ("auto", ["format", "compress"], "compress,format"),
    ("ar", (32.0, 18.0), "16:9"), ("ar", "1.5:1", "3:2"), ("rect", (1, 2, 3, 4), "1,2,3,4"),
    ("lossless", True, "1"), ("lossless", False, "0"), ("orient", 90, "6"),
    ("bg", "ffffff", "ffffff"), ("bg", "white", "ffffff"), ("bg", "ff000080", "80ff0000"),
    ("bg", "8f00", "88ff0000"), ("mono", "imgixorange", "imgixorange"),
])
def test_format_value(name, value, text):
    assert format_value(name, value) == text


@pytest.mark.parametrize("name, value", [
    ("w", 400.5), ("w", True), ("q", 75.5), ("fm", "bmp"), ("rect", (1, 2, 3)), ("ar", (1, 0)),
    ("crop", ("up",)),
])
def test_format_value_rejects_what_parse_would(name, value):
    with pytest.raises(ParamError):
        format_value(name, value)


def test_rgba():
    assert schema.rgba("ff8000") == (255, 128, 0, 255)
    assert schema.rgba(parse_value("bg", "80ff8000")) == (255, 128, 0, 128)
    with pytest.raises(ValueError):
        schema.rgba("imgixorange")


# ---------------------------------------------------------------------------- properties

def decimal_text(low: int, high: int, places: int = 4) -> st.SearchStrategy[str]:
    """Plain decimals as a URL would carry them, with or without trailing zeros."""
    return st.builds(
        lambda n, pad: format(Decimal(n).scaleb(-places), "f") + ("0" * pad if places else ""),
        st.integers(low * 10**places, high * 10**places), st.integers(0, 2),
    )


VALUE_TEXT: dict[str, st.SearchStrategy[str]] = {
    "w": st.one_of(st.integers(-10, 9000).map(str), decimal_text(0, 1), st.just("400.0")),
    "h": st.one_of(st.integers(-10, 9000).map(str), decimal_text(0, 1)),
    "dpr": decimal_text(-1, 6, 2),
    "ar": st.builds(lambda a, b: f"{a}:{b}", decimal_text(1, 40, 2), decimal_text(1, 40, 2)),
    "fit": st.sampled_from(sorted(PARAMS["fit"].choices)),
    "crop": st.lists(st.sampled_from(sorted(PARAMS["crop"].choices)), min_size=1).map(",".join),
    "fp-x": decimal_text(-1, 2), "fp-y": decimal_text(-1, 2),
    "rect": st.lists(st.integers(-5, 5000).map(str), min_size=4, max_size=4).map(",".join),
    "fm": st.sampled_from(sorted(PARAMS["fm"].choices) + ["jpeg", "JPEG"]),
    "q": st.integers(-5, 120).map(str),
    "auto": st.lists(st.sampled_from(sorted(PARAMS["auto"].choices)), min_size=1).map(",".join),
    "lossless": st.sampled_from(["0", "1", "true", "false", "True"]),
    "rot": decimal_text(-400, 400, 3),
    "flip": st.sampled_from(["h", "v", "hv", "H"]),
    "orient": st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "7", "8", "90", "180", "270"]),
    "bg": st.one_of(st.sampled_from(sorted(schema._CSS_COLORS) + ["imgixblue"]),
                    st.integers(0, 2).flatmap(lambda i: st.text("0123456789abcdefABCDEF",
                                                               min_size=(3, 4, 6, 8)[i], max_size=(3, 4, 6, 8)[i])),
                    st.text("0123456789abcdef", min_size=8, max_size=8)),
    "blur": st.integers(0, 3000).map(str), "sharp": decimal_text(0, 120, 2),
    "bri": st.integers(-150, 150).map(str), "con": st.integers(-150, 150).map(str),
    "exp": st.integers(-150, 150).map(str), "gam": st.integers(-150, 150).map(str),
    "sat": st.integers(-150, 150).map(str),
    "monochrome": st.sampled_from(["red", "0f08", "ff00ff80", "abc"]),
}

COLOR_TEXT = st.one_of(st.sampled_from(["red", "White", "imgixblue"]),
                       st.text("0123456789abcdefABCDEF", min_size=6, max_size=6),
                       st.text("0123456789abcdef", min_size=8, max_size=8), st.just("f0f"))
# Free text: anything printable, the characters a query needs escaped included.
FREE_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)
URL_TEXT = st.one_of(PATH_TEXT := st.from_regex(r"/[a-z0-9_./-]{1,20}\.png", fullmatch=True),
                     st.just("https://images.example/logo.png?x=1&y=2"), FREE_TEXT)


def _number_text(param) -> st.SearchStrategy[str]:
    low = int(param.minimum if param.minimum is not None else param.soft_minimum if param.soft_minimum is not None else -50)
    high = int(param.maximum if param.maximum is not None else param.soft_maximum if param.soft_maximum is not None else 500)
    if param.kind == schema.INTEGER:
        if param.choices:
            return st.sampled_from(sorted(str(c) for c in param.choices))
        return st.integers(low - 20, high + 20).map(str)
    return decimal_text(low - 2, high + 2, 2)


def _kind_text(param) -> st.SearchStrategy[str]:
    """Texts for a parameter of the rest of the catalogue, by kind: valid, out of range,
    odd spellings."""
    kind = param.kind
    if kind in (schema.INTEGER, schema.NUMBER, schema.UNIT_SCALAR):
        return _number_text(param)
    if kind == schema.DIMENSION:
        return st.one_of(st.integers(-10, 9000).map(str), decimal_text(0, 1))
    if kind == schema.BOOLEAN:
        return st.sampled_from(["0", "1", "true", "false", "TRUE"])
    if kind == schema.ENUM:
        return st.sampled_from(sorted(param.choices) + [sorted(param.choices)[0].upper()])
    if kind == schema.LIST:
        return st.lists(st.sampled_from(sorted(param.choices)), min_size=1, max_size=4).map(",".join)
    if kind == schema.COLOR:
        return COLOR_TEXT
    if kind in (schema.STRING, schema.FONT):
        return FREE_TEXT
    if kind == schema.URL:
        return URL_TEXT
    if kind == schema.TIMESTAMP:
        return st.integers(0, 2**40).map(str)
    if kind == schema.TUPLE:
        return st.tuples(*(_kind_text(item) for item in param.items)).map(",".join)
    if kind == schema.RADIUS:
        one = st.integers(-5, 300).map(str)
        return st.one_of(one, st.lists(one, min_size=4, max_size=4).map(",".join), st.just("7,7,7,7"))
    if kind == schema.FRAMES:
        n = st.integers(0, 400)
        return st.one_of(n.map(str), st.builds(lambda a, b: f"{min(a, b)}-{max(a, b)}", n, n),
                         n.map(lambda a: f"{a}-"), n.map(lambda a: f"-{a}"))
    if kind == schema.COLOR_OR_URL:
        return st.one_of(COLOR_TEXT, PATH_TEXT)
    if kind == schema.ENUM_OR_URL:
        return st.one_of(st.sampled_from(sorted(param.choices)), PATH_TEXT)
    if kind == schema.INTEGER_OR_ENUM:
        return st.one_of(st.sampled_from(sorted(param.choices)), st.integers(-5, 500).map(str))
    raise AssertionError(f"no strategy for kind {kind}")


for _name, _param in PARAMS.items():
    if _name not in VALUE_TEXT:
        VALUE_TEXT[_name] = _kind_text(_param)
VALUE_TEXT["rect"] = st.one_of(
    VALUE_TEXT["rect"],
    st.tuples(st.one_of(st.sampled_from(["left", "center", "right"]), decimal_text(0, 1), st.integers(0, 900).map(str)),
              st.one_of(st.sampled_from(["top", "middle", "bottom"]), decimal_text(0, 1), st.integers(0, 900).map(str)),
              st.one_of(decimal_text(0, 1), st.integers(0, 900).map(str)),
              st.one_of(decimal_text(0, 1), st.integers(0, 900).map(str))).map(",".join))

# Kinds whose canonical text is escaped text rather than numbers and keywords.
TEXT_KINDS = {schema.STRING, schema.FONT, schema.URL, schema.COLOR_OR_URL, schema.ENUM_OR_URL}


def test_every_param_has_a_value_strategy():
    assert set(VALUE_TEXT) == set(PARAMS)


@st.composite
def param_and_text(draw) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(PARAMS)))
    return name, draw(VALUE_TEXT[name])


@PROPERTY
@given(param_and_text())
def test_canonical_text_parses_back_to_the_same_value(case):
    name, text = case
    value = parse_value(name, text)
    canonical = format_value(name, value)
    if PARAMS[name].kind in TEXT_KINDS:
        # URL text: it reads back once decoded, as every query value is before parsing
        assert parse_value(name, unquote_plus(canonical)) == value
        if not schema._is_color_value(value):  # colour strings: see the test below
            assert format_value(name, text) == canonical
        return
    assert parse_value(name, canonical) == value
    if PARAMS[name].kind != schema.COLOR:
        # format_value reads an 8-digit colour string as parse_query's rrggbbaa, not as URL
        # text (aarrggbb): the two are indistinguishable, see test_colour_strings_...
        assert format_value(name, canonical) == canonical
        assert format_value(name, text) == canonical


def test_colour_strings_given_to_format_value_are_in_parsed_order():
    url_text = "80ff0000"  # imgix: alpha 80, red
    parsed = parse_value("bg", url_text)
    assert parsed == "ff000080"
    assert format_value("bg", parsed) == url_text
    assert format_value("bg", url_text) == "0080ff00"  # read as rrggbbaa: a different colour


@PROPERTY
@given(param_and_text())
def test_canonical_text_needs_no_percent_encoding_except_text_which_is_escaped(case):
    name, text = case
    value = parse_value(name, text)
    canonical = format_value(name, value)
    if PARAMS[name].kind in TEXT_KINDS:
        # a valid query value: nothing that would end it or be read as a space, and it
        # decodes (as the balancer and aiohttp decode a query) to the value itself
        assert canonical and all(c.isascii() and c.isprintable() and c not in "&=+# ?" for c in canonical)
        assert unquote_plus(canonical) == (text if not schema._is_color_value(value) else unquote_plus(canonical))
    else:
        assert canonical and all(c.isascii() and (c.isalnum() or c in ".,:-") for c in canonical)


@PROPERTY
@given(st.sampled_from(sorted(PARAMS)), st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_param_error(name, text):
    try:
        value = parse_value(name, text)
    except ParamError as error:
        assert error.name == name
    else:
        canonical = format_value(name, value)
        if PARAMS[name].kind in TEXT_KINDS:
            canonical = unquote_plus(canonical)
        assert parse_value(name, canonical) == value


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["w", "W", "width", "auto", "crop", "x", "w64", "fm"]),
                          st.sampled_from(["100", "0.5", "format", "top", "left", "NTAw", "png", ""]))))
def test_parse_query_never_raises_anything_but_param_error(pairs):
    try:
        parse_query(pairs)
    except ParamError:
        pass


@PROPERTY
@given(st.lists(param_and_text(), max_size=8))
def test_canonical_query_is_format_value_sorted_by_name(cases):
    params = parse_query(cases)
    expected = "&".join(f"{name}={format_value(name, params[name])}" for name in sorted(params))
    assert schema.canonical_query(params) == expected
