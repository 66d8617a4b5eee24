"""``border``, ``border-radius``, ``border-radius-inner`` and ``pad``/``pad-*``: the frame.

Runs after the resize, the adjustments and ``mask``, in this order: the outer corners are
rounded, the border is drawn, the padding is added; ``bg`` (the pipeline) then paints
behind every transparent pixel, the padding included. Rules:

- ``border=width,colour`` (https://docs.imgix.com/apis/rendering/border-and-padding/border-size-color)
  is drawn *inside* the image: imgix's border "overlaps the image without resizing it", so
  the output keeps its size and the outermost ``width`` pixels on each side take the
  colour (its alpha, from imgix's ARGB form, blends it over the image). The schema clamps
  the width to 0-100; a width of 0 is no border, and then ``border-radius`` is not applied
  either (imgix: "The border parameter must be set for this operation to be applied").
  The band follows the image's rectangle, not a ``mask``: after ``mask=ellipse`` the border
  is a square frame whose corners cover the masked-out area (round it with ``border-radius``).
- ``border-radius`` (https://docs.imgix.com/apis/rendering/border-and-padding/outer-border-radius):
  one radius or tl,tr,br,bl pixels rounding the outer corners; outside them the image is
  transparent. ``border-radius-inner``
  (https://docs.imgix.com/apis/rendering/border-and-padding/inner-border-radius) rounds the
  inner edge of the border band; absent, that edge is square. Radii are bounded to half the
  shorter side of their rectangle (``renderer.shapes``), so a huge radius costs nothing more.
- ``pad`` (https://docs.imgix.com/apis/rendering/border-and-padding/padding) and
  ``pad-top``/``pad-right``/``pad-bottom``/``pad-left`` add that many transparent pixels
  around the image; a side's own value, when not 0, replaces ``pad`` for that side (0 is
  those parameters' default, which must render like their absence, so ``pad-left=0`` cannot
  take ``pad`` away from the left). The geometry (``renderer.geometry``) has already made
  room for it, and the output budget counted it before decoding.
"""

from __future__ import annotations

from PIL import Image, ImageChops

from pixring import schema

from renderer import shapes

__all__ = ["Padding", "draw_border", "pad", "padding_of", "round_corners"]

Padding = tuple[int, int, int, int]  # top, right, bottom, left


def padding_of(pad: int = 0, top: int = 0, right: int = 0, bottom: int = 0, left: int = 0) -> Padding:
    """The four sides' padding: each side's own value when not 0, else ``pad``."""
    return tuple(max(0, int(side or pad)) for side in (top, right, bottom, left))  # type: ignore[return-value]


def round_corners(image: Image.Image, radii: shapes.Radii) -> Image.Image:
    """``image`` with its outer corners rounded; transparent outside them."""
    if not any(radii):
        return image
    coverage = shapes.rounded_rect(image.size, radii)
    rgba = image.convert("RGBA")
    rgba.putalpha(ImageChops.multiply(rgba.getchannel("A"), coverage))
    return rgba


def draw_border(
    image: Image.Image,
    width: int,
    colour: str,
    radii: shapes.Radii = (0, 0, 0, 0),
    inner_radii: shapes.Radii = (0, 0, 0, 0),
) -> Image.Image:
    """``image`` with a ``width``-pixel band of ``colour`` along its edges, inside it, and its
    outer corners rounded by ``radii`` (``border-radius``).

    The band runs from the edge to the rectangle ``width`` pixels in (rounded by
    ``inner_radii``). It is painted on the square image and the outer corners are rounded
    afterwards, so an anti-aliased corner pixel is exactly as opaque as its area inside the
    shape. A grey image becomes RGB(A) to carry the colour."""
    if width <= 0:
        return image
    r, g, b, a = schema.rgba(colour)
    band = ImageChops.invert(shapes.rounded_rect(image.size, inner_radii, inset=width))
    if a < 255:
        band = band.point([v * a // 255 for v in range(256)])
    if image.mode in ("L", "LA", "P"):
        image = image.convert("RGB" if image.mode == "L" else "RGBA")
    else:
        image = image.copy()
    if image.mode == "RGBA":
        # Composited over: the border covers transparent pixels of the image too.
        layer = Image.new("RGBA", image.size, (r, g, b, 255))
        layer.putalpha(band)
        image = Image.alpha_composite(image, layer)
    else:
        image.paste((r, g, b), (0, 0, *image.size), mask=band)
    return round_corners(image, radii)


def pad(image: Image.Image, padding: Padding) -> Image.Image:
    """``image`` on a transparent canvas ``padding`` (top, right, bottom, left) pixels larger."""
    top, right, bottom, left = padding
    if not (top or right or bottom or left):
        return image
    canvas = Image.new("RGBA", (image.width + left + right, image.height + top + bottom), (0, 0, 0, 0))
    canvas.paste(image.convert("RGBA"), (left, top))
    return canvas
