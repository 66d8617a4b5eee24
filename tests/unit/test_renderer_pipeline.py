"""The Pillow pipeline: bytes in, bytes out, with small hand-made sources."""

from __future__ import annotations

import io
import pickle
import random
import struct
import zlib
from dataclasses import replace

import pytest
from PIL import Image, JpegImagePlugin

from renderer.errors import BadParam, RenderError, SourceTooLarge, UndecodableSource
from renderer.params import RenderSpec, spec_from_query
from renderer.pipeline import render
from renderer.samples import Sample, generate


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def spec(query: str) -> RenderSpec:
    return spec_from_query([tuple(pair.split("=", 1)) for pair in query.split("&") if pair])  # type: ignore[misc]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims a size; the pixel data is an empty IDAT chunk."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_output_matches_the_layout_and_format() -> None:
    source = generate(Sample("s.jpg", 300, 200, seed=31))
    rendered = render(source, spec("w=120&h=120&fit=crop&fm=webp"))
    image = decode(rendered.body)
    assert (image.format, image.size) == ("WEBP", (120, 120))
    assert (rendered.width, rendered.height, rendered.fm, rendered.media_type) == (120, 120, "webp", "image/webp")


def test_fm_absent_keeps_the_source_format() -> None:
    rgb = Image.new("RGB", (40, 30), (10, 200, 30))
    for fmt, fm in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif")):
        rendered = render(encode(rgb, fmt), spec("w=20"))
        assert rendered.fm == fm
        assert decode(rendered.body).format == fmt


def test_large_jpeg_downscale_uses_draft(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):  # type: ignore[no-untyped-def]
        calls.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    source = generate(Sample("big.jpg", 1600, 1200, seed=32))
    image = decode(render(source, spec("w=100")).body)
    assert image.size == (100, 75)
    assert calls and 100 <= calls[0][0] < 1600  # asks for less than the source, never less than the output


def test_exif_orientation_and_rect_use_upright_coordinates() -> None:
    upright = Image.new("RGB", (40, 60), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 40, 10))  # a red band along the top
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "PNG", exif=exif)
    whole = decode(render(data, spec("")).body)
    assert whole.size == (40, 60)
    assert whole.getpixel((20, 2))[:3] == (255, 0, 0)
    top = decode(render(data, spec("rect=0,0,40,10")).body)
    assert top.size == (40, 10)
    assert top.getpixel((20, 5))[:3] == (255, 0, 0)


def test_crop_entropy_moves_the_window_to_the_detail() -> None:
    rng = random.Random(7)
    image = Image.new("L", (300, 100), 128)
    noise = Image.frombytes("L", (100, 100), rng.randbytes(100 * 100))
    image.paste(noise, (200, 0))  # all the detail is on the right
    data = encode(image.convert("RGB"), "PNG")
    out = decode(render(data, spec("w=100&h=100&fit=crop&crop=entropy")).body)
    centred = decode(render(data, spec("w=100&h=100&fit=crop")).body)
    assert out.convert("L").entropy() > 5 > centred.convert("L").crop((0, 0, 40, 100)).entropy()


def test_clamp_extends_the_edge_pixels() -> None:
    image = Image.new("RGB", (100, 50), (0, 0, 0))
    image.paste((255, 0, 0), (0, 0, 100, 1))  # top row red
    image.paste((0, 255, 0), (0, 49, 100, 50))  # bottom row green
    out = decode(render(encode(image, "PNG"), spec("w=100&h=100&fit=clamp")).body)
    assert out.size == (100, 100)
    assert out.getpixel((50, 2))[:3] == (255, 0, 0)
    assert out.getpixel((50, 97))[:3] == (0, 255, 0)


def test_fill_pads_transparent_or_with_bg() -> None:
    image = Image.new("RGB", (100, 50), (0, 0, 255))
    data = encode(image, "PNG")
    clear = decode(render(data, spec("w=100&h=100&fit=fill")).body)
    assert clear.getpixel((50, 2)) == (0, 0, 0, 0)
    assert clear.getpixel((50, 50)) == (0, 0, 255, 255)
    painted = decode(render(data, spec("w=100&h=100&fit=fill&bg=80ff0000")).body)  # imgix ARGB
    assert painted.getpixel((50, 2)) == (255, 0, 0, 128)
    as_jpeg = decode(render(data, spec("w=100&h=100&fit=fill&fm=jpg")).body)
    assert as_jpeg.getpixel((50, 2)) == pytest.approx((255, 255, 255), abs=6)


