"""The renderer's regression suite over real (generated, photo-like) images.

1. Output dimensions for every fit mode over a grid of source and box sizes, rendered by
   the full pipeline (decode, draft, resample, pad, encode) and measured on the decoded
   output. The table is written by hand from imgix's documented geometry
   (https://docs.imgix.com/apis/rendering/size/resize-fit-mode); each fit mode carries the
   rule its numbers follow. Rounding is half up. For the padding modes the table also
   gives the size of the picture inside the canvas, measured from the transparent padding.
2. Crops and adjustments against golden PNGs (``tests/golden``) with a perceptual
   tolerance (PSNR, ``tests.golden.compare``). Goldens change only through
   ``python -m tests.golden.regenerate``.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from renderer.params import spec_from_query
from renderer.pipeline import render
from renderer.samples import GENERATOR_VERSION, Sample, generate
from tests.golden.cases import CASES, DIRECTORY, golden_path
from tests.golden.compare import MIN_PSNR_DB, psnr
from tests.golden.regenerate import render_case

SOURCES = {
    "L": Sample("landscape.jpg", 300, 200, seed=81),  # 3:2
    "P": Sample("portrait.jpg", 200, 300, seed=82),  # 2:3
    "S": Sample("square.jpg", 128, 128, seed=83),
    "T": Sample("tiny.jpg", 40, 30, seed=84),  # 4:3, smaller than every box
}
BOXES = {
    "100x100": "w=100&h=100",  # smaller than L, P, S
    "600x600": "w=600&h=600",  # larger than every source
    "400x100": "w=400&h=100",  # wider than L, shorter than all but T
    "w150": "w=150",  # one side only: the other follows the source's aspect ratio
    "h60": "h=60",
}
# Shared by the modes that size like clip, and like max, when only one side is given.
ONE_SIDE = {"w150": {"L": (150, 100), "P": (150, 225), "S": (150, 150), "T": (150, 113)},
            "h60": {"L": (90, 60), "P": (40, 60), "S": (60, 60), "T": (80, 60)}}


def grid(sizes: dict[str, dict[str, tuple[int, int]]]) -> dict[str, dict[str, tuple[int, int]]]:
    """box -> source -> size, with the one-side columns filled in unless given."""
    return {box: sizes.get(box) or ONE_SIDE[box] for box in BOXES}


# fit -> (the rule, box -> source -> output size)
FIT_TABLE: dict[str, tuple[str, dict[str, dict[str, tuple[int, int]]]]] = {
    "clip": ("fits inside the box keeping the aspect ratio, one side touching it; upscales", grid(
        {"100x100": {"L": (100, 67), "P": (67, 100), "S": (100, 100), "T": (100, 75)},
           "600x600": {"L": (600, 400), "P": (400, 600), "S": (600, 600), "T": (600, 450)},
           "400x100": {"L": (150, 100), "P": (67, 100), "S": (100, 100), "T": (133, 100)}})),
    "max": ("like clip, but never larger than the source: a source inside the box keeps its size", grid(
        {"100x100": {"L": (100, 67), "P": (67, 100), "S": (100, 100), "T": (40, 30)},
           "600x600": {"L": (300, 200), "P": (200, 300), "S": (128, 128), "T": (40, 30)},
           "400x100": {"L": (150, 100), "P": (67, 100), "S": (100, 100), "T": (40, 30)},
           "w150": {"L": (150, 100), "P": (150, 225), "S": (128, 128), "T": (40, 30)},
           "h60": {"L": (90, 60), "P": (40, 60), "S": (60, 60), "T": (40, 30)}})),
    "scale": ("exactly the box, aspect ratio ignored; one side only keeps the aspect ratio", grid(
        {"100x100": dict.fromkeys("LPST", (100, 100)), "600x600": dict.fromkeys("LPST", (600, 600)),
           "400x100": dict.fromkeys("LPST", (400, 100))})),
    "crop": ("exactly the box, filled keeping the aspect ratio, overflow cut; upscales", grid(
        {"100x100": dict.fromkeys("LPST", (100, 100)), "600x600": dict.fromkeys("LPST", (600, 600)),
           "400x100": dict.fromkeys("LPST", (400, 100))})),
    "min": ("like crop, but never upscales: a box larger than the source gives the largest box-shaped "
            "window of the source, at the source's scale", grid(
        {"100x100": {"L": (100, 100), "P": (100, 100), "S": (100, 100), "T": (30, 30)},
           "600x600": {"L": (200, 200), "P": (200, 200), "S": (128, 128), "T": (30, 30)},
           "400x100": {"L": (300, 75), "P": (200, 50), "S": (128, 32), "T": (40, 10)},
           "w150": {"L": (150, 100), "P": (150, 225), "S": (128, 128), "T": (40, 30)},
           "h60": {"L": (90, 60), "P": (40, 60), "S": (60, 60), "T": (40, 30)}})),
    "fill": ("the canvas is the box; the picture inside is clip's", grid(
        {"100x100": dict.fromkeys("LPST", (100, 100)), "600x600": dict.fromkeys("LPST", (600, 600)),
           "400x100": dict.fromkeys("LPST", (400, 100))})),
    "clamp": ("sized like fill; the padding repeats the edge pixels", grid(
        {"100x100": dict.fromkeys("LPST", (100, 100)), "600x600": dict.fromkeys("LPST", (600, 600)),
           "400x100": dict.fromkeys("LPST", (400, 100))})),
    "fillmax": ("the canvas is the box; the picture inside is max's (never upscaled)", grid(
        {"100x100": dict.fromkeys("LPST", (100, 100)), "600x600": dict.fromkeys("LPST", (600, 600)),
           "400x100": dict.fromkeys("LPST", (400, 100))})),
}
# For the padding modes: the picture's own size inside the canvas (clip's or max's table).
INSIDE = {"fill": "clip", "fillmax": "max"}

ROWS = [
    (fit, rule, source, box, size)
    for fit, (rule, table) in FIT_TABLE.items()
    for box, sizes in table.items()
    for source, size in sizes.items()
]


@pytest.fixture(scope="module")
def sources() -> dict[str, bytes]:
    return {key: generate(sample) for key, sample in SOURCES.items()}


def rendered(data: bytes, query: str) -> Image.Image:
    pairs = [tuple(part.split("=", 1)) for part in query.split("&") if part]
    image = Image.open(io.BytesIO(render(data, spec_from_query(pairs)).body))  # type: ignore[arg-type]
    image.load()
    return image


def test_the_table_covers_every_renderable_fit_mode_source_and_box() -> None:
    from pixring import schema

    assert set(FIT_TABLE) == set(schema.PARAMS["fit"].renderable)
    assert len(ROWS) == len(FIT_TABLE) * len(SOURCES) * len(BOXES)


@pytest.mark.parametrize("fit,rule,source,box,size", ROWS, ids=[f"{r[0]}-{r[2]}-{r[3]}" for r in ROWS])
def test_fit_mode_output_size(sources: dict[str, bytes], fit: str, rule: str, source: str, box: str,
                              size: tuple[int, int]) -> None:
    padded = fit in INSIDE
    image = rendered(sources[source], f"{BOXES[box]}&fit={fit}" + ("&fm=png" if padded else ""))
    assert image.size == size, rule
    if padded:  # the opaque JPEG's picture, inside transparent padding (if any was needed)
        bbox = image.getchannel("A").getbbox() if "A" in image.getbands() else (0, 0, *image.size)
        assert bbox is not None
        inside = FIT_TABLE[INSIDE[fit]][1][box][source]
        assert (bbox[2] - bbox[0], bbox[3] - bbox[1]) == inside, rule


# ---------------------------------------------------------------- goldens

def test_goldens_are_current() -> None:
    manifest = json.loads((DIRECTORY / "manifest.json").read_text())
    hint = "run `python -m tests.golden.regenerate` and review the PNGs"
    assert manifest["generator"] == GENERATOR_VERSION, f"the sample drawing changed: {hint}"
    assert manifest["cases"] == {name: {"source": s, "query": q} for name, (s, q) in CASES.items()}, hint
    for name in CASES:
        assert golden_path(name).exists(), f"{name}.png is missing: {hint}"
        assert max(Image.open(golden_path(name)).size) <= 128


@pytest.mark.parametrize("name", list(CASES))
def test_render_matches_its_golden(name: str) -> None:
    golden = Image.open(golden_path(name))
    image = render_case(name)
    assert image.size == golden.size
    assert image.mode == golden.mode
    score = psnr(image, golden)
    assert score >= MIN_PSNR_DB, f"{name}: {score:.1f} dB against its golden (tolerance {MIN_PSNR_DB} dB)"


# Goldens that are the same picture on purpose: crop=entropy finds the detail on the right.
SAME_ON_PURPOSE = {frozenset({"crop-entropy", "crop-right"})}


def test_the_tolerance_tells_the_goldens_apart() -> None:
    # If two different renders scored above the tolerance against each other, a regression
    # from one to the other would pass unnoticed.
    images = {name: Image.open(golden_path(name)) for name in CASES}
    compared = 0
    for a in CASES:
        for b in CASES:
            if a < b and images[a].size == images[b].size and frozenset({a, b}) not in SAME_ON_PURPOSE:
                assert psnr(images[a], images[b]) < MIN_PSNR_DB - 5, (a, b)
                compared += 1
    assert compared > 100
