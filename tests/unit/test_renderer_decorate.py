"""The frame: border, border-radius, pad, fill, mask and trim, measured in pixels.

Pure functions on small generated images, then the pipeline with a RenderSpec built by
hand (and the spec fields folded from typed schema values by ``params._frame``).
"""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageDraw, ImageStat

from renderer import decorate, fill, mask, params, shapes, trim
from renderer.errors import OutputTooLarge
from renderer.params import RenderSpec
from renderer.pipeline import plan, render
from renderer.samples import Sample, generate

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def photo(width: int = 60, height: int = 40) -> Image.Image:
    """A sample photo, decoded: real texture, no uniform edges."""
    image = Image.open(io.BytesIO(generate(Sample("p.png", width, height, seed=9))))
    image.load()
    return image.convert("RGB")


def framed(inner: Image.Image, frame: int, colour: tuple[int, int, int]) -> Image.Image:
    """``inner`` surrounded by a uniform ``frame``-pixel band of ``colour``."""
    out = Image.new("RGB", (inner.width + 2 * frame, inner.height + 2 * frame), colour)
    out.paste(inner, (frame, frame))
    return out


def decoded(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def rendered(source: bytes, **fields: object) -> Image.Image:
    return decoded(render(source, RenderSpec(fm="png", **fields)).body)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def source() -> bytes:
    return generate(Sample("golden-photo.jpg", 240, 160, seed=71))


# ------------------------------------------------------------------------------ shapes


def test_rounded_rect_is_exact_on_straight_edges_and_cut_at_corners() -> None:
    coverage = shapes.rounded_rect((40, 30), (10, 10, 10, 10))
    assert coverage.getpixel((20, 0)) == 255 and coverage.getpixel((0, 15)) == 255
    assert coverage.getpixel((0, 0)) == 0 and coverage.getpixel((39, 29)) == 0
    inset = shapes.rounded_rect((40, 30), (0, 0, 0, 0), inset=3)
    assert inset.getpixel((2, 15)) == 0 and inset.getpixel((3, 15)) == 255 and inset.getpixel((36, 15)) == 255
    assert inset.getpixel((37, 15)) == 0


def test_radii_are_bounded_to_half_the_shorter_side() -> None:
    assert shapes.bounded_radii((10**15, 5, -3, 0), 40, 30) == (15, 5, 0, 0)
    huge = shapes.rounded_rect((40, 30), (10**15,) * 4)  # type: ignore[arg-type]
    assert huge.getpixel((20, 15)) == 255 and huge.getpixel((0, 0)) == 0


# ------------------------------------------------------------------------------ border


def test_border_pixels_have_the_colour_and_the_width_and_the_size_is_kept() -> None:
    image = photo()
    out = decorate.draw_border(image, 4, "ff0000")
    assert out.size == image.size  # imgix: the border overlaps the image, no resize
    for x, y in ((0, 0), (3, 20), (59, 39), (56, 20), (30, 3), (30, 36)):
        assert out.getpixel((x, y)) == RED, (x, y)
    for x, y in ((4, 20), (55, 20), (30, 4), (30, 35)):
        assert out.getpixel((x, y)) == image.getpixel((x, y)), (x, y)


def test_a_translucent_border_blends() -> None:
    grey = Image.new("RGB", (20, 20), (100, 100, 100))
    out = decorate.draw_border(grey, 2, "ff000080")
    r, g, b = out.getpixel((0, 10))
    assert 170 < r < 185 and 45 < g < 55 and g == b


def test_border_radius_rounds_the_outer_corners_to_transparent() -> None:
    out = decorate.draw_border(photo(), 3, "00ff00", (12, 12, 12, 12))
    assert out.mode == "RGBA"
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((59, 39))[3] == 0
    assert out.getpixel((30, 0)) == (*GREEN, 255)  # the straight edge is border
    assert out.getpixel((30, 20))[3] == 255  # the inside is opaque
    # Per-corner: only the top-left rounded.
    one = decorate.draw_border(photo(), 3, "00ff00", (12, 0, 0, 0))
    assert one.getpixel((0, 0))[3] == 0 and one.getpixel((59, 0)) == (*GREEN, 255)


def test_border_width_zero_is_the_identity() -> None:
    image = photo()
    assert decorate.draw_border(image, 0, "ff0000", (9, 9, 9, 9)) is image


# ------------------------------------------------------------------------------ padding


def test_padding_adds_exactly_the_pixels_asked() -> None:
    image = photo()
    out = decorate.pad(image, (1, 2, 3, 4))
    assert out.size == (60 + 2 + 4, 40 + 1 + 3)
    assert out.getpixel((3, 20))[3] == 0 and out.getpixel((4, 20))[3] == 255
    assert out.getpixel((30, 0))[3] == 0 and out.getpixel((30, 1))[3] == 255
    assert out.getpixel((63, 20))[3] == 255 and out.getpixel((64, 20))[3] == 0
    assert out.getpixel((30, 41))[3] == 0 and out.getpixel((30, 40))[3] == 255
    assert out.crop((4, 1, 64, 41)).convert("RGB").tobytes() == image.tobytes()


def test_a_side_overrides_pad_and_zero_means_pad() -> None:
    assert decorate.padding_of(5) == (5, 5, 5, 5)
    assert decorate.padding_of(5, top=2) == (2, 5, 5, 5)
    assert decorate.padding_of(5, left=0) == (5, 5, 5, 5)  # 0 is the default: renders as absent
    assert decorate.padding_of(0, bottom=7) == (0, 0, 7, 0)
    assert decorate.pad(photo(), (0, 0, 0, 0)).size == (60, 40)


# ------------------------------------------------------------------------------ mask


def test_an_ellipse_masks_the_corners_and_keeps_the_centre() -> None:
    out = mask.apply_mask(photo(), "ellipse")
    for corner in ((0, 0), (59, 0), (59, 39), (0, 39)):
        assert out.getpixel(corner)[3] == 0
    assert out.getpixel((30, 20))[3] == 255
    assert out.getpixel((30, 0))[3] > 0 and out.getpixel((0, 20))[3] > 0  # inscribed: touches the edges


def test_corners_default_to_a_fifth_of_the_shorter_side() -> None:
    assert mask.corner_radii(None, (60, 40)) == (8, 8, 8, 8)
    assert mask.corner_radii(0, (60, 40)) == (8, 8, 8, 8)  # imgix keeps the default for 0
    out = mask.apply_mask(photo(), "corners")
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((8, 0))[3] == 255 and out.getpixel((0, 8))[3] == 255


def test_mask_bg_paints_the_masked_area() -> None:
    out = mask.apply_mask(photo(), "ellipse", background="0000ff")
    assert out.getpixel((0, 0)) == (*BLUE, 255)
    assert mask.apply_mask(photo(), "https://example.com/m.png").mode == "RGB"  # an image mask: not drawn


# ------------------------------------------------------------------------------ fill


def test_fill_solid_paints_the_padding_and_blur_shows_the_image() -> None:
    image = photo(40, 20)
    solid = fill.place(image, (40, 40), (0, 10), "solid", "00ff00")
    assert solid.getpixel((20, 2)) == (*GREEN, 255) and solid.getpixel((20, 37)) == (*GREEN, 255)
    assert solid.crop((0, 10, 40, 30)).convert("RGB").tobytes() == image.tobytes()
    blurred = fill.place(image, (40, 40), (0, 10), "blur")
    band = blurred.crop((0, 0, 40, 8))
    assert ImageStat.Stat(band).extrema[3] == (255, 255)  # opaque: the image, not transparency
    mean_band = ImageStat.Stat(band.convert("RGB")).mean
    mean_image = ImageStat.Stat(image).mean
    assert all(abs(a - b) < 40 for a, b in zip(mean_band, mean_image))
    assert ImageStat.Stat(band.convert("L")).stddev[0] < ImageStat.Stat(image.convert("L")).stddev[0]


def test_fill_modes_not_drawn_leave_the_padding_transparent() -> None:
    out = fill.place(photo(40, 20), (40, 40), (0, 10), "gradient")
    assert out.getpixel((20, 2))[3] == 0


# ------------------------------------------------------------------------------ trim


def test_trim_color_removes_a_uniform_frame_exactly() -> None:
    inner = photo()
    assert trim.trim(framed(inner, 7, RED), "color", "ff0000").tobytes() == inner.tobytes()
    # Without trim-color: the top-left pixel's colour.
    assert trim.trim(framed(inner, 3, BLUE), "color").size == inner.size


def test_trim_tolerance_takes_a_noisy_frame() -> None:
    inner = photo()
    noisy = framed(inner, 5, (250, 250, 250))
    ImageDraw.Draw(noisy).point([(1, 1)], fill=(244, 255, 247))
    assert trim.trim(noisy, "color", "fafafa", 0).size == (64, 44)  # exact: the speck stays
    assert trim.trim(noisy, "color", "fafafa", 8).size == inner.size


def test_trim_auto_needs_agreeing_corners() -> None:
    inner = photo()
    assert trim.trim(framed(inner, 4, (10, 200, 30)), "auto").size == inner.size
    assert trim.trim(inner, "auto").size == inner.size  # a photo's corners disagree: untouched


def test_trim_of_a_uniform_image_keeps_it_and_strips_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    assert trim.trim(Image.new("RGB", (9, 9), RED), "color", "ff0000").size == (9, 9)
    image = framed(photo(), 6, RED)
    whole = trim.trim_box(image, (*RED, 255), 0)
    monkeypatch.setattr(trim, "STRIP_PIXELS", 100)  # a strip of one row
    assert trim.trim_box(image, (*RED, 255), 0) == whole == (6, 6, 66, 46)


def test_trim_on_alpha_compares_transparency() -> None:
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (5, 5, 15, 15))
    assert trim.trim(rgba, "color", "ff0000").size == (20, 20)  # the frame is transparent, not red
    assert trim.trim(rgba, "color", "ff000000").size == (10, 10)


