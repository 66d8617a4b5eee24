"""Watermark and text overlays (``renderer.watermark``, ``renderer.text``, ``renderer.fonts``),
measured on pixels: where the mark and the glyphs land, how much they cover, and that every
bound refuses or clamps before it costs anything."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops

from renderer import fonts
from renderer.errors import BadParam
from renderer.params import RenderSpec, _text, spec_from_query
from renderer.pipeline import plan, render
from renderer.samples import Sample, generate
from renderer.text import MAX_TXT_CHARS, TextSpec, clip_text, draw_text, text_box
from renderer.watermark import MAX_TILES, MarkSpec, draw_watermark, mark_size, origin_name, tile_count

WHITE = (255, 255, 255)
RED = (255, 0, 0, 255)


def white(size: tuple[int, int] = (200, 100)) -> Image.Image:
    return Image.new("RGB", size, WHITE)


def red_mark(size: tuple[int, int] = (20, 10)) -> Image.Image:
    return Image.new("RGBA", size, RED)


def ink(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The bounding box of every pixel that is not white."""
    return ImageChops.difference(image.convert("RGB"), Image.new("RGB", image.size, WHITE)).getbbox()


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# ---------------------------------------------------------------- watermark: place and size

def test_default_watermark_sits_bottom_right_inside_the_padding() -> None:
    out = draw_watermark(white(), red_mark(), MarkSpec("m.png"))
    assert ink(out) == (200 - 5 - 20, 100 - 5 - 10, 195, 95)
    assert out.getpixel((185, 90)) == (255, 0, 0)
    assert out.mode == "RGB"  # an opaque picture stays opaque


def test_mark_pad_and_alignment() -> None:
    assert ink(draw_watermark(white(), red_mark(), MarkSpec("m.png", pad=0))) == (180, 90, 200, 100)
    assert ink(draw_watermark(white(), red_mark(), MarkSpec("m.png", align=("left", "top"), pad=7))) == (7, 7, 27, 17)
    assert ink(draw_watermark(white(), red_mark(), MarkSpec("m.png", align=("center", "middle")))) == (90, 45, 110, 55)
    # mark-x / mark-y override the alignment and the padding on their axis.
    assert ink(draw_watermark(white(), red_mark(), MarkSpec("m.png", x=10, y=20))) == (10, 20, 30, 30)
    assert ink(draw_watermark(white(), red_mark(), MarkSpec("m.png", x=-5))) == (0, 85, 15, 95)


def test_dpr_multiplies_the_pixel_lengths() -> None:
    assert ink(draw_watermark(white(), red_mark(), MarkSpec("m.png", pad=5, w=20), dpr=2.0)) == (150, 70, 190, 90)


def test_mark_alpha_50_halves_the_watermarks_contribution() -> None:
    full = draw_watermark(white(), red_mark(), MarkSpec("m.png"))
    half = draw_watermark(white(), red_mark(), MarkSpec("m.png", alpha=50))
    contribution_full = 255 - full.getpixel((185, 90))[1]
    contribution_half = 255 - half.getpixel((185, 90))[1]
    assert contribution_full == 255
    assert abs(contribution_half - contribution_full / 2) <= 1
    assert half.getpixel((185, 90))[0] == 255  # red stays red


def test_mark_alpha_0_draws_nothing() -> None:
    image = white()
    assert draw_watermark(image, red_mark(), MarkSpec("m.png", alpha=0)) is image


def test_mark_scale_is_a_percentage_of_the_picture_width() -> None:
    assert mark_size((20, 10), (200, 100), MarkSpec("m.png", scale=50)) == (100, 50)
    assert mark_size((20, 10), (200, 100), MarkSpec("m.png", scale=0)) == (0, 0)
    out = draw_watermark(white(), red_mark(), MarkSpec("m.png", scale=25))
    assert ink(out) == (145, 70, 195, 95)


@pytest.mark.parametrize(
    ("fit", "size"),
    [("clip", (40, 20)), ("max", (20, 10)), ("scale", (40, 40)), ("crop", (40, 40)), ("fill", (40, 40))],
)
def test_mark_fit_in_a_box(fit: str, size: tuple[int, int]) -> None:
    assert mark_size((20, 10), (200, 100), MarkSpec("m.png", w=40, h=40, fit=fit)) == size


