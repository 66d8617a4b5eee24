"""Where the output pixels come from: the box arithmetic of imgix's fit modes.

Pure: sizes in, a ``Layout`` out. No Pillow, no I/O. The pipeline executes a layout
with one resampling call (the source region ``box`` resized to ``scaled``) and, for the
padding modes, one paste onto a ``canvas``.

Rules of this module (imgix semantics, https://docs.imgix.com/apis/rendering/size/resize-fit-mode):

- ``rect`` (https://docs.imgix.com/apis/rendering/size/source-rectangle-region) picks the
  source region first; it is clipped to the image. Everything below works on that region.
  x and y are pixels (int), fractions of the source's width/height (float: 0.5 puts the
  rectangle's left/top edge at the centre) or keywords (``left``/``center``/``right``,
  ``top``/``middle``/``bottom``: ``center`` is (source width - rect width) / 2); w and h are
  pixels or fractions of the source. Fractions and keywords are rounded half up to whole
  pixels; the all-int form is used exactly as given.
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
  ``facearea`` needs face detection, which the reference renderer does not have: it is not
  drawn (``renderer.params`` refuses it with a 400); given here, it is planned as clip.
- ``min-w``/``min-h``/``max-w``/``max-h`` (https://docs.imgix.com/apis/rendering/size/minimum-width,
  .../minimum-height, .../maximum-width, .../maximum-height) bound the output box and, as
  imgix documents, work with fit=crop only (other fit modes ignore them). They are CSS
  pixels like w/h, so ``dpr`` multiplies them too; the box (w x h, the missing side derived
  from the aspect ratio, or the region's own size when neither is given) is raised to the
  minimums, then lowered to the maximums (a maximum below its minimum wins), then cropped
  to as fit=crop does: ``fit=crop&h=200&max-w=200`` on a wide image is a 200x200 crop.
- ``pad``/``pad-*`` (https://docs.imgix.com/apis/rendering/border-and-padding/padding):
  ``Request.padding`` (top, right, bottom, left) output pixels around the image, in the
  ``Layout.padding``. Without w and h they are added to the image's dimensions; with w or h
  the image and its padding fit within the requested box, so the image is planned for the
  box less the padding (``pad`` of at least half the box leaves no room: an error naming
  ``pad``). ``Layout.output`` is the size with the padding: what the render budget counts.
- The anchor of a crop is a point in the region (0-1 each way); the window is centred on it
  and pushed back inside the region. For the edge anchors (``crop=top,left`` ...) that is
  exactly edge alignment, for ``crop=focalpoint`` it is imgix's focal point
  (https://docs.imgix.com/apis/rendering/focal-point-crop). ``crop=entropy`` needs the
  pixels: ``anchor_for`` gives the centre and the pipeline moves the anchor after decoding.
- The output never exceeds ``MAX_OUTPUT_SIDE`` on either side: a larger layout is scaled
  down as a whole, keeping its proportions. Padding is not scaled: the image is scaled so
  that it and its padding fit; padding alone wider than the limit is left for the
  pipeline's output checks to refuse.
- Every size in a layout is at least 1 x 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = [
    "MAX_OUTPUT_SIDE",
    "FIT_MODES",
    "PADDING_FITS",
    "Box",
    "GeometryError",
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
# rect's x/y keywords -> the fraction of the free space (source side - rect side) they leave before the rect.
_RECT_KEYWORDS = {"left": 0.0, "center": 0.5, "right": 1.0, "top": 0.0, "middle": 0.5, "bottom": 1.0}

RectValue = tuple[int | float | str, int | float | str, int | float, int | float]


class GeometryError(ValueError):
    """A request whose geometry cannot be drawn; ``param`` names the parameter at fault."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


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
    rect: RectValue | None = None
    min_w: int | None = None
    min_h: int | None = None
    max_w: int | None = None
    max_h: int | None = None
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, right, bottom, left


@dataclass(frozen=True, slots=True)
class Layout:
    """Take ``box`` of the source, resize it to ``scaled``, place it at ``offset`` on ``canvas``;
    then ``padding`` (top, right, bottom, left) pixels around the canvas."""

    box: Box
    scaled: Size
    canvas: Size
    offset: tuple[int, int] = (0, 0)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def padded(self) -> bool:
        return self.canvas != self.scaled

    @property
    def output(self) -> Size:
        """The size of the output: the canvas and its padding."""
        top, right, bottom, left = self.padding
        return Size(self.canvas.width + left + right, self.canvas.height + top + bottom)


def anchor_for(crop: tuple[str, ...], fp_x: float = 0.5, fp_y: float = 0.5) -> tuple[float, float]:
    """The crop anchor for imgix's ``crop`` list; modes needing image analysis fall back to centre.

    ``focalpoint`` wins over the edge words, as imgix documents for crop=focalpoint.
    """
    if "focalpoint" in crop:
        return (_unit(fp_x), _unit(fp_y))
    x = 0.0 if "left" in crop else 1.0 if "right" in crop else 0.5
    y = 0.0 if "top" in crop else 1.0 if "bottom" in crop else 0.5
    return (x, y)


def align_along(item: int, room: int, pad: int, align: tuple[str, ...], start: str, centre: str) -> int:
    """Where an item of length ``item`` begins along a side of length ``room``, for imgix's
    alignment keywords (``mark-align``, ``txt-align``): ``pad`` from the start when ``start``
    (left or top) is given, centred for ``centre`` (center or middle), else ``pad`` from the
    end, which is imgix's default (bottom right)."""
    if start in align:
        return pad
    if centre in align:
        return (room - item) // 2
    return room - item - pad


