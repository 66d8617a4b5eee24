"""Which way up: Exif orientation, ``orient``, ``flip`` and ``rot``.

Rules of this module (imgix semantics):

- The Exif orientation of the source is applied by default; ``orient`` replaces it (1-8
  are the Exif values, 90/180/270 arrive from the schema as 6/3/8, 0 as 1) and, like it,
  turns the frame with the picture, so 5-8 swap width and height
  (https://docs.imgix.com/apis/rendering/rotation/orientation). The transposes per value
  are the Exif 2.32 definitions (the same table as Pillow's ``ImageOps.exif_transpose``).
- ``flip`` (h, v, hv) mirrors the upright image before any geometry, so ``w``/``h``/
  ``rect``/``crop`` address the picture as it is finally seen
  (https://docs.imgix.com/apis/rendering/rotation/flip-axis).
- ``rot`` turns the picture counter-clockwise *inside* the frame: the output keeps its size
  and the picture is zoomed just enough to cover it, so no corner is left empty
  (https://docs.imgix.com/apis/rendering/rotation/rotation). It runs on the resized image,
  the cheapest place, as one affine resampling (rotation and zoom together). Multiples of
  180 degrees are exact transposes.
"""

from __future__ import annotations

import math

from PIL import Image

__all__ = ["FLIPS", "ORIENTATIONS", "orient", "rotate_in_frame", "rotation_zoom", "swaps_axes"]

T = Image.Transpose
ORIENTATIONS: dict[int, tuple[Image.Transpose, ...]] = {
    1: (),
    2: (T.FLIP_LEFT_RIGHT,),
    3: (T.ROTATE_180,),
    4: (T.FLIP_TOP_BOTTOM,),
    5: (T.TRANSPOSE,),
    6: (T.ROTATE_270,),
    7: (T.TRANSVERSE,),
    8: (T.ROTATE_90,),
}
FLIPS: dict[str, Image.Transpose] = {"h": T.FLIP_LEFT_RIGHT, "v": T.FLIP_TOP_BOTTOM, "hv": T.ROTATE_180}


def swaps_axes(orientation: int) -> bool:
    """True for the Exif orientations that turn the frame by 90 degrees."""
    return orientation in (5, 6, 7, 8)


def orient(image: Image.Image, orientation: int, flip: str | None) -> Image.Image:
    """The stored image turned upright (``orientation``), then mirrored (``flip``)."""
    for method in ORIENTATIONS.get(orientation, ()):
        image = image.transpose(method)
    if flip is not None:
        image = image.transpose(FLIPS[flip])
    return image


def rotation_zoom(width: float, height: float, degrees: float) -> float:
    """The zoom that lets a ``width`` x ``height`` picture turned by ``degrees`` still
    cover its own frame: every frame corner lands inside the turned, zoomed picture."""
    theta = math.radians(degrees)
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    return max((width * c + height * s) / width, (width * s + height * c) / height)


def rotate_in_frame(image: Image.Image, degrees: float) -> Image.Image:
    """imgix's ``rot``: turn counter-clockwise by ``degrees`` within the same frame, zoomed to cover it."""
    degrees %= 360.0
    if degrees == 0:
        return image
    if degrees == 180:
        return image.transpose(T.ROTATE_180)
    width, height = image.size
    if degrees in (90, 270) and width == height:
        return image.transpose(T.ROTATE_90 if degrees == 90 else T.ROTATE_270)
    zoom = rotation_zoom(width, height, degrees)
    # Output pixel (x, y) samples the source at centre + R(-theta) (p - centre) / zoom, where
    # R(-theta) in y-down image coordinates turns the picture counter-clockwise on screen.
    theta = math.radians(degrees)
    cos, sin = math.cos(theta) / zoom, math.sin(theta) / zoom
    cx, cy = width / 2, height / 2
    a, b, d, e = cos, -sin, sin, cos
    matrix = (a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy)
    mode = image.mode
    # Premultiplied alpha, as Pillow's own resize does, so transparent pixels' colours
    # never bleed into their neighbours.
    if mode in ("RGBA", "LA"):
        image = image.convert("RGBa" if mode == "RGBA" else "La")
    turned = image.transform((width, height), Image.Transform.AFFINE, matrix, resample=Image.Resampling.BICUBIC)
    return turned.convert(mode) if turned.mode != mode else turned
