"""``palette=json|css``: the rendered image's colours instead of the image.

https://docs.imgix.com/apis/rendering/color-palette/color-palette-extraction,
.../color-palette/palette-color-count (``colors``), .../color-palette/css-prefix (``prefix``).
imgix extracts the palette after processing, so crops and adjustments change it; here too:
the palette is taken from the image the render would have encoded. Rules:

- The image is first reduced to at most ``SAMPLE_SIDE`` pixels a side (the palette of a
  thumbnail is the palette of the image, and it bounds the cost). Pixels less than half
  opaque do not count: they are not seen.
- ``colors`` (0-16, default 6): Pillow's median-cut quantizer finds that many colours,
  listed by how many pixels they stand for, most first (fewer when the image has fewer).
- ``average_luminance``: the mean of 0.2126 R + 0.7152 G + 0.0722 B (Rec. 709 weights on the
  encoded 0-1 values) over the counted pixels; 0 for an image with none.
- ``dominant_colors``: imgix names up to six colours as Vibrant.js does (``vibrant``,
  ``vibrant_dark``, ``vibrant_light``, ``muted``, ``muted_dark``, ``muted_light``); here from
  a 32-colour median cut, each name takes the unused colour nearest its target in HSL
  saturation and lightness (vibrant: saturation >= 0.35, aiming at 1; muted: <= 0.4, aiming
  at 0.3; dark aims at lightness 0.26 (<= 0.45), light at 0.74 (>= 0.55), plain at 0.5
  (0.3-0.7)), ties to the more frequent. A name no colour fits is left out, as imgix does.
- JSON: ``{"colors": [{"red", "green", "blue" (0-1, 6 decimals), "hex"}...],
  "average_luminance", "dominant_colors": {name: colour}}``. CSS: for colour i (from 1)
  ``.<prefix>-fg-<i> { color:#hex !important; }`` and ``.<prefix>-bg-<i>`` with
  ``background-color``, then black and white as ``ex-1``/``ex-2``, then the named colours
  (``vibrant-dark``...). ``prefix`` (default ``image``) is written as a CSS identifier: every
  character but ASCII letters, digits, ``-`` and ``_`` (and a leading digit) is escaped, so
  it cannot end a rule or start another.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import orjson
from PIL import Image

__all__ = ["DOMINANT_TARGETS", "MAX_COLORS", "SAMPLE_SIDE", "Palette", "css_identifier", "extract"]

SAMPLE_SIDE = 128
MAX_COLORS = 16
_CANDIDATES = 32
# name -> (vibrant?, target lightness, lightness range)
DOMINANT_TARGETS: dict[str, tuple[bool, float, tuple[float, float]]] = {
    "vibrant": (True, 0.5, (0.3, 0.7)),
    "vibrant_dark": (True, 0.26, (0.0, 0.45)),
    "vibrant_light": (True, 0.74, (0.55, 1.0)),
    "muted": (False, 0.5, (0.3, 0.7)),
    "muted_dark": (False, 0.26, (0.0, 0.45)),
    "muted_light": (False, 0.74, (0.55, 1.0)),
}
_VIBRANT_SATURATION = (0.35, 1.0, 1.0)  # (min, max, target)
_MUTED_SATURATION = (0.0, 0.4, 0.3)
Colour = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Palette:
    colors: tuple[Colour, ...]
    average_luminance: float
    dominant: tuple[tuple[str, Colour], ...]

    def encode(self, kind: str, prefix: str = "image") -> bytes:
        return self.json() if kind == "json" else self.css(prefix)

    def json(self) -> bytes:
        return orjson.dumps({
            "colors": [_json_colour(c) for c in self.colors],
            "average_luminance": round(self.average_luminance, 6),
            "dominant_colors": {name: _json_colour(c) for name, c in self.dominant},
        })

    def css(self, prefix: str = "image") -> bytes:
        ident = css_identifier(prefix)
        entries = [(str(i), c) for i, c in enumerate(self.colors, 1)]
        entries += [("ex-1", (0, 0, 0)), ("ex-2", (255, 255, 255))]
        entries += [(name.replace("_", "-"), c) for name, c in self.dominant]
        lines = []
        for suffix, colour in entries:
            lines.append(f".{ident}-fg-{suffix} {{ color:{_hex(colour)} !important; }}")
            lines.append(f".{ident}-bg-{suffix} {{ background-color:{_hex(colour)} !important; }}")
        return ("\n".join(lines) + "\n").encode("ascii")


def extract(image: Image.Image, colors: int) -> Palette:
    """The palette of ``image`` (any mode) with ``colors`` (0-16) colours."""
    colors = max(0, min(MAX_COLORS, colors))
    rgb, mask = _sample(image)
    pixels: list[Colour] = [
        p for p, a in zip(rgb.get_flattened_data(), mask.get_flattened_data()) if a >= 128  # type: ignore[misc, operator]
    ]
    if not pixels:
        return Palette((), 0.0, ())
    strip = Image.new("RGB", (len(pixels), 1))
    strip.putdata(pixels)
    luminance = sum(0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b in pixels) / (255 * len(pixels))
    return Palette(_quantize(strip, colors), round(luminance, 6), _dominant(_ranked(strip, _CANDIDATES)))


def css_identifier(text: str) -> str:
    """``text`` as the inside of a CSS class name (CSS Syntax 3, section 4.3.7 escapes)."""
    out = []
    for i, ch in enumerate(text):
        plain = ch.isascii() and (ch.isalnum() or ch in "-_")
        if plain and not (ch.isdigit() and (i == 0 or (i == 1 and text[0] == "-"))):
            out.append(ch)
        else:
            # The space ends the escape; U+0000 and surrogates are not code points CSS keeps.
            code = ord(ch)
            out.append(f"\\{0xFFFD if code == 0 or 0xD800 <= code <= 0xDFFF else code:x} ")
    return "".join(out)


def _sample(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    image = image.copy()
    image.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.BOX)
    rgba = image.convert("RGBA")
    return rgba.convert("RGB"), rgba.getchannel("A")


def _ranked(strip: Image.Image, count: int) -> list[tuple[int, Colour]]:
    """(pixel count, colour) for up to ``count`` median-cut colours, most frequent first."""
    if count <= 0:
        return []
    quantized = strip.quantize(count, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = quantized.getpalette() or []
    found: list[tuple[int, int]] = quantized.getcolors(256) or []  # type: ignore[assignment]
    ranked: list[tuple[int, Colour]] = [(n, (palette[3 * i], palette[3 * i + 1], palette[3 * i + 2])) for n, i in found]
    # Ties (equal counts) in colour order, so the answer never depends on dict order.
    return sorted(ranked, key=lambda item: (-item[0], item[1]))


def _quantize(strip: Image.Image, colors: int) -> tuple[Colour, ...]:
    return tuple(colour for _, colour in _ranked(strip, colors))


def _dominant(ranked: list[tuple[int, Colour]]) -> tuple[tuple[str, Colour], ...]:
    if not ranked:
        return ()
    most = max(n for n, _ in ranked)
    hsl = [(n, c, *colorsys.rgb_to_hls(*(v / 255 for v in c))) for n, c in ranked]
    used: set[Colour] = set()
    chosen = []
    for name, (vibrant, target_l, (low_l, high_l)) in DOMINANT_TARGETS.items():
        low_s, high_s, target_s = _VIBRANT_SATURATION if vibrant else _MUTED_SATURATION
        best, best_score = None, -1.0
        for n, colour, _, lightness, saturation in hsl:
            if colour in used or not (low_l <= lightness <= high_l and low_s <= saturation <= high_s):
                continue
            # Weights after Vibrant.js: lightness matters most, then saturation, then frequency.
            score = 3 * (1 - abs(saturation - target_s)) + 6.5 * (1 - abs(lightness - target_l)) + 0.5 * n / most
            if score > best_score:
                best, best_score = colour, score
        if best is not None:
            used.add(best)
            chosen.append((name, best))
    return tuple(chosen)


def _hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _json_colour(colour: Colour) -> dict[str, object]:
    r, g, b = colour
    return {"red": round(r / 255, 6), "green": round(g / 255, 6), "blue": round(b / 255, 6), "hex": _hex(colour)}
