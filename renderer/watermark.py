"""Watermarks: ``mark``, ``mark-align``, ``mark-alpha``, ``mark-scale``, ``mark-pad``,
``mark-w``, ``mark-h``, ``mark-fit``, ``mark-x``, ``mark-y``, ``mark-tile``.

imgix's pages: https://docs.imgix.com/apis/rendering/watermark/watermark-image-url,
.../watermark/watermark-alignment-mode, .../watermark-alpha, .../watermark-scale,
.../watermark-padding, .../watermark-width, .../watermark-height, .../watermark-fit-mode,
.../watermark-x-position, .../watermark-y-position, .../watermark-tile.

Runs inside a render worker on the finished picture (after adjustments, padding and
``bg``), before the text (imgix stacks text over mark). Pure: the watermark arrives as an
already decoded image (``renderer.pipeline`` decodes its bytes under ``MAX_MARK_PIXELS``);
where it comes from is ``renderer.app``'s business. Rules:

- Size, in this order: the watermark's own size; ``mark-w``/``mark-h`` (an int is pixels, a
  float 0-1 a fraction of the watermark's *own* width/height, as imgix documents) fitted by
  ``mark-fit``: ``clip`` (default) fits inside the box keeping the aspect ratio, ``max`` the
  same without enlarging, ``crop`` fills the box and cuts the overflow (centred), ``scale``
  stretches to the box, ``fill`` fits inside and pads the box with transparency; with one
  of the two given, the other follows the aspect ratio (every fit alike). ``mark-scale``
  (0-100), when given, wins: the watermark is that percentage of the picture's width, its
  aspect ratio kept (``mark-scale=0`` draws nothing). Pixel lengths (``mark-w``/``mark-h``
  pixels, ``mark-pad``, ``mark-x``, ``mark-y``) are device-independent: times ``dpr``.
- Bound: a watermark is never drawn larger than the picture it marks: a larger one is
  scaled down, both sides by the same factor, until it fits. So a resize costs at most the
  picture's pixels, whatever ``mark-w`` says.
- Place: ``mark-align`` (``top``/``middle``/``bottom``, ``left``/``center``/``right``;
  default bottom-right, or top-left when tiled, as imgix documents) with ``mark-pad`` pixels
  (default 5) from the edges it is aligned to; ``mark-x``/``mark-y`` (pixels from the left /
  top; the schema clamps them to >= 0, and a value past the picture leaves it unmarked)
  override the alignment and the padding on their axis.
- ``mark-tile=grid``: the watermark repeats across the whole picture on a grid of pitch
  (width + pad, height + pad) through the placed watermark (``mark-pad`` clamped to the
  picture's larger side, beyond which it changes nothing on the picture). At most ``MAX_TILES`` tiles
  (4096): more is a 400 naming ``mark-tile`` rather than minutes of pasting. The grid is
  built by doubling (a row from copies of itself, then rows), so it costs a few passes over
  the picture however many tiles there are.
- ``mark-alpha`` (0-100, default 100) multiplies the watermark's own alpha; 0 draws nothing.
  Compositing is Pillow's ``alpha_composite`` (the "over" operator). An opaque picture stays
  opaque; a greyscale one becomes RGB so a coloured watermark keeps its colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from PIL import Image

from renderer.errors import BadParam, BadPath
from renderer.geometry import align_along
from renderer.origin import decode_path

__all__ = ["MAX_MARK_BYTES", "MAX_MARK_PIXELS", "MAX_TILES", "MarkSpec", "composite_at", "draw_watermark", "mark_size", "origin_name",
           "tile_count"]

# The watermark source's pixel limit: a logo is kilopixels; 4 MP is a generous 2000x2000.
MAX_MARK_PIXELS = 4_000_000
# Its byte limit (checked by ``renderer.app`` before and after fetching): 8 MiB holds a
# 2000x2000 RGBA PNG of noise; a logo is kilobytes.
MAX_MARK_BYTES = 8 * 1024 * 1024
MAX_TILES = 4096
DEFAULT_PAD = 5
_FITS = ("clip", "crop", "fill", "max", "scale")


@dataclass(frozen=True, slots=True)
class MarkSpec:
    """The watermark part of a render. ``path`` is the mark's name at the origin, as sent."""

    path: str
    align: tuple[str, ...] = ()  # () is imgix's default: bottom-right, top-left when tiled
    alpha: int = 100
    scale: int | None = None
    pad: int = DEFAULT_PAD
    w: int | float | None = None
    h: int | float | None = None
    fit: str = "clip"
    x: int | None = None
    y: int | None = None
    tile: str | None = None