def test_mark_fill_letterboxes_and_crop_covers() -> None:
    fill = draw_watermark(white(), red_mark(), MarkSpec("m.png", w=40, h=40, fit="fill", pad=0))
    assert ink(fill) == (160, 70, 200, 90)  # 40x20 of red centred in a 40x40 transparent box
    crop = draw_watermark(white(), red_mark(), MarkSpec("m.png", w=40, h=40, fit="crop", pad=0))
    assert ink(crop) == (160, 60, 200, 100)


def test_mark_w_fraction_is_of_the_watermarks_own_size() -> None:
    assert mark_size((40, 20), (200, 100), MarkSpec("m.png", w=0.5)) == (20, 10)
    assert mark_size((40, 20), (200, 100), MarkSpec("m.png", h=30)) == (60, 30)


def test_a_watermark_is_never_drawn_larger_than_the_picture() -> None:
    assert mark_size((20, 10), (200, 100), MarkSpec("m.png", w=8000)) == (200, 100)
    assert mark_size((20, 10), (200, 100), MarkSpec("m.png", w=8000, h=100, fit="scale")) == (200, 2)


# ---------------------------------------------------------------- watermark: tiles

def test_tiles_cover_the_picture_on_a_grid() -> None:
    out = draw_watermark(white(), red_mark(), MarkSpec("m.png", tile="grid", pad=5))
    # Default for tiles is top-left: the first tile at (5, 5), then every 25 x 15 pixels.
    assert out.getpixel((6, 6)) == (255, 0, 0)
    assert out.getpixel((31, 21)) == (255, 0, 0)
    assert out.getpixel((27, 6)) == WHITE  # the gap between tiles
    assert out.getpixel((6, 16)) == WHITE
    assert out.getpixel((0, 6)) == WHITE
    shifted = draw_watermark(white(), red_mark(), MarkSpec("m.png", tile="grid", pad=5, x=10))
    assert shifted.getpixel((0, 6)) == (255, 0, 0)  # the tile cut by the left edge is drawn too
    assert shifted.getpixel((199, 6)) == (255, 0, 0)  # and the one cut by the right edge
    reds = sum(1 for p in out.get_flattened_data() if p == (255, 0, 0))
    assert reds == pytest.approx(200 * 100 * (20 * 10) / (25 * 15), rel=0.08)


def test_tile_count_is_bounded_and_refused_fast() -> None:
    assert tile_count((2, 2), (4000, 4000), 0) > MAX_TILES
    started = time.perf_counter()
    with pytest.raises(BadParam) as caught:
        draw_watermark(white((4000, 4000)), red_mark((2, 2)), MarkSpec("m.png", tile="grid", pad=0))
    assert caught.value.param == "mark-tile"
    assert str(MAX_TILES) in caught.value.message
    assert time.perf_counter() - started < 0.5
    # A huge mark-pad costs nothing either: one tile, no gigantic grid cell.
    started = time.perf_counter()
    huge_pad = draw_watermark(white(), red_mark(), MarkSpec("m.png", tile="grid", pad=10**15, x=0, y=0))
    assert ink(huge_pad) == (0, 0, 20, 10)
    assert time.perf_counter() - started < 0.5
    # Just under the bound draws, and quickly: the grid is built by doubling.
    started = time.perf_counter()
    draw_watermark(white((1000, 1000)), red_mark((20, 20)), MarkSpec("m.png", tile="grid", pad=0))
    assert time.perf_counter() - started < 1.0


# ---------------------------------------------------------------- watermark: where it comes from

@pytest.mark.parametrize("value", ["/logos/mark.png", "logos/mark.png", "logos//mark.png"])
def test_mark_paths_resolve_from_the_origin_root(value: str) -> None:
    assert origin_name(value) == "logos/mark.png"


@pytest.mark.parametrize(
    "value",
    ["https://evil.example/x.png", "http://169.254.169.254/latest", "//evil.example/x.png", "file:///etc/passwd",
     "data:image/png;base64,AAAA", "../outside.png", "/logos/../../x.png", "a\x00b.png", "a\\b.png"],
)
def test_marks_that_leave_the_origin_are_refused_naming_mark(value: str) -> None:
    with pytest.raises(BadParam) as caught:
        origin_name(value)
    assert caught.value.param == "mark"


