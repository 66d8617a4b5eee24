"""Orientation, flip and rot, on small hand-made images with one marked corner."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from renderer.orientation import ORIENTATIONS, orient, rotate_in_frame, rotation_zoom, swaps_axes

RED, BLUE = (255, 0, 0), (0, 0, 255)


def marked(width: int = 40, height: int = 20) -> Image.Image:
    """Blue, with a red square in the top-left corner."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, 5, 5))
    return image


def red_corner(image: Image.Image) -> str:
    w, h = image.size
    corners = {"top-left": (1, 1), "top-right": (w - 2, 1), "bottom-left": (1, h - 2), "bottom-right": (w - 2, h - 2)}
    found = [name for name, xy in corners.items() if image.getpixel(xy) == RED]
    assert len(found) == 1, found
    return found[0]


# Exif 2.32, Orientation tag: where the stored top-left corner ends up once displayed.
EXIF_TABLE = [
    (1, "top-left"), (2, "top-right"), (3, "bottom-right"), (4, "bottom-left"),
    (5, "top-left"), (6, "top-right"), (7, "bottom-right"), (8, "bottom-left"),
]


@pytest.mark.parametrize("value,corner", EXIF_TABLE)
def test_exif_orientations(value: int, corner: str) -> None:
    upright = orient(marked(), value, None)
    assert red_corner(upright) == corner
    assert upright.size == ((20, 40) if swaps_axes(value) else (40, 20))


@pytest.mark.parametrize("flip,corner", [("h", "top-right"), ("v", "bottom-left"), ("hv", "bottom-right")])
def test_flip_mirrors(flip: str, corner: str) -> None:
    assert red_corner(orient(marked(), 1, flip)) == corner


def test_flip_applies_after_the_orientation() -> None:
    # orient=6 turns the stored top-left to the top-right; flip=h then mirrors it back.
    assert red_corner(orient(marked(), 6, "h")) == "top-left"
    assert red_corner(orient(marked(), 6, "v")) == "bottom-right"


def test_every_orientation_has_a_transpose_list() -> None:
    assert set(ORIENTATIONS) == set(range(1, 9))


@pytest.mark.parametrize("degrees,corner", [(90, "bottom-left"), (180, "bottom-right"), (270, "top-right")])
def test_rot_is_counter_clockwise(degrees: int, corner: str) -> None:
    square = marked(40, 40)
    assert red_corner(rotate_in_frame(square, degrees)) == corner
    # The same direction as Pillow's own rotate(), which is documented counter-clockwise.
    assert red_corner(square.rotate(degrees)) == corner


def test_rot_keeps_the_frame_and_leaves_no_empty_corner() -> None:
    image = Image.new("RGB", (60, 40), BLUE)
    for degrees in (10, 33.3, 45, 90, 135, 271):
        turned = rotate_in_frame(image, degrees)
        assert turned.size == (60, 40)
        for xy in ((0, 0), (59, 0), (0, 39), (59, 39)):
            assert turned.getpixel(xy) == pytest.approx(BLUE, abs=2), (degrees, xy)  # not black fill


def test_rot_keeps_transparency_clean() -> None:
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (10, 10, 30, 30))
    turned = rotate_in_frame(image, 30)
    assert turned.mode == "RGBA"
    r, g, b, a = turned.getpixel((20, 20))
    assert a == 255 and r > 250
    # Edge pixels blend red with transparency, never with the black hidden under it.
    edge = [turned.getpixel((x, 20)) for x in range(40)]
    assert all(p[0] >= 250 for p in edge if p[3] > 32)


@given(w=st.integers(1, 3000), h=st.integers(1, 3000), degrees=st.floats(0, 360))
def test_rotation_zoom_covers_the_frame(w: int, h: int, degrees: float) -> None:
    zoom = rotation_zoom(w, h, degrees)
    assert zoom >= 1 - 1e-12
    theta = math.radians(degrees)
    # Each frame corner, turned back into the picture's axes, lies inside the zoomed picture.
    for x, y in ((w / 2, h / 2), (-w / 2, h / 2)):
        u = abs(x * math.cos(theta) + y * math.sin(theta))
        v = abs(-x * math.sin(theta) + y * math.cos(theta))
        assert u <= zoom * w / 2 + 1e-6 and v <= zoom * h / 2 + 1e-6