def plan(source: Size, request: Request) -> Layout:
    """The layout that renders ``request`` from a source of size ``source``."""
    if source.width < 1 or source.height < 1:
        raise ValueError(f"source size {source.width}x{source.height} is empty")
    area = region(source, request.rect)
    rw, rh = area.width, area.height
    top, right, bottom, left = (max(0, int(side)) for side in request.padding)
    padding = (top, right, bottom, left)
    want_w = _resolve(request.width, rw)
    want_h = _resolve(request.height, rh)
    if request.aspect is not None and request.fit in _ASPECT_FITS:
        want_w, want_h = _apply_aspect(request.aspect, request.fit, want_w, want_h, rw, rh)
    bounded = request.fit == "crop" and any(
        b is not None for b in (request.min_w, request.min_h, request.max_w, request.max_h)
    )
    if want_w is None and want_h is None:
        if bounded:
            bw, bh = _bounded(request, float(rw), float(rh))
            if (bw, bh) != (rw, rh):
                return _cap(replace(_fit("crop", area, bw, bh, request.anchor), padding=padding))
        whole = Size(_px(rw), _px(rh))
        return _cap(Layout(area, whole, whole, padding=padding))
    if want_w is not None:
        want_w *= request.dpr
    if want_h is not None:
        want_h *= request.dpr
    # With w or h, the image and its padding share the box: the image gets the given sides
    # less the padding, and a missing side follows the image's aspect ratio from there.
    if want_w is not None:
        want_w = _room(want_w, left + right, padding)
    if want_h is not None:
        want_h = _room(want_h, top + bottom, padding)
    # The missing side stays unrounded, so the given side is the one that constrains.
    if want_w is None:
        assert want_h is not None
        want_w = want_h * rw / rh
    elif want_h is None:
        want_h = want_w * rh / rw
    if bounded:
        # The bounds are the output's: padding included.
        bw, bh = _bounded(request, want_w + left + right, want_h + top + bottom)
        want_w, want_h = _room(bw, left + right, padding), _room(bh, top + bottom, padding)
    return _cap(replace(_fit(request.fit, area, want_w, want_h, request.anchor), padding=padding))


def _bounded(request: Request, want_w: float, want_h: float) -> tuple[float, float]:
    """The box raised to min-w/min-h, then lowered to max-w/max-h (dpr applied to each)."""
    dpr = request.dpr
    if request.min_w is not None:
        want_w = max(want_w, request.min_w * dpr)
    if request.min_h is not None:
        want_h = max(want_h, request.min_h * dpr)
    if request.max_w is not None:
        want_w = min(want_w, request.max_w * dpr)
    if request.max_h is not None:
        want_h = min(want_h, request.max_h * dpr)
    return want_w, want_h


def _room(side: float, padding_sum: int, padding: tuple[int, ...]) -> float:
    """What a requested side leaves the image once its padding is taken out."""
    if not padding_sum:
        return side
    inner = side - padding_sum
    if inner < 1:
        top, right, bottom, left = padding
        raise GeometryError(
            f"padding {top},{right},{bottom},{left} leaves no room for the image within the "
            f"requested {_px(side)} px",
            "pad",
        )
    return inner


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
    top, right, bottom, left = layout.padding
    # The padding keeps its size: the canvas gets what is left of the limit (at least 1 px).
    side_w = max(1, MAX_OUTPUT_SIDE - left - right)
    side_h = max(1, MAX_OUTPUT_SIDE - top - bottom)
    factor = min(1.0, side_w / canvas.width, side_h / canvas.height)
    if factor >= 1.0:
        return layout
    new_canvas = Size(_px(canvas.width * factor, side_w), _px(canvas.height * factor, side_h))
    if not layout.padded:
        return Layout(layout.box, new_canvas, new_canvas, padding=layout.padding)
    scaled = Size(
        min(new_canvas.width, _px(layout.scaled.width * factor)),
        min(new_canvas.height, _px(layout.scaled.height * factor)),
    )
    return Layout(layout.box, scaled, new_canvas, _centre(scaled, new_canvas), layout.padding)


def region(source: Size, rect: RectValue | None) -> Box:
    """The part of the source a request works on: ``rect`` clipped to the image, or all of it."""
    whole = Box(0, 0, source.width, source.height)
    if rect is None:
        return whole
    pixels: tuple[int, int, int, int] = (
        rect if all(type(v) is int for v in rect) else _pixel_rect(source, rect)  # type: ignore[assignment]
    )
    x, y, w, h = pixels
    left, top = max(0, x), max(0, y)
    right, bottom = min(source.width, x + w), min(source.height, y + h)
    if right - left < 1 or bottom - top < 1:
        raise GeometryError(
            f"rect {x},{y},{w},{h} lies outside the {source.width}x{source.height} source image", "rect"
        )
    return Box(left, top, right, bottom)


def _pixel_rect(source: Size, rect: RectValue) -> tuple[int, int, int, int]:
    """imgix's fraction and keyword forms of ``rect`` as whole pixels of ``source``."""
    x, y, w, h = rect
    width = _rect_extent(w, source.width)
    height = _rect_extent(h, source.height)
    return (_rect_origin(x, source.width, width), _rect_origin(y, source.height, height), width, height)


def _rect_extent(value: int | float | str, extent: int) -> int:
    if isinstance(value, float):
        return _px(value * extent)
    return int(value)


def _rect_origin(value: int | float | str, extent: int, size: int) -> int:
    if isinstance(value, str):
        # center/middle: half of the free space; right/bottom: all of it (imgix's definition).
        free = extent - size
        return math.floor(_RECT_KEYWORDS.get(value, 0.0) * free + 0.5)
    if isinstance(value, float):
        return math.floor(value * extent + 0.5)
    return int(value)


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
