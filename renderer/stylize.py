"""Colour, detail and stylize parameters: ``hue``, ``vib``, ``shad``, ``high``, ``invert``,
``nr``/``nrs``, ``usm``/``usmrad``, ``sepia``, ``duotone``/``duotone-alpha``, ``px``, ``htn``.

Runs inside a render worker after ``renderer.adjust`` (on the resized, rotated image) and
before padding, so every radius and block size below is in output pixels. Rules:

- imgix documents what each parameter does and its range, not its formula
  (https://docs.imgix.com/apis/rendering/adjustment/hue-shift, .../adjustment/vibrance,
  .../adjustment/shadow, .../adjustment/highlight, .../adjustment/invert,
  .../adjustment/unsharp-mask, .../adjustment/unsharp-mask-radius,
  .../noise-reduction/noise-reduction-bound, .../noise-reduction/noise-reduction-sharpen,
  .../stylize/sepia-tone, .../stylize/halftone, .../stylize/pixellate,
  https://docs.imgix.com/apis/url/stylize/duotone, .../stylize/duotone-alpha; the addresses
  of imgix's parameter catalogue 11.35.0, whose one-line descriptions these follow; the
  duotone page says the picture is made greyscale, its darker parts take the first colour and
  its lighter parts the second, and ``duotone-alpha`` blends that with the original). The
  formulas are pixring's, chosen so that the identity value (0, ``false``, the catalogue default) is
  a no-op and the sign does what the doc says. They are fixed: changing one changes rendered
  bytes, so it needs a ``PIPELINE_VERSION`` bump. Pillow only (numpy is not a dependency):
  colour matrices (``Image.convert``), 256-entry tables (``Image.point``), blends and masks.
- Order: ``hue``, ``vib``, the tonal table (``shad``, ``high``, then ``invert``), noise
  reduction, unsharp mask, ``sepia``, ``duotone``, ``px``, ``htn``. Colour first, then detail
  (noise is removed before edges are sharpened), then the stylizations that replace colour,
  then the two that replace structure: the halftone is last so its dots stay crisp.
- ``hue`` (0-359 degrees): the W3C Filter Effects ``hueRotate`` colour matrix
  (https://www.w3.org/TR/filter-effects-1/#feColorMatrixElement); greys stay grey and
  luminance is kept approximately; positive angles turn red towards green, then blue.
- ``vib`` (-100..100): saturation scaled by ``1 + vib/100 * (1 - s)`` where ``s`` is the
  pixel's own saturation (max - min of R, G, B, 0..1): muted colours move most, fully
  saturated ones not at all. ``vib=-100`` makes the mutedest colours grey.
- ``shad`` (0..100) lifts the darker half of the tones: ``x + k*x*(1-2x)^2`` for ``x < 0.5``
  with ``k = 2 * shad/100``; black, mid-grey and everything above stay put, and a shadow
  tone of 42/255 rises to about 80 at ``shad=100``. ``high`` (-100..0) is the mirror image on
  the lighter half: white and the darker half stay, 212 falls to about 174 at ``high=-100``.
  Both curves are monotonic (``k <= 3``) and per channel, like ``bri``/``con``.
  ``invert`` is ``255 - x`` on the colour bands.
- ``usm`` (-100..100) with ``usmrad`` (Gaussian standard deviation in output pixels, default
  2.5): ``x + a*(x - blur(x))``, ``a = 2*usm/100`` when sharpening (200 % at 100), and a
  blend towards the blur, ``a = usm/100``, when negative (``usm=-100`` is the blur itself).
  The radius is capped at the image's longer side: a wider blur is already flat across the
  whole picture. Pillow's Gaussian blur is three box blurs, whose cost does not grow with
  the radius, so the cap is about meaning, not CPU (2000x2000 at ``usmrad=500``: < 1 s).
- ``nr``/``nrs`` (-100..100, catalogue default 20 for both). imgix applies noise reduction
  by default; this renderer's default picture (every existing render and golden) has none,
  and the balancer's key drops defaults, so "absent" and ``nr=20&nrs=20`` must be that same
  picture: noise reduction runs only when ``nr`` or ``nrs`` differs from 20, and measures from
  there. ``nr`` is the bound, a threshold blur: a pixel whose colour lies within
  ``0.15*(nr-20)`` levels (12 at ``nr=100``) of its 3x3 binomial blur (``[1 2 1]`` both
  ways, /16: a Gaussian of about 0.7 px) takes the blurred value, one beyond twice that
  keeps its own, linearly in between; ``nr <= 20`` smooths nothing. Grain is smoothed, edges stay: a step of more than about 100 levels is kept
  whole at ``nr=100``, a fainter one is softened partly. (A 3x3 median keeps every edge but
  costs 3 s a 4 MP image in Pillow; the binomial blur is one 3x3 pass.) ``nrs`` acts on the
  edges, the pixels further than the bound (and at least 4 levels) from the blur: above 20
  it sharpens them (unsharp mask, up to 200 % at 100), below 20 it softens them towards the
  blur (fully at -100).
- ``sepia`` (0..100): the W3C Filter Effects ``sepia`` matrix at amount ``sepia/100``.
- ``duotone`` (shadow colour, highlight colour): the luminance (ITU-R 601-2) mapped linearly
  from the first colour to the second (``ImageOps.colorize``); the colours' own alpha, if any,
  is ignored (imgix takes 3/6-digit colours here). ``duotone-alpha`` (0..100, default 100)
  blends that over the picture; 0 is the identity.
- ``px`` (0..100): blocks of ``px`` x ``px`` output pixels from the top-left corner, each the
  average colour of its pixels (alpha-weighted); the block is capped at the image's longer
  side (one block, one colour). ``px=1`` is a block of one pixel, the identity.
- ``htn`` (0..100): a black-and-white dot screen on the luminance, as one ink on white paper
  (colour is dropped, as a one-ink screen does). Square cells of ``2 + round(htn * 0.14)``
  output pixels (2..16), capped at the image's longer side; each cell takes its average
  luminance (alpha-weighted) and inks a round dot whose area is the cell's darkness.
- Alpha is never changed. Spatial filters average colours weighted by alpha (Pillow's
  premultiplied modes), so the colours hidden under transparent pixels do not bleed, and
  the original alpha is put back on the result. Grey images (L, LA) stay grey unless a
  parameter adds colour (``sepia``, ``duotone``), which makes them RGB(A).
"""

