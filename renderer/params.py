"""A render request as a typed, frozen value: the query string through the shared schema.

Rules: parameter names, aliases, types, ranges and defaults come from ``pixring.schema``
(the one schema the balancer's normalizer reads too), never from here. This module only
picks the parameters the reference renderer acts on, fills their defaults, refuses the
values the schema accepts but this renderer cannot produce (``fm=jp2``...) as a 400 that
names the parameter, and folds values that render identically into one form:

- ``q`` is resolved: the given value, else imgix's default, which is 45 under
  ``auto=compress`` and 75 otherwise (https://docs.imgix.com/apis/rendering/auto#compress).
- The schema already clamps what renders alike (``q`` 0-100, ``bri=150`` is ``bri=100``,
  ``blur`` 0-2000, ``sharp`` 0-100), folds ``rot`` into 0-360 and rounds ``dpr``, so the
  balancer's key names the picture this renderer makes; the values are used as given.
- ``orient=0`` ("ignore the Exif orientation") is ``orient=1``
  (https://docs.imgix.com/apis/rendering/rotation/orientation).
- A background or monochrome colour with zero alpha paints nothing and is dropped, so the
  schema's default background (transparent white) is the same render as no ``bg`` at all.
- ``fp-x``/``fp-y`` only count with ``crop=focalpoint``.
- Frame parameters that do nothing in their context are dropped, so they do not split the
  cache: ``min-w``/``min-h``/``max-w``/``max-h`` without fit=crop, ``border-radius*``
  without a border, ``fill`` outside fit=fill/fillmax and the modes not drawn, the default
  ``fill-color``/``mask-bg`` (imgix's "white or transparent by format"), ``corner-radius``
  without ``mask=corners``, ``mask`` other than ellipse/corners (an image URL is not drawn),
  ``trim-color``/``trim-tol`` without ``trim=color``. See ``renderer.geometry``,
  ``renderer.trim``, ``renderer.fill``, ``renderer.mask`` and ``renderer.decorate``.
- Output parameters fold too (``_output``): ``colors``/``prefix`` count only with
  ``palette``; ``cs=tinysrgb`` is ``srgb``, ``cs=origin`` and the undrawn ``adobergb1998`` are
  no ``cs``; ``dpi`` is clamped to 65535; ``frame=1-`` is no frame, ``frame=k-k`` is ``frame=k``.
- ``ignored`` names the given parameters this renderer does not draw (``renderer.drawn``),
  for the ``X-Render-Ignored`` header; ``dl`` is the download name for ``Content-Disposition``.

``RenderSpec.canonical()`` is the spec's identity: two requests with equal canonical forms
render the same bytes from the same source, so it keys the result cache and the ETag.
``dl`` and ``ignored`` stay out of it: they change headers, not bytes (the balancer's key
keeps them, which costs at most a duplicate entry there).
``auto=format`` is resolved per request (``for_accept``) before the key is taken, so the
key names the negotiated format.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Iterable

from pixring import schema

from renderer import drawn, negotiate, shapes
from renderer import fill as fill_modes
from renderer import mask as mask_shapes
from renderer import trim as trim_modes
from renderer.decorate import padding_of
from renderer.errors import BadParam
from renderer.geometry import RectValue, Request, anchor_for
from renderer.text import MAX_TXT_CHARS, TextSpec
from renderer.watermark import MarkSpec, origin_name

__all__ = ["COMPRESS_QUALITY", "MAX_DPI", "OUTPUT_FORMATS", "PALETTE_TYPES", "RenderSpec", "spec_from_query"]

# fm value -> (Pillow format, media type), for every fm the schema marks renderable
# (https://docs.imgix.com/apis/rendering/format/output-format).
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "jpg": ("JPEG", "image/jpeg"),
    "pjpg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
    "avif": ("AVIF", "image/avif"),
    "gif": ("GIF", "image/gif"),
    "png8": ("PNG", "image/png"),  # a palette PNG: at most 256 colours (renderer.output)
    "png32": ("PNG", "image/png"),  # always RGBA
    "json": ("JSON", "application/json"),  # the source's metadata (renderer.metadata), no image
}
# palette value -> media type of the answer that replaces the image (renderer.palette).
PALETTE_TYPES: dict[str, str] = {"json": "application/json", "css": "text/css"}
# The output parameters' identity values (imgix's catalogue defaults).
DEFAULT_COLORS = 6
DEFAULT_PREFIX = "image"
DEFAULT_CHROMASUB = 420
# JPEG's density fields are 16-bit (and PNG's pHYs in pixels per metre fits that too):
# a larger dpi writes the same file, so it is clamped here and keys alike.
MAX_DPI = 65535
MAX_LOOP = 65535
MAX_FPS = 100
# imgix: "auto=compress ... setting the quality standard (q) to 45".
COMPRESS_QUALITY = 45


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """What to render, independent of the source. ``fm=None`` keeps the source's format."""

    width: int | float | None = None
    height: int | float | None = None
    fit: str = schema.default("fit")  # type: ignore[assignment]
    dpr: float = schema.default("dpr")  # type: ignore[assignment]
    aspect: tuple[float, float] | None = None
    crop: tuple[str, ...] = ()
    fp_x: float = schema.default("fp-x")  # type: ignore[assignment]
    fp_y: float = schema.default("fp-y")  # type: ignore[assignment]
    rect: RectValue | None = None
    fm: str | None = None
    q: int = schema.default("q")  # type: ignore[assignment]
    lossless: bool = schema.default("lossless")  # type: ignore[assignment]
    bg: str | None = None
    orient: int | None = None  # None: the source's Exif orientation
    flip: str | None = None
    rot: float = 0.0
    bri: int = 0
    con: int = 0
    exp: int = 0
    gam: int = 0
    sat: int = 0
    sharp: float = 0.0
    blur: int = 0
    monochrome: str | None = None
    # renderer.stylize; folded by _stylize_fields so that identity values read as the defaults
    hue: int = schema.default("hue")  # type: ignore[assignment]
    vib: int = schema.default("vib")  # type: ignore[assignment]
    shad: float = schema.default("shad")  # type: ignore[assignment]
    high: int = schema.default("high")  # type: ignore[assignment]
    invert: bool = schema.default("invert")  # type: ignore[assignment]
    nr: int = schema.default("nr")  # type: ignore[assignment]
    nrs: int = schema.default("nrs")  # type: ignore[assignment]
    usm: int = schema.default("usm")  # type: ignore[assignment]
    usmrad: float = schema.default("usmrad")  # type: ignore[assignment]
    sepia: int = schema.default("sepia")  # type: ignore[assignment]
    duotone: tuple[str, str] | None = None
    duotone_alpha: int = schema.default("duotone-alpha")  # type: ignore[assignment]
    px: int = schema.default("px")  # type: ignore[assignment]
    htn: int = schema.default("htn")  # type: ignore[assignment]
    compress: bool = False
    auto_format: bool = False
    # Size bounds (fit=crop only) and the frame; every default is the identity.
    min_w: int | None = None
    min_h: int | None = None
    max_w: int | None = None
    max_h: int | None = None
    trim: str | None = None  # "color" or "auto"
    trim_color: str | None = None  # None: the top-left pixel's colour
    trim_tol: float = 0.0
    fill: str | None = None  # "solid" (with a fill_color) or "blur", for fit=fill/fillmax
    fill_color: str | None = None
    mask: str | None = None  # "ellipse" or "corners"
    corner_radius: shapes.Radii | None = None  # None: imgix's 20 % default
    mask_bg: str | None = None  # None: transparent, white without alpha
    border: tuple[int, str] | None = None
    border_radius: shapes.Radii = (0, 0, 0, 0)
    border_radius_inner: shapes.Radii = (0, 0, 0, 0)
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, right, bottom, left
    # Output (renderer.output, renderer.palette, renderer.animation); defaults are identities.
    palette: str | None = None
    colors: int = DEFAULT_COLORS  # only with palette
    prefix: str = DEFAULT_PREFIX  # only with palette=css
    dpi: int = 0  # 0: no density written
    cs: str | None = None  # None: the source's profile as today; "srgb" or "strip"
    chromasub: int = DEFAULT_CHROMASUB
    progressive: bool = True  # fm=jpg only; pjpg always is
    frame: int | tuple[int, int | None] | None = None  # 1-based; None: every frame
    reverse: bool = False
    loop: int = 0
    fps: int | None = None
    interval: int = 1
    # Response headers only: they do not change the bytes, so they stay out of canonical().
    dl: str | None = field(default=None, compare=False)
    ignored: tuple[str, ...] = field(default=(), compare=False)
    mark: MarkSpec | None = None  # renderer.watermark; None: no mark (every mark-* ignored)
    text: TextSpec | None = None  # renderer.text; None: no txt (every txt-* ignored)

    def request(self) -> Request:
        """The geometric part, for ``renderer.geometry.plan``."""
        return Request(
            width=self.width,
            height=self.height,
            fit=self.fit,
            dpr=self.dpr,
            aspect=self.aspect,
            anchor=anchor_for(self.crop, self.fp_x, self.fp_y),
            rect=self.rect,
            min_w=self.min_w,
            min_h=self.min_h,
            max_w=self.max_w,
            max_h=self.max_h,
            padding=self.pad,
        )

    def for_accept(self, accept: str | None, available: frozenset[str] | set[str]) -> RenderSpec:
        """The spec with ``auto=format`` resolved against an ``Accept`` header.

        The negotiated format replaces ``fm``; without one, ``fm`` (or the source's format,
        or auto=compress's choice) stays the fallback, as imgix documents.
        """
        if not self.auto_format:
            return self
        if self.fm == "json" or self.palette is not None:  # not an image: nothing to negotiate
            return replace(self, auto_format=False)
        best = negotiate.best_format(accept, available, lossless=self.lossless)
        return replace(self, fm=best or self.fm, auto_format=False)

    def canonical(self) -> str:
        # repr keeps int 400 and float 0.5 (pixels vs fraction) apart, and is stable
        # across processes, unlike hash().
        # ``dl`` and ``ignored`` (compare=False) name headers, not pixels: two requests
        # that differ only there share one render and one cache entry.
        return "&".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.compare)