def test_render_decodes_the_mark_under_its_own_limits() -> None:
    source = generate(Sample("p.jpg", 120, 80, seed=3))
    spec = RenderSpec(fm="png", mark=MarkSpec("m.png", pad=0))
    out = Image.open(io.BytesIO(render(source, spec, mark=png(red_mark((12, 8)))).body)).convert("RGB")
    assert out.getpixel((114, 76)) == (255, 0, 0)
    too_large = png(Image.new("RGB", (2100, 2000), (255, 0, 0)))  # 4.2 MP, a few kilobytes
    for bad in (too_large, b"not an image"):
        with pytest.raises(BadParam) as caught:
            render(source, spec, mark=bad)
        assert caught.value.param == "mark"
        with pytest.raises(BadParam):
            plan(source, spec, mark=bad)
    with pytest.raises(ValueError):
        render(source, spec)  # a caller that forgot the bytes is a bug, not a client's 400


# ---------------------------------------------------------------- text

def test_text_of_txt_color_appears_in_the_aligned_region_only() -> None:
    spec = TextSpec("Hello", size=20, color="ff0000", align=("left", "top"), pad=10)
    placed = text_box((300, 100), spec)
    assert placed is not None
    _, _, _, (left, top, width, height) = placed
    assert (left, top) == (10, 10)
    out = draw_text(white((300, 100)), spec)
    box = ink(out)
    assert box is not None
    assert box[0] >= left - 2 and box[1] >= top - 2 and box[2] <= left + width + 2 and box[3] <= top + height + 2
    reds = [p for p in out.get_flattened_data() if p[0] > 200 and p[1] < 60 and p[2] < 60]
    assert len(reds) > 30  # solid glyph pixels of the asked colour


def test_text_defaults_to_the_bottom_right_with_10px_padding() -> None:
    out = draw_text(white((300, 100)), TextSpec("Hello"))
    box = ink(out)
    assert box is not None
    assert 150 < box[0] and box[2] <= 300 - 10 + 1 and box[3] <= 100 - 10 + 1 and box[1] > 60
    assert min(min(p) for p in out.get_flattened_data()) < 60  # black glyphs


@pytest.mark.parametrize(
    ("align", "centre"),
    [(("center", "middle"), (150, 50)), (("bottom", "left"), (None, None)), (("right", "top"), (None, None))],
)
def test_text_alignment(align: tuple[str, ...], centre: tuple[int | None, int | None]) -> None:
    out = draw_text(white((300, 100)), TextSpec("Hello", size=24, align=align))
    box = ink(out)
    assert box is not None
    if centre[0] is not None:
        assert abs((box[0] + box[2]) / 2 - centre[0]) <= 3 and abs((box[1] + box[3]) / 2 - centre[1]) <= 6
    if "left" in align:
        assert box[0] <= 14
    if "top" in align:
        assert box[1] <= 20 and box[2] >= 280


def test_a_10000_character_txt_is_refused_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(BadParam) as caught:
        _text({"txt": "x" * 10_000})
    assert caught.value.param == "txt"
    assert str(MAX_TXT_CHARS) in caught.value.message
    assert time.perf_counter() - started < 0.05
    assert _text({"txt": "x" * MAX_TXT_CHARS}) is not None


def test_huge_text_is_clamped_to_the_picture() -> None:
    started = time.perf_counter()
    out = draw_text(white((300, 100)), TextSpec("W" * MAX_TXT_CHARS, size=100_000, shadow=10, line=100))
    assert time.perf_counter() - started < 0.5
    assert out.size == (300, 100)


@pytest.mark.parametrize(
    ("clip", "expected"),
    [(("end",), "abcdef"), (("start",), "efghij"), (("middle",), "abchij"), (("ellipsis",), "abcde\u2026"),
     (("ellipsis", "start"), "\u2026fghij"), (("ellipsis", "middle"), "abc\u2026ij"), (("end", "start"), "abcdef")],
)
def test_txt_clip_modes(clip: tuple[str, ...], expected: str) -> None:
    assert clip_text("abcdefghij", lambda s: len(s) <= 6, clip) == expected


def test_txt_width_clips_the_text() -> None:
    long = "The quick brown fox jumps over the lazy dog"
    wide = ink(draw_text(white((400, 60)), TextSpec(long, size=16)))
    narrow = ink(draw_text(white((400, 60)), TextSpec(long, size=16, width=80)))
    assert wide is not None and narrow is not None
    assert narrow[2] - narrow[0] <= 82 < wide[2] - wide[0]
    # Without txt-width, the text never runs past the padding.
    clipped = ink(draw_text(white((120, 60)), TextSpec(long, size=16, align=("left",))))
    assert clipped is not None and clipped[0] >= 8 and clipped[2] <= 120 - 10 + 1


