"""Coverage masks of the shapes the renderer cuts images to: ellipses and rounded rectangles.

Pure: a size in, a Pillow ``L`` image out (255 inside the shape, 0 outside, partial
coverage on the curved edges). Used by ``renderer.mask`` (``mask=ellipse``,
``mask=corners``) and ``renderer.decorate`` (``border-radius``, the border's band). Rules:

- Radii are ``(top-left, top-right, bottom-right, bottom-left)`` pixels, the order imgix's
  four-value form uses (https://docs.imgix.com/apis/rendering/border-and-padding/outer-border-radius).
  Each is bounded to half the shorter side of its rectangle, so corners never overlap;
  negative radii count as 0.
- Edges are anti-aliased by drawing at ``_supersample`` times the size and averaging down
  (a box filter: the exact area each output pixel has inside). The factor is 4, 2 or 1 so
  that the drawn mask stays under ``SUPERSAMPLE_PIXELS``: a large output gets a coarser
  edge rather than a large allocation. Straight edges land on whole pixels at every factor,
  so the inside of a rectangle is exactly 255 and the outside exactly 0.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

__all__ = ["SUPERSAMPLE_PIXELS", "Radii", "bounded_radii", "ellipse", "radii_of", "rounded_rect"]

Radii = tuple[int, int, int, int]
# The largest mask drawn before averaging down: 4 Mpx of L is 4 MiB.
SUPERSAMPLE_PIXELS = 4_000_000


def radii_of(value: int | tuple[int, ...] | None) -> Radii:
    """The schema's radius value (one int, or tl,tr,br,bl) as four ints; None is no rounding."""
    if value is None:
        return (0, 0, 0, 0)
    if isinstance(value, int):
        return (value, value, value, value)
    tl, tr, br, bl = (int(v) for v in value)
    return (tl, tr, br, bl)


def bounded_radii(radii: Radii, width: int, height: int) -> Radii:
    """Each radius within 0 .. half the shorter side (what a 1e15 radius costs: nothing)."""
    limit = min(width, height) // 2
    tl, tr, br, bl = (max(0, min(int(r), limit)) for r in radii)
    return (tl, tr, br, bl)


def rounded_rect(size: tuple[int, int], radii: Radii, inset: int = 0) -> Image.Image:
    """The rectangle ``inset`` pixels inside ``size`` with rounded corners, as coverage."""
    width, height = size
    inner_w, inner_h = width - 2 * inset, height - 2 * inset
    if inner_w < 1 or inner_h < 1:
        return Image.new("L", size, 0)
    radii = bounded_radii(radii, inner_w, inner_h)
    if not any(radii):
        mask = Image.new("L", size, 0)
        mask.paste(255, (inset, inset, inset + inner_w, inset + inner_h))
        return mask
    scale = _supersample(width, height)
    big = Image.new("L", (width * scale, height * scale), 0)
    draw = ImageDraw.Draw(big)
    left, top = inset * scale, inset * scale
    right, bottom = left + inner_w * scale, top + inner_h * scale  # exclusive
    draw.rectangle((left, top, right - 1, bottom - 1), fill=255)
    tl, tr, br, bl = (r * scale for r in radii)
    # Each corner: clear its r x r square, then draw the quarter disc that belongs there.
    for r, x0, y0, start in (
        (tl, left, top, 180),
        (tr, right - 2 * tr, top, 270),
        (br, right - 2 * br, bottom - 2 * br, 0),
        (bl, left, bottom - 2 * bl, 90),
    ):
        if r <= 0:
            continue
        cx0 = x0 if start in (180, 90) else x0 + r
        cy0 = y0 if start in (180, 270) else y0 + r
        draw.rectangle((cx0, cy0, cx0 + r - 1, cy0 + r - 1), fill=0)
        draw.pieslice((x0, y0, x0 + 2 * r - 1, y0 + 2 * r - 1), start, start + 90, fill=255)
    return _down(big, size, scale)


def ellipse(size: tuple[int, int]) -> Image.Image:
    """The ellipse inscribed in ``size`` (a circle when the size is square), as coverage."""
    width, height = size
    scale = _supersample(width, height)
    big = Image.new("L", (width * scale, height * scale), 0)
    ImageDraw.Draw(big).ellipse((0, 0, width * scale - 1, height * scale - 1), fill=255)
    return _down(big, size, scale)


def _supersample(width: int, height: int) -> int:
    for scale in (4, 2):
        if width * height * scale * scale <= SUPERSAMPLE_PIXELS:
            return scale
    return 1


def _down(big: Image.Image, size: tuple[int, int], scale: int) -> Image.Image:
    if scale == 1:
        return big
    return big.reduce(scale)  # a box average over scale x scale blocks