def spec_from_query(pairs: Iterable[tuple[str, str]]) -> RenderSpec:
    """Percent-decoded query pairs -> RenderSpec; raises BadParam naming the parameter.

    ``renderable_only`` makes the schema refuse valid imgix values this renderer does not
    implement (``fm=jp2``, ``fit=facearea``, ``crop=faces``, ``auto=enhance``...), so they
    are a 400 rather than a silently different picture.
    """
    try:
        given = schema.parse_query(pairs, renderable_only=True)
    except schema.ParamError as exc:
        raise BadParam(str(exc), exc.name, exc.expected) from None
    fm = given.get("fm")
    if fm is not None and fm not in OUTPUT_FORMATS:  # the schema and this table disagree
        raise BadParam(f"fm={fm} is not produced by this renderer", "fm", ", ".join(sorted(OUTPUT_FORMATS)))
    auto = set(given.get("auto") or ())  # type: ignore[call-overload]
    compress = "compress" in auto
    crop = tuple(given.get("crop") or ())  # type: ignore[call-overload]
    focal = "focalpoint" in crop
    if "q" in given:
        quality = int(given["q"])  # type: ignore[call-overload]
    else:
        quality = COMPRESS_QUALITY if compress else int(schema.default("q"))  # type: ignore[call-overload]
    orient = given.get("orient")
    return RenderSpec(
        width=given.get("w"),  # type: ignore[arg-type]
        height=given.get("h"),  # type: ignore[arg-type]
        fit=str(_value(given, "fit")),
        dpr=float(_value(given, "dpr")),  # type: ignore[arg-type]
        aspect=given.get("ar"),  # type: ignore[arg-type]
        crop=crop,
        fp_x=float(_value(given, "fp-x")) if focal else float(schema.default("fp-x")),  # type: ignore[arg-type]
        fp_y=float(_value(given, "fp-y")) if focal else float(schema.default("fp-y")),  # type: ignore[arg-type]
        rect=given.get("rect"),  # type: ignore[arg-type]
        fm=fm,  # type: ignore[arg-type]
        q=quality,
        lossless=bool(_value(given, "lossless")),
        bg=_visible(given.get("bg")),  # type: ignore[arg-type]
        orient=None if orient is None else max(1, int(orient)),  # type: ignore[call-overload]
        flip=given.get("flip"),  # type: ignore[arg-type]
        rot=float(_value(given, "rot")),  # type: ignore[arg-type]
        bri=_adjustment(given, "bri"),
        con=_adjustment(given, "con"),
        exp=_adjustment(given, "exp"),
        gam=_adjustment(given, "gam"),
        sat=_adjustment(given, "sat"),
        sharp=float(_value(given, "sharp")),  # type: ignore[arg-type]
        blur=int(_value(given, "blur")),  # type: ignore[call-overload]
        monochrome=_visible(given.get("monochrome")),  # type: ignore[arg-type]
        compress=compress,
        auto_format="format" in auto,
        **_stylize_fields(given),
        **_frame(given, str(_value(given, "fit"))),  # type: ignore[arg-type]
        **_output(given),  # type: ignore[arg-type]
        # cs=adobergb1998 is drawn as cs=origin (no Adobe RGB profile ships here): named too.
        ignored=drawn.ignored([*given, *(("cs",) if given.get("cs") == "adobergb1998" else ())]),
        mark=_mark(given),
        text=_text(given),
    )


