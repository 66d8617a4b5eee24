"""The imgix image-parameter schema: the one table the normalizer and the renderer read.

pixring's balancer (``balancer/normalize.py``) turns a URL into a cache key with it and the
reference renderer (``renderer/``) turns the same URL into a render with it, so the two can
never disagree on a name, an alias, a range or a default.

Rules of this module
--------------------
* Pure: no I/O, no asyncio. The table below is written by hand for the parameters pixring
  supports and is checked against imgix's published catalogue
  (``imgix/imgix-url-params`` ``dist/parameters.json`` 11.35.0, kept in
  ``/work/shared/reference``) by ``tests/unit/test_schema.py``. Each entry cites its doc page.
* ``parse_query`` reports what was *asked*: canonical name -> typed value, defaults kept.
  ``without_defaults`` is what the normalizer uses to drop the values imgix would use anyway.
* Names are case-insensitive and aliases resolve to one canonical name (``width`` -> ``w``).
  ``<name>64`` carries a URL-safe base64 value (RFC 4648 §5, padding optional), except for
  parameters the catalogue marks ``disallow_base64`` (``auto``), whose ``64`` form is unknown
  to imgix and therefore ignored. https://docs.imgix.com/apis/rendering#base64-variants
* Unknown names are dropped silently, as imgix ignores them. An empty value counts as absent.
* Repeated parameters: list parameters (``auto``, ``crop``) are merged; for any other, the
  last occurrence wins, and the earlier ones are not even parsed (a bad earlier value is
  not an error: it could not change the picture). imgix does not document repeated parameters; last-wins is our choice
  and the normalizer forwards only the winning value, so key and upstream always agree.
* ``strict_range`` bounds from the catalogue are clamped into (``w=9000`` -> 8192).
  ``suggested_range`` bounds are recorded (``soft_minimum``/``soft_maximum``); they are
  clamped into only where pixring's renderer clamps (``clamped``: ``q`` 0-100, ``blur``
  0-2000, ``sharp`` 0-100, the adjustments -100-100), so that ``q=1000`` and ``q=100``,
  which render alike, share one key and one cache entry. ``rot`` is folded into 0-360
  (``rot=720`` is ``rot=0``, the default) and ``dpr`` rounded to 3 decimals
  (``dpr=4.99999999`` is ``dpr=5``); the renderer renders the folded value, so the key
  and the picture agree by construction. A value that cannot be parsed, or lies outside ``possible_values``, raises
  ``ParamError`` naming the parameter and the accepted form.
* Canonical forms merge only what renders identically: numbers lose trailing zeros
  (``1.50`` -> ``1.5``, ``400.0`` -> ``400``); enum values and colour keywords are
  case-folded; ``fm=jpeg`` is ``jpg``; lists are sorted and de-duplicated; ratios are reduced
  (``32:18`` -> ``16:9``, exact rational arithmetic); colours are hex; ``orient=90/180/270``
  are the documented aliases of 6/3/8. What is *not* merged: ``w=1`` (integer pixels, clamped
  to 2) and ``w=1.0`` (the whole source width), because the catalogue types them differently.
* Numbers are plain decimals (no exponent, no ``inf``/``nan``, ASCII digits only), at most
  32 characters and below 1e15 in magnitude, so a canonical form always re-parses to itself.

Colours (https://docs.imgix.com/apis/rendering#color-values): imgix reads 3 (RGB),
4 (ARGB), 6 (RRGGBB) and 8 (AARRGGBB) hex digits or a keyword (CSS Color 4 §6.1 named
colours, https://www.w3.org/TR/css-color-4/#named-colors, plus imgix's own ``imgixorange``
and ``imgixblue``). ``parse_query`` returns ``'rrggbb'`` for opaque colours and ``'rrggbbaa'``
(alpha LAST, as Pillow wants it) otherwise; ``format_value`` writes imgix's URL order back
(``'rrggbb'`` or ``'aarrggbb'``). ``rgba()`` turns the parsed form into a 4-tuple. The two
imgix brand keywords have no published value, so they stay keywords (valid for the balancer,
not renderable).

``parse_query(..., renderable_only=True)`` additionally rejects values that are valid imgix
but that pixring's reference renderer does not implement (``fm=jp2``, ``crop=faces``, ...):
the balancer accepts them (it may front a real imgix-compatible fleet), the renderer does not.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Iterable, Mapping
from urllib.parse import quote

__all__ = [
    "BOOLEAN",
    "COLOR",
    "DIMENSION",
    "ENUM",
    "INTEGER",
    "LIST",
    "NUMBER",
    "PARAMS",
    "RATIO",
    "RECT",
    "UNIT_SCALAR",
    "Param",
    "ParamError",
    "canonical_name",
    "canonical_query",
    "default",
    "format_value",
    "parse_query",
    "parse_value",
    "rgba",
    "suggested_range",
    "without_defaults",
]

# Value kinds. DIMENSION is imgix's "integer pixels or a unit_scalar fraction of the source".
INTEGER = "integer"
NUMBER = "number"
UNIT_SCALAR = "unit_scalar"
DIMENSION = "dimension"
RATIO = "ratio"
ENUM = "enum"
LIST = "list"
RECT = "rect"
COLOR = "color"
BOOLEAN = "boolean"
# Free text (txt, dl, prompts), a font name, a URL or path (mark, mask and blend images):
# kept exactly as sent, percent-decoded, and percent-encoded again in the canonical URL.
STRING = "string"
FONT = "font"
URL = "url"
TIMESTAMP = "timestamp"  # Unix seconds (expires): checked by the balancer, never in the key
TUPLE = "tuple"  # a fixed-length comma-separated list of typed items (border, duotone...)
RADIUS = "radius"  # one radius, or four (top-left, top-right, bottom-right, bottom-left)
FRAMES = "frames"  # one 1-based frame, or an interval first-last with either end open
COLOR_OR_URL = "color_or_url"  # blend: a colour, else an image URL
ENUM_OR_URL = "enum_or_url"  # mask: a shape keyword, else an image URL
INTEGER_OR_ENUM = "integer_or_enum"  # video-thumbnail: a frame number, or "auto"

BASE64_DOC = "https://docs.imgix.com/apis/rendering#base64-variants"
COLOR_DOC = "https://docs.imgix.com/apis/rendering#color-values"

# A number longer than this is not a real request; the cap keeps int() and Fraction() cheap
# and guarantees that every canonical form is short enough to parse again.
_MAX_NUMBER_TEXT = 32
# Magnitude cap for parameters without a strict range (blur, rot, q...): formatted without
# an exponent, such values stay below the text cap.
_MAX_MAGNITUDE = 10**15
# Reduced ratio terms stay exact in a float (the API hands ratios out as floats).
_MAX_RATIO_TERM = 2**53


class ParamError(ValueError):
    """A value a known parameter cannot take: the request deserves a 400 naming it.

    ``name`` is the canonical parameter name, ``value`` the raw text received (after base64
    decoding for ``<name>64``), ``expected`` a human description of the accepted form.
    """

    def __init__(self, name: str, value: object, expected: str) -> None:
        self.name = name
        self.value = value
        self.expected = expected
        shown = value if not isinstance(value, str) or len(value) <= 64 else value[:61] + "..."
        # ascii(): the message ends up in HTTP bodies and logs, whatever bytes came in.
        super().__init__(f"invalid value {ascii(shown)} for image parameter {name!r}: expected {expected}")


@dataclass(frozen=True, slots=True)
class Param:
    """One image parameter as imgix defines it.

    ``minimum``/``maximum`` are the catalogue's strict range (values are clamped into it);
    for DIMENSION they bound the pixel form, the fraction form is always 0-1, and for RECT
    ``minimum`` is the bound of x and y (w and h are at least 1). ``soft_minimum``/
    ``soft_maximum`` are the suggested range (informative). ``choices`` lists the accepted
    values of ENUM/LIST/orient; ``renderable`` the subset pixring's reference renderer
    implements (None: all). ``value_aliases`` maps alternative spellings to the canonical one.
    """

    name: str
    kind: str
    doc_url: str
    aliases: tuple[str, ...] = ()
    default: object = None
    minimum: float | None = None
    maximum: float | None = None
    soft_minimum: float | None = None
    soft_maximum: float | None = None
    choices: frozenset | None = None
    renderable: frozenset | None = None
    value_aliases: Mapping[object, object] = field(default_factory=dict, compare=False)
    base64: bool = True
    description: str = ""
    # Where pixring goes beyond the catalogue so that values rendering alike share one key
    # (the reference renderer reads the same fields, so it renders what the key says):
    # ``clamped`` makes the suggested range a hard one, ``period`` folds a number into
    # [0, period), ``decimals`` rounds it.
    clamped: bool = False
    period: float | None = None
    decimals: int | None = None
    # TUPLE: the item types, in order (each a Param of a scalar kind, named ``name[i]``).
    items: tuple["Param", ...] = ()
    # LIST: keep the order given (a direction ``top,bottom`` is not ``bottom,top``).
    ordered: bool = False
    # False for what authenticates a URL rather than describes the picture (``expires``):
    # parsed, so a bad value is still a 400, but never part of the key or the forwarded URL.
    keyed: bool = True


@dataclass(frozen=True, slots=True)
class _Raw:
    """A default written as the catalogue writes it (``fill-color`` ``fff``), parsed into its
    canonical typed form once the parsers exist (end of module)."""

    text: object


def _raw(text: object) -> _Raw:
    return _Raw(text)


def _item(kind: str, **kw: object) -> Param:
    """A TUPLE's item type (its name is filled in by the table: ``border[0]``)."""
    return _p("", kind, "", "", **kw)


def _p(name: str, kind: str, doc: str, description: str, **kw: object) -> Param:
    if "items" in kw:
        kw["items"] = tuple(replace(item, name=f"{name}[{i}]")  # type: ignore[arg-type]
                            for i, item in enumerate(kw["items"]))  # type: ignore[arg-type]
    if "choices" in kw:
        kw["choices"] = frozenset(kw["choices"])  # type: ignore[arg-type]
    if "renderable" in kw:
        kw["renderable"] = frozenset(kw["renderable"])  # type: ignore[arg-type]
    if "value_aliases" in kw:
        kw["value_aliases"] = MappingProxyType(dict(kw["value_aliases"]))  # type: ignore[arg-type]
    return Param(name=name, kind=kind, doc_url=doc, description=description, **kw)  # type: ignore[arg-type]


