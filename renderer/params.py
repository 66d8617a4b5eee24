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

``RenderSpec.canonical()`` is the spec's identity: two requests with equal canonical forms
render the same bytes from the same source, so it keys the result cache and the ETag.
``auto=format`` is resolved per request (``for_accept``) before the key is taken, so the
key names the negotiated format.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Iterable

from pixring import schema

from renderer import negotiate
from renderer.errors import BadParam
from renderer.geometry import Request, anchor_for

__all__ = ["COMPRESS_QUALITY", "OUTPUT_FORMATS", "RenderSpec", "spec_from_query"]

# fm value -> (Pillow format, media type), for every fm the schema marks renderable
# (https://docs.imgix.com/apis/rendering/format/output-format).
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "jpg": ("JPEG", "image/jpeg"),
    "pjpg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
    "avif": ("AVIF", "image/avif"),
    "gif": ("GIF", "image/gif"),
}
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
    rect: tuple[int, int, int, int] | None = None
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
        )

    def for_accept(self, accept: str | None, available: frozenset[str] | set[str]) -> RenderSpec:
        """The spec with ``auto=format`` resolved against an ``Accept`` header.

        The negotiated format replaces ``fm``; without one, ``fm`` (or the source's format,
        or auto=compress's choice) stays the fallback, as imgix documents.
        """
        if not self.auto_format:
            return self
        best = negotiate.best_format(accept, available, lossless=self.lossless)
        return replace(self, fm=best or self.fm, auto_format=False)

    def canonical(self) -> str:
        # repr keeps int 400 and float 0.5 (pixels vs fraction) apart, and is stable
        # across processes, unlike hash().
        return "&".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))


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
    rect = given.get("rect")
    if rect is not None and not all(isinstance(v, int) for v in rect):  # type: ignore[attr-defined]
        raise BadParam("rect in fractions or keywords is not rendered by this renderer", "rect",
                       "four integers x,y,w,h in pixels")
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
    )


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