def _frame(given: dict[str, object], fit: str) -> dict[str, object]:
    """The size-bound and frame fields of the spec, each folded to its identity where it
    renders nothing (see the module's rules)."""
    out: dict[str, object] = {}
    if fit == "crop":
        for name in ("min-w", "min-h", "max-w", "max-h"):
            if given.get(name) is not None:
                out[name.replace("-", "_")] = int(given[name])  # type: ignore[call-overload]
    trim = given.get("trim")
    if trim in trim_modes.DRAWN:
        out["trim"] = trim
        if trim == "color":
            out["trim_color"] = given.get("trim-color")
            out["trim_tol"] = float(given.get("trim-tol") or 0.0)  # type: ignore[arg-type]
    fill = given.get("fill")
    if fit in ("fill", "fillmax") and fill in fill_modes.DRAWN:
        colour = _not_default(given, "fill-color")
        if fill == "blur" or colour is not None:
            out["fill"] = fill
            out["fill_color"] = colour if fill == "solid" else None
    mask = given.get("mask")
    if mask in mask_shapes.SHAPES:
        out["mask"] = mask
        out["mask_bg"] = _not_default(given, "mask-bg")
        if mask == "corners" and given.get("corner-radius") is not None:
            radius = given["corner-radius"]
            # A single 0 is imgix's default (20 %), the same render as no corner-radius.
            if not (isinstance(radius, int) and radius <= 0):
                out["corner_radius"] = shapes.radii_of(radius)  # type: ignore[arg-type]
    border = given.get("border")
    if border is not None:
        width, colour = border  # type: ignore[misc]
        width = int(width)  # type: ignore[has-type]
        if width > 0:  # a transparent border still carries border-radius
            out["border"] = (width, colour)
            out["border_radius"] = shapes.radii_of(given.get("border-radius"))  # type: ignore[arg-type]
            out["border_radius_inner"] = shapes.radii_of(given.get("border-radius-inner"))  # type: ignore[arg-type]
    out["pad"] = padding_of(
        *(int(given.get(name) or 0) for name in ("pad", "pad-top", "pad-right", "pad-bottom", "pad-left"))  # type: ignore[call-overload]
    )
    return out


