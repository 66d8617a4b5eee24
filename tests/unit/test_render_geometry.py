"""The fit-mode box arithmetic, as a table: each row names the imgix rule it checks.

Source sizes are small and chosen so the expected numbers can be checked by hand.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderer.geometry import (
    FIT_MODES,
    MAX_OUTPUT_SIDE,
    Box,
    GeometryError,
    Request,
    Size,
    anchor_for,
    plan,
    region,
)

SRC = Size(300, 200)  # imgix's own doc example: a 300x200 original

# (rule, request, expected scaled size, expected canvas size)
SIZE_TABLE = [
    ("no w/h: the source at its own size", Request(), (300, 200), (300, 200)),
    ("no w/h: fit does not matter", Request(fit="crop"), (300, 200), (300, 200)),
    ("no w/h: dpr does nothing without w or h", Request(dpr=2), (300, 200), (300, 200)),
    ("clip: imgix doc example, 100x100 box -> 100x67", Request(100, 100, "clip"), (100, 67), (100, 67)),
    ("clip: the height constrains", Request(300, 50, "clip"), (75, 50), (75, 50)),
    ("clip: may upscale", Request(600, 600, "clip"), (600, 400), (600, 400)),
    ("clip: only w, h follows the aspect ratio", Request(width=150), (150, 100), (150, 100)),
    ("clip: only w, the given side wins over rounding", Request(width=11), (11, 7), (11, 7)),
    ("rounding is half up: h=3 gives w=4.5 -> 5", Request(height=3), (5, 3), (5, 3)),
    ("clip: only h, w follows the aspect ratio", Request(height=50), (75, 50), (75, 50)),
    ("max: downscales like clip", Request(100, 100, "max"), (100, 67), (100, 67)),
    ("max: never upscales", Request(600, 600, "max"), (300, 200), (300, 200)),
    ("max: box wider but not taller still scales", Request(600, 100, "max"), (150, 100), (150, 100)),
    ("max: only w larger than the source keeps the source", Request(width=900, fit="max"), (300, 200), (300, 200)),
    ("scale: stretches to exactly w x h", Request(100, 100, "scale"), (100, 100), (100, 100)),
    ("scale: only w keeps the aspect ratio", Request(width=30, fit="scale"), (30, 20), (30, 20)),
    ("crop: exactly w x h", Request(100, 100, "crop"), (100, 100), (100, 100)),
    ("crop: may upscale", Request(600, 600, "crop"), (600, 600), (600, 600)),
    ("crop: only w, h follows the aspect ratio", Request(width=150, fit="crop"), (150, 100), (150, 100)),
    ("min: like crop when it downscales", Request(100, 100, "min"), (100, 100), (100, 100)),
    ("min: never upscales, keeps the box's aspect ratio", Request(600, 600, "min"), (200, 200), (200, 200)),
    ("min: a wide box larger than the source", Request(900, 300, "min"), (300, 100), (300, 100)),
    ("fill: clip, padded to the box", Request(100, 100, "fill"), (100, 67), (100, 100)),
    ("fill: may upscale", Request(600, 600, "fill"), (600, 400), (600, 600)),
    ("clamp: sized like fill", Request(100, 100, "clamp"), (100, 67), (100, 100)),
    ("fillmax: never upscales, still the full canvas", Request(600, 600, "fillmax"), (300, 200), (600, 600)),
    ("fillmax: downscales like fill", Request(150, 150, "fillmax"), (150, 100), (150, 150)),
    ("facearea needs faces: rendered as clip", Request(100, 100, "facearea"), (100, 67), (100, 67)),
    ("fraction: w=0.5 is half the source width", Request(width=0.5), (150, 100), (150, 100)),
    ("fraction: 1.0 is the whole source", Request(width=1.0, height=1.0, fit="crop"), (300, 200), (300, 200)),
    ("fraction: w and h fractions with crop", Request(0.5, 0.25, "crop"), (150, 50), (150, 50)),
    ("dpr multiplies the box", Request(100, 100, "clip", dpr=2), (200, 133), (200, 133)),
    ("dpr with crop", Request(50, 50, "crop", dpr=1.5), (75, 75), (75, 75)),
    ("dpr with only w", Request(width=100, dpr=3), (300, 200), (300, 200)),
    ("ar with crop and one side", Request(width=280, fit="crop", aspect=(2, 1)), (280, 140), (280, 140)),
    ("ar with crop and no side: largest ratio box inside", Request(fit="crop", aspect=(1, 1)), (200, 200), (200, 200)),
    ("ar with crop, tall ratio", Request(fit="crop", aspect=(1, 2)), (100, 200), (100, 200)),
    ("ar with fill and no side: smallest frame around", Request(fit="fill", aspect=(1, 1)), (300, 200), (300, 300)),
    ("ar is ignored when w and h are both given", Request(100, 100, "crop", aspect=(2, 1)), (100, 100), (100, 100)),
    ("ar only applies to crop and fill", Request(width=150, fit="clip", aspect=(1, 1)), (150, 100), (150, 100)),
    ("rect: the region is the source", Request(rect=(10, 20, 100, 50)), (100, 50), (100, 50)),
    ("rect: w follows the region's aspect", Request(width=50, rect=(0, 0, 100, 50)), (50, 25), (50, 25)),
    ("rect: clipped to the image", Request(rect=(250, 150, 500, 500)), (50, 50), (50, 50)),
    ("rect: fractions are of the region", Request(width=0.5, rect=(0, 0, 100, 100)), (50, 50), (50, 50)),
    ("tiny results never reach 0", Request(width=2, height=2, fit="clip"), (2, 1), (2, 1)),
]


@pytest.mark.parametrize("rule,request_,scaled,canvas", SIZE_TABLE, ids=[row[0] for row in SIZE_TABLE])
def test_fit_mode_sizes(rule: str, request_: Request, scaled: tuple[int, int], canvas: tuple[int, int]) -> None:
    layout = plan(SRC, request_)
    assert (layout.scaled.width, layout.scaled.height) == scaled, rule
    assert (layout.canvas.width, layout.canvas.height) == canvas, rule


# (rule, request, expected source box)
BOX_TABLE = [
    ("clip uses the whole source", Request(100, 100, "clip"), Box(0, 0, 300, 200)),
    ("crop is centred by default: square from a wide source", Request(100, 100, "crop"), Box(50, 0, 250, 200)),
    ("crop=left keeps the left edge", Request(100, 100, "crop", anchor=anchor_for(("left",))), Box(0, 0, 200, 200)),
    ("crop=right keeps the right edge", Request(100, 100, "crop", anchor=anchor_for(("right",))), Box(100, 0, 300, 200)),
    ("crop=top on a wide cut", Request(300, 100, "crop", anchor=anchor_for(("top",))), Box(0, 0, 300, 100)),
    ("crop=bottom on a wide cut", Request(300, 100, "crop", anchor=anchor_for(("bottom",))), Box(0, 100, 300, 200)),
    ("focal point centres the window on it", Request(100, 100, "crop", anchor=anchor_for(("focalpoint",), 0.6, 0.5)),
     Box(80, 0, 280, 200)),
    ("focal point near an edge: the window stays inside", Request(100, 100, "crop", anchor=anchor_for(("focalpoint",), 0.05, 0.5)),
     Box(0, 0, 200, 200)),
    ("min upscale case: the largest centred window, unscaled", Request(600, 600, "min"), Box(50, 0, 250, 200)),
    ("rect shifts the crop window", Request(10, 10, "crop", rect=(100, 0, 100, 50)), Box(125, 0, 175, 50)),
]


@pytest.mark.parametrize("rule,request_,box", BOX_TABLE, ids=[row[0] for row in BOX_TABLE])
def test_source_box(rule: str, request_: Request, box: Box) -> None:
    got = plan(SRC, request_).box
    assert (got.left, got.top, got.right, got.bottom) == pytest.approx((box.left, box.top, box.right, box.bottom)), rule


def test_padding_is_centred() -> None:
    layout = plan(SRC, Request(100, 100, "fill"))
    assert layout.padded
    assert layout.offset == (0, 16)  # (100 - 67) // 2


def test_anchor_words() -> None:
    assert anchor_for(()) == (0.5, 0.5)
    assert anchor_for(("top", "left")) == (0.0, 0.0)
    assert anchor_for(("bottom", "right")) == (1.0, 1.0)
    assert anchor_for(("entropy",)) == (0.5, 0.5)  # needs image analysis: centre
    assert anchor_for(("focalpoint", "left"), 0.2, 0.9) == (0.2, 0.9)  # focalpoint wins


def test_output_is_capped_keeping_proportions() -> None:
    tall = plan(Size(100, 10000), Request(width=100))
    assert (tall.canvas.width, tall.canvas.height) == (82, MAX_OUTPUT_SIDE)
    stretched = plan(SRC, Request(8192, 100, "scale", dpr=5))
    assert (stretched.canvas.width, stretched.canvas.height) == (MAX_OUTPUT_SIDE, 100)  # 40960x500 / 5
    padded = plan(SRC, Request(8192, 8192, "fill", dpr=2))
    assert (padded.canvas.width, padded.canvas.height) == (MAX_OUTPUT_SIDE, MAX_OUTPUT_SIDE)
    assert padded.scaled.width == MAX_OUTPUT_SIDE and padded.scaled.height < MAX_OUTPUT_SIDE


def test_rect_outside_the_image_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        plan(SRC, Request(rect=(400, 0, 10, 10)))


_dimension = st.one_of(st.none(), st.integers(2, 9000), st.floats(0.0, 1.0))


@given(
    sw=st.integers(1, 5000),
    sh=st.integers(1, 5000),
    width=_dimension,
    height=_dimension,
    fit=st.sampled_from(sorted(FIT_MODES)),
    dpr=st.floats(0.0, 5.0),
    anchor=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_layout_invariants(sw: int, sh: int, width, height, fit: str, dpr: float, anchor) -> None:
    layout = plan(Size(sw, sh), Request(width, height, fit, dpr=dpr, anchor=anchor))
    box, scaled, canvas = layout.box, layout.scaled, layout.canvas
    # The box lies inside the source and is not empty.
    assert 0 <= box.left < box.right <= sw + 1e-6
    assert 0 <= box.top < box.bottom <= sh + 1e-6
    # Every size is at least 1 and at most the output cap; the image fits its canvas.
    assert 1 <= scaled.width <= canvas.width <= MAX_OUTPUT_SIDE
    assert 1 <= scaled.height <= canvas.height <= MAX_OUTPUT_SIDE
    ox, oy = layout.offset
    assert 0 <= ox and ox + scaled.width <= canvas.width
    assert 0 <= oy and oy + scaled.height <= canvas.height
    if fit in ("max", "fillmax", "min"):
        # These modes never upscale: output pixels per source pixel <= 1 (rounding aside).
        assert scaled.width <= box.width + 1 and scaled.height <= box.height + 1


@given(sw=st.integers(1, 4000), sh=st.integers(1, 4000), side=st.integers(2, 8192),
       fit=st.sampled_from(["clip", "crop", "scale", "fill", "clamp"]))
def test_a_single_given_side_is_honoured_exactly(sw: int, sh: int, side: int, fit: str) -> None:
    # imgix: with only w (or h), the output has exactly that width (height); the other follows.
    by_width = plan(Size(sw, sh), Request(width=side, fit=fit))
    by_height = plan(Size(sw, sh), Request(height=side, fit=fit))
    if by_width.canvas.height < MAX_OUTPUT_SIDE:
        assert by_width.canvas.width == side
    if by_height.canvas.width < MAX_OUTPUT_SIDE:
        assert by_height.canvas.height == side


# ---------------------------------------------------------------- size bounds, rect forms, padding

# (rule, request, expected output size) on the 300x200 source
BOUNDS_TABLE = [
    ("max-w with fit=crop crops the derived width (imgix: h=200&max-w=200 is cropped)",
     Request(height=100, fit="crop", max_w=50), (50, 100)),
    ("max-w above the derived width changes nothing", Request(height=100, fit="crop", max_w=1200), (150, 100)),
    ("min-w expands the derived width, cropping the height", Request(height=100, fit="crop", min_w=300), (300, 100)),
    ("min-w below the derived width changes nothing", Request(height=100, fit="crop", min_w=50), (150, 100)),
    ("max-h bounds the height given w", Request(width=150, fit="crop", max_h=40), (150, 40)),
    ("min-h raises the height given w", Request(width=150, fit="crop", min_h=150), (150, 150)),
    ("bounds clamp given w and h too", Request(200, 200, "crop", max_w=120, max_h=80), (120, 80)),
    ("a maximum below its minimum wins", Request(height=100, fit="crop", min_w=300, max_w=90), (90, 100)),
    ("no w/h: the region's own size is bounded", Request(fit="crop", max_w=100), (100, 200)),
    ("dpr multiplies the bounds like w and h", Request(height=100, fit="crop", max_w=50, dpr=2), (100, 200)),
    ("fit=clip ignores the bounds (imgix: fit=crop only)", Request(height=100, fit="clip", max_w=50), (150, 100)),
    ("fit=fill ignores the bounds", Request(100, 100, "fill", min_w=300), (100, 100)),
]


@pytest.mark.parametrize("rule,request_,output", BOUNDS_TABLE, ids=[row[0] for row in BOUNDS_TABLE])
def test_min_max_bounds(rule: str, request_: Request, output: tuple[int, int]) -> None:
    layout = plan(SRC, request_)
    assert (layout.output.width, layout.output.height) == output, rule


def test_a_bounded_crop_is_a_centred_window() -> None:
    layout = plan(SRC, Request(height=200, fit="crop", max_w=100))
    assert (layout.box.left, layout.box.right) == (100, 200)


# (rule, rect, expected region box) on the 300x200 source
RECT_TABLE = [
    ("all ints stay exactly as given", (10, 20, 100, 50), Box(10, 20, 110, 70)),
    ("w/h fractions of the source", (0, 0, 0.5, 0.25), Box(0, 0, 150, 50)),
    ("x/y fractions: 0.5 puts the left/top edge at the centre", (0.5, 0.5, 100, 50), Box(150, 100, 250, 150)),
    ("center/middle: half the free space", ("center", "middle", 100, 100), Box(100, 50, 200, 150)),
    ("right/bottom: all the free space", ("right", "bottom", 100, 50), Box(200, 150, 300, 200)),
    ("left/top are 0", ("left", "top", 0.5, 0.5), Box(0, 0, 150, 100)),
    ("keywords with fractions", ("center", "middle", 0.5, 0.5), Box(75, 50, 225, 150)),
    ("a fraction overflowing the image is clipped", (0.75, 0.0, 0.5, 1.0), Box(225, 0, 300, 200)),
]


@pytest.mark.parametrize("rule,rect,box", RECT_TABLE, ids=[row[0] for row in RECT_TABLE])
def test_rect_forms(rule: str, rect, box: Box) -> None:
    got = region(SRC, rect)
    assert (got.left, got.top, got.right, got.bottom) == (box.left, box.top, box.right, box.bottom), rule


def test_padding_without_w_h_is_added_to_the_image() -> None:
    layout = plan(SRC, Request(padding=(1, 2, 3, 4)))
    assert (layout.canvas.width, layout.canvas.height) == (300, 200)
    assert (layout.output.width, layout.output.height) == (306, 204)


def test_padding_with_w_h_fits_within_the_requested_box() -> None:
    # imgix: "the image (including the padding) will be sized to fit within the requested dimensions".
    layout = plan(SRC, Request(100, 100, "crop", padding=(10, 10, 10, 10)))
    assert (layout.scaled.width, layout.scaled.height) == (80, 80)
    assert (layout.output.width, layout.output.height) == (100, 100)
    only_w = plan(SRC, Request(width=120, padding=(0, 10, 0, 10)))
    assert (only_w.output.width, only_w.output.height) == (120, 67)  # 100x67 inside


def test_padding_leaving_no_room_is_an_error_naming_pad() -> None:
    with pytest.raises(GeometryError, match="no room") as caught:
        plan(SRC, Request(100, 100, "crop", padding=(50, 50, 50, 50)))
    assert caught.value.param == "pad"


def test_the_side_cap_leaves_the_padding_whole() -> None:
    layout = plan(Size(10000, 100), Request(padding=(0, 100, 0, 92)))
    assert layout.canvas.width == MAX_OUTPUT_SIDE - 192
    assert layout.output.width == MAX_OUTPUT_SIDE


@given(sw=st.integers(1, 3000), sh=st.integers(1, 3000),
       width=st.one_of(st.none(), st.integers(1, 3000)), height=st.one_of(st.none(), st.integers(1, 3000)),
       bounds=st.tuples(*[st.one_of(st.none(), st.integers(1, 8192))] * 4))
def test_bounds_hold_under_fit_crop(sw: int, sh: int, width, height, bounds) -> None:
    min_w, min_h, max_w, max_h = bounds
    layout = plan(Size(sw, sh), Request(width, height, "crop", min_w=min_w, min_h=min_h, max_w=max_w, max_h=max_h))
    out = layout.output
    if max_w is not None:
        assert out.width <= max_w
    if max_h is not None:
        assert out.height <= max_h
    if MAX_OUTPUT_SIDE in (out.width, out.height):
        return  # scaled down as a whole to imgix's side limit: the minimums give way
    if min_w is not None and (max_w is None or max_w >= min_w):
        assert out.width >= min_w
    if min_h is not None and (max_h is None or max_h >= min_h):
        assert out.height >= min_h
