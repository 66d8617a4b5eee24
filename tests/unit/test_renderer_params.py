"""RenderSpec from query pairs: the schema decides, the spec's canonical form keys renders."""

from __future__ import annotations

import pytest

from pixring import schema
from renderer.errors import BadParam
from renderer.params import OUTPUT_FORMATS, RenderSpec, spec_from_query


def spec(query: str) -> RenderSpec:
    return spec_from_query([tuple(pair.split("=", 1)) for pair in query.split("&") if pair])  # type: ignore[misc]


def test_defaults_come_from_the_schema() -> None:
    empty = spec("")
    assert empty.fit == schema.default("fit")
    assert empty.q == schema.default("q")
    assert empty.dpr == schema.default("dpr")
    assert (empty.fp_x, empty.fp_y) == (schema.default("fp-x"), schema.default("fp-y"))
    assert empty.fm is None and empty.bg is None  # absent means "keep the source's"


def test_every_renderable_format_has_an_encoder() -> None:
    assert set(schema.PARAMS["fm"].renderable) <= set(OUTPUT_FORMATS)


@pytest.mark.parametrize(
    "one,other",
    [
        ("w=400&h=300", "h=300&w=400"),
        ("w=400", "width=400.0"),
        ("fit=crop", "f=CROP"),
        ("fm=jpeg", "fm=jpg"),
        ("w=400", "w=400&utm_source=newsletter"),
        ("w=400&fit=clip", "w=400"),  # the default, spelled out
        ("crop=top,left", "crop=left,top"),
        ("bg=fff", "bg=white"),
    ],
)
def test_equivalent_queries_share_a_canonical_form(one: str, other: str) -> None:
    assert spec(one).canonical() == spec(other).canonical()


@pytest.mark.parametrize(
    "one,other",
    [("w=400", "w=401"), ("w=0.5", "w=400"), ("w=1", "w=1.0"), ("fm=webp", ""), ("q=75&fm=webp", "q=74&fm=webp"),
     ("fit=crop&w=10&h=10", "fit=scale&w=10&h=10"), ("bg=fff", "")],
)
def test_different_renders_have_different_canonical_forms(one: str, other: str) -> None:
    assert spec(one).canonical() != spec(other).canonical()


@pytest.mark.parametrize(
    "query,param", [("w=wide", "w"), ("fm=jp2", "fm"), ("fit=facearea", "fit"), ("crop=faces", "crop"), ("dpr=x", "dpr")]
)
def test_unusable_values_name_their_parameter(query: str, param: str) -> None:
    with pytest.raises(BadParam) as caught:
        spec(query)
    assert caught.value.param == param
    assert caught.value.status == 400
    assert caught.value.expected


def test_geometry_request() -> None:
    request = spec("w=0.5&h=300&fit=crop&crop=left&ar=16:9&rect=1,2,30,40&dpr=2").request()
    assert (request.width, request.height, request.fit, request.dpr) == (0.5, 300, "crop", 2.0)
    assert request.anchor == (0.0, 0.5)
    assert request.aspect == (16.0, 9.0)
    assert request.rect == (1, 2, 30, 40)


def test_auto_compress_lowers_the_default_quality_only() -> None:
    assert spec("auto=compress").q == 45  # imgix's documented default under compress
    assert spec("auto=compress&q=80").q == 80  # an explicit q wins
    assert spec("auto=compress&q=75").q == 75
    assert spec("").q == 75
    assert spec("auto=compress").compress and not spec("").compress


def test_values_that_render_alike_share_a_canonical_form() -> None:
    same = [
        ("rot=360", "rot=0"), ("rot=-90", "rot=270"), ("rot=450", "rot=90"),
        ("orient=0", "orient=1"), ("or=90", "orient=6"),
        ("bri=150", "bri=100"), ("sat=-300", "sat=-100"), ("blur=5000", "blur=2000"), ("sharp=500", "sharp=100"),
        ("bg=0fff", ""), ("bg=00ff0000", ""),  # fully transparent: paints nothing
        ("mono=0f00", ""),
        ("fp-x=0.2", ""),  # without crop=focalpoint the focal point is not used
        ("auto=compress&q=45", "auto=compress"),
    ]
    for one, other in same:
        assert spec(one).canonical() == spec(other).canonical(), (one, other)


def test_values_that_render_differently_keep_apart() -> None:
    different = [
        ("rot=90", "rot=270"), ("flip=h", "flip=v"), ("orient=1", ""), ("bri=10", "bri=11"), ("mono=f00", "mono=80ff0000"),
        ("fp-x=0.2&crop=focalpoint", "crop=focalpoint"), ("auto=compress", ""), ("auto=format", ""), ("bg=fff", ""),
    ]
    for one, other in different:
        assert spec(one).canonical() != spec(other).canonical(), (one, other)


def test_adjustments_are_parsed_and_clamped() -> None:
    s = spec("bri=-20&con=30&exp=5&gam=-7&sat=200&sharp=12.5&blur=40&mono=ff0000&flip=hv&rot=12.5&or=3")
    assert (s.bri, s.con, s.exp, s.gam, s.sat) == (-20, 30, 5, -7, 100)
    assert (s.sharp, s.blur, s.monochrome, s.flip, s.rot, s.orient) == (12.5, 40, "ff0000", "hv", 12.5, 3)


@pytest.mark.parametrize("query,param", [("auto=enhance", "auto"), ("flip=x", "flip"), ("orient=9", "orient"),
                                         ("bri=bright", "bri"), ("mono=imgixblue", "monochrome")])
def test_unrenderable_or_bad_values_are_400s(query: str, param: str) -> None:
    with pytest.raises(BadParam) as caught:
        spec(query)
    assert caught.value.param == param


def test_auto_format_resolves_against_accept() -> None:
    available = frozenset(OUTPUT_FORMATS)
    asked = spec("auto=format&w=10")
    assert asked.auto_format
    avif = asked.for_accept("image/avif,image/webp,*/*", available)
    assert (avif.fm, avif.auto_format) == ("avif", False)
    assert avif.canonical() == spec("fm=avif&w=10").canonical()  # same render, same key
    fallback = spec("auto=format&fm=png").for_accept("*/*", available)
    assert fallback.fm == "png"  # fm is the fallback, as imgix documents
    assert spec("auto=format").for_accept("text/html", available).fm is None  # the source's format
    plain = spec("fm=jpg")
    assert plain.for_accept("image/avif", available) is plain  # no auto=format: Accept is ignored


@pytest.mark.parametrize("name", ["bri", "con", "exp", "gam", "sat", "blur", "sharp"])
def test_clamps_are_the_schemas_suggested_ranges(name: str) -> None:
    low, high = schema.suggested_range(name)
    assert getattr(spec(f"{name}={high + 50:g}"), name) == high
    assert getattr(spec(f"{name}={low - 50:g}"), name) == low