def test_txt_shad_draws_a_dark_halo_around_white_text() -> None:
    plain = draw_text(white((200, 60)), TextSpec("Hi", size=30, color="ffffff", align=("center", "middle")))
    assert ink(plain) is None  # white on white
    shadowed = draw_text(white((200, 60)), TextSpec("Hi", size=30, color="ffffff", shadow=4, align=("center", "middle")))
    box = ink(shadowed)
    assert box is not None and min(min(p) for p in shadowed.get_flattened_data()) < 200


def test_txt_line_outlines_in_txt_line_color() -> None:
    out = draw_text(white((200, 60)), TextSpec("Hi", size=30, color="ffffff", line=2, line_color="0000ff",
                                               align=("center", "middle")))
    blues = [p for p in out.get_flattened_data() if p[2] > 200 and p[0] < 60 and p[1] < 60]
    assert len(blues) > 20


def test_text_colour_alpha_is_composited_over() -> None:
    opaque = draw_text(white((200, 60)), TextSpec("I", size=40, color="000000", align=("center", "middle")))
    faint = draw_text(white((200, 60)), TextSpec("I", size=40, color="00000080", align=("center", "middle")))
    assert min(p[0] for p in opaque.get_flattened_data()) == 0
    assert min(p[0] for p in faint.get_flattened_data()) == pytest.approx(127, abs=2)


def test_txt_size_0_and_blank_text_draw_nothing() -> None:
    image = white()
    assert draw_text(image, TextSpec("Hello", size=0)) is image
    assert draw_text(image, TextSpec("   ")) is image


def test_equal_specs_render_identical_bytes() -> None:
    source = generate(Sample("p.jpg", 120, 80, seed=4))
    spec = RenderSpec(fm="png", text=TextSpec("pixring", size=14, shadow=2))
    assert render(source, spec).body == render(source, spec).body
    assert render(source, RenderSpec(fm="png", text=TextSpec("x", size=0))).body == render(source, RenderSpec(fm="png")).body


# ---------------------------------------------------------------- fonts

def test_fonts_default_to_pillows_built_in_font() -> None:
    default = fonts.resolve_font(None, 20)
    assert default.getname() == fonts.default_font(20).getname()
    assert fonts.resolve_font("No Such Typeface,bold", 20) is fonts.default_font(20)
    assert fonts.resolve_font("cursive", 20) is fonts.default_font(20)


def test_font_names_match_file_names_loosely() -> None:
    index = {name: Path(f"/fonts/{name}.ttf") for name in
             ("dejavusans", "dejavusansbold", "dejavusansoblique", "dejavusansboldoblique", "dejavuserif", "fooregular")}
    assert fonts._match("DejaVu Sans", index) == index["dejavusans"]
    assert fonts._match("DejaVuSans-Bold", index) == index["dejavusansbold"]
    assert fonts._match("dejavu_sans,bold", index) == index["dejavusansbold"]
    assert fonts._match("sans-serif,italic", index) == index["dejavusansoblique"]
    assert fonts._match("sans-serif,bold,italic", index) == index["dejavusansboldoblique"]
    assert fonts._match("serif", index) == index["dejavuserif"]
    assert fonts._match("Foo", index) == index["fooregular"]
    assert fonts._match("monospace", index) is None


def test_the_font_index_is_bounded_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    for directory in ("a", "b"):
        (tmp_path / directory / "Same-Name.ttf").write_bytes(b"not really a font")
    (tmp_path / "a" / "notes.txt").write_bytes(b"")
    index = fonts.font_files((tmp_path,))
    assert index == {"samename": tmp_path / "a" / "Same-Name.ttf"}
    # A broken font file falls back to the default rather than failing the render.
    assert fonts.resolve_font("Same Name", 12, (tmp_path,)) is fonts.default_font(12)


