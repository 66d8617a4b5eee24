"""The colour, detail and stylize parameters: identity at 0/default, the documented direction,
the extremes, alpha untouched, hidden colours kept hidden, and bounded cost."""

from __future__ import annotations

import functools
import io
import random
import time

import pytest
from PIL import Image, ImageFilter, ImageStat

from pixring import schema
from renderer.params import RenderSpec, spec_from_query
from renderer.pipeline import render
from renderer.samples import Sample, generate
from renderer.stylize import (
    DUOTONE_ALPHA_DEFAULT,
    NR_DEFAULT,
    NRS_DEFAULT,
    USMRAD_DEFAULT,
    halftone,
    hue_matrix,
    noise_reduction,
    pixellate,
    stylize,
    tonal_table,
    unsharp_mask,
)

# Every parameter at a value that does something, for the checks that hold for all of them.
EFFECTS: dict[str, dict[str, object]] = {
    "hue": {"hue": 120},
    "vib": {"vib": 80},
    "vib-down": {"vib": -100},
    "shad": {"shad": 100.0},
    "high": {"high": -100},
    "invert": {"invert": True},
    "nr": {"nr": 100},
    "nrs-up": {"nrs": 100},
    "nrs-down": {"nrs": -100},
    "usm": {"usm": 80},
    "usm-down": {"usm": -60, "usmrad": 4.0},
    "sepia": {"sepia": 100},
    "duotone": {"duotone_colors": ("000080", "ffff00"), "duotone_alpha": 70},
    "px": {"px": 7},
    "htn": {"htn": 40},
}


def photo(mode: str = "RGB", size: tuple[int, int] = (96, 64)) -> Image.Image:
    """A generated photo-like picture (blurred shapes, grain), with alpha for RGBA/LA."""
    return _photo(mode in ("RGBA", "LA"), size).convert(mode)


@functools.cache
def _photo(alpha: bool, size: tuple[int, int]) -> Image.Image:
    image = Image.open(io.BytesIO(generate(Sample("p.png", size[0], size[1], seed=31, alpha=alpha))))
    image.load()
    return image


def grey(level: int, size: tuple[int, int] = (16, 16)) -> Image.Image:
    return Image.new("RGB", size, (level, level, level))


def noisy_flat(level: int = 128, amplitude: int = 8, size: tuple[int, int] = (64, 64)) -> Image.Image:
    rng = random.Random(3)
    data = bytes(max(0, min(255, level + rng.randint(-amplitude, amplitude))) for _ in range(size[0] * size[1]))
    band = Image.frombytes("L", size, data)
    return Image.merge("RGB", (band, band.rotate(90), band.rotate(180)))


