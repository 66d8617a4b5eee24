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