def test_quality_and_lossless_change_the_bytes() -> None:
    source = generate(Sample("s.jpg", 200, 150, seed=33))
    low, high = render(source, spec("q=10")).body, render(source, spec("q=90")).body
    assert len(low) < len(high)
    lossy, lossless = render(source, spec("fm=webp")).body, render(source, spec("fm=webp&lossless=1")).body
    assert len(lossless) > len(lossy)


def test_progressive_jpeg() -> None:
    # imgix writes progressive JPEG unless jpg-progressive=false (its catalogue default is
    # true); fm=pjpg is progressive whatever jpg-progressive says.
    source = generate(Sample("s.jpg", 64, 64, seed=34))
    assert decode(render(source, spec("fm=pjpg")).body).info.get("progressive")
    assert decode(render(source, spec("fm=jpg")).body).info.get("progressive")
    assert not decode(render(source, replace(spec("fm=jpg"), progressive=False)).body).info.get("progressive")
    assert decode(render(source, replace(spec("fm=pjpg"), progressive=False)).body).info.get("progressive")


@pytest.mark.parametrize(
    "image,expected_mode",
    [
        (Image.new("I;16", (20, 20), 40000), "L"),  # 16-bit grey: scaled, not clipped to white
        (Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "RGB"),
        (Image.new("1", (20, 20), 1), "L"),
    ],
    ids=["16-bit", "cmyk", "bilevel"],
)
def test_unusual_source_modes_render(image: Image.Image, expected_mode: str) -> None:
    fmt = "JPEG" if image.mode == "CMYK" else "PNG"
    out = decode(render(encode(image, fmt), spec("w=10&fm=png")).body)
    assert out.mode == expected_mode
    if image.mode == "I;16":
        assert out.getpixel((5, 5)) == pytest.approx(40000 / 256, abs=1)


def test_palette_transparency_survives() -> None:
    image = Image.new("P", (20, 20), 0)
    image.putpalette([255, 0, 0] * 256)
    image.info["transparency"] = 0
    out = decode(render(encode(image, "PNG", transparency=0), spec("w=10")).body)
    assert out.mode == "RGBA" and out.getpixel((5, 5))[3] == 0


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_limit_is_checked_from_the_header() -> None:
    with pytest.raises(SourceTooLarge, match="MP"):
        render(png_header(10_000, 10_000), spec("w=10"), max_pixels=50_000_000)
    with pytest.raises(SourceTooLarge):
        render(png_header(20_000, 20_000), spec("w=10"), max_pixels=50_000_000)  # Pillow's own bomb guard too


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", png_header(10, 10), encode(Image.new("RGB", (8, 8)), "BMP"), generate(Sample("t.jpg", 64, 64, seed=35))[:300]],
    ids=["empty", "text", "no-pixel-data", "bmp-not-allowed", "truncated-jpeg"],
)
def test_undecodable_sources(data: bytes) -> None:
    with pytest.raises(UndecodableSource):
        render(data, spec("w=10"))


def test_rect_outside_is_a_bad_param() -> None:
    with pytest.raises(BadParam) as caught:
        render(encode(Image.new("RGB", (10, 10)), "PNG"), spec("rect=50,50,5,5"))
    assert caught.value.param == "rect"


def test_errors_cross_a_process_boundary_intact() -> None:
    error = BadParam("bad w", "w", "an integer")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, RenderError) and type(copy) is BadParam
    assert (copy.message, copy.param, copy.expected, copy.status) == ("bad w", "w", "an integer", 400)


def fake_profile(space: bytes) -> bytes:
    """Just enough of an ICC.1 header for the colour-space field (bytes 16-19)."""
    return bytes(16) + space + bytes(108)


def test_icc_profile_kept_only_for_its_colour_space() -> None:
    rgb_profile, cmyk_profile = fake_profile(b"RGB "), fake_profile(b"CMYK")
    rgb = encode(Image.new("RGB", (20, 20), (200, 10, 10)), "JPEG", icc_profile=rgb_profile)
    assert decode(render(rgb, spec("w=10")).body).info.get("icc_profile") == rgb_profile
    assert decode(render(rgb, spec("w=10&fm=png")).body).info.get("icc_profile") == rgb_profile
    cmyk = encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG", icc_profile=cmyk_profile)
    out = decode(render(cmyk, spec("w=10")).body)
    assert out.mode == "RGB" and out.info.get("icc_profile") is None


def test_a_foreign_profile_never_reaches_a_png_or_avif() -> None:
    # PNG and AVIF savers fall back to the image's own info: it must not carry the CMYK profile.
    cmyk = encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG", icc_profile=fake_profile(b"CMYK"))
    for fm in ("png", "avif", "webp"):
        assert decode(render(cmyk, spec(f"w=10&fm={fm}")).body).info.get("icc_profile") is None, fm