from __future__ import annotations

import math
from typing import Callable

from PIL import Image, ImageChops, ImageFilter, ImageOps

from pixring import schema

__all__ = [
    "DUOTONE_ALPHA_DEFAULT",
    "NR_DEFAULT",
    "NRS_DEFAULT",
    "USMRAD_DEFAULT",
    "duotone",
    "halftone",
    "hue_matrix",
    "noise_reduction",
    "pixellate",
    "sepia_matrix",
    "stylize",
    "tonal_table",
    "unsharp_mask",
    "vibrance",
]

# The catalogue's defaults (imgix-parameters 11.35.0): the identity values here.
NR_DEFAULT = 20
NRS_DEFAULT = 20
USMRAD_DEFAULT = 2.5
DUOTONE_ALPHA_DEFAULT = 100

_SHADOW_GAIN = 2.0  # k at shad=100 / high=-100; <= 3 keeps the curve monotonic
_USM_SHARPEN_GAIN = 2.0  # usm=100 adds 200 % of the detail
_NR_LEVELS_PER_UNIT = 0.15  # nr=100 smooths differences up to 12 levels
_BINOMIAL = ImageFilter.Kernel((3, 3), (1, 2, 1, 2, 4, 2, 1, 2, 1), 16)
_NR_EDGE_FLOOR = 4  # nrs never treats differences under 4 levels as edges
_NRS_SHARPEN_GAIN = 2.0
_HTN_MIN_CELL = 2
_HTN_CELL_PER_UNIT = 0.14  # htn=100: 16 px cells

Work = Callable[[Image.Image], Image.Image]