_DOCS = "https://docs.imgix.com/apis/rendering/"
_ADJUST = dict(kind=INTEGER, default=0, soft_minimum=-100, soft_maximum=100, clamped=True)

# The table. Names, aliases, types, ranges, defaults and possible values as in the catalogue
# (11.35.0); deviations are called out where they are made.
_TABLE: tuple[Param, ...] = (
    _p("w", DIMENSION, _DOCS + "size/image-width", "output width: pixels, or a 0-1 fraction of the source",
       aliases=("width",), minimum=2, maximum=8192),
    _p("h", DIMENSION, _DOCS + "size/image-height", "output height: pixels, or a 0-1 fraction of the source",
       aliases=("height",), minimum=2, maximum=8192),
    _p("dpr", NUMBER, _DOCS + "device-pixel-ratio", "device pixel ratio (multiplies w and h)",
       default=1.0, minimum=0, maximum=5, soft_minimum=0.75, soft_maximum=5, decimals=3),
    _p("ar", RATIO, _DOCS + "size/aspect-ratio", "aspect ratio W:H (used with fit=crop or fit=fill)"),
    _p("fit", ENUM, _DOCS + "size/resize-fit-mode", "how the source maps onto w x h",
       aliases=("f",), default="clip",
       choices=("clamp", "clip", "crop", "facearea", "fill", "fillmax", "max", "min", "scale"),
       renderable=("clamp", "clip", "crop", "fill", "fillmax", "max", "min", "scale")),
    _p("crop", LIST, _DOCS + "size/crop-mode", "crop anchors or strategy (with fit=crop)",
       choices=("top", "bottom", "left", "right", "faces", "entropy", "edges", "focalpoint"),
       renderable=("top", "bottom", "left", "right", "entropy", "focalpoint")),
    _p("fp-x", UNIT_SCALAR, _DOCS + "focal-point-crop/focal-point-x-position",
       "focal point x, 0-1 (with crop=focalpoint)", default=0.5, minimum=0, maximum=1),
    _p("fp-y", UNIT_SCALAR, _DOCS + "focal-point-crop/focal-point-y-position",
       "focal point y, 0-1 (with crop=focalpoint)", default=0.5, minimum=0, maximum=1),
    # The catalogue also allows keywords (center/right/middle/bottom) and 0-1 fractions for
    # x and y; pixring renders pixel rectangles only, so those are rejected (left/top are
    # exactly 0 and accepted). docs/renderer.md lists this deviation.
    _p("rect", RECT, _DOCS + "size/source-rectangle-region", "source region x,y,w,h in pixels",
       minimum=0),
    # ``jpeg`` is not in the catalogue; pixring accepts it as a spelling of ``jpg``.
    _p("fm", ENUM, _DOCS + "format/output-format", "output format",
       choices=("gif", "jpg", "jp2", "json", "jxr", "pjpg", "mp4", "png", "png8", "png32",
                "webp", "webm", "blurhash", "avif"),
       renderable=("jpg", "pjpg", "png", "png8", "png32", "webp", "avif", "gif", "json"),
       value_aliases={"jpeg": "jpg"}),
    # imgix: "the default is 75 ... with auto=compress the default becomes 45 unless
    # overridden", so an explicit q=75 is only a default without auto=compress.
    _p("q", INTEGER, _DOCS + "format/output-quality", "output quality for lossy formats",
       default=75, soft_minimum=0, soft_maximum=100, clamped=True),
    _p("auto", LIST, _DOCS + "automatic", "automatic enhancements (repeated auto= merge)",
       choices=("enhance", "format", "redeye", "compress", "true"),
       renderable=("format", "compress"), base64=False),
    _p("lossless", BOOLEAN, _DOCS + "format/lossless-compression", "lossless output (1/true, 0/false)",
       default=False),
    _p("rot", NUMBER, _DOCS + "rotation/rotation", "rotation in degrees",
       default=0.0, soft_minimum=0, soft_maximum=359, period=360.0),
    _p("flip", ENUM, _DOCS + "rotation/flip-axis", "flip axis", choices=("h", "v", "hv")),
    # 90/180/270 are documented degree aliases of the Exif values 6/3/8.
    _p("orient", INTEGER, _DOCS + "rotation/orientation", "Exif orientation override",
       aliases=("or",), choices=(0, 1, 2, 3, 4, 5, 6, 7, 8),
       value_aliases={90: 6, 180: 3, 270: 8}),
    # The catalogue says default "fff", but the doc page says "The default is transparent
    # white, 0FFF" (https://docs.imgix.com/apis/url/bg), and only that reading keeps an
    # explicit opaque bg=fff (which flattens transparency) apart from no bg at all.
    _p("bg", COLOR, _DOCS + "fill/background-color", "background colour", default="ffffff00"),
    _p("blur", INTEGER, _DOCS + "stylize/gaussian-blur", "gaussian blur",
       default=0, soft_minimum=0, soft_maximum=2000, clamped=True),
    _p("sharp", NUMBER, _DOCS + "adjustment/sharpen", "sharpen",
       default=0.0, soft_minimum=0, soft_maximum=100, clamped=True),
    _p("bri", doc=_DOCS + "adjustment/brightness", description="brightness", **_ADJUST),
    _p("con", doc=_DOCS + "adjustment/contrast", description="contrast", **_ADJUST),
    _p("exp", doc=_DOCS + "adjustment/exposure", description="exposure", **_ADJUST),
    _p("gam", doc=_DOCS + "adjustment/gamma", description="gamma", **_ADJUST),
    _p("sat", doc=_DOCS + "adjustment/saturation", description="saturation", **_ADJUST),
    _p("monochrome", COLOR, _DOCS + "stylize/monochrome", "monochrome tint colour",
       aliases=("mono",)),
    # Every other parameter of the catalogue, by category, as the catalogue has it. Where
    # ``clamped`` is set, pixring clamps a suggested range because the reference renderer
    # draws the parameter and renders the clamped value. Deviations: ``usmrad`` is capped at
    # 500 (the catalogue gives no maximum; the renderer bounds the blur's cost), ``hue`` is
    # folded into 0-359 (a hue turn of 360 is none), a ``border`` width is clamped into
    # 0-100 (the suggested 1-100, with 0 meaning no border), ``border-stroke-color`` has no
    # default (the catalogue's ``0`` is not a colour), and a ``rect`` takes fractions for
    # its width and height as well as for x and y.
    # -- adjustment
    _p('high', INTEGER, _DOCS + 'adjustment/highlight', 'adjusts the highlights of the source image', soft_minimum=-100, soft_maximum=0, clamped=True, default=_raw(0)),
    _p('hue', INTEGER, _DOCS + 'adjustment/hue-shift', 'adjusts the hue of the source image', soft_minimum=0, soft_maximum=360, clamped=True, period=360.0, default=_raw(0)),
    _p('invert', BOOLEAN, _DOCS + 'adjustment/invert', 'inverts the colors on the source image', aliases=('inv',), default=_raw(False)),
    _p('shad', NUMBER, _DOCS + 'adjustment/shadow', 'adjusts the highlights of the source image', soft_minimum=0, soft_maximum=100, clamped=True, default=_raw(0)),
    _p('usm', INTEGER, _DOCS + 'adjustment/unsharp-mask', 'sharpens the source image using an unsharp mask', soft_minimum=-100, soft_maximum=100, clamped=True, default=_raw(0)),
    _p('usmrad', NUMBER, _DOCS + 'adjustment/unsharp-mask-radius', 'specifies the radius for an unsharp mask operation', soft_minimum=0, soft_maximum=500, clamped=True, default=_raw(2.5)),
    _p('vib', INTEGER, _DOCS + 'adjustment/vibrance', 'adjusts the vibrance of an image', soft_minimum=-100, soft_maximum=100, clamped=True, default=_raw(0)),
    # -- animation
    _p('fps', INTEGER, _DOCS + 'animation/frames-per-second', 'specifies the framerate of the generated image', soft_minimum=1, soft_maximum=60),
    _p('frame', FRAMES, _DOCS + 'animation/frame-selection', 'specifies the frame of an animated image to use', soft_minimum=1),
    _p('interval', INTEGER, _DOCS + 'animation/frame-interval', 'displays every Nth frame starting with the first frame', minimum=1),
    _p('loop', INTEGER, _DOCS + 'animation', 'specifies the number of times an animated image should repeat. A...', soft_minimum=0, default=_raw(0)),
    _p('reverse', BOOLEAN, _DOCS + 'animation/reverse', 'reverses the frame order on the source animation', default=_raw(False)),
    _p('skip', INTEGER, _DOCS + 'animation/frame-skip', 'skips every Nth frame starting with the first frame', minimum=1),
    # -- background
    _p('bg-remove', BOOLEAN, _DOCS + 'background/background-removal', 'removes background from image', aliases=('background-remove',), default=_raw(False)),
    _p('bg-remove-fallback', BOOLEAN, _DOCS + 'background/background-removal-fallback', 'overrides default fallback behavior for bg-remove failures', default=_raw(True)),
    _p('bg-remove-fg-type', LIST, _DOCS + 'background/background-removal-foreground-type', 'specifies the image foreground type for background removal', choices=('auto', 'car'), default=_raw('auto')),
    _p('bg-remove-semi-transparency', BOOLEAN, _DOCS + 'background/background-removal-semi-transparency', 'enables background removal while retaining semi-transparent areas', aliases=('background-removal-semi-transparency',), default=_raw(True)),
    _p('bg-remove-transparency-threshold', UNIT_SCALAR, _DOCS + 'background/bg-remove-transparency-threshold', 'sets the threshold for background removal based on transparency....', aliases=('bg-remove-transparency-threshold',), default=_raw(0.2)),
    _p('bg-replace', STRING, _DOCS + 'background/background-replacement', 'replaces background from image using a string based prompt', aliases=('background-replace',)),
    _p('bg-replace-fallback', BOOLEAN, _DOCS + 'background/background-replace-fallback', 'overrides default fallback behavior for bg-replace failures', default=_raw(True)),
    _p('bg-replace-neg-prompt', STRING, _DOCS + 'background/background-replacement-negative-prompt', 'provides a negative text suggestion for background replacement', aliases=('background-replace-negative-prompt',)),
    # -- blending
    _p('blend', COLOR_OR_URL, _DOCS + 'blending/blend', 'specifies the location of the blend image', aliases=('b',)),
    _p('blend-align', LIST, _DOCS + 'blending/blend-align', 'changes the blend alignment relative to the parent image', aliases=('blendalign', 'ba'), choices=('top', 'bottom', 'middle', 'left', 'right', 'center')),
    _p('blend-alpha', INTEGER, _DOCS + 'blending/blend-alpha', 'changes the alpha of the blend image', aliases=('blendalpha', 'balph'), minimum=0, maximum=100, default=_raw(100)),
    _p('blend-color', COLOR, _DOCS + 'blending/blend-color', 'specifies a color to use when applying the blend', aliases=('blendcolor', 'blend-clr', 'blendclr')),
    _p('blend-crop', LIST, _DOCS + 'blending/blend-crop', 'specifies the type of crop for blend images', aliases=('blendcrop', 'bc'), choices=('top', 'bottom', 'left', 'right', 'faces')),
    _p('blend-fit', ENUM, _DOCS + 'blending/blend-fit', 'specifies the fit mode for blend images', aliases=('blendfit', 'bf'), choices=('clamp', 'clip', 'crop', 'scale', 'max'), default=_raw('clip')),
    _p('blend-h', DIMENSION, _DOCS + 'blending/blend-height', 'adjusts the height of the blend image', aliases=('blendh', 'bh'), minimum=2, maximum=8192),
    _p('blend-mode', ENUM, _DOCS + 'blending/blend-mode', 'sets the blend mode for a blend image', aliases=('blendmode', 'bm'), choices=('color', 'burn', 'dodge', 'darken', 'difference', 'exclusion', 'hardlight', 'hue', 'lighten', 'luminosity', 'multiply', 'overlay', 'saturation', 'screen', 'softlight', 'normal'), default=_raw('overlay')),
    _p('blend-pad', INTEGER, _DOCS + 'blending/blend-padding', 'applies padding to the blend image', aliases=('blendpad', 'bp'), soft_minimum=0, default=_raw(0)),
    _p('blend-size', ENUM, _DOCS + 'blending/blend-size', 'adjusts the size of the blend image', aliases=('blendsize', 'bs'), choices=('inherit',)),
    _p('blend-w', DIMENSION, _DOCS + 'blending/blend-width', 'adjusts the width of the blend image', aliases=('blendw', 'bw'), minimum=2, maximum=8192),
    _p('blend-x', INTEGER, _DOCS + 'blending/blend-x-position', 'adjusts the x-offset of the blend image relative to its parent', aliases=('blendx', 'bx'), soft_minimum=0, default=_raw(0)),
    _p('blend-y', INTEGER, _DOCS + 'blending/blend-y-position', 'adjusts the y-offset of the blend image relative to its parent', aliases=('blendy', 'by'), soft_minimum=0, default=_raw(0)),
    # -- border-and-padding
    _p('border', TUPLE, _DOCS + 'size', 'applies a border to an image',
       items=(_item(INTEGER, soft_minimum=0, soft_maximum=100, clamped=True), _item(COLOR))),
    _p('border-bottom', INTEGER, _DOCS + 'border-and-padding/border-bottom', 'sets bottom border of an image', soft_minimum=0, soft_maximum=100),
    _p('border-left', INTEGER, _DOCS + 'border-and-padding/border-left', 'sets left border of an image', soft_minimum=0, soft_maximum=100),
    _p('border-radius', RADIUS, _DOCS + 'border-and-padding/outer-border-radius', "sets the outer radius of the image's border in pixels", minimum=0),
    _p('border-radius-inner', RADIUS, _DOCS + 'border-and-padding/inner-border-radius', "sets the inner radius of the image's border in pixels", minimum=0),
    _p('border-right', INTEGER, _DOCS + 'border-and-padding/border-right', 'sets right border of an image', soft_minimum=0, soft_maximum=100),
    _p('border-stroke-color', COLOR, _DOCS + 'border-and-padding/border-stroke-color', 'sets the color of the border stroke around the image'),
    _p('border-stroke-size', INTEGER, _DOCS + 'border-and-padding/border-stroke-size', 'sets the stroke size of the border around the image', soft_minimum=0, soft_maximum=100, default=_raw(0)),
    _p('border-top', INTEGER, _DOCS + 'border-and-padding/border-top', 'sets top border of an image', soft_minimum=0, soft_maximum=100),
    _p('pad', INTEGER, _DOCS + 'border-and-padding/padding', 'pads an image', soft_minimum=0, clamped=True, default=_raw(0)),
    _p('pad-bottom', INTEGER, _DOCS + 'border-and-padding/padding-bottom', 'sets bottom padding of an image', soft_minimum=0, clamped=True, default=_raw(0)),
    _p('pad-left', INTEGER, _DOCS + 'border-and-padding/padding-left', 'sets left padding of an image', soft_minimum=0, clamped=True, default=_raw(0)),
    _p('pad-right', INTEGER, _DOCS + 'border-and-padding/padding-right', 'sets right padding of an image', soft_minimum=0, clamped=True, default=_raw(0)),
    _p('pad-top', INTEGER, _DOCS + 'border-and-padding/padding-top', 'sets top padding of an image', soft_minimum=0, clamped=True, default=_raw(0)),
    # -- color-palette
    _p('colors', INTEGER, _DOCS + 'color-palette/palette-color-count', 'specifies how many colors to include in a palette-extraction response', soft_minimum=0, soft_maximum=16, clamped=True, default=_raw(6)),
    _p('palette', ENUM, _DOCS + 'color-palette/color-palette-extraction', 'specifies an output format for palette-extraction', choices=('css', 'json')),
    _p('prefix', STRING, _DOCS + 'color-palette/css-prefix', 'specifies a CSS prefix for all classes in palette-extraction', default=_raw('image')),
    # -- expiration
    _p('expires', TIMESTAMP, _DOCS + 'expiration', 'a Unix timestamp specifying a UTC time. Requests made to this URL...', keyed=False),
    # -- face-detection
    _p('face-blur', INTEGER, _DOCS + 'face-detection/face-blur', 'specifies the amount of blur to apply to detected faces. Defaults to 0', minimum=0, maximum=100, default=_raw(0)),
    _p('face-pixel', INTEGER, _DOCS + 'face-detection/face-pixelation', 'specifies the pixelation amount of the face', aliases=('face-pixelate',), minimum=0, maximum=100, default=_raw(0)),
    _p('faceindex', INTEGER, _DOCS + 'face-detection/face-index', 'selects a face to crop to', soft_minimum=1),
    _p('facepad', NUMBER, _DOCS + 'face-detection/face-padding', 'adjusts padding around a selected face', soft_minimum=1, soft_maximum=10, default=_raw(1)),
    _p('faces', INTEGER, _DOCS + 'face-detection/json-face-data', 'specifies that face data should be included in output when...', choices=(1,)),
    # -- fill
    _p('fill', ENUM, _DOCS + 'fill/fill-mode', 'determines how to fill in additional space created by the fit setting', choices=('solid', 'blur', 'gen', 'generative', 'gradient')),
    _p('fill-color', COLOR, _DOCS + 'fill/fill-color', 'sets the fill color for images with additional space created by...', aliases=('fillcolor',), default=_raw('fff')),
    _p('fill-gen-fallback', BOOLEAN, _DOCS + 'fill/fill-generative-fallback', 'sets the fallback behavior for generative fill', aliases=('fill-generative-fallback',), default=_raw(True)),
    _p('fill-gen-neg-prompt', STRING, _DOCS + 'fill/fill-generative-negative-prompt', 'provides a negative text suggestion to the generative fill...', aliases=('fill-generative-negative-prompt',)),
    _p('fill-gen-pos', LIST, _DOCS + 'fill/fill-generative-position', 'sets the position of the Origin Image in relation to the...', aliases=('fill-generative-position',), choices=('top', 'bottom', 'middle', 'left', 'right', 'center'), default=_raw('center,middle')),
    _p('fill-gen-prompt', STRING, _DOCS + 'fill/fill-generative-prompt', 'provides a text suggestion to the generative fill parameter', aliases=('fill-generative-prompt',)),
    _p('fill-gen-seed', INTEGER, _DOCS + 'fill/fill-generative-seed', 'sets the generative seed value. Used to generate similar outputs...', aliases=('fill-generative-seed',), minimum=0),
    _p('fill-gradient-cs', ENUM, _DOCS + 'fill/fill-gradient-color-space', 'defines the color space as linear, sRGB, Oklab, HSL, or LCH for...', choices=('linear', 'srgb', 'oklab', 'hsl', 'lch'), default=_raw('srgb')),
    _p('fill-gradient-linear', TUPLE, _DOCS + 'fill/fill-gradient-linear', 'blends a gradient between two colors, {color1} and {color2}, along...', items=(_item(COLOR), _item(COLOR))),
    _p('fill-gradient-linear-direction', LIST, _DOCS + 'fill/fill-gradient-linear-direction', "the fill-gradient-linear-direction specifies the gradient's...", ordered=True, choices=('top', 'bottom', 'left', 'right'), default=_raw('top,bottom')),
    _p('fill-gradient-radial', TUPLE, _DOCS + 'fill/fill-gradient-radial', 'the fill-gradient-radial parameter creates a circular gradient...', items=(_item(COLOR), _item(COLOR))),
    _p('fill-gradient-radial-radius', TUPLE, _DOCS + 'fill/fill-gradient-radial-radius', "parameter defines the radial gradient's radius as pixels or a...", items=(_item(DIMENSION, minimum=2, maximum=8192), _item(DIMENSION, minimum=2, maximum=8192)), default=_raw('0.25,0.5')),
    _p('fill-gradient-radial-x', DIMENSION, _DOCS + 'fill/fill-gradient-radial-x', "specifies the location of the radial gradient's center along the...", minimum=2, maximum=8192, default=_raw(0.5)),
    _p('fill-gradient-radial-y', DIMENSION, _DOCS + 'fill/fill-gradient-radial-y', "parameter sets the radial gradient's center on the y-axis, using...", minimum=2, maximum=8192, default=_raw(0.5)),
    _p('fill-gradient-type', ENUM, _DOCS + 'fill/fill-gradient-type', 'specifies if a gradient is radial (circular) or linear (straight)', choices=('linear', 'radial'), default=_raw('linear')),
    _p('grid-colors', TUPLE, _DOCS + 'fill/grid-colors', 'sets grid colors for the transparency checkerboard grid', items=(_item(COLOR), _item(COLOR)), default=_raw('D0D7DD,FFFFFF')),
    _p('grid-size', INTEGER, _DOCS + 'fill/grid-size', 'sets grid size for the transparency checkerboard grid', minimum=0, default=_raw(4)),
    _p('transparency', ENUM, _DOCS + 'fill/transparency', 'adds checkerboard behind images which support transparency', choices=('grid',)),
    # -- focalpoint-crop
    _p('fp-debug', BOOLEAN, _DOCS + 'focal-point-crop/focal-point-debug', 'displays crosshairs identifying the location of the set focal point', default=_raw(False)),
    _p('fp-z', NUMBER, _DOCS + 'focal-point-crop/focal-point-zoom', 'sets the relative zoom value for the focal point of an image', minimum=1, maximum=100, soft_minimum=1, soft_maximum=10, default=_raw(1)),
    # -- format
    _p('ch', LIST, _DOCS + 'format/client-hints', 'sets one or more Client-Hints headers', choices=('width', 'dpr', 'save-data'), base64=False),
    _p('chromasub', INTEGER, _DOCS + 'format/chroma-subsampling', 'specifies the output chroma subsampling rate', choices=(444, 422, 420), default=_raw(420)),
    _p('colorquant', INTEGER, _DOCS + 'format/color-quantization', 'limits the number of unique colors in an image', soft_minimum=2, soft_maximum=256),
    _p('cs', ENUM, _DOCS + 'format/color-space', 'specifies the color space of the output image', choices=('origin', 'srgb', 'adobergb1998', 'tinysrgb', 'strip')),
    _p('dl', STRING, _DOCS + 'format/download', 'forces a URL to use send-file in its response'),
    _p('dpi', INTEGER, _DOCS + 'format/dots-per-inch', 'sets the DPI value in the EXIF header', soft_minimum=0, clamped=True),
    _p('iptc', ENUM, _DOCS + 'format/iptc-passthrough', 'determine if IPTC data should be passed for JPEG images', choices=('allow', 'block')),
    _p('jpg-progressive', BOOLEAN, _DOCS + 'format/jpg-progressive', 'specifies whether or not a jpg/jpeg uses progressive (true) or...', aliases=('jpeg-progressive',), default=_raw(True)),
    _p('svg-sanitize', BOOLEAN, _DOCS + 'format/sanitize-svg', 'specifies whether to sanitize an SVG', default=_raw(True)),
    # -- license-plate-detection
    _p('lp-blur', INTEGER, _DOCS + 'license-plate-detection/license-plate-blur', 'specifies the amount of blur to apply to detected license plates....', aliases=('license-plate-blur',), minimum=0, maximum=100, default=_raw(0)),
    # -- mask
    _p('corner-radius', RADIUS, _DOCS + 'mask-image/mask-corner-radius', 'specifies the radius value for a rounded corner mask', minimum=0),
    _p('mask', ENUM_OR_URL, _DOCS + 'mask-image/mask-type', 'defines the type of mask and specifies the URL if that type is...', choices=('ellipse', 'corners')),
    _p('mask-bg', COLOR, _DOCS + 'mask-image/mask-background-color', 'colors the background of the transparent mask area of images', aliases=('maskbg',), default=_raw('fff')),
    # -- misc
    _p('rasterize-bypass', BOOLEAN, 'https://docs.imgix.com/apis/rendering', 'bypasses all rendering parameters (including default parameters)...', default=_raw(False)),
    # -- noise-reduction
    _p('nr', INTEGER, _DOCS + 'noise-reduction/noise-reduction-bound', 'reduces the noise in an image', soft_minimum=-100, soft_maximum=100, clamped=True, default=_raw(20)),
    _p('nrs', INTEGER, _DOCS + 'noise-reduction/noise-reduction-sharpen', 'provides a threshold by which to sharpen an image', soft_minimum=-100, soft_maximum=100, clamped=True, default=_raw(20)),
    # -- object-manipulation
    _p('object-removal-negative-prompt', STRING, _DOCS + 'object-manipulation/object-removal-negative-prompt', 'provides a negative text suggestion to object-removal-prompt. Used...'),
    _p('object-removal-prompt', STRING, _DOCS + 'object-manipulation/object-removal-prompt', 'suggest auto generative fill for the object-removal-rect parameter'),
    _p('object-removal-rect', TUPLE, _DOCS + 'object-manipulation/object-removal', 'using a specified rectangle, an object is removed from the image', items=(_item(INTEGER, minimum=0), _item(INTEGER, minimum=0), _item(INTEGER, minimum=1), _item(INTEGER, minimum=1))),
    _p('object-removal-seed', INTEGER, _DOCS + 'object-manipulation/object-removal-seed', 'sets the generative seed value for object-removal. Used to...'),
    # -- pdf
    _p('page', INTEGER, _DOCS + 'pdf/pdf-page-number', 'selects a page from a PDF for display', soft_minimum=1, default=_raw(1)),
    _p('pdf-annotation', BOOLEAN, _DOCS + 'pdf/pdf-annotation', 'enables or disables PDF annotation', aliases=('annotation',), default=_raw(True)),
    # -- rotation
    _p('rot-type', ENUM, _DOCS + 'rotation/rotation-type', 'changes the rotation type', aliases=('rottype', 'rott'), choices=('pivot', 'straighten'), default=_raw('straighten')),
    # -- size
    _p('max-h', INTEGER, _DOCS + 'size/maximum-height', 'specifies the maximum height of the output image in pixels', aliases=('max-height',), minimum=1, maximum=8192),
    _p('max-w', INTEGER, _DOCS + 'size/maximum-width', 'specifies the maximum width of the output image in pixels', aliases=('max-width',), minimum=1, maximum=8192),
    _p('min-h', INTEGER, _DOCS + 'size/minimum-height', 'specifies the minimum height of the output image in pixels', aliases=('min-height',), minimum=1, maximum=8192),
    _p('min-w', INTEGER, _DOCS + 'size/minimum-width', 'specifies the minimum width of the output image in pixels', aliases=('min-width',), minimum=1, maximum=8192),
    # -- stylize
    _p('duotone', TUPLE, _DOCS + 'stylize/duotone', 'applies a duotone effect to the source image', items=(_item(COLOR), _item(COLOR))),
    _p('duotone-alpha', INTEGER, _DOCS + 'stylize/duotone-alpha', 'changes the alpha of the duotone effect atop the source image', minimum=0, maximum=100, default=_raw(100)),
    _p('htn', INTEGER, _DOCS + 'stylize/halftone', 'applies a half-tone effect to the source image', soft_minimum=0, soft_maximum=100, clamped=True, default=_raw(0)),
    _p('px', INTEGER, _DOCS + 'stylize/pixellate', 'applies a pixelation effect to an image', soft_minimum=0, soft_maximum=100, clamped=True, default=_raw(0)),
    _p('sepia', INTEGER, _DOCS + 'stylize/sepia-tone', 'applies a sepia effect to an image', soft_minimum=0, soft_maximum=100, clamped=True, default=_raw(0)),
    # -- super-resolution
    _p('upscale', BOOLEAN, _DOCS + 'super-resolution', 'uses generative AI fill to upscale low resolution images', default=_raw(False)),
    _p('upscale-fallback', BOOLEAN, _DOCS + 'super-resolution', 'overrides default fallback behavior for super resolution failures', default=_raw(True)),
    # -- text
    _p('txt', STRING, _DOCS + 'text/text-string', 'sets the text string to render', aliases=('t',)),
    _p('txt-align', LIST, _DOCS + 'text/text-align', 'sets the vertical and horizontal alignment of rendered text...', aliases=('txtalign', 'ta'), choices=('top', 'middle', 'bottom', 'left', 'center', 'right')),
    _p('txt-clip', LIST, _DOCS + 'text/text-clipping-mode', 'sets the clipping properties of rendered text', aliases=('txtclip', 'tcl'), choices=('start', 'middle', 'end', 'ellipsis'), default=_raw('end')),
    _p('txt-color', COLOR, _DOCS + 'text/text-color', 'specifies the color of rendered text', aliases=('txtcolor', 'txt-clr', 'txtclr', 'tc')),
    _p('txt-fit', ENUM, _DOCS + 'text/text-fit-mode', 'specifies the fit approach for rendered text', aliases=('txtfit',), choices=('max',)),
    _p('txt-font', FONT, _DOCS + 'text/text-font', 'selects a font for rendered text', aliases=('tf', 'txtfont')),
    _p('txt-line', INTEGER, _DOCS + 'text/text-outline', 'outlines the rendered text with a specified color', aliases=('txtline', 'tl'), soft_minimum=0, default=_raw(0)),
    _p('txt-line-color', COLOR, _DOCS + 'text/text-outline-color', 'specifies a text outline color', aliases=('txtlinecolor', 'txt-line-clr', 'txtlineclr'), default=_raw('fff')),
    _p('txt-pad', INTEGER, _DOCS + 'text/text-padding', 'specifies the padding (in device-independent pixels) between a...', aliases=('txtpad', 'tp'), soft_minimum=0, clamped=True, default=_raw(10)),
    _p('txt-shad', NUMBER, _DOCS + 'text/text-shadow', 'applies a shadow to rendered text', aliases=('txtshad', 'tsh'), soft_minimum=0, soft_maximum=10, clamped=True, default=_raw(0)),
    _p('txt-size', INTEGER, _DOCS + 'text/text-font-size', 'sets the font size of rendered text', aliases=('tsz', 'txtsize'), soft_minimum=0, clamped=True, default=_raw(12)),
    _p('txt-width', INTEGER, _DOCS + 'text/text-width', 'sets the width of rendered text', aliases=('txtwidth',), soft_minimum=0, clamped=True),
    _p('txt-x', INTEGER, _DOCS + 'text/text-x-position', 'sets the horizontal (x) position of the text in pixels relative to...', aliases=('txtx',), default=_raw(0)),
    _p('txt-y', INTEGER, _DOCS + 'text/text-y-position', 'sets the vertical (y) position of the text in pixels relative to...', aliases=('txty',), default=_raw(0)),
    # -- trim
    _p('trim', ENUM, _DOCS + 'trim/trim-image', 'trims the source image', choices=('auto', 'color', 'alpha', 'colorunlessalpha')),
    _p('trim-alpha', NUMBER, _DOCS + 'trim/trim-alpha', 'specifies a trim alpha on a trim operation', soft_minimum=0, soft_maximum=255),
    _p('trim-color', COLOR, _DOCS + 'trim/trim-color', 'specifies a trim color on a trim operation', aliases=('trimcolor',)),
    _p('trim-md', NUMBER, _DOCS + 'trim/trim-mean-difference', 'specifies the mean difference on a trim operation', aliases=('trimmd',), soft_minimum=0, default=_raw(11)),
    _p('trim-pad', INTEGER, _DOCS + 'trim/trim-padding', 'pads the area of the source image before trimming', aliases=('trimpad',), soft_minimum=-200, soft_maximum=200, default=_raw(0)),
    _p('trim-sd', NUMBER, _DOCS + 'trim/trim-standard-deviation', 'specifies the standard deviation on a trim operation', aliases=('trimsd',), soft_minimum=0, default=_raw(10)),
    _p('trim-tol', NUMBER, _DOCS + 'trim/trim-tolerance', 'specifies the tolerance on a trim operation', aliases=('trimtol',), soft_minimum=0, clamped=True, default=_raw(0)),
    # -- typesetting
    _p('txt-lead', INTEGER, _DOCS + 'typesetting-endpoint/text-leading', 'sets the leading (line spacing) for rendered text. Only works on...', aliases=('txtlead',), soft_minimum=0, default=_raw(0)),
    _p('txt-track', INTEGER, _DOCS + 'typesetting-endpoint/text-tracking', 'sets the tracking (letter spacing) for rendered text. Only works...', aliases=('txttrack', 'tt'), soft_minimum=-4, default=_raw(0)),
    # -- video rendering
    _p('video-clip-end', FRAMES, _DOCS + 'video-rendering/video-clip', 'specifies the end time for a video clip', soft_minimum=1),
    _p('video-clip-start', FRAMES, _DOCS + 'video-rendering/video-clip', 'specifies the start time for a video clip', soft_minimum=1),
    # -- video-rendering
    _p('video-bitrate', ENUM, _DOCS + 'video-rendering/video-bitrate', 'specifies the bitrate for a video to use', choices=('1m', '2m', '3m', '4m', '5m')),
    _p('video-codec', ENUM, 'https://docs.imgix.com/apis/rendering', 'specifies the video codec to use, av1, h264, or h265', choices=('av1', 'h264', 'h265')),
    _p('video-thumbnail', INTEGER_OR_ENUM, _DOCS + 'video-rendering/video-thumbnail', 'outputs a thumbnail from a video file', choices=('auto',), default=_raw('auto')),
    # -- watermark
    _p('mark', URL, _DOCS + 'watermark/watermark-image-url', 'specifies the location of the watermark image', aliases=('m',)),
    _p('mark-align', LIST, _DOCS + 'watermark/watermark-alignment-mode', 'changes the watermark alignment relative to the parent image', aliases=('ma', 'markalign'), choices=('top', 'middle', 'bottom', 'left', 'center', 'right')),
    _p('mark-alpha', INTEGER, _DOCS + 'watermark/watermark-alpha', 'changes the alpha of the watermark image', aliases=('markalpha', 'malph'), soft_minimum=1, soft_maximum=100, clamped=True, default=_raw(100)),
    _p('mark-base', URL, _DOCS + 'watermark/watermark-base-url', 'changes base URL of the watermark image', aliases=('mb', 'markbase')),
    _p('mark-fit', ENUM, _DOCS + 'watermark/watermark-fit-mode', 'specifies the fit mode for watermark images', aliases=('mf', 'markfit'), choices=('clip', 'crop', 'fill', 'max', 'scale'), default=_raw('clip')),
    _p('mark-h', DIMENSION, _DOCS + 'watermark/watermark-height', 'adjusts the height of the watermark image', aliases=('mh', 'markh'), minimum=2, maximum=8192),
    _p('mark-if-min-height', INTEGER, _DOCS + 'watermark/watermark-if-minimum-height', 'displays the watermark if rendered base image pixel height is...', minimum=0),
    _p('mark-if-min-width', INTEGER, _DOCS + 'watermark/watermark-if-minimum-width', 'displays the watermark if rendered base image pixel width is equal...', minimum=0),
    _p('mark-pad', INTEGER, _DOCS + 'watermark/watermark-padding', 'applies padding to the watermark image', aliases=('mp', 'markpad'), soft_minimum=0, clamped=True, default=_raw(5)),
    _p('mark-rot', NUMBER, _DOCS + 'watermark/watermark-rotation', 'rotates a watermark or tiled watermarks by a specified number of...', soft_minimum=0, soft_maximum=359, default=_raw(0)),
    _p('mark-scale', INTEGER, _DOCS + 'watermark/watermark-scale', 'adjusts the scale of the watermark image', aliases=('ms', 'markscale'), soft_minimum=0, soft_maximum=100, clamped=True),
    _p('mark-tile', ENUM, _DOCS + 'watermark/watermark-tile', 'adds tiled watermark', aliases=('mtile', 'marktile'), choices=('grid',)),
    _p('mark-w', DIMENSION, _DOCS + 'watermark/watermark-width', 'adjusts the width of the watermark image', aliases=('mw', 'markw'), minimum=2, maximum=8192),
    _p('mark-x', INTEGER, _DOCS + 'watermark/watermark-x-position', 'adjusts the x-offset of the watermark image relative to its parent', aliases=('mx', 'markx'), soft_minimum=0, clamped=True),
    _p('mark-y', INTEGER, _DOCS + 'watermark/watermark-y-position', 'adjusts the y-offset of the watermark image relative to its parent', aliases=('my', 'marky'), minimum=0),
)

