"""Which imgix parameters the reference renderer draws, and which of a request's it ignored.

Rules:

- The shared schema (``pixring.schema``) parses every parameter of imgix's catalogue, so a
  request may carry parameters this renderer accepts but does not act on (face detection,
  generative fill, background removal, upscaling, video, PDF pages, blending, ...). Such a
  request is rendered without them, not refused: the picture is what imgix would give
  minus that effect, and the response names what was left out in ``X-Render-Ignored``
  (``docs/renderer.md`` lists each with the reason).
- ``DRAWN`` is the set of canonical names whose values change what the renderer answers.
  A parameter is in it when any of its values is acted on, even if some values are refused
  (``fm=jp2`` is a 400, not an ignored ``fm``).
- ``ignored(given)`` is the sorted tuple of the given canonical names not in ``DRAWN``.
  Ignored parameters do not change the picture, so they stay out of the renderer's own
  cache key (``RenderSpec.canonical``); the balancer's key may still hold them, which only
  costs a duplicate cache entry.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["DRAWN", "ignored"]

DRAWN: frozenset[str] = frozenset(
    # size, crop and format: the renderer's first parameters
    "w h dpr ar fit crop fp-x fp-y rect fm q auto lossless".split()
    # rotation and the first adjustments
    + "rot flip orient bg blur sharp bri con exp gam sat monochrome".split()
    # further adjustments and stylize
    + "hue invert high shad vib usm usmrad nr nrs sepia htn px duotone duotone-alpha".split()
    # size bounds, borders, padding, fill, masks, trim
    + "min-w min-h max-w max-h border border-radius border-radius-inner pad pad-top pad-right pad-bottom pad-left".split()
    + "fill fill-color mask corner-radius mask-bg trim trim-color trim-tol".split()
    # watermarks and text
    + "mark mark-align mark-alpha mark-scale mark-pad mark-w mark-h mark-x mark-y mark-tile mark-fit".split()
    + "txt txt-size txt-color txt-align txt-font txt-pad txt-shad txt-width txt-clip txt-line txt-line-color".split()
    # output: metadata, palette, encoder settings, download name
    + "palette colors prefix dpi cs chromasub jpg-progressive dl".split()
    # animation
    + "frame reverse loop fps interval".split()
)


def ignored(given: Iterable[str]) -> tuple[str, ...]:
    """The canonical names among ``given`` that the renderer does not draw, sorted."""
    return tuple(sorted({name for name in given if name not in DRAWN}))
