"""The pixel adjustments: identity at 0, the documented direction, the extremes, alpha untouched."""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageStat

from renderer.adjust import adjust, tone_curve


def ramp() -> Image.Image:
    """A grey ramp with a coloured band: every tone once, some saturation."""
    image = Image.linear_gradient("L").resize((64, 64)).convert("RGB")
    image.paste((200, 60, 30), (0, 0, 64, 8))
    return image


def noisy(mode: str = "RGB") -> Image.Image:
    rng = random.Random(5)
    grey = Image.frombytes("L", (48, 48), rng.randbytes(48 * 48))
    return Image.merge("RGB", (grey, grey.rotate(90), grey.rotate(180))).convert(mode)


def mean(image: Image.Image) -> float:
    return sum(ImageStat.Stat(image.convert("RGB")).mean) / 3


def spread(image: Image.Image) -> float:
    return sum(ImageStat.Stat(image.convert("RGB")).stddev) / 3


def test_zero_is_the_identity() -> None:
    assert tone_curve() == list(range(256))
    image = ramp()
    assert adjust(image).tobytes() == image.tobytes()


@pytest.mark.parametrize("name", ["bri", "con", "exp", "gam"])
def test_tone_curves_are_monotonic_and_go_the_documented_way(name: str) -> None:
    up, down = tone_curve(**{name: 40}), tone_curve(**{name: -40})
    assert up == sorted(up) and down == sorted(down)
    if name == "con":  # contrast pivots on mid-grey
        assert up[32] < 32 and up[224] > 224 and down[32] > 32 and down[224] < 224
    else:
        assert up[128] > 128 > down[128]


def test_the_ends_of_the_ranges() -> None:
    image = ramp()
    assert ImageStat.Stat(adjust(image, bri=-100)).extrema == [(0, 0)] * 3  # black
    assert ImageStat.Stat(adjust(image, bri=100)).extrema == [(255, 255)] * 3  # white
    flat = adjust(image, con=-100)
    assert all(low == high for low, high in ImageStat.Stat(flat).extrema)  # one flat grey
    grey = adjust(image, sat=-100)
    r, g, b = grey.split()
    assert r.tobytes() == g.tobytes() == b.tobytes()


def test_saturation_scales_the_colour_not_the_tone() -> None:
    image = ramp()
    band = (32, 4)
    more, less = adjust(image, sat=80).getpixel(band), adjust(image, sat=-50).getpixel(band)
    original = image.getpixel(band)
    assert max(more) - min(more) > max(original) - min(original) > max(less) - min(less)
    assert adjust(image, sat=80).getpixel((32, 40)) == pytest.approx(image.getpixel((32, 40)), abs=1)  # greys stay


def test_monochrome_tints_and_its_alpha_sets_the_strength() -> None:
    image = ramp()
    red = adjust(image, monochrome="ff0000")
    mid = red.getpixel((32, 40))  # a mid grey of the ramp becomes red-ish
    assert mid[0] > 2 * mid[1] and mid[1] == pytest.approx(mid[2], abs=2)
    assert red.getpixel((32, 63))[0] > 240  # white stays light
    half = adjust(image, monochrome="ff000080")  # imgix's 80ff0000 after parsing: alpha last
    between = half.getpixel((32, 40))
    assert image.getpixel((32, 40))[1] > between[1] > mid[1]
    assert adjust(Image.new("L", (4, 4), 128), monochrome="00ff00").mode == "RGB"


def test_sharpen_adds_and_blur_removes_detail() -> None:
    image = noisy()
    assert spread(adjust(image, sharp=50)) > spread(image) > spread(adjust(image, blur=20)) > spread(adjust(image, blur=200))
    assert mean(adjust(image, blur=200)) == pytest.approx(mean(image), abs=3)  # blur moves detail, not tone


@pytest.mark.parametrize("options", [dict(bri=30), dict(sat=50), dict(monochrome="00ff00"), dict(sharp=40), dict(blur=30)])
def test_alpha_is_never_adjusted(options: dict[str, object]) -> None:
    image = noisy("RGBA")
    alpha = Image.linear_gradient("L").resize(image.size)
    image.putalpha(alpha)
    out = adjust(image, **options)  # type: ignore[arg-type]
    assert out.mode == "RGBA"
    if "blur" not in options and "sharp" not in options:
        assert out.getchannel("A").tobytes() == alpha.tobytes()
    else:  # spatial filters work on premultiplied pixels: alpha moves only as much as the filter
        assert abs(mean(out.getchannel("A")) - mean(alpha)) < 3


def test_blur_does_not_bleed_hidden_colour() -> None:
    image = Image.new("RGBA", (40, 40), (0, 255, 0, 0))  # invisible green everywhere
    image.paste((255, 0, 0, 255), (10, 10, 30, 30))
    out = adjust(image, blur=30)
    for x in range(40):
        r, g, b, a = out.getpixel((x, 20))
        if a > 16:
            assert g < 16, (x, out.getpixel((x, 20)))