def stylize(
    image: Image.Image,
    *,
    hue: int = 0,
    vib: int = 0,
    shad: float = 0.0,
    high: int = 0,
    invert: bool = False,
    nr: int = NR_DEFAULT,
    nrs: int = NRS_DEFAULT,
    usm: int = 0,
    usmrad: float = USMRAD_DEFAULT,
    sepia: int = 0,
    duotone_colors: tuple[str, str] | None = None,
    duotone_alpha: int = DUOTONE_ALPHA_DEFAULT,
    px: int = 0,
    htn: int = 0,
) -> Image.Image:
    """``image`` (L, LA, RGB or RGBA) with the parameters applied in the module's order;
    every parameter at its identity value returns ``image`` itself."""
    colour = image.mode in ("RGB", "RGBA")
    if hue % 360 and colour:
        image = _with_alpha(image, lambda rgb: rgb.convert("RGB", hue_matrix(hue)))
    if vib and colour:
        image = vibrance(image, vib)
    if shad or high or invert:
        table = tonal_table(shad, high, invert)
        bands = 1 if image.mode in ("L", "LA") else 3
        keep_alpha = list(range(256)) if image.mode in ("LA", "RGBA") else []
        image = image.point(table * bands + keep_alpha)
    if nr != NR_DEFAULT or nrs != NRS_DEFAULT:
        image = noise_reduction(image, nr, nrs)
    if usm:
        image = unsharp_mask(image, usm, usmrad)
    if sepia:
        image = _with_alpha(_colour(image), lambda rgb: rgb.convert("RGB", sepia_matrix(sepia)))
    if duotone_colors is not None and duotone_alpha > 0:
        image = duotone(image, duotone_colors, duotone_alpha)
    if px > 1:
        image = pixellate(image, px)
    if htn > 0:
        image = halftone(image, htn)
    return image


# -- colour -----------------------------------------------------------------------------