def origin_name(path: str) -> str:
    """The name at the origin of a ``mark`` value: a path (``/logos/mark.png`` and
    ``logos/mark.png`` are the same file, both from the origin's root), through the same fence
    as a request's path. An absolute URL, a scheme-relative ``//host/...``, any other scheme,
    ``..`` or a control character is a 400 naming ``mark``: the renderer never fetches a URL
    a request names, only files of its own origin."""
    expected = "a path at this renderer's origin, e.g. /logos/mark.png"
    if "://" in path or path.startswith("//") or urlsplit(path).scheme:
        raise BadParam("mark must be a path at this renderer's origin, not a URL", "mark", expected)
    try:
        return decode_path(quote(path, safe="/"))
    except (BadPath, UnicodeError) as exc:
        raise BadParam(f"mark is not a usable path: {exc}", "mark", expected) from None


def mark_size(natural: tuple[int, int], base: tuple[int, int], spec: MarkSpec, dpr: float = 1.0) -> tuple[int, int]:
    """The watermark's drawn size, bounded by the picture's size; (0, 0) draws nothing."""
    mw, mh = natural
    bw, bh = base
    if spec.scale is not None:
        width = bw * spec.scale / 100
        size = (width, width * mh / mw)
    else:
        size = _fitted(natural, spec, dpr)
    width, height = size
    shrink = min(1.0, bw / width if width else 1.0, bh / height if height else 1.0)
    width, height = round(width * shrink), round(height * shrink)
    if width < 1 or height < 1:
        return (0, 0)
    return (width, height)