PARAMS: Mapping[str, Param] = MappingProxyType({p.name: p for p in _TABLE})

_LIST_NAMES = frozenset(p.name for p in _TABLE if p.kind == LIST)

_BY_NAME: dict[str, str] = {}
for _param in _TABLE:
    for _spelling in (_param.name, *_param.aliases):
        _BY_NAME[_spelling] = _param.name
del _param, _spelling


# CSS Color Module Level 4 named colours (https://www.w3.org/TR/css-color-4/#named-colors),
# the keyword list of imgix's catalogue minus its two brand colours.
_CSS_COLORS: Mapping[str, str] = MappingProxyType(dict(entry.split(":") for entry in " ".join((
    "aliceblue:f0f8ff antiquewhite:faebd7 aqua:00ffff aquamarine:7fffd4 azure:f0ffff",
    "beige:f5f5dc bisque:ffe4c4 black:000000 blanchedalmond:ffebcd blue:0000ff blueviolet:8a2be2",
    "brown:a52a2a burlywood:deb887 cadetblue:5f9ea0 chartreuse:7fff00 chocolate:d2691e",
    "coral:ff7f50 cornflowerblue:6495ed cornsilk:fff8dc crimson:dc143c cyan:00ffff",
    "darkblue:00008b darkcyan:008b8b darkgoldenrod:b8860b darkgray:a9a9a9 darkgreen:006400",
    "darkgrey:a9a9a9 darkkhaki:bdb76b darkmagenta:8b008b darkolivegreen:556b2f darkorange:ff8c00",
    "darkorchid:9932cc darkred:8b0000 darksalmon:e9967a darkseagreen:8fbc8f darkslateblue:483d8b",
    "darkslategray:2f4f4f darkslategrey:2f4f4f darkturquoise:00ced1 darkviolet:9400d3",
    "deeppink:ff1493 deepskyblue:00bfff dimgray:696969 dimgrey:696969 dodgerblue:1e90ff",
    "firebrick:b22222 floralwhite:fffaf0 forestgreen:228b22 fuchsia:ff00ff gainsboro:dcdcdc",
    "ghostwhite:f8f8ff gold:ffd700 goldenrod:daa520 gray:808080 green:008000 greenyellow:adff2f",
    "grey:808080 honeydew:f0fff0 hotpink:ff69b4 indianred:cd5c5c indigo:4b0082 ivory:fffff0",
    "khaki:f0e68c lavender:e6e6fa lavenderblush:fff0f5 lawngreen:7cfc00 lemonchiffon:fffacd",
    "lightblue:add8e6 lightcoral:f08080 lightcyan:e0ffff lightgoldenrodyellow:fafad2",
    "lightgray:d3d3d3 lightgreen:90ee90 lightgrey:d3d3d3 lightpink:ffb6c1 lightsalmon:ffa07a",
    "lightseagreen:20b2aa lightskyblue:87cefa lightslategray:778899 lightslategrey:778899",
    "lightsteelblue:b0c4de lightyellow:ffffe0 lime:00ff00 limegreen:32cd32 linen:faf0e6",
    "magenta:ff00ff maroon:800000 mediumaquamarine:66cdaa mediumblue:0000cd mediumorchid:ba55d3",
    "mediumpurple:9370db mediumseagreen:3cb371 mediumslateblue:7b68ee mediumspringgreen:00fa9a",
    "mediumturquoise:48d1cc mediumvioletred:c71585 midnightblue:191970 mintcream:f5fffa",
    "mistyrose:ffe4e1 moccasin:ffe4b5 navajowhite:ffdead navy:000080 oldlace:fdf5e6 olive:808000",
    "olivedrab:6b8e23 orange:ffa500 orangered:ff4500 orchid:da70d6 palegoldenrod:eee8aa",
    "palegreen:98fb98 paleturquoise:afeeee palevioletred:db7093 papayawhip:ffefd5",
    "peachpuff:ffdab9 peru:cd853f pink:ffc0cb plum:dda0dd powderblue:b0e0e6 purple:800080",
    "rebeccapurple:663399 red:ff0000 rosybrown:bc8f8f royalblue:4169e1 saddlebrown:8b4513",
    "salmon:fa8072 sandybrown:f4a460 seagreen:2e8b57 seashell:fff5ee sienna:a0522d silver:c0c0c0",
    "skyblue:87ceeb slateblue:6a5acd slategray:708090 slategrey:708090 snow:fffafa",
    "springgreen:00ff7f steelblue:4682b4 tan:d2b48c teal:008080 thistle:d8bfd8 tomato:ff6347",
    "turquoise:40e0d0 violet:ee82ee wheat:f5deb3 white:ffffff whitesmoke:f5f5f5 yellow:ffff00",
    "yellowgreen:9acd32",
)).split()))
# imgix's brand keywords: valid, but their values are not published.
_BRAND_COLORS = frozenset({"imgixorange", "imgixblue"})

