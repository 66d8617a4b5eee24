"""Output parameters (fm=json/png8/png32, palette, dpi, cs, chromasub, jpg-progressive, dl),
animated sources (frame, reverse, loop, fps, interval) and the parameters the renderer ignores.

Specs are built by hand with ``dataclasses.replace`` where the schema does not parse the
parameter yet; every result is decoded again with Pillow and measured."""

from __future__ import annotations

import asyncio
import io
import random
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from pixring import schema

from renderer import animation, drawn
from renderer.disposition import content_disposition
from renderer.errors import BadParam
from renderer.palette import css_identifier, extract
from renderer.params import RenderSpec, spec_from_query
from renderer.pipeline import plan, render
from renderer.samples import Sample, generate
from tests.reference import load_catalogue
from tests.unit.test_renderer_pipeline import decode, encode

DOCS = Path(__file__).resolve().parents[2] / "docs" / "renderer.md"
BASE = RenderSpec()
PHOTO = generate(Sample("s.jpg", 120, 80, seed=91))
ALPHA = generate(Sample("a.png", 60, 40, seed=92, alpha=True))


def animated_gif(count: int, size: tuple[int, int] = (40, 30), durations: list[int] | None = None) -> bytes:
    """Frame i is one flat colour whose red channel is 20 * i (so frames can be told apart)."""
    frames = [Image.new("RGB", size, (20 * i % 256, 100, 200)) for i in range(count)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:],
                  duration=durations or [40 + 10 * i for i in range(count)], loop=0)


def frames_of(data: bytes) -> list[tuple[tuple[int, int, int], int]]:
    image = Image.open(io.BytesIO(data))
    out = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        out.append((image.convert("RGB").getpixel((2, 2)), int(image.info.get("duration", 0))))
    return out


# ---------------------------------------------------------------- ignored parameters

def test_ignored_names_the_undrawn_parameters_sorted() -> None:
    assert drawn.ignored(["w", "upscale", "face-blur", "fm", "bg-remove"]) == ("bg-remove", "face-blur", "upscale")
    assert drawn.ignored(drawn.DRAWN) == ()
    for name in ("w", "hue", "mark", "txt-clip", "palette", "dl", "frame", "jpg-progressive"):
        assert name in drawn.DRAWN


def test_the_manual_gives_a_reason_for_every_parameter_not_drawn() -> None:
    catalogue = load_catalogue()["parameters"]
    section = DOCS.read_text().split("### Parameters it does not draw", 1)[1].split("\n### ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    named = re.findall(r"`([a-z0-9-]+)(\*|-\*)?`", " ".join(first_cells))
    exact = {name for name, wild in named if not wild}
    prefixes = [name for name, wild in named if wild]
    for name in set(catalogue) - drawn.DRAWN:
        assert name in exact or any(name.startswith(p) for p in prefixes), f"{name} is not in docs/renderer.md"
    assert not exact & drawn.DRAWN


def test_headers_only_fields_stay_out_of_the_render_key() -> None:
    plain = replace(BASE, width=40)
    assert replace(plain, dl="x.jpg", ignored=("upscale",)).canonical() == plain.canonical()
    assert replace(plain, dpi=72).canonical() != plain.canonical()


# ---------------------------------------------------------------- fm=json

def test_json_describes_the_source_as_pillow_reads_it() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "Pixring Camera"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 0.0)}  # GPSInfo: never reported
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = encode(Image.new("RGB", (90, 50), (10, 20, 30)), "JPEG", exif=exif, dpi=(144, 144), icc_profile=srgb)
    rendered = render(source, replace(BASE, fm="json", width=10))
    assert rendered.media_type == "application/json"
    doc = orjson.loads(rendered.body)
    independent = Image.open(io.BytesIO(source))
    assert (doc["PixelWidth"], doc["PixelHeight"]) == independent.size == (90, 50)
    assert doc["Orientation"] == independent.getexif()[0x0112] == 6
    assert (doc["DPIWidth"], doc["DPIHeight"]) == independent.info["dpi"] == (144, 144)
    assert doc["ColorModel"] == "RGB" and doc["Depth"] == 8 and doc["HasAlpha"] is False
    assert doc["Content-Type"] == "image/jpeg" and doc["Content-Length"] == str(len(source))
    assert doc["ProfileName"] == ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(srgb))).strip()
    assert doc["JFIF"] == {"IsProgressive": False}
    assert doc["TIFF"]["Make"] == "Pixring Camera"
    assert b"GPS" not in rendered.body and b"48" not in rendered.body