def hue_matrix(degrees: float) -> tuple[float, ...]:
    """The W3C ``hueRotate`` matrix as Pillow's 12-tuple (3 rows of r, g, b, offset)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return (
        0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715, 0.072 - c * 0.072 + s * 0.928, 0.0,
        0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.140, 0.072 - c * 0.072 - s * 0.283, 0.0,
        0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715, 0.072 + c * 0.928 + s * 0.072, 0.0,
    )


def sepia_matrix(amount: int) -> tuple[float, ...]:
    """The W3C ``sepia`` matrix at ``amount`` percent (0 the identity, 100 full sepia)."""
    k = 1 - min(100, max(0, amount)) / 100
    return (
        0.393 + 0.607 * k, 0.769 - 0.769 * k, 0.189 - 0.189 * k, 0.0,
        0.349 - 0.349 * k, 0.686 + 0.314 * k, 0.168 - 0.168 * k, 0.0,
        0.272 - 0.272 * k, 0.534 - 0.534 * k, 0.131 + 0.869 * k, 0.0,
    )


def vibrance(image: Image.Image, vib: int) -> Image.Image:
    """Saturation scaled by ``1 + vib/100 * (1 - s)``: muted colours move, vivid ones stay."""
    strength = min(100, abs(vib)) / 100

    def work(rgb: Image.Image) -> Image.Image:
        r, g, b = rgb.split()
        spread = ImageChops.subtract(ImageChops.lighter(ImageChops.lighter(r, g), b),
                                     ImageChops.darker(ImageChops.darker(r, g), b))
        # The mask is how far towards the extreme each pixel goes: (1 - s) * strength.
        mask = spread.point([round((255 - v) * strength) for v in range(256)])
        grey = rgb.convert("L").convert("RGB")
        extreme = Image.blend(grey, rgb, 2.0) if vib > 0 else grey  # saturation x2, or none
        return Image.composite(extreme, rgb, mask)

    return _with_alpha(image, work)


def tonal_table(shad: float = 0.0, high: int = 0, invert: bool = False) -> list[int]:
    """The 256-entry table of ``shad``, ``high`` and ``invert``, 8-bit in and out."""
    lift = _SHADOW_GAIN * min(100.0, max(0.0, shad)) / 100
    press = _SHADOW_GAIN * min(100, max(0, -high)) / 100
    table = []
    for value in range(256):
        x = value / 255
        if x < 0.5:
            x += lift * x * (1 - 2 * x) ** 2
        else:
            y = 1 - x  # the mirror image of the shadow curve
            x -= press * y * (1 - 2 * y) ** 2
        out = min(255, max(0, int(x * 255 + 0.5)))
        table.append(255 - out if invert else out)
    return table


def duotone(image: Image.Image, colors: tuple[str, str], alpha: int = DUOTONE_ALPHA_DEFAULT) -> Image.Image:
    """Luminance mapped from ``colors[0]`` (black) to ``colors[1]`` (white), blended over the
    picture at ``alpha`` percent."""
    dark, light = (schema.rgba(c)[:3] for c in colors)
    strength = min(100, max(0, alpha)) / 100

    def work(rgb: Image.Image) -> Image.Image:
        toned = ImageOps.colorize(rgb.convert("L"), dark, light)
        return toned if strength == 1 else Image.blend(rgb, toned, strength)

    return _with_alpha(_colour(image), work)


# -- detail -----------------------------------------------------------------------------


def unsharp_mask(image: Image.Image, amount: int, radius: float) -> Image.Image:
    """``x + a*(x - blur(x))``; negative ``amount`` blends towards the blur instead."""
    sigma = min(float(radius), float(max(image.size)))
    if not sigma > 0 or not amount:  # "not >": a NaN radius is no radius
        return image
    blurred = _smoothed(image, sigma)
    gain = _USM_SHARPEN_GAIN * amount / 100 if amount > 0 else max(-100, amount) / 100
    # Image.blend(a, b, t) = a + t*(b - a): t > 1 extrapolates away from the blur.
    return _with_alpha_pair(image, blurred, lambda x, soft: Image.blend(soft, x, 1 + gain))


def noise_reduction(image: Image.Image, nr: int = NR_DEFAULT, nrs: int = NRS_DEFAULT) -> Image.Image:
    """Bounded smoothing (``nr`` above 20) and edge sharpening or softening (``nrs`` off 20)."""
    bound = max(0, nr - NR_DEFAULT) * _NR_LEVELS_PER_UNIT
    if nrs > NRS_DEFAULT:
        edge_gain = _NRS_SHARPEN_GAIN * (nrs - NRS_DEFAULT) / (100 - NRS_DEFAULT)
    else:
        edge_gain = -(NRS_DEFAULT - max(-100, nrs)) / (100 + NRS_DEFAULT)
    if bound == 0 and edge_gain == 0:
        return image
    smooth = _binomial(image)

    def work(x: Image.Image, soft: Image.Image) -> Image.Image:
        distance = _distance(x, soft)
        out = x
        if bound:
            out = Image.composite(soft, x, distance.point(_ramp(bound, falling=True)))
        if edge_gain:
            edges = distance.point(_ramp(max(bound, _NR_EDGE_FLOOR), falling=False))
            out = Image.composite(Image.blend(soft, x, 1 + edge_gain), out, edges)
        return out

    return _with_alpha_pair(image, smooth, work)


def _distance(one: Image.Image, other: Image.Image) -> Image.Image:
    """Per pixel, the largest difference of any colour band (L)."""
    bands = ImageChops.difference(one, other).split()
    distance = bands[0]
    for band in bands[1:]:
        distance = ImageChops.lighter(distance, band)
    return distance


def _ramp(level: float, *, falling: bool) -> list[int]:
    """A mask table over a difference d: 255 up to ``level``, 0 from twice it, linear in
    between (``falling``); or the complement."""
    table = []
    for d in range(256):
        weight = 1.0 if d <= level else max(0.0, (2 * level - d) / level)
        table.append(round(255 * (weight if falling else 1 - weight)))
    return table


# -- structure --------------------------------------------------------------------------


def pixellate(image: Image.Image, size: int) -> Image.Image:
    """Blocks of ``size`` px, each its pixels' alpha-weighted average colour."""
    block = min(int(size), max(image.size))
    if block <= 1:
        return image
    means = _block_means(image, block)
    return _with_alpha_pair(image, means, lambda x, blocks: blocks)


def halftone(image: Image.Image, amount: int) -> Image.Image:
    """A one-ink dot screen of the luminance: black dots on white, round, one per cell."""
    cell = min(_HTN_MIN_CELL + round(min(100, max(0, amount)) * _HTN_CELL_PER_UNIT), max(image.size))
    if cell < _HTN_MIN_CELL:
        return image  # a 1x1 image has no room for a dot
    grey = image.convert("LA" if image.mode in ("LA", "RGBA") else "L")
    levels = _block_means(grey, cell)
    levels = levels.getchannel("L") if levels.mode == "LA" else levels
    screen = _tile(_dot_screen(cell), image.size)
    # Ink where the cell is darker than the screen's threshold, i.e. luminance < screen.
    ink = ImageChops.subtract(screen, levels)
    dots = ink.point([255 if v == 0 else 0 for v in range(256)])
    if image.mode in ("RGB", "RGBA"):
        dots = dots.convert("RGB")
    if image.mode in ("LA", "RGBA"):
        dots.putalpha(image.getchannel("A"))
    return dots


