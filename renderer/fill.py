"""``fill`` and ``fill-color``: what fills the padding of fit=fill and fit=fillmax.

https://docs.imgix.com/apis/rendering/fill/fill-mode, https://docs.imgix.com/apis/rendering/fill/fill-color.
Rules:

- ``fill=solid``: the padding takes ``fill-color``. imgix: "If fill-color is not used, the
  excess space will be white or transparent, depending on whether the image output format
  supports transparency", which is what the padding is without ``fill``. The schema's
  default ``fill-color`` (``ffffff``) must render like its absence, so it is that default:
  only another colour paints (an explicit ``fill-color=fff`` stays transparent in a PNG).
  The colour's alpha is honoured; ``bg`` still paints behind what stays transparent.
- ``fill=blur``: the padding shows the image itself, scaled to cover the whole canvas and
  blurred (a Gaussian of standard deviation min(canvas side) / 20, bounded to 4-200 px,
  imgix's automatic fill blur for video, https://docs.imgix.com/apis/video/size/fill-blur).
  The cost is bounded: the backdrop is made at most ``BLUR_WORK_SIDE`` pixels long, blurred
  there (the standard deviation scaled with it) and enlarged with a bicubic filter, which
  a blur that wide cannot tell from blurring at full size.
- ``fill=gen``/``generative`` (AI generation) and ``fill=gradient`` (a palette gradient)
  are not drawn: the padding is left as without ``fill``.
- Only fit=fill and fit=fillmax have padding to fill; fit=clamp keeps its edge pixels.
"""

from __future__ import annotations

from PIL import Image, ImageFilter

from pixring import schema

__all__ = ["BLUR_WORK_SIDE", "DRAWN", "place"]

DRAWN = frozenset({"solid", "blur"})
BLUR_WORK_SIDE = 256
_BLUR_DIVISOR = 20
_BLUR_MIN, _BLUR_MAX = 4.0, 200.0


def place(
    image: Image.Image,
    canvas_size: tuple[int, int],
    offset: tuple[int, int],
    mode: str,
    colour: str | None = None,
) -> Image.Image:
    """``image`` at ``offset`` on a ``canvas_size`` canvas whose padding ``mode`` fills."""
    top = image.convert("RGBA")
    if mode == "blur":
        canvas = _blurred_backdrop(top, canvas_size)
    elif mode == "solid" and colour is not None:
        canvas = Image.new("RGBA", canvas_size, schema.rgba(colour))
    else:
        canvas = Image.new("RGBA", canvas_size, (0, 0, 0, 0))
    canvas.alpha_composite(top, dest=offset)  # in place, over the image's area only
    return canvas


def _blurred_backdrop(image: Image.Image, canvas_size: tuple[int, int]) -> Image.Image:
    cw, ch = canvas_size
    sigma = min(_BLUR_MAX, max(_BLUR_MIN, min(cw, ch) / _BLUR_DIVISOR))
    shrink = min(1.0, BLUR_WORK_SIDE / max(cw, ch))
    work = (max(1, round(cw * shrink)), max(1, round(ch * shrink)))
    # Cover the work canvas: scale so both sides are filled, centre, cut the overflow.
    cover = max(work[0] / image.width, work[1] / image.height)
    scaled = (max(work[0], round(image.width * cover)), max(work[1], round(image.height * cover)))
    left, top = (scaled[0] - work[0]) // 2, (scaled[1] - work[1]) // 2
    small = image.resize(scaled, Image.Resampling.BILINEAR).crop((left, top, left + work[0], top + work[1]))
    small = small.convert("RGBa").filter(ImageFilter.GaussianBlur(sigma * shrink)).convert("RGBA")
    return small.resize(canvas_size, Image.Resampling.BICUBIC)