def _not_default(given: dict[str, object], name: str) -> str | None:
    """A colour that paints: given, visible, and not opaque white, the schema's default, which
    is imgix's "white or transparent by format" (the render without the colour)."""
    colour = _visible(given.get(name))  # type: ignore[arg-type]
    return None if colour in (None, "ffffff", "ffffffff") else colour


def _output(given: dict[str, object]) -> dict[str, object]:
    """The output and animation fields, folded so that values rendering alike are equal:
    ``colors``/``prefix`` count only with a palette, ``tinysrgb`` is ``srgb`` (Pillow ships
    one small sRGB profile, 588 bytes, used for both), ``origin`` and the undrawn
    ``adobergb1998`` are the source's profile, ``frame=1-`` is every frame, ``frame=k-k``
    is ``frame=k``."""
    palette = given.get("palette")
    cs = given.get("cs")
    frame = given.get("frame")
    if isinstance(frame, tuple):
        first, last = frame
        if (first or 1) == 1 and last is None:
            frame = None
        elif last is not None and (first or 1) == last:
            frame = last
    fps = given.get("fps")
    return {
        "palette": palette,
        "colors": int(given.get("colors", DEFAULT_COLORS)) if palette else DEFAULT_COLORS,  # type: ignore[call-overload]
        "prefix": str(given.get("prefix", DEFAULT_PREFIX)) if palette == "css" else DEFAULT_PREFIX,
        "dpi": min(MAX_DPI, max(0, int(given.get("dpi", 0)))),  # type: ignore[call-overload]
        "cs": {"srgb": "srgb", "tinysrgb": "srgb", "strip": "strip"}.get(str(cs)) if cs else None,
        "chromasub": int(given.get("chromasub", DEFAULT_CHROMASUB)),  # type: ignore[call-overload]
        "progressive": bool(given.get("jpg-progressive", True)),
        "frame": frame,
        "reverse": bool(given.get("reverse", False)),
        # GIF's loop count is 16-bit; a frame lasts at least 1 ms (WebP) or 1 cs (GIF).
        "loop": min(MAX_LOOP, max(0, int(given.get("loop", 0)))),  # type: ignore[call-overload]
        "fps": None if fps is None else min(MAX_FPS, max(1, int(fps))),  # type: ignore[call-overload]
        "interval": max(1, int(given.get("interval", 1))),  # type: ignore[call-overload]
        "dl": given.get("dl"),
    }