# ------------------------------------------------------------------------------ through the pipeline


def test_trim_acts_on_the_source_before_the_resize() -> None:
    inner = photo(80, 40)
    buffer = io.BytesIO()
    framed(inner, 20, RED).save(buffer, "PNG")
    out = decoded(render(buffer.getvalue(), RenderSpec(width=40, trim="color", trim_color="ff0000")).body)
    assert out.size == (40, 20)  # w applies to the trimmed 80x40, not the framed 120x80
    assert max(abs(a - b) for a, b in zip(out.getpixel((0, 0)), RED)) > 30  # no red frame left


def test_the_frame_in_order_mask_border_pad_bg(source: bytes) -> None:
    out = rendered(source, width=100, mask="ellipse", border=(4, "0000ff"), pad=(6, 6, 6, 6), bg="00ff00")
    assert out.size == (100, 71)  # the padding fits within w=100: an 88x59 image inside
    assert out.getpixel((0, 0))[:3] == GREEN  # padding, painted by bg
    assert out.getpixel((6, 6))[:3] == BLUE  # the border frames the image's rectangle, over the mask
    assert out.getpixel((11, 11))[:3] == GREEN  # masked corner inside the border: bg behind it
    assert out.getpixel((50, 6))[:3] == BLUE  # the border's straight top edge, on top of the mask
    assert out.getpixel((50, 33))[3] == 255


