"""Where the output pixels come from: the box arithmetic of imgix's fit modes.

Pure: sizes in, a ``Layout`` out. No Pillow, no I/O. The pipeline executes a layout
with one resampling call (the source region ``box`` resized to ``scaled``) and, for the
padding modes, one paste onto a ``canvas``.

Rules of this module (imgix semantics, https://docs.imgix.com/apis/rendering/size/resize-fit-mode):

- ``rect`` (https://docs.imgix.com/apis/rendering/size/source-rectangle-region) picks the
  source region first; it is clipped to the image. Everything below works on that region.
- ``w``/``h`` are pixels (int) or a fraction of the region (float, 0-1)
  (https://docs.imgix.com/apis/rendering/size/image-width).
- Only one of ``w``/``h`` given: the other follows the region's aspect ratio.
  Neither given: the region at its own size, whatever the fit mode.
- ``ar`` (https://docs.imgix.com/apis/rendering/size/aspect-ratio) works with fit=crop and
  fit=fill only; given ``w`` and ``h`` it is ignored (they already fix the box); given one it
  derives the other; given neither, crop uses the largest ``ar`` box inside the region and
  fill the smallest ``ar`` frame around it.
- ``dpr`` multiplies the requested box and does nothing without ``w`` or ``h``
  (https://docs.imgix.com/apis/rendering/device-pixel-ratio).
- Fit modes, for a requested box W x H:
    clip     fit inside the box keeping the aspect ratio; may upscale. One side equals the box.
    max      clip, but never upscale.
    scale    stretch to exactly W x H.
    crop     fill the box keeping the aspect ratio, cut the overflow at the anchor; W x H.
    min      crop, but never upscale: when the box is bigger than the region, the output is
             the largest W:H window of the region, unscaled.
    fill     clip, padded to exactly W x H (padding colour: the pipeline's business).
    clamp    fill, but the padding extends the edge pixels.
    fillmax  max, padded to exactly W x H.
  ``facearea`` needs face detection, which the reference renderer does not have: it renders
  as clip, the default mode.
- The anchor of a crop is a point in the region (0-1 each way); the window is centred on it
  and pushed back inside the region. For the edge anchors (``crop=top,left`` ...) that is
  exactly edge alignment, for ``crop=focalpoint`` it is imgix's focal point
  (https://docs.imgix.com/apis/rendering/focal-point-crop). ``crop=entropy`` needs the
  pixels: ``anchor_for`` gives the centre and the pipeline moves the anchor after decoding.
- The output never exceeds ``MAX_OUTPUT_SIDE`` on either side: a larger layout is scaled
  down as a whole, keeping its proportions.
- Every size in a layout is at least 1 x 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "MAX_OUTPUT_SIDE",
    "FIT_MODES",
    "PADDING_FITS",
    "Box",
    "Layout",
    "Request",
    "Size",
    "anchor_for",
    "plan",
    "region",
]

# imgix's own ceiling for w and h (catalogue: strict_range max 8192), applied to the output.
MAX_OUTPUT_SIDE = 8192

FIT_MODES = frozenset({"clamp", "clip", "crop", "facearea", "fill", "fillmax", "max", "min", "scale"})
PADDING_FITS = frozenset({"clamp", "fill", "fillmax"})
_ASPECT_FITS = frozenset({"crop", "fill"})


@dataclass(frozen=True, slots=True)
class Size:
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Box:
    """A region of the source in source pixels; fractional edges are fine for resampling."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