def test_json_of_an_alpha_png_and_of_an_animation() -> None:
    doc = orjson.loads(render(ALPHA, replace(BASE, fm="json")).body)
    assert doc["HasAlpha"] is True and doc["Content-Type"] == "image/png" and "JFIF" not in doc
    animated = orjson.loads(render(animated_gif(5), replace(BASE, fm="json")).body)
    assert animated["Output"] == {"Frames": 5} and animated["GIF"] == {"DelayTime": 0.04}
    assert plan(ALPHA, replace(BASE, fm="json")).media_type == "application/json"


# ---------------------------------------------------------------- png8 / png32

def test_png8_is_a_palette_png_of_at_most_256_colours_keeping_alpha() -> None:
    opaque = decode(render(PHOTO, replace(BASE, fm="png8")).body)
    assert opaque.format == "PNG" and opaque.mode == "P"
    assert len(opaque.getcolors(1000)) <= 256
    clear = decode(render(ALPHA, replace(BASE, fm="png8")).body)
    assert clear.mode == "P" and "transparency" in clear.info
    low, high = clear.convert("RGBA").getchannel("A").getextrema()
    assert low < 128 < high  # transparent and opaque pixels both survive


def test_png32_is_rgba_even_for_an_opaque_source() -> None:
    rendered = render(PHOTO, replace(BASE, fm="png32", width=60))
    image = decode(rendered.body)
    assert (image.format, image.mode, image.size, rendered.media_type) == ("PNG", "RGBA", (60, 40), "image/png")


# ---------------------------------------------------------------- dpi, chromasub, progressive, cs

def test_dpi_is_written_into_jpeg_and_png() -> None:
    assert decode(render(PHOTO, replace(BASE, fm="jpg", dpi=300)).body).info["dpi"] == (300, 300)
    assert decode(render(PHOTO, replace(BASE, fm="png", dpi=300)).body).info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert render(PHOTO, replace(BASE, fm="jpg", dpi=0)).body == render(PHOTO, replace(BASE, fm="jpg")).body
    assert "dpi" not in decode(render(PHOTO, replace(BASE, fm="png")).body).info


@pytest.mark.parametrize("chromasub,sampling", [(444, 0), (422, 1), (420, 2)])
def test_chromasub_is_the_jpeg_subsampling(chromasub: int, sampling: int) -> None:
    image = decode(render(PHOTO, replace(BASE, fm="jpg", chromasub=chromasub)).body)
    assert JpegImagePlugin.get_sampling(image) == sampling


def test_jpeg_is_progressive_unless_asked_not_to_be() -> None:
    assert decode(render(PHOTO, replace(BASE, fm="jpg")).body).info.get("progressive")
    assert not decode(render(PHOTO, replace(BASE, fm="jpg", progressive=False)).body).info.get("progressive")


def test_cs_srgb_embeds_srgb_and_strip_removes_the_profile() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tagged = encode(Image.new("RGB", (40, 40), (200, 100, 50)), "PNG", icc_profile=srgb)
    assert "icc_profile" in decode(render(tagged, replace(BASE, fm="png")).body).info  # origin: kept
    stripped = decode(render(tagged, replace(BASE, fm="png", cs="strip")).body)
    assert "icc_profile" not in stripped.info
    assert stripped.getpixel((5, 5)) == pytest.approx((200, 100, 50), abs=2)  # sRGB to sRGB: same colours
    untagged = decode(render(PHOTO, replace(BASE, fm="jpg", cs="srgb")).body)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(untagged.info["icc_profile"]))
    assert "sRGB" in ImageCms.getProfileDescription(profile)


# ---------------------------------------------------------------- palette

def test_palette_json_lists_the_dominant_colours() -> None:
    image = Image.new("RGB", (100, 100), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 100, 30))  # 70 % red, 30 % blue
    rendered = render(encode(image, "PNG"), replace(BASE, palette="json", colors=2))
    assert rendered.media_type == "application/json"
    doc = orjson.loads(rendered.body)
    assert [c["hex"] for c in doc["colors"]] == ["#ff0000", "#0000ff"]  # most frequent first
    assert doc["colors"][0] == {"red": 1.0, "green": 0.0, "blue": 0.0, "hex": "#ff0000"}
    assert doc["average_luminance"] == pytest.approx(0.7 * 0.2126 + 0.3 * 0.0722, abs=0.01)
    assert doc["dominant_colors"]["vibrant"]["hex"] in ("#ff0000", "#0000ff")


