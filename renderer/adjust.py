"""Pixel adjustments: ``bri``, ``con``, ``exp``, ``gam``, ``sat``, ``monochrome``, ``sharp``, ``blur``.

Runs inside a render worker on the resized image (the fewest pixels). Rules:

- imgix documents what each parameter does and its range but not its formula
  (https://docs.imgix.com/apis/rendering/adjustment/brightness, .../contrast, .../exposure,
  .../gamma, .../saturation, .../sharpen, https://docs.imgix.com/apis/rendering/stylize/gaussian-blur,
  .../stylize/monochrome). The curves below are pixring's, chosen so that 0 is the identity,
  the sign does what the doc says, and the ends of the range are the extremes the doc
  implies (``bri=-100`` black, ``sat=-100`` grey, ``con=-100`` flat grey). They are fixed:
  changing one changes rendered bytes, so it needs a ``PIPELINE_VERSION`` bump.
- The tonal adjustments are one 256-entry table per channel (``Image.point``), in this
  order: exposure (a multiplier on linear light, 2 stops at +-100), brightness (an offset
  of up to the full range), contrast around mid-grey (x0.5..x100, ``con=-100`` flat), gamma
  (exponent 2^(-gam/50): positive brightens the mid-tones).
- Then saturation (a blend with the picture's luminance, factor 1 + sat/100), then
  ``monochrome`` (luminance tinted black -> colour -> white; the colour's alpha, from imgix's
  4/8-digit ARGB form, is the strength), then sharpening (an unsharp mask of radius 1.5 px,
  amount 3 x ``sharp`` percent), then a Gaussian blur of standard deviation ``blur`` / 10
  output pixels.
- Alpha is never adjusted. Spatial filters run on premultiplied pixels, as Pillow's own
  resize does, so colours hidden under transparent pixels do not bleed.
"""

from __future__ import annotations

from PIL import Image, ImageFilter, ImageOps

from pixring import schema

__all__ = ["adjust", "tone_curve"]

_EXPOSURE_STOPS_PER_100 = 2.0
_SHARPEN_RADIUS = 1.5
_SHARPEN_PERCENT_PER_UNIT = 3
_BLUR_UNITS_PER_PIXEL = 10.0


def tone_curve(bri: int = 0, con: int = 0, exp: int = 0, gam: int = 0) -> list[int]:
    """The 256-entry table of the tonal adjustments, 8-bit in and out."""
    gain = 2.0 ** (exp / 100 * _EXPOSURE_STOPS_PER_100)
    offset = bri / 100
    factor = 1 + con / 100 if con <= 0 else 1 / (1 - 0.99 * con / 100)
    power = 2.0 ** (-gam / 50)
    table = []
    for value in range(256):
        x = value / 255
        if exp:
            x = _to_srgb(min(1.0, _to_linear(x) * gain))
        x = (x + offset - 0.5) * factor + 0.5
        x = min(1.0, max(0.0, x)) ** power
        table.append(min(255, max(0, int(x * 255 + 0.5))))
    return table


def adjust(
    image: Image.Image,
    *,
    bri: int = 0,
    con: int = 0,
    exp: int = 0,
    gam: int = 0,
    sat: int = 0,
    monochrome: str | None = None,
    sharp: float = 0.0,
    blur: int = 0,
) -> Image.Image:
    """``image`` (L, LA, RGB or RGBA) with the adjustments applied; the same mode out,
    except that ``monochrome`` turns grey images into colour ones."""
    if bri or con or exp or gam:
        curve = tone_curve(bri, con, exp, gam)
        colour_bands = 1 if image.mode in ("L", "LA") else 3
        identity = list(range(256)) if image.mode in ("LA", "RGBA") else []
        image = image.point(curve * colour_bands + identity)
    if sat and image.mode in ("RGB", "RGBA"):
        image = _with_alpha(image, lambda rgb: Image.blend(_luminance(rgb).convert("RGB"), rgb, 1 + sat / 100))
    if monochrome is not None:
        image = _tint(image, monochrome)
    if sharp:
        sharpen = ImageFilter.UnsharpMask(_SHARPEN_RADIUS, round(sharp * _SHARPEN_PERCENT_PER_UNIT), 0)
        image = _premultiplied(image, lambda im: im.filter(sharpen))
    if blur:
        blurring = ImageFilter.GaussianBlur(blur / _BLUR_UNITS_PER_PIXEL)
        image = _premultiplied(image, lambda im: im.filter(blurring))
    return image


def _tint(image: Image.Image, colour: str) -> Image.Image:
    r, g, b, a = schema.rgba(colour)
    if image.mode in ("L", "LA"):
        image = image.convert("RGBA" if image.mode == "LA" else "RGB")

    def tinted(rgb: Image.Image) -> Image.Image:
        toned = ImageOps.colorize(_luminance(rgb), (0, 0, 0), (255, 255, 255), mid=(r, g, b))
        return toned if a == 255 else Image.blend(rgb, toned, a / 255)

    return _with_alpha(image, tinted)


def _luminance(rgb: Image.Image) -> Image.Image:
    return rgb.convert("L")  # ITU-R 601-2 luma, Pillow's documented conversion


def _with_alpha(image: Image.Image, work) -> Image.Image:  # type: ignore[no-untyped-def]
    """``work`` on the colour bands only; the alpha band is put back untouched."""
    if image.mode != "RGBA":
        return work(image)
    alpha = image.getchannel("A")
    result = work(image.convert("RGB"))
    result.putalpha(alpha)
    return result


def _premultiplied(image: Image.Image, work) -> Image.Image:  # type: ignore[no-untyped-def]
    if image.mode not in ("RGBA", "LA"):
        return work(image)
    mode = image.mode
    return work(image.convert("RGBa" if mode == "RGBA" else "La")).convert(mode)


def _to_linear(x: float) -> float:
    # IEC 61966-2-1 (sRGB) transfer function.
    return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4


def _to_srgb(x: float) -> float:
    return x * 12.92 if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055