@pytest.mark.skipif("dejavusansbold" not in fonts.font_files(), reason="this host has no DejaVu fonts")
def test_a_host_font_is_picked_by_name_and_style() -> None:
    assert fonts.resolve_font("DejaVu Sans,bold", 20).getname() == ("DejaVu Sans", "Bold")
    plain = draw_text(white((300, 60)), TextSpec("Hello", size=24, align=("center", "middle")))
    bold = draw_text(white((300, 60)), TextSpec("Hello", size=24, font="DejaVu Sans,bold", align=("center", "middle")))
    assert plain.tobytes() != bold.tobytes()


# ---------------------------------------------------------------- through the schema

def through(query: str, base: tuple[int, int, int] = WHITE) -> Image.Image:
    """A 200x100 PNG of ``base`` rendered with ``query`` read by the shared schema."""
    pairs = [tuple(part.split("=", 1)) for part in (query + "&fm=png").split("&") if part]
    spec = spec_from_query(pairs)  # type: ignore[arg-type]
    data = png(red_mark()) if spec.mark is not None else None
    body = render(png(Image.new("RGB", (200, 100), base)), spec, mark=data).body
    return Image.open(io.BytesIO(body)).convert("RGB")


def red_pixels(image: Image.Image) -> int:
    return sum(1 for p in image.get_flattened_data() if p[0] > 200 and p[1] < 80 and p[2] < 80)


M = "mark=/logos/mark.png"
QUERIES: list[tuple[str, str, object]] = [
    # parameter, query, the ink box (or a predicate on the image)
    ("mark", M, (175, 85, 195, 95)),
    ("mark-align", M + "&mark-align=top,left", (5, 5, 25, 15)),
    ("mark-pad", M + "&mark-pad=0", (180, 90, 200, 100)),
    ("mark-x", M + "&mark-x=10", (10, 85, 30, 95)),
    ("mark-y", M + "&mark-y=20", (175, 20, 195, 30)),
    ("mark-scale", M + "&mark-scale=25&mark-pad=0", (150, 75, 200, 100)),
    ("mark-w", M + "&mark-w=40&mark-pad=0", (160, 80, 200, 100)),
    ("mark-h", M + "&mark-h=20&mark-pad=0", (160, 80, 200, 100)),
    ("mark-fit", M + "&mark-w=40&mark-h=40&mark-fit=scale&mark-pad=0", (160, 60, 200, 100)),
    ("mark-tile", M + "&mark-tile=grid", lambda im: red_pixels(im) > 200 * 100 * 0.4),
    ("mark-alpha", M + "&mark-alpha=50&mark-pad=0", lambda im: abs(im.getpixel((190, 95))[1] - 127) <= 1),
    ("txt", "txt=Hello", lambda im: ink(im) is not None and ink(im)[0] > 100),
    ("txt-size", "txt=Hello&txt-size=40", lambda im: ink(im)[3] - ink(im)[1] > 25),
    ("txt-color", "txt=Hello&txt-size=30&txt-color=f00", lambda im: red_pixels(im) > 30),
    ("txt-align", "txt=Hello&txt-align=top,left", lambda im: ink(im)[0] < 16 and ink(im)[1] < 16),
    ("txt-pad", "txt=Hello&txt-align=top,left&txt-pad=40", lambda im: ink(im)[0] >= 38 and ink(im)[1] >= 38),
    ("txt-font", "txt=Hello&txt-font=No+Such+Font", lambda im: ink(im) is not None),
    ("txt-shad", "txt=Hi&txt-size=30&txt-color=fff&txt-shad=4", lambda im: ink(im) is not None),
    ("txt-width", "txt=The+quick+brown+fox+jumps&txt-width=50", lambda im: ink(im)[2] - ink(im)[0] <= 52),
    ("txt-clip", "txt=abcdefghijklmnopqrstuvwxyz&txt-width=60&txt-clip=start,ellipsis", lambda im: ink(im) is not None),
    # On grey (see below): the default outline is white.
    ("txt-line", "txt=Hi&txt-size=30&txt-line=2", lambda im: sum(1 for p in im.get_flattened_data() if p == WHITE) > 20),
    ("txt-line-color", "txt=Hi&txt-size=30&txt-color=fff&txt-line=2&txt-line-color=f00", lambda im: red_pixels(im) > 20),
]


@pytest.mark.parametrize(("name", "query", "expected"), QUERIES, ids=[q[0] for q in QUERIES])
def test_each_parameter_through_the_schema(name: str, query: str, expected: object) -> None:
    image = through(query, (128, 128, 128) if name == "txt-line" else WHITE)
    if callable(expected):
        assert expected(image), (name, ink(image))
    else:
        assert ink(image) == expected