_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_UNSIGNED_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_HEX_RE = re.compile(r"[0-9a-f]{3}|[0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8}")
_BASE64URL_RE = re.compile(r"[A-Za-z0-9_-]*={0,2}")


# ---------------------------------------------------------------------------- look-ups

def canonical_name(raw_name: str) -> str | None:
    """The canonical name for a spelling (any case, alias or not), or None if unknown.

    ``<name>64`` forms are not resolved here (``parse_query`` handles them).
    """
    name = _BY_NAME.get(raw_name)
    if name is None and raw_name.isascii():
        name = _BY_NAME.get(raw_name.lower())
    return name


def _param(name: str) -> Param:
    canonical = canonical_name(name)
    if canonical is None:
        raise KeyError(f"unknown image parameter {name!r}")
    return PARAMS[canonical]


def default(name: str) -> object | None:
    """The value imgix uses when the parameter is absent (canonical typed form), or None."""
    return _param(name).default


def suggested_range(name: str) -> tuple[float, float]:
    """The catalogue's suggested range of a parameter (its ``soft_minimum``, ``soft_maximum``);
    KeyError for a parameter without one."""
    param = _param(name)
    if param.soft_minimum is None or param.soft_maximum is None:
        raise KeyError(f"image parameter {name!r} has no suggested range")
    return param.soft_minimum, param.soft_maximum


