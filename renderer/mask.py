"""``mask``, ``corner-radius`` and ``mask-bg``: cut the image to a shape.

Runs on the resized, adjusted image (fit=fill's padding included, as imgix's mask covers
it), before ``border-radius``, the border and ``pad``. Rules
(https://docs.imgix.com/apis/rendering/mask-image/mask-type,
https://docs.imgix.com/apis/rendering/mask-image/mask-corner-radius,
https://docs.imgix.com/apis/rendering/mask-image/mask-background-color):

- ``mask=ellipse``: the ellipse inscribed in the image (a circle on a square image) stays;
  outside it the image becomes transparent.
- ``mask=corners``: the image with rounded corners, radii from ``corner-radius`` (one value
  or tl,tr,br,bl pixels). Without it, or with a single 0 (imgix keeps its default for 0),
  every radius is 20 % of the shorter side; in the four-value form 0 is a square corner
  (but ``0,0,0,0`` reaches the renderer as the single 0: the schema folds four equal radii).
  Each radius is bounded to half the shorter side (``renderer.shapes``).
- ``mask-bg`` fills the masked-out area. imgix's default is transparent white: transparent
  where the output format has alpha, white where it has not (the pipeline flattens onto
  white, or onto ``bg``). The schema's default, ``ffffff``, is that default (the absent
  parameter must render like it), so only a colour other than opaque white paints the
  masked-out area: an explicit ``mask-bg=fff`` is transparent in a PNG where imgix would
  make it white. Its alpha (ARGB form) is honoured.
- ``mask=<url>`` (an image as a mask) is not drawn: the renderer fetches no second image.
  The pipeline never calls this module for it, and the image is left unmasked.
- The image's own transparency is kept: the shape multiplies the alpha.
"""

from __future__ import annotations

from PIL import Image, ImageChops

from pixring import schema

from renderer import shapes

__all__ = ["DEFAULT_CORNER_FRACTION", "SHAPES", "apply_mask", "corner_radii"]

SHAPES = frozenset({"ellipse", "corners"})
# imgix: "If corner-radius is not set, every corner's radius defaults to 20% of the smaller dimension."
DEFAULT_CORNER_FRACTION = 0.2


def corner_radii(value: int | tuple[int, ...] | None, size: tuple[int, int]) -> shapes.Radii:
    """The radii ``mask=corners`` uses on an image of ``size``."""
    if value is None or (isinstance(value, int) and value <= 0):
        default = round(min(size) * DEFAULT_CORNER_FRACTION)
        return (default, default, default, default)
    return shapes.radii_of(value)


def apply_mask(
    image: Image.Image,
    shape: str,
    corner_radius: int | tuple[int, ...] | None = None,
    background: str | None = None,
) -> Image.Image:
    """``image`` cut to ``shape`` (``ellipse`` or ``corners``), RGBA. Any other shape
    returns the image unchanged."""
    if shape not in SHAPES:
        return image
    if shape == "ellipse":
        coverage = shapes.ellipse(image.size)
    else:
        coverage = shapes.rounded_rect(image.size, corner_radii(corner_radius, image.size))
    rgba = image.convert("RGBA")
    alpha = ImageChops.multiply(rgba.getchannel("A"), coverage)
    rgba.putalpha(alpha)
    if background is None:
        return rgba
    r, g, b, a = schema.rgba(background)
    backdrop = Image.new("RGBA", image.size, (r, g, b, a))
    return Image.alpha_composite(backdrop, rgba)
