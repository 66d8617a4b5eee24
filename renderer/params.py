"""A render request as a typed, frozen value: the query string through the shared schema.

Rules: parameter names, aliases, types, ranges and defaults come from ``pixring.schema``
(the one schema the balancer's normalizer reads too), never from here. This module only
picks the parameters the reference renderer acts on, fills their defaults and refuses the
values the schema accepts but this renderer cannot produce (``fm=jp2``...), as a 400 that
names the parameter.

``RenderSpec.canonical()`` is the spec's identity: two requests with equal canonical forms
render the same bytes from the same source, so it keys the result cache and the ETag.
Parameters the renderer ignores (``auto``, ``blur``... for now) are not part of it: they
cannot change the output.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable

from pixring import schema

from renderer.errors import BadParam
from renderer.geometry import Request, anchor_for

__all__ = ["OUTPUT_FORMATS", "RenderSpec", "spec_from_query"]

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

    def canonical(self) -> str:
        # repr keeps int 400 and float 0.5 (pixels vs fraction) apart, and is stable
        # across processes, unlike hash().
        return "&".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))


def spec_from_query(pairs: Iterable[tuple[str, str]]) -> RenderSpec:
    """Percent-decoded query pairs -> RenderSpec; raises BadParam naming the parameter.

    ``renderable_only`` makes the schema refuse valid imgix values this renderer does not
    implement (``fm=jp2``, ``fit=facearea``, ``crop=faces``...), so they are a 400 rather
    than a silently different picture.
    """
    try:
        given = schema.parse_query(pairs, renderable_only=True)
    except schema.ParamError as exc:
        raise BadParam(str(exc), exc.name, exc.expected) from None
    fm = given.get("fm")
    if fm is not None and fm not in OUTPUT_FORMATS:  # the schema and this table disagree
        raise BadParam(f"fm={fm} is not produced by this renderer", "fm", ", ".join(sorted(OUTPUT_FORMATS)))
    return RenderSpec(
        width=given.get("w"),  # type: ignore[arg-type]
        height=given.get("h"),  # type: ignore[arg-type]
        fit=str(_value(given, "fit")),
        dpr=float(_value(given, "dpr")),  # type: ignore[arg-type]
        aspect=given.get("ar"),  # type: ignore[arg-type]
        crop=tuple(given.get("crop") or ()),  # type: ignore[arg-type]
        fp_x=float(_value(given, "fp-x")),  # type: ignore[arg-type]
        fp_y=float(_value(given, "fp-y")),  # type: ignore[arg-type]
        rect=given.get("rect"),  # type: ignore[arg-type]
        fm=fm,  # type: ignore[arg-type]
        q=int(_value(given, "q")),  # type: ignore[call-overload]
        lossless=bool(_value(given, "lossless")),
        # No default: an absent bg keeps transparency (the pipeline's rule), a given one paints.
        bg=given.get("bg"),  # type: ignore[arg-type]
    )


def _value(given: dict[str, object], name: str) -> object:
    """The asked value, else the schema's default."""
    return given[name] if name in given else schema.default(name)