def test_pad_without_w_h_grows_the_output_and_jpeg_pads_white(source: bytes) -> None:
    out = decoded(render(source, RenderSpec(fm="jpg", pad=(10, 10, 10, 10))).body)
    assert out.size == (260, 180)
    assert min(out.getpixel((2, 2))) > 245


def test_a_huge_pad_is_refused_naming_the_budget_before_decoding(source: bytes) -> None:
    truncated = source[: len(source) // 3]  # a valid header; decoding it would fail (422)
    started = time.perf_counter()
    with pytest.raises(OutputTooLarge, match="max_output_pixels") as caught:
        render(truncated, RenderSpec(pad=(100000,) * 4))
    assert caught.value.status == 400 and caught.value.param == "pad"
    with pytest.raises(OutputTooLarge, match="max_output_pixels"):
        plan(truncated, RenderSpec(pad=(100000,) * 4))
    assert time.perf_counter() - started < 0.5


def test_padding_past_the_side_limit_is_refused(source: bytes) -> None:
    with pytest.raises(OutputTooLarge, match="8192 px a side"):
        plan(source, RenderSpec(pad=(0, 9000, 0, 0)))


def test_min_max_hold_through_the_pipeline(source: bytes) -> None:
    assert rendered(source, height=100, fit="crop", max_w=60).size == (60, 100)
    assert rendered(source, height=50, fit="crop", min_w=150).size == (150, 50)


def test_fill_through_the_pipeline(source: bytes) -> None:
    out = rendered(source, width=100, height=100, fit="fill", fill="solid", fill_color="ff0000")
    assert out.getpixel((50, 2)) == (*RED, 255)
    blurred = rendered(source, width=100, height=100, fit="fill", fill="blur")
    assert blurred.getpixel((50, 2))[3] == 255


# ------------------------------------------------------------------------------ folding typed values


def test_identity_values_fold_to_the_spec_defaults() -> None:
    defaults = params._frame({}, "clip")
    assert params._frame({"pad": 0, "pad-top": 0, "pad-left": 0}, "clip") == defaults
    assert params._frame({"border": (0, "ff0000"), "border-radius": 9}, "clip") == defaults
    assert params._frame({"min-w": 10, "max-h": 20}, "clip") == defaults  # fit=crop only
    assert params._frame({"fill": "solid", "fill-color": "ffffff"}, "fill") == defaults
    assert params._frame({"fill": "blur"}, "clip") == defaults  # no padding to fill
    assert params._frame({"fill": "gen"}, "fill") == defaults  # not drawn
    assert params._frame({"mask": "https://x/m.png", "mask-bg": "ff0000"}, "clip") == defaults
    assert params._frame({"trim": "alpha"}, "clip") == defaults
    assert params._frame({"trim-color": "ff0000", "trim-tol": 5.0}, "clip") == defaults
    ellipse = params._frame({"mask": "ellipse"}, "clip")
    assert params._frame({"mask": "ellipse", "mask-bg": "ffffff"}, "clip") == ellipse
    corners = params._frame({"mask": "corners"}, "clip")
    assert params._frame({"mask": "corners", "corner-radius": 0}, "clip") == corners
    assert params._frame({"trim": "color"}, "clip") == params._frame({"trim": "color", "trim-tol": 0.0}, "clip")


def test_typed_values_become_spec_fields() -> None:
    frame = params._frame(
        {"pad": 4, "pad-right": 9, "border": (3, "ff0000"), "border-radius": (1, 2, 3, 4), "min-w": 50,
         "mask": "corners", "corner-radius": 6, "fill": "solid", "fill-color": "00ff00"},
        "crop",
    )
    assert frame["pad"] == (4, 9, 4, 4)
    assert frame["border"] == (3, "ff0000") and frame["border_radius"] == (1, 2, 3, 4)
    assert frame["min_w"] == 50 and frame["corner_radius"] == (6, 6, 6, 6)
    assert "fill" not in frame  # fit=crop has no padding to fill


def test_a_masked_jpeg_is_white_outside_the_mask_and_mask_bg_paints(source: bytes) -> None:
    plain = decoded(render(source, RenderSpec(width=96, fm="jpg", mask="ellipse")).body)
    assert min(plain.getpixel((1, 1))) > 245  # imgix: white where the format has no alpha
    coloured = decoded(render(source, RenderSpec(width=96, fm="jpg", mask="ellipse", mask_bg="ff0000")).body)
    r, g, b = coloured.getpixel((1, 1))
    assert r > 230 and g < 30 and b < 30


def test_identity_frame_fields_render_the_same_bytes(source: bytes) -> None:
    plain = render(source, RenderSpec(width=96, fm="png")).body
    assert render(source, RenderSpec(width=96, fm="png", pad=(0, 0, 0, 0), border_radius=(0, 0, 0, 0))).body == plain
    # A photo has no frame: trim=auto keeps its size (its pixels come from a full decode, not draft's).
    assert render(source, RenderSpec(width=96, fm="png", trim="auto")).height == 64


# ------------------------------------------------------------------------------ from the query string


def query(text: str) -> RenderSpec:
    return params.spec_from_query([tuple(part.split("=", 1)) for part in text.split("&")])  # type: ignore[misc]


def from_query(source: bytes, text: str) -> Image.Image:
    return decoded(render(source, query(text + "&fm=png")).body)


def test_every_frame_parameter_through_the_query(source: bytes) -> None:
    assert from_query(source, "h=100&fit=crop&max-w=60").size == (60, 100)
    assert from_query(source, "h=50&fit=crop&min-w=150").size == (150, 50)
    assert from_query(source, "h=50&fit=crop&min-h=80").size == (75, 80)
    assert from_query(source, "w=50&fit=crop&max-h=20").size == (50, 20)
    assert from_query(source, "rect=center,middle,0.5,0.5").size == (120, 80)
    assert from_query(source, "rect=0.5,0,0.25,1.0").size == (60, 160)
    bordered = from_query(source, "w=96&border=5,00ff00")
    assert bordered.size == (96, 64) and bordered.getpixel((0, 30))[:3] == GREEN
    rounded = from_query(source, "w=96&border=2,00ff00&border-radius=20")
    assert rounded.getpixel((0, 0))[3] == 0 and rounded.getpixel((48, 0))[:3] == GREEN
    inner = from_query(source, "w=96&border=8,00ff00&border-radius-inner=6")
    assert inner.getpixel((8, 8))[:3] == GREEN  # the inner corner is rounded into the band
    padded = from_query(source, "pad=5&pad-top=9")
    assert padded.size == (250, 174) and padded.getpixel((100, 8))[3] == 0 and padded.getpixel((100, 9))[3] == 255
    for side, size in (("pad-right", (243, 160)), ("pad-bottom", (240, 163)), ("pad-left", (243, 160))):
        assert from_query(source, f"{side}=3").size == size
    assert from_query(source, "w=100&h=100&fit=fill&fill=solid&fill-color=ff0000").getpixel((50, 2)) == (*RED, 255)
    assert from_query(source, "w=100&h=100&fit=fill&fill=blur").getpixel((50, 2))[3] == 255
    assert from_query(source, "w=96&mask=ellipse").getpixel((0, 0))[3] == 0
    corners = from_query(source, "w=96&mask=corners&corner-radius=20&mask-bg=0000ff")
    assert corners.getpixel((0, 0)) == (*BLUE, 255) and corners.getpixel((48, 0))[:3] != BLUE


def test_trim_through_the_query() -> None:
    inner = photo(80, 40)
    buffer = io.BytesIO()
    framed(inner, 10, (12, 34, 56)).save(buffer, "PNG")
    data = buffer.getvalue()
    assert from_query(data, "trim=color&trim-color=0c2238").size == (80, 40)
    assert from_query(data, "trim=color").size == (80, 40)  # the top-left pixel's colour
    assert from_query(data, "trim=color&trim-color=0c2239&trim-tol=1&w=40").size == (40, 20)
    assert from_query(data, "trim=auto").size == (80, 40)


def test_identity_values_through_the_query_render_the_same_bytes(source: bytes) -> None:
    plain = render(source, query("w=96&fm=png")).body
    for extra in ("pad=0", "pad-top=0&pad-left=0", "border=0,ff0000", "border=0,f00&border-radius=9",
                  "fill-color=fff", "mask-bg=fff", "trim-tol=0", "trim-color=ff0000", "corner-radius=5",
                  "min-w=5", "max-w=5", "fill=solid", "mask=https%3A%2F%2Fexample.com%2Fm.png"):
        assert render(source, query("w=96&fm=png&" + extra)).body == plain, extra


def test_huge_values_are_bounded_or_refused(source: bytes) -> None:
    assert from_query(source, "w=96&border=999999,ff0000&border-radius=999999999").size == (96, 64)
    assert from_query(source, "w=96&mask=corners&corner-radius=999999999,1,2,3").size == (96, 64)
    assert from_query(source, "w=96&trim=color&trim-tol=99999999").size == (96, 64)
    with pytest.raises(OutputTooLarge, match="max_output_pixels"):
        render(source, query("pad=100000"))
    with pytest.raises(params.BadParam, match="no room") as caught:
        render(source, query("w=96&pad=48"))
    assert caught.value.param == "pad" and caught.value.status == 400
