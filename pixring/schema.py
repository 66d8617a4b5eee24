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
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Iterable, Mapping

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


def _p(name: str, kind: str, doc: str, description: str, **kw: object) -> Param:
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
       renderable=("jpg", "pjpg", "png", "webp", "avif", "gif"),
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
        if value < param.soft_minimum:  # type: ignore[operator]
            value = type(value)(param.soft_minimum)
        elif value > param.soft_maximum:  # type: ignore[operator]
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
    items = set()
    for item in text.split(","):
        item = item.strip()
        if item:
            value = _folded(item)
            if value not in param.choices:  # type: ignore[operator]
                raise ParamError(param.name, text, "a comma-separated list of " + _enum_expected(param))
            items.add(value)
    return tuple(sorted(items))


_RECT_EXPECTED = ("four comma-separated integers x,y,w,h in pixels (x may be 'left', "
                  "y may be 'top'; pixring does not render fractional or centred rectangles)")


def _parse_rect(param: Param, text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4:
        raise ParamError(param.name, text, _RECT_EXPECTED)
    values = []
    for index, part in enumerate(parts):
        part = part.strip()
        folded = _folded(part)
        if (index, folded) in ((0, "left"), (1, "top")):
            values.append(0)
            continue
        if len(part) > _MAX_NUMBER_TEXT or _NUMBER_RE.fullmatch(part) is None:
            raise ParamError(param.name, text, _RECT_EXPECTED)
        value = _integral(part)
        if value is None:
            raise ParamError(param.name, text, _RECT_EXPECTED)
        values.append(value)
    return _checked_rect(param, values, text)


def _checked_rect(param: Param, values: list[int], raw: object) -> tuple[int, int, int, int]:
    if any(abs(v) >= _MAX_MAGNITUDE for v in values):
        raise ParamError(param.name, raw, _RECT_EXPECTED)
    x, y, w, h = values
    return (max(x, 0), max(y, 0), max(w, 1), max(h, 1))


def _format_rect(value: tuple[int, int, int, int]) -> str:
    return ",".join(str(v) for v in value)


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


def _is_renderable(param: Param, value: object) -> bool:
    if param.kind == COLOR:
        return value not in _BRAND_COLORS
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
    """``params`` minus the entries whose value is what imgix uses when they are absent.

    ``q`` is the one context-dependent default: with ``auto=compress`` imgix's default
    quality is 45, so an explicit ``q=75`` then changes the render and is kept.
    """
    compressing = "compress" in params.get("auto", ())  # type: ignore[operator]
    kept = {}
    for name, value in params.items():
        fallback = PARAMS[name].default
        if fallback is None or value != fallback or (name == "q" and compressing):
            kept[name] = value
    return kept


def _coerce(param: Param, value: object) -> object:
    """``value`` (text or a typed value) in canonical typed form; ParamError if invalid."""
    if isinstance(value, str):
        if param.kind == COLOR and len(value) in (6, 8) and _HEX_RE.fullmatch(value):
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
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return _checked_rect(param, list(value), value)
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
})


def canonical_query(params: Mapping[str, object]) -> str:
    """``name=value&...`` sorted by name, for values exactly as ``parse_query`` returned them.

    The normalizer's fast path: no re-validation (use ``format_value`` for anything else).
    Canonical text never needs percent-encoding (digits, a-z, ``.``, ``,``, ``:``, ``-``).
    """
    parts = []
    for name in sorted(params):
        parts.append(name + "=" + _FORMATTERS[PARAMS[name].kind](params[name]))
    return "&".join(parts)


def format_value(name: str, value: object) -> str:
    """The canonical URL text of a value: ``w=400.0`` -> ``'400'``, ``fm='jpeg'`` -> ``'jpg'``.

    Accepts a typed value as ``parse_query`` returns it or raw text. Canonical text parses
    back to the same value: ``parse_value(name, format_value(name, v)) == v``.
    """
    param = _param(name)
    return _FORMATTERS[param.kind](_coerce(param, value))