def _value(given: dict[str, object], name: str) -> object:
    """The asked value, else the schema's default."""
    return given[name] if name in given else schema.default(name)


def _adjustment(given: dict[str, object], name: str) -> int:
    return int(_value(given, name))  # type: ignore[call-overload]


def _stylize_fields(given: dict[str, object]) -> dict[str, object]:
    """The ``renderer.stylize`` fields, absent ones at the schema's default; a value that
    cannot change the picture is folded to the default (``usmrad`` without ``usm``,
    ``duotone-alpha`` without ``duotone``, ``duotone-alpha=0``, ``px=1``), so renders that
    are alike share a key."""
    usm, usmrad = int(_value(given, "usm")), float(_value(given, "usmrad"))  # type: ignore[call-overload, arg-type]
    if usm == 0 or not usmrad > 0:
        usm, usmrad = 0, float(schema.default("usmrad"))  # type: ignore[arg-type]
    colors = given.get("duotone")
    alpha = int(_value(given, "duotone-alpha"))  # type: ignore[call-overload]
    if colors is None or alpha <= 0:
        colors, alpha = None, int(schema.default("duotone-alpha"))  # type: ignore[call-overload]
    px = _adjustment(given, "px")
    return {
        "hue": _adjustment(given, "hue") % 360,
        "vib": _adjustment(given, "vib"),
        "shad": float(_value(given, "shad")),  # type: ignore[arg-type]
        "high": _adjustment(given, "high"),
        "invert": bool(_value(given, "invert")),
        "nr": _adjustment(given, "nr"),
        "nrs": _adjustment(given, "nrs"),
        "usm": usm,
        "usmrad": usmrad,
        "sepia": _adjustment(given, "sepia"),
        "duotone": None if colors is None else tuple(colors),  # type: ignore[call-overload]
        "duotone_alpha": alpha,
        "px": 0 if px <= 1 else px,
        "htn": _adjustment(given, "htn"),
    }