# ---------------------------------------------------------------------------- numbers

def _is_number(text: str) -> bool:
    return len(text) <= _MAX_NUMBER_TEXT and _NUMBER_RE.fullmatch(text) is not None


def _integral(text: str) -> int | None:
    """The integer a plain decimal spells (``'400.00'`` -> 400), None if it has a fraction."""
    whole, _, fraction = text.partition(".")
    if fraction.strip("0"):
        return None
    if whole in ("", "+", "-"):
        return 0
    return int(whole)


def _clamp(param: Param, value):  # type: ignore[no-untyped-def]
    if param.minimum is not None and value < param.minimum:
        value = type(value)(param.minimum)
    if param.maximum is not None and value > param.maximum:
        value = type(value)(param.maximum)
    if param.clamped:
        if param.soft_minimum is not None and value < param.soft_minimum:
            value = type(value)(param.soft_minimum)
        elif param.soft_maximum is not None and value > param.soft_maximum:
            value = type(value)(param.soft_maximum)
    return value


def _fold(param: Param, value: float) -> float:
    """A number in the form that renders it: turned into its period, rounded (pixring's
    rules, see ``Param``); -0.0 is 0.0."""
    if param.period is not None:
        value %= param.period
        if value == param.period:  # a tiny negative number rounds up to the period itself
            value = 0.0
    if param.decimals is not None:
        value = round(value, param.decimals)
    return value + 0.0


