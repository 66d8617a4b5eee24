"""Text: ``txt``, ``txt-size``, ``txt-color``, ``txt-align``, ``txt-font``, ``txt-pad``,
``txt-shad``, ``txt-width``, ``txt-clip``, ``txt-line``, ``txt-line-color``.

imgix's pages: https://docs.imgix.com/apis/rendering/text/text-string, .../text/text-font-size,
.../text/text-color, .../text/text-align, .../text/text-font, .../text/text-padding,
.../text/text-shadow, .../text/text-width, .../text/text-clipping-mode, .../text/text-outline,
.../text/text-outline-color.

Runs inside a render worker on the finished picture, last of all (imgix stacks text over
the watermark). Pure: Pillow image in, image out. Rules:

- One line, as imgix's ``txt`` (multi-line text is imgix's ``~text`` endpoint, not drawn
  here): control characters (newlines, tabs) become spaces. At most ``MAX_TXT_CHARS`` (500)
  characters, else a 400 naming ``txt`` (checked when the query is read, before any work).
- Defaults as imgix documents: 12 px, opaque black, bottom-right, 10 px of padding. Lengths
  (``txt-size``, ``txt-pad``, ``txt-width``, ``txt-line``) are device-independent pixels,
  times ``dpr``. The size is clamped to ``MAX_TXT_SIZE`` (1000 px) and to the picture's
  height; ``txt-size=0`` draws nothing.
- The font: ``renderer.fonts`` (Pillow's built-in font by default). Layout by FreeType, with
  libraqm when Pillow has it (bidirectional and complex scripts); glyphs the font lacks
  (emoji, CJK in the built-in font) are drawn as the font's missing-glyph box.
- Width: ``txt-width`` pixels, or (0, absent) the picture's width less the padding on both
  sides, never more than that. Text wider than that is clipped per character, as imgix
  does, where ``txt-clip`` says: ``end`` (default, keeps the start), ``start`` (keeps the
  end), ``middle`` (keeps both ends); with ``ellipsis`` an ellipsis marks the cut
  (``ellipsis`` alone cuts the end). The values arrive as a set: ``middle`` wins over
  ``start``, and ``start`` with ``end`` is ``end``. Only the clipped text is rasterized, so
  a render never draws more than the picture's width of glyphs.
- Box: the clipped text's advance width by the font's ascent + descent; placed by
  ``txt-align`` (``top``/``middle``/``bottom``, ``left``/``center``/``right``) with
  ``txt-pad`` from the edges it is aligned to.
- ``txt-shad`` (0-10): a soft black halo under the glyphs (imgix's default shadow, centred,
  not offset): the glyph mask blurred by a Gaussian of radius ``txt-shad`` x ``dpr`` pixels.
- ``txt-line`` (pixels, clamped to 0..``MAX_LINE`` and to a quarter of the size) outlines the
  glyphs in ``txt-line-color`` (default white, imgix's).
- Colours carry alpha (``rrggbbaa``); glyph coverage times that alpha is composited "over"
  the picture, so anti-aliased edges never darken. An opaque picture stays opaque.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

from renderer.fonts import Font, resolve_font
from renderer.geometry import align_along
from renderer.watermark import composite_at

__all__ = ["MAX_LINE", "MAX_TXT_CHARS", "MAX_TXT_SIZE", "TextSpec", "clip_text", "draw_text", "text_box"]

MAX_TXT_CHARS = 500
MAX_TXT_SIZE = 1000
MAX_LINE = 50
ELLIPSIS = "\u2026"


@dataclass(frozen=True, slots=True)
class TextSpec:
    """The text part of a render; the defaults are imgix's."""

    text: str
    size: int = 12
    color: str = "000000"
    align: tuple[str, ...] = ("bottom", "right")
    font: str | None = None
    pad: int = 10
    shadow: float = 0.0
    width: int = 0
    clip: tuple[str, ...] = ("end",)
    line: int = 0
    line_color: str = "ffffff"


def single_line(text: str) -> str:
    return "".join(" " if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in text)