@dataclass(frozen=True, slots=True)
class Request:
    """The geometric part of a render spec, already typed by the schema."""

    width: int | float | None = None
    height: int | float | None = None
    fit: str = "clip"
    dpr: float = 1.0
    aspect: tuple[float, float] | None = None
    anchor: tuple[float, float] = (0.5, 0.5)
    rect: tuple[int, int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """Take ``box`` of the source, resize it to ``scaled``, place it at ``offset`` on ``canvas``."""

    box: Box
    scaled: Size
    canvas: Size
    offset: tuple[int, int] = (0, 0)

    @property
    def padded(self) -> bool:
        return self.canvas != self.scaled


def anchor_for(crop: tuple[str, ...], fp_x: float = 0.5, fp_y: float = 0.5) -> tuple[float, float]:
    """The crop anchor for imgix's ``crop`` list; modes needing image analysis fall back to centre.

    ``focalpoint`` wins over the edge words, as imgix documents for crop=focalpoint.
    """
    if "focalpoint" in crop:
        return (_unit(fp_x), _unit(fp_y))
    x = 0.0 if "left" in crop else 1.0 if "right" in crop else 0.5
    y = 0.0 if "top" in crop else 1.0 if "bottom" in crop else 0.5
    return (x, y)


def plan(source: Size, request: Request) -> Layout:
    """The layout that renders ``request`` from a source of size ``source``."""
    if source.width < 1 or source.height < 1:
        raise ValueError(f"source size {source.width}x{source.height} is empty")
    area = region(source, request.rect)
    rw, rh = area.width, area.height
    want_w = _resolve(request.width, rw)
    want_h = _resolve(request.height, rh)
    if request.aspect is not None and request.fit in _ASPECT_FITS:
        want_w, want_h = _apply_aspect(request.aspect, request.fit, want_w, want_h, rw, rh)
    if want_w is None and want_h is None:
        whole = Size(_px(rw), _px(rh))
        return _cap(Layout(area, whole, whole))
    if want_w is not None:
        want_w *= request.dpr
    if want_h is not None:
        want_h *= request.dpr
    # The missing side stays unrounded, so the given side is the one that constrains.
    if want_w is None:
        want_w = want_h * rw / rh
    elif want_h is None:
        want_h = want_w * rh / rw
    return _cap(_fit(request.fit, area, want_w, want_h, request.anchor))


def _fit(fit: str, region: Box, want_w: float, want_h: float, anchor: tuple[float, float]) -> Layout:
    rw, rh = region.width, region.height
    box_w, box_h = _px(want_w), _px(want_h)
    if fit == "scale":
        size = Size(box_w, box_h)
        return Layout(region, size, size)
    if fit in ("crop", "min"):
        cover = max(box_w / rw, box_h / rh)
        window = _window(region, box_w / cover, box_h / cover, anchor)
        if fit == "min" and cover > 1:
            size = Size(_px(window.width), _px(window.height))
        else:
            size = Size(box_w, box_h)
        return Layout(window, size, size)
    no_upscale = fit in ("max", "fillmax")
    if no_upscale and rw <= want_w and rh <= want_h:
        inside = Size(_px(rw), _px(rh))
    else:
        inside = _inside(rw, rh, want_w, want_h)
    if fit in PADDING_FITS:
        canvas = Size(box_w, box_h)
        return Layout(region, inside, canvas, _centre(inside, canvas))
    return Layout(region, inside, inside)


def _inside(rw: float, rh: float, want_w: float, want_h: float) -> Size:
    # The constraining side is set exactly to the box; rounding only touches the other one,
    # so it can never poke out of the box.
    box_w, box_h = _px(want_w), _px(want_h)
    if want_w / rw <= want_h / rh:
        return Size(box_w, min(box_h, _px(rh * want_w / rw)))
    return Size(min(box_w, _px(rw * want_h / rh)), box_h)


def _window(region: Box, win_w: float, win_h: float, anchor: tuple[float, float]) -> Box:
    left = _clamp(region.left + anchor[0] * region.width - win_w / 2, region.left, region.right - win_w)
    top = _clamp(region.top + anchor[1] * region.height - win_h / 2, region.top, region.bottom - win_h)
    return Box(left, top, left + win_w, top + win_h)


def _apply_aspect(
    aspect: tuple[float, float], fit: str, w: float | None, h: float | None, rw: float, rh: float
) -> tuple[float | None, float | None]:
    ratio_w, ratio_h = aspect
    if not (ratio_w > 0 and ratio_h > 0 and math.isfinite(ratio_w) and math.isfinite(ratio_h)):
        return w, h  # a degenerate ratio constrains nothing
    ratio = ratio_w / ratio_h
    if w is not None and h is not None:
        return w, h
    if w is not None:
        return w, w / ratio
    if h is not None:
        return h * ratio, h
    region_ratio = rw / rh
    inscribed = region_ratio > ratio  # the region is wider than the ratio asks
    if (fit == "crop") == inscribed:
        return rh * ratio, rh
    return rw, rw / ratio


def _cap(layout: Layout) -> Layout:
    canvas = layout.canvas
    factor = min(1.0, MAX_OUTPUT_SIDE / canvas.width, MAX_OUTPUT_SIDE / canvas.height)
    if factor >= 1.0:
        return layout
    new_canvas = Size(_px(canvas.width * factor, MAX_OUTPUT_SIDE), _px(canvas.height * factor, MAX_OUTPUT_SIDE))
    if not layout.padded:
        return Layout(layout.box, new_canvas, new_canvas)
    scaled = Size(
        min(new_canvas.width, _px(layout.scaled.width * factor)),
        min(new_canvas.height, _px(layout.scaled.height * factor)),
    )
    return Layout(layout.box, scaled, new_canvas, _centre(scaled, new_canvas))


def region(source: Size, rect: tuple[int, int, int, int] | None) -> Box:
    """The part of the source a request works on: ``rect`` clipped to the image, or all of it."""
    whole = Box(0, 0, source.width, source.height)
    if rect is None:
        return whole
    x, y, w, h = rect
    left, top = max(0, x), max(0, y)
    right, bottom = min(source.width, x + w), min(source.height, y + h)
    if right - left < 1 or bottom - top < 1:
        raise ValueError(
            f"rect {x},{y},{w},{h} lies outside the {source.width}x{source.height} source image"
        )
    return Box(left, top, right, bottom)


def _resolve(value: int | float | None, extent: float) -> float | None:
    """Pixels stay pixels; a float is imgix's fraction-of-the-source form."""
    if value is None:
        return None
    if isinstance(value, float):
        return max(1.0, value * extent)
    return float(value)


def _centre(inner: Size, outer: Size) -> tuple[int, int]:
    return ((outer.width - inner.width) // 2, (outer.height - inner.height) // 2)


def _px(value: float, ceiling: int | None = None) -> int:
    # Half up, not Python's half-to-even: 10.5 px is 11, as every image tool rounds.
    pixels = max(1, math.floor(value + 0.5))
    return min(pixels, ceiling) if ceiling is not None else pixels


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))


def _unit(value: float) -> float:
    return _clamp(float(value), 0.0, 1.0)