# The *_expected helpers build error text; they run only when a value is refused.

def _describe_range(param: Param) -> str:
    low = "" if param.minimum is None else _format_float(float(param.minimum))
    high = "" if param.maximum is None else _format_float(float(param.maximum))
    if low and high:
        return f" (clamped to {low}-{high})"
    if low:
        return f" (at least {low})"
    return ""


def _integer_expected(param: Param) -> str:
    if param.choices is not None:
        accepted = sorted(param.choices) + sorted(param.value_aliases)  # type: ignore[arg-type]
        return "one of " + ", ".join(str(v) for v in accepted)
    return "an integer" + _describe_range(param)


def _number_expected(param: Param) -> str:
    return "a number" + _describe_range(param)


def _dimension_expected(param: Param) -> str:
    return (f"an integer number of pixels{_describe_range(param)} or a fraction 0.0-1.0 "
            f"of the source (written with a decimal point)")


def _checked_int(param: Param, value: int, raw: object) -> int:
    value = param.value_aliases.get(value, value)  # type: ignore[assignment]
    if param.choices is not None:
        if value not in param.choices:
            raise ParamError(param.name, raw, _integer_expected(param))
        return value
    if abs(value) >= _MAX_MAGNITUDE and param.maximum is None:
        raise ParamError(param.name, raw, _integer_expected(param))
    if param.period is not None:
        value %= int(param.period)
    return _clamp(param, value)


def _parse_integer(param: Param, text: str) -> int:
    value = _integral(text) if _is_number(text) else None
    if value is None:
        raise ParamError(param.name, text, _integer_expected(param))
    return _checked_int(param, value, text)


def _checked_float(param: Param, value: float, raw: object) -> float:
    if not abs(value) < _MAX_MAGNITUDE:  # also rejects nan
        raise ParamError(param.name, raw, _number_expected(param))
    return _fold(param, _clamp(param, value + 0.0))  # + 0.0 turns -0.0 into 0.0


def _parse_number(param: Param, text: str) -> float:
    if not _is_number(text):
        raise ParamError(param.name, text, _number_expected(param))
    return _checked_float(param, float(text), text)


def _checked_dimension(param: Param, value: int | float, raw: object) -> int | float:
    if isinstance(value, float):
        if 0.0 <= value <= 1.0:
            return value + 0.0
        if not value.is_integer():
            raise ParamError(param.name, raw, _dimension_expected(param))
        value = int(value)
    return _clamp(param, value)


def _parse_dimension(param: Param, text: str) -> int | float:
    # Integers are pixels; a decimal between 0 and 1 is a fraction of the source (imgix's
    # "secondary mode"); a decimal above 1 with a zero fraction is pixels again (400.0).
    if not _is_number(text):
        raise ParamError(param.name, text, _dimension_expected(param))
    if "." in text:
        as_float = float(text)
        if 0.0 <= as_float <= 1.0:
            return as_float + 0.0
        value = _integral(text)
        if value is None:
            raise ParamError(param.name, text, _dimension_expected(param))
        return _clamp(param, value)
    return _clamp(param, int(text))


def _format_float(value: float) -> str:
    if value == 0:
        return "0"
    if value.is_integer():
        return str(int(value))
    text = repr(value)
    if "e" in text:
        # repr switches to exponent notation below 1e-4; write the same digits positionally.
        digits, _, exponent = text.partition("e")
        sign = "-" if digits.startswith("-") else ""
        mantissa = digits.lstrip("-").replace(".", "")
        text = sign + "0." + "0" * (-int(exponent) - 1) + mantissa
    return text.rstrip("0").rstrip(".") if "." in text else text