def test_palette_counts_and_limits() -> None:
    photo = decode(PHOTO)
    assert len(extract(photo, 6).colors) == 6
    assert len(extract(photo, 16).colors) == 16
    assert extract(photo, 0).colors == ()
    assert extract(Image.new("RGB", (9, 9), (255, 255, 255)), 6).average_luminance == 1.0
    assert extract(Image.new("RGBA", (9, 9), (255, 0, 0, 0)), 6).colors == ()  # nothing visible


def test_palette_css_classes_carry_an_escaped_prefix() -> None:
    rendered = render(PHOTO, replace(BASE, palette="css", colors=3, prefix="frog"))
    assert rendered.media_type == "text/css"
    css = rendered.body.decode("ascii")
    assert ".frog-fg-1 { color:#" in css and ".frog-bg-3 { background-color:#" in css
    assert ".frog-fg-ex-1 { color:#000000 !important; }" in css and ".frog-bg-4" not in css
    hostile = render(PHOTO, replace(BASE, palette="css", prefix="x{}</style>\n.a")).body.decode("ascii")
    assert "{}" not in hostile and "\n.a" not in hostile and hostile.count("{") == hostile.count("}")
    assert css_identifier("9lives") == "\\39 lives" and css_identifier("é") == "\\e9 "
    assert plan(PHOTO, replace(BASE, palette="css")).media_type == "text/css"


# ---------------------------------------------------------------- dl

@pytest.mark.parametrize(
    "name,header",
    [
        ("photo.jpg", 'attachment; filename="photo.jpg"'),
        ("café.jpg", "attachment; filename=\"caf_.jpg\"; filename*=UTF-8''caf%C3%A9.jpg"),
        ('a"b\\c.jpg', "attachment; filename=\"a_b_c.jpg\"; filename*=UTF-8''a%22b_c.jpg"),
        ("x.jpg\r\nSet-Cookie: a=1", 'attachment; filename="x.jpgSet-Cookie: a=1"'),
        ("\r\n", 'attachment; filename="download"'),
        ("../../etc/passwd", 'attachment; filename=".._.._etc_passwd"'),
    ],
)
def test_content_disposition_is_exact_and_injection_proof(name: str, header: str) -> None:
    value = content_disposition(name)
    assert value == header
    assert "\r" not in value and "\n" not in value and value.isascii()


# ---------------------------------------------------------------- animation

def test_an_animated_gif_stays_animated_with_its_durations() -> None:
    source = animated_gif(6)
    rendered = render(source, replace(BASE, width=20, fm="gif"))
    frames = frames_of(rendered.body)
    assert (rendered.width, rendered.height) == (20, 15)
    assert [d for _, d in frames] == [40, 50, 60, 70, 80, 90]
    assert [rgb[0] for rgb, _ in frames] == pytest.approx([0, 20, 40, 60, 80, 100], abs=4)
    assert frames_of(render(source, replace(BASE, width=20)).body) == frames  # no fm: the source's gif
    webp = render(source, replace(BASE, width=20, fm="webp"))
    assert Image.open(io.BytesIO(webp.body)).n_frames == 6


def test_stills_of_an_animation() -> None:
    source = animated_gif(6)
    first = decode(render(source, replace(BASE, fm="png")).body)
    assert first.getpixel((2, 2))[0] == 0 and not getattr(first, "is_animated", False)
    second = decode(render(source, replace(BASE, fm="gif", frame=2)).body)
    assert not getattr(second, "is_animated", False)
    assert second.convert("RGB").getpixel((2, 2))[0] == pytest.approx(20, abs=4)


def test_frame_ranges_reverse_interval_fps_loop() -> None:
    source = animated_gif(6)
    ranged = frames_of(render(source, replace(BASE, fm="gif", frame=(2, 4))).body)
    assert [rgb[0] for rgb, _ in ranged] == pytest.approx([20, 40, 60], abs=4)
    backwards = frames_of(render(source, replace(BASE, fm="gif", reverse=True)).body)
    assert [rgb[0] for rgb, _ in backwards] == pytest.approx([100, 80, 60, 40, 20, 0], abs=4)
    every_other = frames_of(render(source, replace(BASE, fm="gif", interval=2)).body)
    assert [(round(rgb[0] / 20), d) for rgb, d in every_other] == [(0, 40), (2, 60), (4, 80)]
    assert {d for _, d in frames_of(render(source, replace(BASE, fm="gif", fps=20)).body)} == {50}
    assert Image.open(io.BytesIO(render(source, replace(BASE, fm="gif", loop=3)).body)).info["loop"] == 3
    assert animation.durations({0: 0, 1: 0}, [0, 1], BASE) == [animation.DEFAULT_DURATION_MS] * 2