def _dot_screen(cell: int) -> Image.Image:
    """One cell's thresholds (as luminance): the pixels nearest the centre ink first, so a
    cell of darkness ``t`` inks the round dot of the ``t`` share of its pixels nearest it."""
    centre = (cell - 1) / 2
    order = sorted(
        ((x - centre) ** 2 + (y - centre) ** 2, math.atan2(y - centre, x - centre), x, y)
        for y in range(cell) for x in range(cell)
    )
    tile = Image.new("L", (cell, cell))
    count = len(order)
    for rank, (_, _, x, y) in enumerate(order):
        # rank r inks once darkness exceeds (r + 0.5)/count: luminance below 255 - that.
        tile.putpixel((x, y), 255 - round(255 * (rank + 0.5) / count))
    return tile


def _tile(tile: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``tile`` repeated over ``size``, by doubling: O(log) pastes, not one per cell."""
    strip = tile
    while strip.width < size[0]:
        wider = Image.new(strip.mode, (strip.width * 2, strip.height))
        wider.paste(strip, (0, 0))
        wider.paste(strip, (strip.width, 0))
        strip = wider
    sheet = strip
    while sheet.height < size[1]:
        taller = Image.new(sheet.mode, (sheet.width, sheet.height * 2))
        taller.paste(sheet, (0, 0))
        taller.paste(sheet, (0, sheet.height))
        sheet = taller
    return sheet.crop((0, 0, size[0], size[1]))


def _block_means(image: Image.Image, block: int) -> Image.Image:
    """Each ``block`` x ``block`` square (from the top-left; partial ones at the right and
    bottom edges) filled with its alpha-weighted mean, at the image's size and mode."""
    width, height = image.size
    means = _premultiplied(image, lambda im: im.reduce(block))
    cols, rows = math.ceil(width / block), math.ceil(height / block)
    spread = means.resize((cols * block, rows * block), Image.Resampling.NEAREST)
    return spread.crop((0, 0, width, height))


# -- alpha ------------------------------------------------------------------------------


def _colour(image: Image.Image) -> Image.Image:
    if image.mode in ("L", "LA"):
        return image.convert("RGBA" if image.mode == "LA" else "RGB")
    return image


def _smoothed(image: Image.Image, sigma: float) -> Image.Image:
    """A Gaussian blur of the colours, weighted by alpha (alpha itself is blurred only as
    the weight; the caller keeps the original)."""
    blur = ImageFilter.GaussianBlur(sigma)
    return _premultiplied(image, lambda im: im.filter(blur))


def _binomial(image: Image.Image) -> Image.Image:
    """The 3x3 binomial blur (a Gaussian of about 0.7 px), weighted by alpha: one pass, half
    the cost of ``GaussianBlur(1)``'s three box blurs."""
    if image.mode == "LA":  # Pillow's kernels mishandle La: go through RGBa, grey stays grey
        return _binomial(image.convert("RGBA")).convert("LA")
    return _premultiplied(image, lambda im: im.filter(_BINOMIAL))


def _premultiplied(image: Image.Image, work: Work) -> Image.Image:
    if image.mode not in ("RGBA", "LA"):
        return work(image)
    mode = image.mode
    return work(image.convert("RGBa" if mode == "RGBA" else "La")).convert(mode)


def _with_alpha(image: Image.Image, work: Work) -> Image.Image:
    """``work`` on the colour bands only; the alpha band is put back untouched."""
    if image.mode not in ("RGBA", "LA"):
        return work(image)
    alpha = image.getchannel("A")
    result = work(image.convert(image.mode[:-1]))
    result.putalpha(alpha)
    return result


def _with_alpha_pair(image: Image.Image, other: Image.Image,
                     work: Callable[[Image.Image, Image.Image], Image.Image]) -> Image.Image:
    """``work(colours, other's colours)``; the alpha band of ``image`` is put back."""
    if image.mode not in ("RGBA", "LA"):
        return work(image, other)
    colour_mode = image.mode[:-1]
    result = work(image.convert(colour_mode), other.convert(colour_mode))
    result.putalpha(image.getchannel("A"))
    return result