def _format_dimension(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    # A fraction keeps its decimal point even when whole: "1" would be 1 pixel.
    return "0.0" if value == 0 else "1.0" if value == 1 else _format_float(value)


# ---------------------------------------------------------------------------- other kinds

_RATIO_EXPECTED = "a ratio W:H of two positive numbers, e.g. 16:9 or 1.5:1"


def _ratio_of(param: Param, width: Fraction, height: Fraction, raw: object) -> tuple[float, float]:
    if width <= 0 or height <= 0:
        raise ParamError(param.name, raw, _RATIO_EXPECTED)
    ratio = width / height
    if ratio.numerator >= _MAX_RATIO_TERM or ratio.denominator >= _MAX_RATIO_TERM:
        raise ParamError(param.name, raw, _RATIO_EXPECTED + " (too precise)")
    return (float(ratio.numerator), float(ratio.denominator))


def _parse_ratio(param: Param, text: str) -> tuple[float, float]:
    width, colon, height = text.partition(":")
    if (not colon or len(width) > _MAX_NUMBER_TEXT or len(height) > _MAX_NUMBER_TEXT
            or _UNSIGNED_RE.fullmatch(width) is None or _UNSIGNED_RE.fullmatch(height) is None):
        raise ParamError(param.name, text, _RATIO_EXPECTED)
    return _ratio_of(param, Fraction(width), Fraction(height), text)


def _format_ratio(value: tuple[float, float]) -> str:
    return f"{int(value[0])}:{int(value[1])}"


def _folded(text: str) -> str | None:
    # Only ASCII is case-folded: str.lower() maps e.g. the Kelvin sign to "k".
    return text.lower() if text.isascii() else None


def _enum_expected(param: Param) -> str:
    accepted = sorted(param.choices or ()) + sorted(param.value_aliases)  # type: ignore[arg-type]
    return "one of " + ", ".join(accepted)


def _parse_enum(param: Param, text: str) -> str:
    value = _folded(text)
    value = param.value_aliases.get(value, value)  # type: ignore[assignment]
    if value not in param.choices:  # type: ignore[operator]
        raise ParamError(param.name, text, _enum_expected(param))
    return value  # type: ignore[return-value]


def _parse_list(param: Param, text: str) -> tuple[str, ...]:
    items: dict[str, None] = {}  # insertion-ordered set
    for item in text.split(","):
        item = item.strip()
        if item:
            value = _folded(item)
            if value not in param.choices:  # type: ignore[operator]
                raise ParamError(param.name, text, "a comma-separated list of " + _enum_expected(param))
            items[value] = None  # type: ignore[index]
    return tuple(items) if param.ordered else tuple(sorted(items))


_RECT_EXPECTED = ("four comma-separated values x,y,w,h: integers in pixels or fractions 0.0-1.0 of "
                  "the source (written with a decimal point); x may be left, center or right, "
                  "y top, middle or bottom")
# x and y keywords; left and top are the edge itself, pixel 0.
_RECT_KEYWORDS = ({"left": 0, "center": "center", "right": "right"},
                  {"top": 0, "middle": "middle", "bottom": "bottom"})


def _parse_rect(param: Param, text: str) -> tuple[int | float | str, ...]:
    parts = text.split(",")
    if len(parts) != 4:
        raise ParamError(param.name, text, _RECT_EXPECTED)
    values: list[int | float | str] = []
    for index, part in enumerate(parts):
        part = part.strip()
        if index < 2:
            keyword = _RECT_KEYWORDS[index].get(_folded(part) or "")
            if keyword is not None:
                values.append(keyword)
                continue
        if len(part) > _MAX_NUMBER_TEXT or _NUMBER_RE.fullmatch(part) is None:
            raise ParamError(param.name, text, _RECT_EXPECTED)
        if "." in part and 0.0 <= float(part) <= 1.0:
            values.append(float(part) + 0.0)  # a fraction of the source
            continue
        value = _integral(part)
        if value is None:
            raise ParamError(param.name, text, _RECT_EXPECTED)
        values.append(value)
    return _checked_rect(param, values, text)


def _checked_rect(param: Param, values: list, raw: object) -> tuple[int | float | str, ...]:
    out: list[int | float | str] = []
    for index, value in enumerate(values):
        if isinstance(value, str):
            if index > 1 or value not in _RECT_KEYWORDS[index].values():
                raise ParamError(param.name, raw, _RECT_EXPECTED)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(param.name, raw, _RECT_EXPECTED)
        elif isinstance(value, float):
            if not 0.0 <= value <= 1.0:
                raise ParamError(param.name, raw, _RECT_EXPECTED)
            # x or y at fraction 0 is pixel 0; a zero-sized fraction is the 1-pixel minimum.
            value = 0 if index < 2 and value == 0 else (1 if value == 0 else value + 0.0)
        else:
            if abs(value) >= _MAX_MAGNITUDE:
                raise ParamError(param.name, raw, _RECT_EXPECTED)
            value = max(value, 0) if index < 2 else max(value, 1)
        out.append(value)
    return tuple(out)


def _format_rect(value: tuple[int | float | str, ...]) -> str:
    return ",".join(v if isinstance(v, str) else _format_dimension(v) for v in value)


_COLOR_EXPECTED = "a hex colour of 3, 4, 6 or 8 digits (RGB, ARGB, RRGGBB, AARRGGBB) or a colour keyword"


def _parse_color(param: Param, text: str) -> str:
    value = _folded(text)
    if value is None:
        raise ParamError(param.name, text, _COLOR_EXPECTED)
    named = _CSS_COLORS.get(value)
    if named is not None:
        return named
    if value in _BRAND_COLORS:
        return value
    if _HEX_RE.fullmatch(value) is None:
        raise ParamError(param.name, text, _COLOR_EXPECTED)
    if len(value) in (3, 4):
        value = "".join(digit * 2 for digit in value)
    if len(value) == 6:
        return value
    alpha, rgb = value[:2], value[2:]
    return rgb if alpha == "ff" else rgb + alpha


def _format_color(value: str) -> str:
    # Parsed form is rrggbb[aa]; imgix's URL form puts alpha first.
    return value[6:] + value[:6] if len(value) == 8 else value


def rgba(color: str) -> tuple[int, int, int, int]:
    """(r, g, b, a) 0-255 for a colour as ``parse_query`` returns it (``'rrggbb[aa]'``)."""
    if color in _BRAND_COLORS or len(color) not in (6, 8):
        raise ValueError(f"colour {color!r} has no known RGB value")
    channels = [int(color[i:i + 2], 16) for i in range(0, len(color), 2)]
    return (channels[0], channels[1], channels[2], channels[3] if len(channels) == 4 else 255)


_BOOLEANS = MappingProxyType({"1": True, "true": True, "0": False, "false": False})


def _parse_boolean(param: Param, text: str) -> bool:
    value = _BOOLEANS.get(_folded(text))  # type: ignore[arg-type]
    if value is None:
        raise ParamError(param.name, text, "1, true, 0 or false")
    return value


# ---------------------------------------------------------------------------- text, URLs, compounds

# Longest free text, URL or font name accepted (characters, decoded). The balancer refuses
# longer escaped values before decoding (balancer/normalize.py); this bound is for callers
# that hand decoded text straight in (the renderer).
MAX_TEXT = 1024
# Kept raw in the canonical URL besides letters and digits: RFC 3986's unreserved marks and
# the sub-delimiters that mean nothing inside a query value. ``&``, ``=``, ``+``, ``#``,
# ``%``, ``?``, spaces, controls and non-ASCII are escaped (UTF-8).
_TEXT_SAFE = "-._~!$'()*,;:@/"
_CONTROLS_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_URL_CONTROLS_RE = re.compile(r"[\x00-\x1f\x7f]")


def _text_expected(param: Param) -> str:
    return f"text of at most {MAX_TEXT} characters, valid UTF-8, without control characters"


def _checked_text(param: Param, text: str, controls: re.Pattern[str]) -> str:
    if len(text) > MAX_TEXT or controls.search(text) is not None:
        raise ParamError(param.name, text, _text_expected(param))
    try:
        text.encode("utf-8")  # lone surrogates: bytes that were not UTF-8
    except UnicodeEncodeError:
        raise ParamError(param.name, text, _text_expected(param)) from None
    return text


def _parse_string(param: Param, text: str) -> str:
    """Free text (``txt``, ``dl``, prompts): as sent; tabs and line breaks allowed."""
    return _checked_text(param, text, _CONTROLS_RE)


def _parse_url(param: Param, text: str) -> str:
    """A URL or path (``mark``, ``blend``, ``mask``) as sent, percent-decoded once, neither
    resolved nor made absolute: ``/logo.png`` and ``logo.png`` stay two values, since what a
    relative reference means is the renderer's business (pixring's reference renderer reads
    both from the image's own origin and refuses absolute URLs)."""
    return _checked_text(param, text, _URL_CONTROLS_RE)


def _format_text(value: str) -> str:
    return quote(value, safe=_TEXT_SAFE)


def _parse_timestamp(param: Param, text: str) -> int:
    if len(text) > _MAX_NUMBER_TEXT or not text.isdigit() or not text.isascii() or int(text) >= _MAX_MAGNITUDE:
        raise ParamError(param.name, text, "a Unix time in whole seconds")
    return int(text)


def _items_expected(param: Param) -> str:
    kinds = ", ".join(item.kind for item in param.items)
    return f"{len(param.items)} comma-separated values ({kinds})"


def _parse_tuple(param: Param, text: str) -> tuple[object, ...]:
    parts = text.split(",")
    if len(parts) != len(param.items):
        raise ParamError(param.name, text, _items_expected(param))
    values = []
    for item, part in zip(param.items, parts):
        try:
            values.append(_PARSERS[item.kind](item, part.strip()))
        except ParamError:
            raise ParamError(param.name, text, _items_expected(param)) from None
    return tuple(values)


def _format_tuple_of(param: Param, value: tuple[object, ...]) -> str:
    return ",".join(_FORMATTERS[item.kind](v) for item, v in zip(param.items, value))


_RADIUS_EXPECTED = "a radius in pixels, or four (top-left, top-right, bottom-right, bottom-left)"


def _parse_radius(param: Param, text: str) -> int | tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) not in (1, 4):
        raise ParamError(param.name, text, _RADIUS_EXPECTED)
    values = []
    for part in parts:
        part = part.strip()
        value = _integral(part) if _is_number(part) else None
        if value is None or value >= _MAX_MAGNITUDE:
            raise ParamError(param.name, text, _RADIUS_EXPECTED)
        values.append(max(value, 0))
    if len(set(values)) == 1:
        return values[0]  # four equal radii draw what one does
    return tuple(values)  # type: ignore[return-value]


def _format_radius(value: int | tuple[int, ...]) -> str:
    return str(value) if isinstance(value, int) else ",".join(str(v) for v in value)


_FRAMES_EXPECTED = "a frame number from 1, or an interval first-last with either end left out (2-5, 3-, -4)"


def _frame_number(param: Param, text: str, raw: str) -> int:
    value = _integral(text) if _is_number(text) and "-" not in text else None
    if value is None or value >= _MAX_MAGNITUDE:
        raise ParamError(param.name, raw, _FRAMES_EXPECTED)
    return max(value, 1)


def _parse_frames(param: Param, text: str) -> int | tuple[int | None, int | None]:
    first, dash, last = text.partition("-")
    if not dash:
        return _frame_number(param, text, text)
    low = _frame_number(param, first, text) if first else None
    high = _frame_number(param, last, text) if last else None
    if low is None and high is None:
        raise ParamError(param.name, text, _FRAMES_EXPECTED)
    if low is not None and high is not None:
        if low > high:
            raise ParamError(param.name, text, _FRAMES_EXPECTED + "; first after last")
        if low == high:
            return low  # one frame, however it is written
    return (low, high)


def _format_frames(value: int | tuple[int | None, int | None]) -> str:
    if isinstance(value, int):
        return str(value)
    low, high = value
    return ("" if low is None else str(low)) + "-" + ("" if high is None else str(high))


def _is_color_value(value: object) -> bool:
    return isinstance(value, str) and (value in _BRAND_COLORS or (
        len(value) in (6, 8) and _HEX_RE.fullmatch(value) is not None))


def _parse_color_or_url(param: Param, text: str) -> str:
    try:
        return _parse_color(param, text)
    except ParamError:
        return _parse_url(param, text)


def _format_color_or_url(value: str) -> str:
    # A URL that reads as a colour was parsed as one, so a colour-shaped value is a colour.
    return _format_color(value) if _is_color_value(value) else _format_text(value)


def _parse_enum_or_url(param: Param, text: str) -> str:
    folded = _folded(text)
    if folded in param.choices:  # type: ignore[operator]
        return folded  # type: ignore[return-value]
    return _parse_url(param, text)


