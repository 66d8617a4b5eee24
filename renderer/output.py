"""Encoder settings for imgix's output parameters: ``fm=png8``/``png32``, ``dpi``,
``chromasub``, ``jpg-progressive``.

Pure: an image (or a spec) in, an image or Pillow save options out. Rules:

- ``fm=png8`` (https://docs.imgix.com/apis/rendering/format/output-format) is a palette PNG
  of at most 256 colours: Pillow's fast octree quantizer (the one that handles alpha), with
  Floyd-Steinberg dithering; transparency survives as the palette's alpha (a tRNS chunk).
  Grey images are quantized as RGB. ``fm=png32`` is always an RGBA PNG, even when opaque.
- ``dpi`` (https://docs.imgix.com/apis/rendering/format/dots-per-inch) is written into the
  JPEG JFIF density and the PNG pHYs chunk; WebP, AVIF and GIF have no such field and are
  written without it. 0 (the default) writes none. Clamped to 65535 (JFIF's 16 bits).
- ``chromasub`` (https://docs.imgix.com/apis/rendering/format/chroma-subsampling): JPEG's
  chroma subsampling, 444, 422 or 420 (default; libjpeg's own default, so the same bytes
  as before this parameter existed). Other formats ignore it.
- ``jpg-progressive`` (https://docs.imgix.com/apis/rendering/format/jpg-progressive):
  imgix writes progressive JPEG unless ``jpg-progressive=false``, and so does this
  renderer; ``fm=pjpg`` is progressive whatever this says.
"""

from __future__ import annotations

from PIL import Image

from renderer.params import RenderSpec

__all__ = ["PNG8_COLOURS", "SUBSAMPLING", "jpeg_options", "png_options", "to_png32", "to_png8"]

PNG8_COLOURS = 256
# chromasub -> Pillow's JPEG ``subsampling`` (0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0).
SUBSAMPLING = {444: 0, 422: 1, 420: 2}


def to_png8(image: Image.Image) -> Image.Image:
    """``image`` as a palette image of at most 256 colours, alpha kept in the palette."""
    if image.mode in ("L", "LA"):
        image = image.convert("RGBA" if image.mode == "LA" else "RGB")
    elif image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    # FASTOCTREE is the quantizer that takes RGBA; on RGB it is also the fastest.
    return image.quantize(PNG8_COLOURS, method=Image.Quantize.FASTOCTREE)


def to_png32(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGBA" else image.convert("RGBA")


def jpeg_options(fm: str, spec: RenderSpec) -> dict[str, object]:
    """Pillow JPEG save options for ``fm`` jpg/pjpg beyond quality and profile."""
    options: dict[str, object] = {
        "progressive": fm == "pjpg" or spec.progressive,
        "subsampling": SUBSAMPLING.get(spec.chromasub, SUBSAMPLING[420]),
    }
    if spec.dpi:
        options["dpi"] = (spec.dpi, spec.dpi)
    return options


def png_options(spec: RenderSpec) -> dict[str, object]:
    return {"dpi": (spec.dpi, spec.dpi)} if spec.dpi else {}