def tile_count(size: tuple[int, int], base: tuple[int, int], pad: int) -> int:
    """How many tiles ``mark-tile=grid`` draws (whole or cut by the edges)."""
    pitch_x, pitch_y = size[0] + pad, size[1] + pad
    return (-(-base[0] // pitch_x) + 1) * (-(-base[1] // pitch_y) + 1)


def draw_watermark(image: Image.Image, mark: Image.Image, spec: MarkSpec, dpr: float = 1.0) -> Image.Image:
    """``image`` with ``mark`` drawn on it as ``spec`` says; ``image`` itself is untouched."""
    if spec.alpha <= 0:
        return image
    size = mark_size(mark.size, image.size, spec, dpr)
    if size == (0, 0):
        return image
    # A pad past the picture's larger side places the mark off the picture either way; the
    # clamp keeps a tile's cell (mark + pad) from becoming a gigantic allocation.
    pad = min(_pixels(spec.pad, dpr), max(image.size))
    if spec.tile and tile_count(size, image.size, pad) > MAX_TILES:
        raise BadParam(
            f"mark-tile=grid would draw {tile_count(size, image.size, pad)} tiles; this renderer draws at "
            f"most {MAX_TILES}", "mark-tile", "a larger watermark (mark-w, mark-h, mark-scale) or mark-pad",
        )
    layer = _sized(mark.convert("RGBA"), size, spec)
    if spec.alpha < 100:
        faded = layer.getchannel("A").point(lambda a: (a * spec.alpha + 50) // 100)
        layer.putalpha(faded)
    left, top = _place(layer.size, image.size, spec, pad, dpr)
    if spec.tile:
        return composite_at(image, _grid(layer, image.size, (left, top), pad), (0, 0))
    return composite_at(image, layer, (left, top))


def _fitted(natural: tuple[int, int], spec: MarkSpec, dpr: float) -> tuple[float, float]:
    mw, mh = natural
    box_w = _dimension(spec.w, mw, dpr)
    box_h = _dimension(spec.h, mh, dpr)
    if box_w is None:
        return (float(mw), float(mh)) if box_h is None else (box_h * mw / mh, box_h)
    if box_h is None:
        return (box_w, box_w * mh / mw)
    fit = spec.fit if spec.fit in _FITS else "clip"
    if fit in ("scale", "crop", "fill"):
        return (box_w, box_h)
    factor = min(box_w / mw, box_h / mh)
    if fit == "max":
        factor = min(factor, 1.0)
    return (mw * factor, mh * factor)


def _dimension(value: int | float | None, own: int, dpr: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, float):
        return own * value
    return value * dpr


def _sized(mark: Image.Image, size: tuple[int, int], spec: MarkSpec) -> Image.Image:
    """The watermark at ``size``: cropped (crop) or letterboxed (fill) when the box's aspect
    ratio differs from the watermark's, stretched (scale), else simply resized."""
    both = spec.scale is None and spec.w is not None and spec.h is not None
    fit = spec.fit if both else "clip"
    if fit == "crop":
        mw, mh = mark.size
        factor = max(size[0] / mw, size[1] / mh)
        cw, ch = size[0] / factor, size[1] / factor
        box = ((mw - cw) / 2, (mh - ch) / 2, (mw + cw) / 2, (mh + ch) / 2)
        return mark.resize(size, Image.Resampling.LANCZOS, box=box)
    if fit == "fill":
        mw, mh = mark.size
        factor = min(size[0] / mw, size[1] / mh)
        inner = (max(1, round(mw * factor)), max(1, round(mh * factor)))
        canvas = Image.new("RGBA", size, (0, 0, 0, 0))
        canvas.paste(mark.resize(inner, Image.Resampling.LANCZOS),
                     ((size[0] - inner[0]) // 2, (size[1] - inner[1]) // 2))
        return canvas
    return mark if mark.size == size else mark.resize(size, Image.Resampling.LANCZOS)


def _place(size: tuple[int, int], base: tuple[int, int], spec: MarkSpec, pad: int, dpr: float) -> tuple[int, int]:
    align = spec.align or (("left", "top") if spec.tile else ("bottom", "right"))
    (mw, mh), (bw, bh) = size, base
    # An explicit position wins; right and bottom also when only the other axis was named.
    left = _pixels(spec.x, dpr) if spec.x is not None else align_along(mw, bw, pad, align, "left", "center")
    top = _pixels(spec.y, dpr) if spec.y is not None else align_along(mh, bh, pad, align, "top", "middle")
    return left, top


def _grid(layer: Image.Image, base: tuple[int, int], origin: tuple[int, int], pad: int) -> Image.Image:
    """A picture-sized layer of the watermark repeated on a grid through ``origin``."""
    pitch_x, pitch_y = layer.width + pad, layer.height + pad
    cell = Image.new("RGBA", (pitch_x, pitch_y), (0, 0, 0, 0))
    cell.paste(layer, (0, 0))
    # The grid starts one pitch before the picture's top-left so partial tiles appear there too.
    start_x, start_y = origin[0] % pitch_x - pitch_x, origin[1] % pitch_y - pitch_y
    width, height = base[0] - start_x, base[1] - start_y
    row = _repeat(cell, (width, pitch_y))
    sheet = _repeat(row, (width, height))
    return sheet.crop((-start_x, -start_y, -start_x + base[0], -start_y + base[1]))


def _repeat(tile: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``tile`` repeated to fill ``size``, by doubling: log2(copies) pastes, not one per copy."""
    out = Image.new("RGBA", size, (0, 0, 0, 0))
    out.paste(tile, (0, 0))
    filled_w, filled_h = min(tile.width, size[0]), min(tile.height, size[1])
    while filled_w < size[0]:
        out.paste(out.crop((0, 0, filled_w, filled_h)), (filled_w, 0))
        filled_w *= 2
    filled_w = size[0]
    while filled_h < size[1]:
        out.paste(out.crop((0, 0, filled_w, filled_h)), (0, filled_h))
        filled_h *= 2
    return out


def composite_at(image: Image.Image, layer: Image.Image, at: tuple[int, int]) -> Image.Image:
    """The RGBA ``layer`` "over" ``image`` with its top-left at ``at`` (which may be outside:
    the part off the picture is dropped). An opaque picture stays opaque, in RGB."""
    left, top = at
    box = (max(0, -left), max(0, -top), min(layer.width, image.width - left), min(layer.height, image.height - top))
    had_alpha = image.mode in ("RGBA", "LA")
    if box[0] >= box[2] or box[1] >= box[3]:
        return image
    merged = image.convert("RGBA") if image.mode != "RGBA" else image.copy()
    merged.alpha_composite(layer.crop(box), (left + box[0], top + box[1]))
    return merged if had_alpha else merged.convert("RGB")


def _pixels(value: int, dpr: float) -> int:
    return round(value * dpr)