def test_every_drawn_parameter_has_a_query() -> None:
    assert {name for name, _, _ in QUERIES} == set(DRAWN)


DRAWN = ("mark", "mark-align", "mark-alpha", "mark-scale", "mark-pad", "mark-w", "mark-h", "mark-fit", "mark-x",
         "mark-y", "mark-tile", "txt", "txt-size", "txt-color", "txt-align", "txt-font", "txt-pad", "txt-shad",
         "txt-width", "txt-clip", "txt-line", "txt-line-color")


@pytest.mark.parametrize(
    ("spelled", "plain"),
    [(M + "&mark-pad=5&mark-alpha=100&mark-fit=clip&mark-align=bottom,right", M),
     (M + "&mark-tile=grid&mark-align=left,top", M + "&mark-tile=grid"),
     ("txt=Hi&txt-size=12&txt-pad=10&txt-shad=0&txt-clip=end&txt-line=0&txt-line-color=fff&txt-color=000"
      "&txt-align=bottom,right&txt-width=0", "txt=Hi"),
     ("txt=Hi&txt-line-color=f00", "txt=Hi"),  # no outline: its colour paints nothing
     ("txt=Hi&txt-line=-3&txt-line-color=f00", "txt=Hi"),  # the schema lets a negative outline through
     ("txt=Hi&txt-color=ff000000", "txt=Hi"),  # imgix's 8 digits are ARGB: opaque black
     ("mark-pad=9&mark-alpha=3&txt-size=50", ""),  # without mark and txt their parameters do nothing
     ("txt=", "")],
)
def test_defaults_spelled_out_are_the_same_render(spelled: str, plain: str) -> None:
    def spec(query: str) -> RenderSpec:
        return spec_from_query([tuple(p.split("=", 1)) for p in query.split("&") if p])  # type: ignore[misc]

    assert spec(spelled).canonical() == spec(plain).canonical()
    assert through(spelled).tobytes() == through(plain).tobytes()


def test_the_schema_paths_of_mark_and_txt_refusals() -> None:
    with pytest.raises(BadParam) as caught:
        spec_from_query([("mark", "https://evil.example/x.png")])
    assert caught.value.param == "mark"
    with pytest.raises(BadParam) as caught:
        spec_from_query([("txt", "x" * 600)])
    assert caught.value.param == "txt"
    with pytest.raises(BadParam) as caught:
        through(M + "&mark-tile=grid&mark-w=2&mark-pad=0")
    assert caught.value.param == "mark-tile"


OVERLAY_PARAMS = sorted(set(DRAWN) - {"mark"})


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OVERLAY_PARAMS),
                          st.text(alphabet="0123456789.-,abcdefghilmnoprstuwxyz ", max_size=10)), max_size=6),
       st.booleans(), st.booleans())
def test_any_overlay_query_renders_or_is_a_400(pairs: list[tuple[str, str]], with_mark: bool, with_text: bool) -> None:
    query = [(name, value) for name, value in pairs]
    if with_mark:
        query.append(("mark", "/m.png"))
    if with_text:
        query.append(("txt", "Hostile"))
    try:
        spec = spec_from_query(query + [("fm", "png"), ("w", "64")])
        render(png(white((96, 64))), spec, mark=png(red_mark()) if spec.mark else None)
    except BadParam as error:
        assert error.param in ("mark", "mark-tile", "txt") or error.param in {name for name, _ in pairs}


def test_every_frame_of_an_animation_gets_the_overlays() -> None:
    frames = [Image.new("RGB", (80, 40), colour) for colour in ((255, 255, 255), (0, 0, 0))]
    source = io.BytesIO()
    frames[0].save(source, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    spec = RenderSpec(fm="gif", mark=MarkSpec("m.png", pad=0, w=10, h=10, fit="scale"),
                      text=TextSpec("Hi", size=16, color="00ff00", align=("left", "top"), pad=0))
    out = Image.open(io.BytesIO(render(source.getvalue(), spec, mark=png(red_mark())).body))
    assert out.n_frames == 2
    for index in range(2):
        out.seek(index)
        frame = out.convert("RGB")
        assert frame.getpixel((75, 35)) == (255, 0, 0)
        assert any(p[1] > 200 and p[0] < 80 for p in frame.crop((0, 0, 30, 20)).get_flattened_data())