def _visible(color: str | None) -> str | None:
    """A parsed colour (``rrggbb[aa]``), or None when it is fully transparent."""
    if color is None or (len(color) == 8 and color.endswith("00")):
        return None
    return color


# The defaults, read from instances (a slotted dataclass keeps none on the class).
_MARK = MarkSpec("")
_TEXT = TextSpec("")


def _mark(given: dict[str, object]) -> MarkSpec | None:
    """The watermark, its name checked against the origin's fence now (a 400 before any
    work); the alignment imgix would use anyway is folded into the default ``()``."""
    if not given.get("mark"):
        return None
    tile = given.get("mark-tile")
    align = _words(given, "mark-align", ())
    if align == (("left", "top") if tile else ("bottom", "right")):
        align = ()
    return MarkSpec(
        path=origin_name(str(given["mark"])),
        align=align,
        alpha=int(given.get("mark-alpha", 100)),  # type: ignore[call-overload]
        scale=given.get("mark-scale"),  # type: ignore[arg-type]
        pad=int(given.get("mark-pad", _MARK.pad)),  # type: ignore[call-overload]
        w=given.get("mark-w"),  # type: ignore[arg-type]
        h=given.get("mark-h"),  # type: ignore[arg-type]
        fit=str(given.get("mark-fit") or "clip"),
        x=given.get("mark-x"),  # type: ignore[arg-type]
        y=given.get("mark-y"),  # type: ignore[arg-type]
        tile=tile,  # type: ignore[arg-type]
    )


def _text(given: dict[str, object]) -> TextSpec | None:
    """The text overlay; longer than ``MAX_TXT_CHARS`` is a 400 naming ``txt``."""
    text = given.get("txt")
    if not text:
        return None
    text = str(text)
    line = max(0, int(given.get("txt-line") or 0))  # type: ignore[call-overload]  # below 0 draws no outline
    if len(text) > MAX_TXT_CHARS:
        raise BadParam(f"txt is {len(text)} characters long; this renderer draws at most {MAX_TXT_CHARS}",
                       "txt", f"at most {MAX_TXT_CHARS} characters")
    return TextSpec(
        text=text,
        size=int(given.get("txt-size", _TEXT.size)),  # type: ignore[call-overload]
        color=_opaque(given.get("txt-color") or _TEXT.color),  # type: ignore[arg-type]
        align=_words(given, "txt-align", _TEXT.align),
        font=given.get("txt-font") or None,  # type: ignore[arg-type]
        pad=int(given.get("txt-pad", _TEXT.pad)),  # type: ignore[call-overload]
        shadow=float(given.get("txt-shad", 0.0)),  # type: ignore[arg-type]
        width=int(given.get("txt-width") or 0),  # type: ignore[call-overload]
        clip=_words(given, "txt-clip", _TEXT.clip),
        line=line,
        # Without an outline its colour paints nothing.
        line_color=_opaque(given.get("txt-line-color") or _TEXT.line_color) if line else _TEXT.line_color,  # type: ignore[arg-type]
    )


def _words(given: dict[str, object], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """An enum list's sorted words (the schema's form), or ``default`` when absent."""
    value = given.get(name)
    return tuple(str(word) for word in value) if isinstance(value, tuple) and value else default


def _opaque(color: str) -> str:
    """``rrggbbff`` is ``rrggbb``: one spelling per colour that renders alike."""
    return color[:6] if len(color) == 8 and color.endswith("ff") else color