def test_frames_the_source_lacks_are_refused() -> None:
    for frame in (7, (5, 9)):
        with pytest.raises(BadParam) as refused:
            render(animated_gif(6), replace(BASE, frame=frame))
        assert refused.value.param == "frame" and "has 6" in refused.value.message
    for frame in (2, 0, -1, (0, 3), (4, 2)):
        with pytest.raises(BadParam):
            render(PHOTO if frame == 2 else animated_gif(6), replace(BASE, frame=frame))
    assert render(PHOTO, replace(BASE, frame=1)).body == render(PHOTO, BASE).body


def test_a_thousand_frame_gif_is_refused_fast() -> None:
    frames = []
    for i in range(1000):  # each frame differs from the last, or Pillow would merge them
        frame = Image.new("P", (16, 16), 0)
        frame.putpalette([0, 0, 0, 255, 255, 255])
        frame.putpixel((i % 16, i // 16 % 16), 1)
        frames.append(frame)
    source = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=20)
    started = time.perf_counter()
    for attempt in (plan, render):
        with pytest.raises(BadParam) as refused:
            attempt(source, replace(BASE, fm="gif"))
        assert refused.value.param == "frame" and str(animation.MAX_SOURCE_FRAMES) in refused.value.message
    assert time.perf_counter() - started < 2.0
    assert len(frames_of(render(source, replace(BASE, fm="gif", frame=(1, 10))).body)) == 10
    assert render(source, replace(BASE, fm="png")).fm == "png"  # a still costs one frame


def test_an_animation_has_at_most_max_frames() -> None:
    source = animated_gif(animation.MAX_FRAMES + 1, size=(8, 8))
    with pytest.raises(BadParam) as refused:
        plan(source, replace(BASE, fm="gif"))
    assert refused.value.param == "frame" and f"at most {animation.MAX_FRAMES}" in refused.value.message
    assert len(frames_of(render(source, replace(BASE, fm="gif", interval=2)).body)) == 151


def test_the_animation_pixel_budget_counts_every_frame() -> None:
    source = animated_gif(10, size=(100, 100))
    with pytest.raises(BadParam) as refused:
        render(source, replace(BASE, fm="gif"), max_output_pixels=50_000)
    assert refused.value.param == "frame" and "max_output_pixels" in refused.value.message
    assert len(frames_of(render(source, replace(BASE, fm="gif"), max_output_pixels=100_000).body)) == 10


def test_schema_values_fold_to_one_spec() -> None:
    # Until the schema parses these names, fold through the same helper spec_from_query uses.
    from renderer.params import _output

    assert _output({"frame": (1, None)})["frame"] is None
    assert _output({"frame": (3, 3)})["frame"] == 3
    assert _output({"cs": "tinysrgb"})["cs"] == _output({"cs": "srgb"})["cs"] == "srgb"
    assert _output({"cs": "origin"})["cs"] is None and _output({"cs": "adobergb1998"})["cs"] is None
    assert _output({"colors": 3})["colors"] == 6  # counts only with a palette
    assert _output({"dpi": 10**9})["dpi"] == 65535
    assert spec_from_query([("w", "10")]).ignored == ()


# ---------------------------------------------------------------- through the schema, once it parses them

def parsed(query: str) -> RenderSpec:
    return spec_from_query([tuple(pair.split("=", 1)) for pair in query.split("&") if pair])  # type: ignore[misc]


def schema_renders(query: str) -> bool:
    """True when every name in ``query`` is parsed and every fm value rendered by the schema."""
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name not in schema.PARAMS:
            return False
        if name == "fm" and value not in (schema.PARAMS["fm"].renderable or ()):
            return False
    return True


GIF = animated_gif(6)
THROUGH_SCHEMA = [
    # query, source, check of the rendered result
    ("fm=png8", PHOTO, lambda r: decode(r.body).mode == "P"),
    ("fm=png32", PHOTO, lambda r: decode(r.body).mode == "RGBA"),
    ("fm=json", PHOTO, lambda r: orjson.loads(r.body)["PixelWidth"] == 120),
    ("palette=json&colors=3", PHOTO, lambda r: len(orjson.loads(r.body)["colors"]) == 3),
    ("palette=css&prefix=x", PHOTO, lambda r: r.body.startswith(b".x-fg-1 {")),
    ("fm=jpg&dpi=200", PHOTO, lambda r: decode(r.body).info["dpi"] == (200, 200)),
    ("fm=jpg&chromasub=444", PHOTO, lambda r: JpegImagePlugin.get_sampling(decode(r.body)) == 0),
    ("fm=jpg&jpg-progressive=false", PHOTO, lambda r: not decode(r.body).info.get("progressive")),
    ("fm=jpg&cs=srgb", PHOTO, lambda r: "icc_profile" in decode(r.body).info),
    ("fm=gif&frame=2", GIF, lambda r: [rgb[0] for rgb, _ in frames_of(r.body)] == pytest.approx([20], abs=4)),
    ("fm=gif&frame=2-3", GIF, lambda r: len(frames_of(r.body)) == 2),
    ("fm=gif&interval=3", GIF, lambda r: len(frames_of(r.body)) == 2),
    ("fm=gif&reverse=true", GIF, lambda r: frames_of(r.body)[0][0][0] == pytest.approx(100, abs=4)),
    ("fm=gif&loop=2", GIF, lambda r: Image.open(io.BytesIO(r.body)).info["loop"] == 2),
    ("fm=gif&fps=25", GIF, lambda r: {d for _, d in frames_of(r.body)} == {40}),
]


@pytest.mark.parametrize("query,source,check", THROUGH_SCHEMA, ids=[q for q, _, _ in THROUGH_SCHEMA])
def test_each_parameter_through_the_schema(query: str, source: bytes, check: Any) -> None:
    if not schema_renders(query):
        pytest.skip(f"the schema does not parse or render {query} yet")
    assert check(render(source, parsed(query)))


IDENTITIES = [
    ("fm=jpg&chromasub=420", "fm=jpg", PHOTO),
    ("fm=jpg&jpg-progressive=true", "fm=jpg", PHOTO),
    ("fm=jpg&dpi=0", "fm=jpg", PHOTO),
    ("fm=jpg&cs=origin", "fm=jpg", PHOTO),
    ("palette=json&colors=6", "palette=json", PHOTO),
    ("palette=css&prefix=image", "palette=css", PHOTO),
    ("fm=gif&frame=1-", "fm=gif", GIF),
    ("fm=gif&interval=1&reverse=false&loop=0", "fm=gif", GIF),
]


@pytest.mark.parametrize("query,plain,source", IDENTITIES, ids=[q for q, _, _ in IDENTITIES])
def test_identity_values_render_like_absent(query: str, plain: str, source: bytes) -> None:
    if not schema_renders(query):
        pytest.skip(f"the schema does not parse or render {query} yet")
    assert parsed(query).canonical() == parsed(plain).canonical()
    assert render(source, parsed(query)).body == render(source, parsed(plain)).body


def test_dl_and_ignored_come_from_the_query() -> None:
    if not schema_renders("dl=x&upscale=true&face-blur=10"):
        pytest.skip("the schema does not parse dl, upscale and face-blur yet")
    spec = parsed("w=10&dl=x.jpg&upscale=true&face-blur=10")
    assert spec.dl == "x.jpg" and spec.ignored == ("face-blur", "upscale")
    assert spec.canonical() == parsed("w=10").canonical()


def test_a_frame_past_the_head_of_a_local_file_is_planned_from_the_whole_file(tmp_path: Path) -> None:
    from renderer import jobs
    from renderer.origin import LocalOrigin

    # Noisy frames: the file is far longer than the head plan_local reads first.
    rng = random.Random(5)
    frames = [Image.frombytes("L", (120, 120), rng.randbytes(120 * 120)).convert("P") for _ in range(40)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert len(data) > jobs._HEADER_BYTES
    (tmp_path / "long.gif").write_bytes(data)
    origin = LocalOrigin(tmp_path, 10**8)

    async def locate() -> Any:
        return await origin.source("long.gif")

    source = asyncio.run(locate())
    planned = jobs.plan_local(origin, source, replace(BASE, frame=40, fm="png"), 50_000_000, 16_777_216)
    assert planned.media_type == "image/png"
    with pytest.raises(BadParam):
        jobs.plan_local(origin, source, replace(BASE, frame=41, fm="png"), 50_000_000, 16_777_216)