def _parse_integer_or_enum(param: Param, text: str) -> int | str:
    folded = _folded(text)
    if folded in param.choices:  # type: ignore[operator]
        return folded  # type: ignore[return-value]
    value = _integral(text) if _is_number(text) else None
    if value is None or abs(value) >= _MAX_MAGNITUDE:
        raise ParamError(param.name, text, "an integer or one of " + ", ".join(sorted(param.choices or ())))
    return value


_PARSERS = MappingProxyType({
    INTEGER: _parse_integer,
    NUMBER: _parse_number,
    UNIT_SCALAR: _parse_number,
    DIMENSION: _parse_dimension,
    RATIO: _parse_ratio,
    ENUM: _parse_enum,
    LIST: _parse_list,
    RECT: _parse_rect,
    COLOR: _parse_color,
    BOOLEAN: _parse_boolean,
    STRING: _parse_string,
    FONT: _parse_string,
    URL: _parse_url,
    TIMESTAMP: _parse_timestamp,
    TUPLE: _parse_tuple,
    RADIUS: _parse_radius,
    FRAMES: _parse_frames,
    COLOR_OR_URL: _parse_color_or_url,
    ENUM_OR_URL: _parse_enum_or_url,
    INTEGER_OR_ENUM: _parse_integer_or_enum,
})


# ---------------------------------------------------------------------------- public API

def parse_value(name: str, text: str) -> object:
    """The canonical typed value of one parameter's text (``name`` may be an alias)."""
    param = _param(name)
    return _PARSERS[param.kind](param, text)


def _decode_base64(param: Param, text: str) -> str:
    expected = "URL-safe base64 (RFC 4648 section 5) of a UTF-8 value, see " + BASE64_DOC
    if _BASE64URL_RE.fullmatch(text) is None:
        raise ParamError(param.name, text, expected)
    unpadded = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ParamError(param.name, text, expected) from None


def _has_brand_color(value: object) -> bool:
    if isinstance(value, tuple):
        return any(_has_brand_color(item) for item in value)
    return isinstance(value, str) and value in _BRAND_COLORS


def _is_renderable(param: Param, value: object) -> bool:
    if param.kind in (COLOR, COLOR_OR_URL, TUPLE):
        return not _has_brand_color(value)
    if param.renderable is None:
        return True
    if param.kind == LIST:
        return all(item in param.renderable for item in value)  # type: ignore[attr-defined]
    return value in param.renderable


def parse_query(pairs: Iterable[tuple[str, str]], *, renderable_only: bool = False) -> dict[str, object]:
    """Canonical name -> typed value for the image parameters among percent-decoded pairs.

    Unknown names are dropped; aliases and ``<name>64`` forms resolved; list parameters
    merged, other repeats last-wins; empty values ignored; defaults kept. Raises
    ``ParamError`` for a value a known parameter cannot take (and, with
    ``renderable_only``, for valid imgix values pixring's reference renderer cannot render).

    Cost: one dict look-up per pair, then one parse per *distinct* parameter. A repeated
    parameter's earlier values are never read (last wins, so they cannot matter), and a
    list parameter's occurrences are parsed as one comma-joined list: a target made of
    thousands of ``w=1&`` costs what its bytes cost to split, not thousands of parses.
    """
    # name -> (text, is base64); for list parameters, every non-empty text.
    chosen: dict[str, tuple[str, bool]] = {}
    lists: dict[str, list[str]] = {}
    by_name = _BY_NAME
    for raw_name, text in pairs:
        if not text:
            continue
        name = by_name.get(raw_name) or canonical_name(raw_name)
        encoded = False
        if name is None:
            if not raw_name.endswith("64"):
                continue
            name = canonical_name(raw_name[:-2])
            if name is None or not PARAMS[name].base64:
                continue  # imgix does not know e.g. auto64 either
            if not text.rstrip("="):
                continue  # decodes to nothing: absent, like an empty value
            encoded = True
        if name in _LIST_NAMES:
            lists.setdefault(name, []).append(_decode_base64(PARAMS[name], text) if encoded else text)
        else:
            chosen[name] = (text, encoded)
    result: dict[str, object] = {}
    for name, (text, encoded) in chosen.items():
        param = PARAMS[name]
        if encoded:
            text = _decode_base64(param, text)
            if not text:
                continue
        result[name] = _PARSERS[param.kind](param, text)
    for name, texts in lists.items():
        param = PARAMS[name]
        value = _parse_list(param, ",".join(texts))
        if value:
            result[name] = value
    if renderable_only:
        for name, value in result.items():
            param = PARAMS[name]
            if not _is_renderable(param, value):
                accepted = ", ".join(sorted(param.renderable or ())) or "a hex colour or CSS keyword"
                raise ParamError(name, format_value(name, value),
                                 f"{accepted} (valid imgix, but not rendered by pixring)")
    return result


def without_defaults(params: Mapping[str, object]) -> dict[str, object]:
    """``params`` minus the entries whose value is what imgix uses when they are absent, and
    minus those that are not part of a key (``expires``): what the normalizer keys on.

    ``q`` is the one context-dependent default: with ``auto=compress`` imgix's default
    quality is 45, so an explicit ``q=75`` then changes the render and is kept.
    """
    compressing = "compress" in params.get("auto", ())  # type: ignore[operator]
    kept = {}
    for name, value in params.items():
        param = PARAMS[name]
        if not param.keyed:
            continue
        fallback = param.default
        if fallback is None or value != fallback or (name == "q" and compressing):
            kept[name] = value
    return kept


def _coerce(param: Param, value: object) -> object:
    """``value`` (text or a typed value) in canonical typed form; ParamError if invalid."""
    if isinstance(value, str):
        if param.kind in (COLOR, COLOR_OR_URL) and len(value) in (6, 8) and _HEX_RE.fullmatch(value):
            return value  # already parsed form (rrggbb[aa])
        return _PARSERS[param.kind](param, value)
    kind = param.kind
    if kind == BOOLEAN and isinstance(value, bool):
        return value
    if isinstance(value, bool):
        raise ParamError(param.name, value, "not a boolean")
    if kind == INTEGER and isinstance(value, (int, float)):
        if isinstance(value, float) and not value.is_integer():
            raise ParamError(param.name, value, _integer_expected(param))
        return _checked_int(param, int(value), value)
    if kind in (NUMBER, UNIT_SCALAR) and isinstance(value, (int, float)):
        return _checked_float(param, float(value), value)
    if kind == DIMENSION and isinstance(value, (int, float)):
        return _checked_dimension(param, value, value)
    if kind == LIST and isinstance(value, (tuple, list, set, frozenset)):
        return _parse_list(param, ",".join(value))  # type: ignore[arg-type]
    if kind == RECT and isinstance(value, (tuple, list)) and len(value) == 4:
        return _checked_rect(param, list(value), value)
    if kind in (TUPLE, RADIUS, FRAMES, TIMESTAMP, COLOR_OR_URL, ENUM_OR_URL, INTEGER_OR_ENUM):
        # Typed values of the compound kinds: written out and read back, which checks them.
        try:
            return _PARSERS[kind](param, _format(param, value))
        except (TypeError, ValueError, AttributeError):
            raise ParamError(param.name, value, f"a {kind} value") from None
    if kind == RATIO and isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            width, height = Fraction(value[0]), Fraction(value[1])
        except (TypeError, ValueError, OverflowError):
            raise ParamError(param.name, value, _RATIO_EXPECTED) from None
        return _ratio_of(param, width, height, value)
    raise ParamError(param.name, value, f"a {kind} value")


_FORMATTERS = MappingProxyType({
    INTEGER: str,
    NUMBER: _format_float,
    UNIT_SCALAR: _format_float,
    DIMENSION: _format_dimension,
    RATIO: _format_ratio,
    ENUM: str,
    LIST: ",".join,
    RECT: _format_rect,
    COLOR: _format_color,
    BOOLEAN: lambda value: "1" if value else "0",
    STRING: _format_text,
    FONT: _format_text,
    URL: _format_text,
    TIMESTAMP: str,
    RADIUS: _format_radius,
    FRAMES: _format_frames,
    COLOR_OR_URL: _format_color_or_url,
    ENUM_OR_URL: _format_text,
    INTEGER_OR_ENUM: str,
})


def _format(param: Param, value: object) -> str:
    """The canonical URL text of a typed value (TUPLE needs its item types)."""
    if param.kind == TUPLE:
        return _format_tuple_of(param, value)  # type: ignore[arg-type]
    return _FORMATTERS[param.kind](value)


def canonical_query(params: Mapping[str, object]) -> str:
    """``name=value&...`` sorted by name, for values exactly as ``parse_query`` returned them.

    The normalizer's fast path: no re-validation (use ``format_value`` for anything else).
    Numbers, keywords and colours never need percent-encoding; text and URLs are escaped
    (``_TEXT_SAFE``), so the result is a valid query that parses back to the same values.
    """
    parts = []
    for name in sorted(params):
        parts.append(name + "=" + _format(PARAMS[name], params[name]))
    return "&".join(parts)


def format_value(name: str, value: object) -> str:
    """The canonical URL text of a value: ``w=400.0`` -> ``'400'``, ``fm='jpeg'`` -> ``'jpg'``.

    Accepts a typed value as ``parse_query`` returns it or raw text. Canonical text parses
    back to the same value: ``parse_value(name, format_value(name, v)) == v``, once
    percent-decoded for text and URLs (which it escapes, as a query value must be).
    """
    param = _param(name)
    return _format(param, _coerce(param, value))


def _with_parsed_default(param: Param) -> Param:
    if not isinstance(param.default, _Raw):
        return param
    text = param.default.text
    if isinstance(text, bool) or param.kind in (NUMBER, UNIT_SCALAR) and isinstance(text, (int, float)):
        return replace(param, default=float(text) if param.kind != BOOLEAN else text)
    if isinstance(text, (int, float)) and param.kind == DIMENSION:
        return replace(param, default=text)
    parsed = _parse_tuple(param, str(text)) if param.kind == TUPLE else _PARSERS[param.kind](param, str(text))
    return replace(param, default=parsed)


# The catalogue's defaults, in canonical typed form now that the parsers exist.
_TABLE = tuple(_with_parsed_default(p) for p in _TABLE)
PARAMS = MappingProxyType({p.name: p for p in _TABLE})