def test_orient_overrides_the_exif_orientation() -> None:
    upright = Image.new("RGB", (40, 60), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 40, 10))  # red along the top
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 60x40 on disk
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "PNG", exif=exif)
    assert decode(render(data, spec("")).body).size == (40, 60)  # Exif applied by default
    for value in ("0", "1"):  # "ignore the Exif orientation": the pixels as stored
        assert decode(render(data, spec(f"orient={value}")).body).size == (60, 40)
    turned = decode(render(data, spec("orient=3")).body)  # 180 degrees instead of 90
    assert turned.size == (60, 40) and turned.getpixel((1, 20))[:3] != turned.getpixel((58, 20))[:3]


def test_flip_happens_before_the_crop() -> None:
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))  # left half red
    data = encode(image, "PNG")
    left = decode(render(data, spec("w=50&h=50&fit=crop&crop=left")).body)
    mirrored_left = decode(render(data, spec("w=50&h=50&fit=crop&crop=left&flip=h")).body)
    assert left.getpixel((25, 25))[:3] == (255, 0, 0)
    assert mirrored_left.getpixel((25, 25))[:3] == (0, 0, 255)  # the left of the mirrored picture


def test_rot_keeps_the_output_size() -> None:
    source = generate(Sample("s.jpg", 300, 200, seed=36))
    for query in ("w=120&rot=30", "w=120&h=120&fit=crop&rot=45", "w=120&h=120&fit=fill&rot=10&fm=png"):
        plain = decode(render(source, spec(query.split("&rot=")[0] + ("&fm=png" if "fm=png" in query else ""))).body)
        assert decode(render(source, spec(query)).body).size == plain.size


def test_adjustments_leave_the_padding_alone() -> None:
    data = encode(Image.new("RGB", (100, 50), (120, 120, 120)), "PNG")
    out = decode(render(data, spec("w=100&h=100&fit=fill&bg=00ff00&bri=-100&fm=png")).body)
    assert out.getpixel((50, 2))[:3] == (0, 255, 0)  # padding: the bg colour as asked
    assert out.getpixel((50, 50))[:3] == (0, 0, 0)  # picture: darkened


def test_auto_compress_chooses_png_for_transparency_and_jpeg_otherwise() -> None:
    opaque = encode(Image.new("RGB", (40, 30), (10, 200, 30)), "PNG")
    clear = Image.new("RGBA", (40, 30), (10, 200, 30, 255))
    clear.putpixel((0, 0), (0, 0, 0, 0))
    transparent = encode(clear, "PNG")
    assert render(opaque, spec("auto=compress")).fm == "jpg"  # a PNG source without transparency
    assert render(transparent, spec("auto=compress")).fm == "png"
    assert render(transparent, spec("auto=compress&bg=fff")).fm == "jpg"  # bg made it opaque
    assert render(opaque, spec("auto=compress&w=20&h=20&fit=fill")).fm == "png"  # transparent padding
    assert render(opaque, spec("auto=compress&fm=gif")).fm == "jpg"  # compress overrides fm=gif
    assert render(opaque, spec("auto=compress&fm=webp")).fm == "webp"  # any other fm is kept
    assert render(opaque, spec("auto=compress")).fm == "jpg"


def test_auto_compress_is_smaller_and_strips_the_profile_after_converting() -> None:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = generate(Sample("s.jpg", 200, 150, seed=37))
    with_profile = encode(decode(source), "JPEG", quality=95, icc_profile=srgb)
    plain, compressed = render(with_profile, spec("w=150")), render(with_profile, spec("w=150&auto=compress"))
    assert len(compressed.body) < len(plain.body)
    assert decode(plain.body).info.get("icc_profile") == srgb
    assert decode(compressed.body).info.get("icc_profile") is None
    # sRGB to sRGB: stripping after conversion leaves the colours where they were.
    a, b = decode(plain.body).getpixel((75, 50)), decode(render(with_profile, spec("w=150&auto=compress&q=75")).body).getpixel((75, 50))
    assert a == pytest.approx(b, abs=12)


def test_output_pixel_limit() -> None:
    from renderer.errors import OutputTooLarge

    source = encode(Image.new("RGB", (20, 20)), "PNG")
    with pytest.raises(OutputTooLarge) as caught:
        render(source, spec("w=2000&h=2000&fit=scale"), max_output_pixels=1_000_000)
    assert caught.value.status == 400 and "4.0 MP" in caught.value.message
    assert decode(render(source, spec("w=1000&h=1000&fit=scale"), max_output_pixels=1_000_000).body).size == (1000, 1000)