def clip_text(text: str, fits, clip: tuple[str, ...]) -> str:  # type: ignore[no-untyped-def]
    """The longest clipping of ``text`` that ``fits(candidate)`` accepts (binary search over
    how many characters are kept); "" when not even the ellipsis fits."""
    if fits(text):
        return text
    mode = "middle" if "middle" in clip else "start" if "start" in clip and "end" not in clip else "end"
    mark = ELLIPSIS if "ellipsis" in clip else ""

    def cut(keep: int) -> str:
        if mode == "end":
            return text[:keep] + mark
        if mode == "start":
            return mark + text[len(text) - keep:] if keep else mark
        head = (keep + 1) // 2
        return text[:head] + mark + (text[len(text) - (keep - head):] if keep - head else "")

    low, high = 0, len(text) - 1  # low characters always fit (or nothing does)
    if not fits(cut(0)):
        return ""
    while low < high:
        middle = (low + high + 1) // 2
        if fits(cut(middle)):
            low = middle
        else:
            high = middle - 1
    return cut(low)


def text_box(size: tuple[int, int], spec: TextSpec, dpr: float = 1.0) -> tuple[str, Font, int, tuple[int, int, int, int]] | None:
    """What ``draw_text`` draws: (the clipped text, its font, the outline width, its box
    (left, top, width, height) on the picture); None when nothing is drawn."""
    width, height = size
    text = single_line(spec.text[:MAX_TXT_CHARS])
    px = min(round(spec.size * dpr), MAX_TXT_SIZE, height)
    if not text.strip() or px < 1:
        return None
    font = resolve_font(spec.font, px)
    pad = round(spec.pad * dpr)
    stroke = max(0, min(round(spec.line * dpr), MAX_LINE, px // 4))
    room = width - 2 * pad
    if spec.width > 0:
        room = min(room, round(spec.width * dpr))
    room -= 2 * stroke
    if room < 1:
        return None
    text = clip_text(text, lambda candidate: font.getlength(candidate) <= room, spec.clip)
    if not text:
        return None
    ascent, descent = font.getmetrics()  # type: ignore[union-attr]
    box_w = round(font.getlength(text)) + 2 * stroke
    box_h = ascent + descent + 2 * stroke
    left = align_along(box_w, width, pad, spec.align, "left", "center")
    top = align_along(box_h, height, pad, spec.align, "top", "middle")
    return text, font, stroke, (left, top, box_w, box_h)


def draw_text(image: Image.Image, spec: TextSpec, dpr: float = 1.0) -> Image.Image:
    """``image`` with ``spec``'s text drawn on it; ``image`` itself is untouched."""
    placed = text_box(image.size, spec, dpr)
    if placed is None:
        return image
    text, font, stroke, (left, top, box_w, box_h) = placed
    radius = min(max(spec.shadow, 0.0), 10.0) * dpr
    margin = stroke + (round(3 * radius) if radius else 0) + 2
    layer_size = (box_w + 2 * margin, box_h + 2 * margin)
    origin = (margin + stroke, margin + stroke)

    def mask(outline: int) -> Image.Image:
        canvas = Image.new("L", layer_size, 0)
        ImageDraw.Draw(canvas).text(origin, text, fill=255, font=font, anchor="la",
                                    stroke_width=outline, stroke_fill=255)
        return canvas

    glyphs = mask(0)
    outer = mask(stroke) if stroke else glyphs
    layer = Image.new("RGBA", layer_size, (0, 0, 0, 0))
    if radius:
        layer = Image.alpha_composite(layer, _paint((0, 0, 0, 255), outer.filter(ImageFilter.GaussianBlur(radius))))
    if stroke:
        layer = Image.alpha_composite(layer, _paint(_rgba(spec.line_color), outer))
    layer = Image.alpha_composite(layer, _paint(_rgba(spec.color), glyphs))
    return composite_at(image, layer, (left - margin, top - margin))


def _paint(color: tuple[int, int, int, int], coverage: Image.Image) -> Image.Image:
    """A layer of ``color`` whose alpha is ``coverage`` times the colour's own alpha."""
    layer = Image.new("RGBA", coverage.size, color[:3] + (0,))
    alpha = coverage if color[3] == 255 else coverage.point(lambda v: (v * color[3] + 127) // 255)
    layer.putalpha(alpha)
    return layer


def _rgba(color: str) -> tuple[int, int, int, int]:
    channels = [int(color[i:i + 2], 16) for i in range(0, len(color), 2)]
    return (channels[0], channels[1], channels[2], channels[3] if len(channels) == 4 else 255)
