"""``auto=format``: the output format an ``Accept`` header allows, best first.

Pure: a header string in, a format name (or None) out. Rules:

- imgix serves AVIF where the client accepts it, else WebP, else the fallback (``fm`` if
  given, otherwise the source's format)
  (https://docs.imgix.com/apis/rendering/auto#format,
  https://docs.imgix.com/apis/rendering/format/output-format).
- Only an explicit ``image/avif`` or ``image/webp`` media range counts. Wildcards
  (``image/*``, ``*/*``) do not: every browser sends them, including those that cannot
  decode AVIF or WebP, so a wildcard says nothing about support. A range with ``q=0`` is
  a refusal (RFC 9110 §12.5.1); any other quality value only ranks, and the ranking here is
  imgix's (AVIF over WebP), not the client's.
- A format the installed Pillow cannot encode is never offered (``available``).
- Header values are at most ``MAX_ACCEPT_CHARS`` long for this purpose: a longer one is read
  up to that point, so a hostile header costs nothing.
"""

from __future__ import annotations

__all__ = ["MAX_ACCEPT_CHARS", "NEGOTIATED", "accepted_media_types", "best_format"]

# Format preference of auto=format, best first, with the media type that announces it.
NEGOTIATED: tuple[tuple[str, str], ...] = (("avif", "image/avif"), ("webp", "image/webp"))
# Browsers send ~100-200 characters; 4 KB is far beyond any real Accept header.
MAX_ACCEPT_CHARS = 4096


def accepted_media_types(accept: str | None) -> frozenset[str]:
    """The exact media types (lower case, no wildcards) the header accepts with q > 0."""
    if not accept:
        return frozenset()
    found = set()
    for item in accept[:MAX_ACCEPT_CHARS].split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        media_type = media_type.lower()
        if not media_type or "*" in media_type:
            continue
        if _quality(params) > 0:
            found.add(media_type)
    return frozenset(found)


def best_format(accept: str | None, available: frozenset[str] | set[str], *, lossless: bool = False) -> str | None:
    """The negotiated ``fm`` for ``accept``, or None when the fallback applies.

    ``lossless`` leaves AVIF out: imgix documents AVIF as lossy only, so a lossless request
    falls through to WebP, which has a lossless mode.
    """
    accepted = accepted_media_types(accept)
    for fm, media_type in NEGOTIATED:
        if fm not in available or (lossless and fm == "avif"):
            continue
        if media_type in accepted:
            return fm
    return None


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 1.0  # an unreadable weight is ignored, as if absent
            return q if 0.0 <= q <= 1.0 else 1.0
    return 1.0