def step(size: tuple[int, int] = (64, 32), dark: int = 60, light: int = 190) -> Image.Image:
    """Left half dark, right half light: one vertical edge."""
    image = Image.new("RGB", size, (dark,) * 3)
    image.paste((light,) * 3, (size[0] // 2, 0, size[0], size[1]))
    return image


def hidden_red() -> Image.Image:
    """Left half opaque blue; right half fully transparent, with red hidden under it."""
    image = Image.new("RGBA", (40, 20), (0, 0, 255, 255))
    image.paste((255, 0, 0, 0), (20, 0, 40, 20))
    return image


def pixels(image: Image.Image) -> list[object]:
    return list(image.get_flattened_data())


def spread(image: Image.Image) -> float:
    return sum(ImageStat.Stat(image.convert("RGB")).stddev) / 3


def saturation(pixel: tuple[int, ...]) -> int:
    return max(pixel[:3]) - min(pixel[:3])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_identity_values_are_no_ops(mode: str) -> None:
    image = photo(mode)
    identities: list[dict[str, object]] = [
        {}, {"hue": 0}, {"hue": 360}, {"vib": 0}, {"shad": 0.0}, {"high": 0}, {"invert": False},
        {"nr": 20, "nrs": 20}, {"usm": 0, "usmrad": 40.0}, {"usm": 70, "usmrad": 0.0}, {"sepia": 0},
        {"duotone_colors": ("ff0000", "00ff00"), "duotone_alpha": 0}, {"px": 0}, {"px": 1}, {"htn": 0},
    ]
    for kwargs in identities:
        assert stylize(image, **kwargs).tobytes() == image.tobytes(), kwargs  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(EFFECTS))
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_never_changed(name: str, mode: str) -> None:
    image = photo(mode)
    out = stylize(image, **EFFECTS[name])  # type: ignore[arg-type]
    assert out.size == image.size and out.mode.endswith("A")
    assert out.getchannel("A").tobytes() == image.getchannel("A").tobytes()


@pytest.mark.parametrize("name", sorted(EFFECTS))
def test_every_effect_changes_the_picture_and_is_deterministic(name: str) -> None:
    image = photo()
    once, twice = stylize(image, **EFFECTS[name]), stylize(image, **EFFECTS[name])  # type: ignore[arg-type]
    assert once.tobytes() == twice.tobytes()
    assert once.tobytes() != image.tobytes()


@pytest.mark.parametrize("effect", [{"usm": 100, "usmrad": 3.0}, {"usm": -100, "usmrad": 3.0},
                                    {"nr": 100, "nrs": 100}, {"nrs": -100}, {"px": 8}])
def test_spatial_filters_do_not_bleed_hidden_colours(effect: dict[str, object]) -> None:
    out = stylize(hidden_red(), **effect)  # type: ignore[arg-type]
    for x in range(20):  # the opaque half, right up to the edge
        r, g, b, a = out.getpixel((x, 10))  # type: ignore[misc]
        assert a == 255 and r <= 2 and b >= 250, (effect, x, (r, g, b))


# -- hue, vibrance, tones -------------------------------------------------------------------


def test_hue_keeps_greys_and_turns_red_towards_green_then_blue() -> None:
    assert stylize(grey(128), hue=77).getpixel((0, 0)) == pytest.approx((128, 128, 128), abs=1)
    red = Image.new("RGB", (4, 4), (200, 40, 40))
    r, g, b = stylize(red, hue=120).getpixel((0, 0))  # type: ignore[misc]
    assert g > r and g > b
    r, g, b = stylize(red, hue=240).getpixel((0, 0))  # type: ignore[misc]
    assert b > r and b > g
    # Three thirds of a turn come back (on a muted colour, which no step clips).
    muted = Image.new("RGB", (4, 4), (150, 110, 100))
    back = stylize(stylize(stylize(muted, hue=120), hue=120), hue=120)
    assert back.getpixel((0, 0)) == pytest.approx((150, 110, 100), abs=3)
    rows = hue_matrix(0)
    assert rows == pytest.approx((1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0), abs=1e-9)


def test_vibrance_moves_muted_colours_more_than_vivid_ones() -> None:
    image = Image.new("RGB", (2, 1))
    image.putpixel((0, 0), (140, 120, 110))  # muted
    image.putpixel((1, 0), (250, 10, 10))  # vivid
    up, down = stylize(image, vib=100), stylize(image, vib=-100)
    # The muted pixel's saturation (30 of 255) grows by the factor 1 + (1 - 30/255).
    assert saturation(up.getpixel((0, 0))) == pytest.approx(30 * (2 - 30 / 255), abs=3)  # type: ignore[arg-type]
    assert up.getpixel((1, 0)) == pytest.approx((250, 10, 10), abs=3)
    assert saturation(down.getpixel((0, 0))) <= 4  # type: ignore[arg-type]  # nearly grey
    assert saturation(down.getpixel((1, 0))) >= 220  # type: ignore[arg-type]  # vivid stays vivid
    assert stylize(grey(90), vib=100).getpixel((0, 0)) == (90, 90, 90)


def test_shadows_lift_the_dark_half_only_and_highlights_press_the_light_half_only() -> None:
    for value in (10, 50.5, 100):
        lifted = tonal_table(shad=value)
        assert lifted == sorted(lifted) and lifted[0] == 0
        assert lifted[128:] == list(range(128, 256))
        assert all(out >= i for i, out in enumerate(lifted))
    for value in (-10, -50, -100):
        pressed = tonal_table(high=value)
        assert pressed == sorted(pressed) and pressed[255] == 255
        assert pressed[:128] == list(range(128))
        assert all(out <= i for i, out in enumerate(pressed))
    assert tonal_table(shad=100)[42] == pytest.approx(80, abs=3)
    assert tonal_table(high=-100)[212] == pytest.approx(174, abs=3)
    assert tonal_table(shad=100)[42] > tonal_table(shad=40)[42] > 42


def test_invert_twice_is_the_identity() -> None:
    image = photo("RGBA")
    once = stylize(image, invert=True)
    assert once.getpixel((0, 0))[:3] == tuple(255 - v for v in image.getpixel((0, 0))[:3])  # type: ignore[index]
    assert stylize(once, invert=True).tobytes() == image.tobytes()
    assert stylize(Image.new("L", (2, 2), 0), invert=True).getpixel((0, 0)) == 255


# -- detail ---------------------------------------------------------------------------------


def test_unsharp_mask_raises_edge_contrast_and_negative_softens() -> None:
    edge = step()
    sharper, softer = unsharp_mask(edge, 100, 2.5), unsharp_mask(edge, -50, 2.5)
    # Beside the edge, the dark side gets darker and the light side lighter (overshoot).
    assert sharper.getpixel((30, 16))[0] < 60 < 190 < sharper.getpixel((33, 16))[0]  # type: ignore[index]
    assert 60 < softer.getpixel((30, 16))[0] and softer.getpixel((33, 16))[0] < 190  # type: ignore[index]
    blurred = edge.filter(ImageFilter.GaussianBlur(2.5))
    assert unsharp_mask(edge, -100, 2.5).tobytes() == blurred.tobytes()  # -100 is the blur
    wide = unsharp_mask(edge, 100, 8.0)
    assert wide.getpixel((22, 16))[0] < sharper.getpixel((22, 16))[0] == 60  # type: ignore[index]


def test_noise_reduction_smooths_small_differences_and_keeps_edges() -> None:
    noise = noisy_flat(amplitude=8)
    assert spread(noise_reduction(noise, nr=100)) < 0.6 * spread(noise)
    loud = noisy_flat(amplitude=14)  # the bound grows with nr: a low one leaves louder grain
    assert spread(noise_reduction(loud, nr=40)) > 2 * spread(noise_reduction(loud, nr=100))
    edge = step()
    kept = noise_reduction(edge, nr=100)
    assert kept.getpixel((31, 16)) == (60, 60, 60) and kept.getpixel((32, 16)) == (190, 190, 190)
    # nr at or below the default smooths nothing, whatever nrs is not asking.
    assert noise_reduction(noise, nr=-100, nrs=20).tobytes() == noise.tobytes()


def test_noise_reduction_sharpen_acts_on_edges_both_ways() -> None:
    edge = step()
    sharper, softer = noise_reduction(edge, nrs=100), noise_reduction(edge, nrs=-100)
    assert sharper.getpixel((31, 16))[0] < 60 and sharper.getpixel((32, 16))[0] > 190  # type: ignore[index]
    assert softer.getpixel((31, 16))[0] > 60 and softer.getpixel((32, 16))[0] < 190  # type: ignore[index]
    assert sharper.getpixel((5, 16)) == (60, 60, 60)  # flat areas are not edges


def test_a_huge_unsharp_radius_is_bounded() -> None:
    big = photo().resize((2000, 2000))
    started = time.perf_counter()
    out = stylize(big, usm=100, usmrad=500.0)
    elapsed = time.perf_counter() - started
    print(f"usm=100&usmrad=500 on 2000x2000: {elapsed:.2f} s")
    assert out.size == big.size and elapsed < 30
    small = grey(100, (10, 10))
    small.putpixel((0, 0), (255, 0, 0))
    # The radius is capped at the longer side: 500 and 10 are the same picture here.
    assert unsharp_mask(small, 50, 500.0).tobytes() == unsharp_mask(small, 50, 10.0).tobytes()


# -- sepia, duotone -------------------------------------------------------------------------


def test_sepia_warms_greys_and_scales_with_the_amount() -> None:
    full, half = stylize(grey(128), sepia=100).getpixel((0, 0)), stylize(grey(128), sepia=50).getpixel((0, 0))
    assert full[0] > full[1] > full[2]  # type: ignore[index]
    assert half[0] > half[1] > half[2]  # type: ignore[index]
    assert full[0] - full[2] > half[0] - half[2] > 0  # type: ignore[index]
    assert stylize(Image.new("L", (4, 4), 128), sepia=100).mode == "RGB"
    assert stylize(Image.new("LA", (4, 4), (128, 9)), sepia=100).getpixel((0, 0))[3] == 9  # type: ignore[index]


def test_duotone_maps_black_and_white_to_its_colours() -> None:
    ramp = Image.linear_gradient("L").resize((16, 256)).convert("RGB")  # black at the top
    toned = stylize(ramp, duotone_colors=("000080", "ffff00"))
    assert toned.getpixel((8, 0)) == pytest.approx((0, 0, 128), abs=2)
    assert toned.getpixel((8, 255)) == pytest.approx((255, 255, 0), abs=2)
    mid = toned.getpixel((8, 128))
    assert 100 < mid[0] < 160 and 40 < mid[2] < 90  # type: ignore[index]
    half = stylize(ramp, duotone_colors=("000080", "ffff00"), duotone_alpha=50).getpixel((8, 255))
    assert half == pytest.approx((255, 255, 127), abs=2)  # halfway between white and yellow
    assert stylize(Image.new("L", (4, 4), 0), duotone_colors=("ff0000", "ffffff")).getpixel((0, 0)) == (255, 0, 0)


# -- pixellate, halftone --------------------------------------------------------------------


def test_pixellate_fills_blocks_with_their_average() -> None:
    image = photo()
    out = pixellate(image, 8)
    for bx, by in ((0, 0), (3, 2), (11, 7)):  # (11, 7): the last full block of 96x64
        box = (bx * 8, by * 8, bx * 8 + 8, by * 8 + 8)
        block = out.crop(box)
        assert len(set(pixels(block))) == 1
        mean = ImageStat.Stat(image.crop(box)).mean
        assert block.getpixel((0, 0)) == pytest.approx(tuple(mean), abs=1.01)
    edge = pixellate(photo(size=(30, 20)), 8)  # partial blocks at the right and bottom
    assert len(set(pixels(edge.crop((24, 16, 30, 20))))) == 1
    one = pixellate(image, 100)  # larger than the picture: one block
    assert len(set(pixels(one))) == 1


def test_halftone_is_black_dots_on_white_whose_cells_grow() -> None:
    assert set(pixels(stylize(grey(255), htn=50))) == {(255, 255, 255)}
    assert set(pixels(stylize(grey(0), htn=50))) == {(0, 0, 0)}
    mid = stylize(grey(128, (96, 96)), htn=100)
    assert set(pixels(mid)) <= {(0, 0, 0), (255, 255, 255)}
    inked = sum(1 for p in pixels(mid) if p == (0, 0, 0)) / (96 * 96)
    assert 0.4 < inked < 0.6  # ink covers the darkness
    darker = stylize(grey(64, (96, 96)), htn=100)
    assert sum(1 for p in pixels(darker) if p == (0, 0, 0)) / (96 * 96) > inked + 0.15
    # The screen repeats with its cell: 16 px at htn=100, 2 + round(10 * 0.14) = 3 px at htn=10.
    assert mid.crop((0, 0, 80, 80)).tobytes() == mid.crop((16, 16, 96, 96)).tobytes()
    fine = stylize(grey(128, (96, 96)), htn=10)
    assert fine.crop((0, 0, 90, 90)).tobytes() == fine.crop((3, 3, 93, 93)).tobytes()
    assert fine.crop((0, 0, 90, 90)).tobytes() != fine.crop((2, 2, 92, 92)).tobytes()
    dots = halftone(Image.new("L", (2000, 2000), 100), 100)
    assert dots.mode == "L" and dots.size == (2000, 2000)


def test_big_blocks_and_cells_on_a_big_image_stay_cheap() -> None:
    big = photo().resize((2000, 2000))
    started = time.perf_counter()
    out = stylize(big, px=100, htn=100, nr=100, nrs=100)
    elapsed = time.perf_counter() - started
    print(f"px=100&htn=100&nr=100&nrs=100 on 2000x2000: {elapsed:.2f} s")
    assert out.size == big.size and elapsed < 30


# -- through the pipeline -------------------------------------------------------------------


def test_render_applies_the_spec_and_its_defaults_are_the_identity() -> None:
    data = generate(Sample("s.png", 80, 60, seed=5, alpha=True))
    plain = render(data, RenderSpec(fm="png")).body
    assert render(data, RenderSpec(fm="png", nr=20, nrs=20, duotone_alpha=100, usmrad=9.0)).body == plain
    toned = Image.open(io.BytesIO(render(data, RenderSpec(fm="png", sepia=100)).body))
    source = Image.open(io.BytesIO(plain))
    assert toned.getchannel("A").tobytes() == source.convert("RGBA").getchannel("A").tobytes()
    assert toned.tobytes() != source.tobytes()
    # Before padding: the padding stays transparent, not screened into dots.
    padded = Image.open(io.BytesIO(render(data, RenderSpec(fm="png", width=120, height=60, fit="fill", htn=60)).body))
    assert padded.getpixel((0, 30))[3] == 0  # type: ignore[index]


# -- through the query (the shared schema) --------------------------------------------------

NAMES = ("hue", "invert", "high", "shad", "vib", "usm", "usmrad", "nr", "nrs",
         "sepia", "htn", "px", "duotone", "duotone-alpha")
# One query per parameter, each at a value that draws something.
QUERIES = {
    "hue": "hue=120", "invert": "invert=true", "high": "high=-80", "shad": "shad=80", "vib": "vib=80",
    "usm": "usm=60&usmrad=3", "nr": "nr=100", "nrs": "nrs=90", "sepia": "sepia=80", "htn": "htn=30",
    "px": "px=8", "duotone": "duotone=000080,ffcc00&duotone-alpha=80",
}


def query_spec(query: str) -> RenderSpec:
    return spec_from_query([tuple(pair.split("=", 1)) for pair in query.split("&") if pair])  # type: ignore[misc]


@functools.cache
def rendered(query: str) -> bytes:
    data = generate(Sample("q.png", 64, 48, seed=9, alpha=True))
    return render(data, query_spec(query + "&fm=png")).body


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_each_parameter_draws_through_the_query(name: str) -> None:
    assert rendered(QUERIES[name]) != rendered("")
    out, plain = Image.open(io.BytesIO(rendered(QUERIES[name]))), Image.open(io.BytesIO(rendered("")))
    assert out.getchannel("A").tobytes() == plain.getchannel("A").tobytes()


@pytest.mark.parametrize("name", NAMES)
def test_the_schema_default_renders_like_absent(name: str) -> None:
    default = schema.default(name)
    if default is None:  # duotone has no default: absent is no duotone
        return
    text = schema.format_value(name, default)
    assert query_spec(f"{name}={text}") == query_spec("")
    assert rendered(f"{name}={text}") == rendered("")


@pytest.mark.parametrize(
    "identity",
    ["hue=0", "hue=360", "vib=0", "shad=0", "high=0", "invert=false", "nr=20&nrs=20", "usm=0&usmrad=40",
     "usm=50&usmrad=0", "sepia=0", "duotone=red,blue&duotone-alpha=0", "px=0", "px=1", "htn=0"],
)
def test_identity_values_render_like_absent(identity: str) -> None:
    assert query_spec(identity).canonical() == query_spec("").canonical()
    assert rendered(identity) == rendered("")


def test_stylize_values_reach_the_spec_typed() -> None:
    spec = query_spec("hue=90&invert=1&high=-20&shad=12.5&vib=-30&usm=40&usmrad=1.5&nr=50&nrs=-10"
                      "&sepia=10&htn=5&px=3&duotone=000000,ffffff&duotone-alpha=40")
    assert (spec.hue, spec.invert, spec.high, spec.shad, spec.vib) == (90, True, -20, 12.5, -30)
    assert (spec.usm, spec.usmrad, spec.nr, spec.nrs) == (40, 1.5, 50, -10)
    assert (spec.sepia, spec.htn, spec.px, spec.duotone_alpha) == (10, 5, 3, 40)
    assert spec.duotone == ("000000", "ffffff")
    assert query_spec("usmrad=9").usmrad == USMRAD_DEFAULT  # no usm: the radius draws nothing
    assert query_spec("duotone-alpha=30").duotone_alpha == DUOTONE_ALPHA_DEFAULT


def test_the_stylize_defaults_are_the_catalogue_s() -> None:
    assert (schema.default("nr"), schema.default("nrs")) == (NR_DEFAULT, NRS_DEFAULT)
    assert schema.default("usmrad") == USMRAD_DEFAULT
    assert schema.default("duotone-alpha") == DUOTONE_ALPHA_DEFAULT


@pytest.mark.parametrize(
    "one,other",
    [("hue=90", "hue=450"), ("shad=12.5", "shad=12.50"), ("high=-150", "high=-100"), ("invert=1", "inv=true"),
     ("duotone=navy,gold", "duotone=000080,FFD700&duotone-alpha=100"), ("usm=10", "usm=10&usmrad=2.5"),
     ("px=300", "px=100"), ("nr=20&nrs=40", "nrs=40"), ("sepia=100", "sepia=150")],
)
def test_equal_typed_values_render_identically(one: str, other: str) -> None:
    assert query_spec(one) == query_spec(other)
    assert rendered(one) == rendered(other)
