"""``trim``, ``trim-color`` and ``trim-tol``: cut a uniform frame off the source.

Runs first, on the decoded and upright source, so ``w``/``h``/``rect``/``crop`` apply to the
trimmed image, as imgix's trim "trims the source image"
(https://docs.imgix.com/apis/rendering/trim/trim-image). Rules:

- ``trim=color`` (https://docs.imgix.com/apis/rendering/trim/trim-color): the frame is the
  rows and columns at the edges whose every pixel is within the tolerance of
  ``trim-color``; without ``trim-color``, of the top-left pixel's colour (imgix's rule).
- ``trim-tol`` (https://docs.imgix.com/apis/rendering/trim/trim-tolerance, default 0): the
  largest difference, per channel on the 0-255 scale, a frame pixel may have from the
  colour. 0 trims that exact colour only; 255 or more would trim everything, which leaves
  the image as it was (there is nothing to keep).
- ``trim=auto``: imgix walks in from the edges with statistics (``trim-md``, ``trim-sd``),
  which are not documented closely enough to reproduce. Here: when the four corner pixels
  agree within ``AUTO_TOLERANCE`` (11, imgix's ``trim-md`` default, read as the same
  per-channel difference), their top-left colour is trimmed with that tolerance; when they
  disagree there is no uniform frame and nothing is trimmed. ``trim-md``/``trim-sd`` are
  not used.
- ``trim=alpha`` and ``trim=colorunlessalpha`` are not drawn (left untrimmed).
- Transparency counts: on an image with alpha the colour is compared with its alpha, so a
  transparent border is not a frame of an opaque colour.
- Cost: one pass over the source, in strips of at most ``STRIP_PIXELS`` pixels, so the
  working memory is bounded whatever the source's size (a difference with the colour,
  thresholded by a 256-entry table, and its bounding box, all in Pillow's C code).
"""

from __future__ import annotations

from PIL import Image, ImageChops

from pixring import schema

__all__ = ["AUTO_TOLERANCE", "DRAWN", "STRIP_PIXELS", "auto_colour", "trim", "trim_box"]

DRAWN = frozenset({"color", "auto"})
AUTO_TOLERANCE = 11
STRIP_PIXELS = 1 << 20


def trim(image: Image.Image, mode: str, colour: str | None = None, tolerance: float = 0.0) -> Image.Image:
    """``image`` without its frame, per ``trim=mode``; unchanged when there is none."""
    if mode == "color":
        rgba = schema.rgba(colour) if colour is not None else _pixel(image, 0, 0)
        box = trim_box(image, rgba, tolerance)
    elif mode == "auto":
        found = auto_colour(image)
        box = trim_box(image, found, AUTO_TOLERANCE) if found is not None else None
    else:
        return image
    if box is None or box == (0, 0, image.width, image.height):
        return image
    return image.crop(box)


def auto_colour(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The colour of the four corners when they agree within ``AUTO_TOLERANCE``, else None."""
    w, h = image.width - 1, image.height - 1
    corners = [_pixel(image, x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
    for channel in range(4):
        values = [c[channel] for c in corners]
        if max(values) - min(values) > AUTO_TOLERANCE:
            return None
    return corners[0]


def trim_box(
    image: Image.Image, colour: tuple[int, int, int, int], tolerance: float
) -> tuple[int, int, int, int] | None:
    """The bounding box of the pixels farther than ``tolerance`` from ``colour``; None when
    every pixel is within it."""
    work_mode = "RGBA" if image.mode in ("RGBA", "LA", "PA", "P") else "RGB"
    target = colour if work_mode == "RGBA" else colour[:3]
    limit = int(max(0.0, tolerance))
    if limit >= 255:
        return None
    # 0 where a channel is within the tolerance, 255 where it is not; the bounding box of
    # the non-zero pixels (any channel) is what stays.
    table = [0 if v <= limit else 255 for v in range(256)] * len(work_mode)
    rows = max(1, STRIP_PIXELS // max(1, image.width))
    left, top, right, bottom = image.width, image.height, 0, 0
    found = False
    for y0 in range(0, image.height, rows):
        strip = image.crop((0, y0, image.width, min(image.height, y0 + rows))).convert(work_mode)
        solid = Image.new(work_mode, strip.size, target)
        box = ImageChops.difference(strip, solid).point(table).getbbox(alpha_only=False)
        if box is None:
            continue
        found = True
        left, right = min(left, box[0]), max(right, box[2])
        top, bottom = min(top, y0 + box[1]), max(bottom, y0 + box[3])
    return (left, top, right, bottom) if found else None


def _pixel(image: Image.Image, x: int, y: int) -> tuple[int, int, int, int]:
    value = image.crop((x, y, x + 1, y + 1)).convert("RGBA").getpixel((0, 0))
    return tuple(value)  # type: ignore[arg-type, return-value]
