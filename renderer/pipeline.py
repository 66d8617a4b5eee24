"""Bytes in, bytes out: decode a source with Pillow, apply a RenderSpec, encode.

No I/O and no asyncio: this runs inside a render worker process, so everything it
takes and returns pickles. Rules:

- Only the decoders in ``INPUT_FORMATS`` are ever tried (a small attack surface: no TIFF,
  PSD, EPS...). Anything else, and any decode failure, is ``UndecodableSource`` (422).
- The pixel limit is checked from the header, before a single pixel is decoded
  (``Image.open`` is lazy); Pillow's own decompression-bomb guard is a second fence
  (https://pillow.readthedocs.io/en/stable/reference/Image.html#PIL.Image.open). The
  source limit weighs pixels by the bytes they take decoded (``source_weight``), so it
  bounds memory rather than a count. The output limit (``max_output_pixels``) is checked
  from the layout, before decoding too; ``plan`` is those checks alone, for a HEAD and for
  refusing before a render queues. The encoded size is bounded as the encoder writes
  (``max_output_bytes``).
- JPEG sources are decoded with ``Image.draft`` at the smallest DCT scale (1/2, 1/4, 1/8)
  that still has at least the output's resolution, which is what makes large downscales
  cheap (https://pillow.readthedocs.io/en/stable/reference/Image.html#PIL.Image.Image.draft);
  Lanczos does the rest, always less than 2x.
- Order of work: orientation (Exif or ``orient``) and ``flip`` (``renderer.orientation``),
  so w/h/rect/crop mean what the viewer sees; ``trim`` (``renderer.trim``) on that upright
  source, since imgix trims the source and w/h/rect apply to what is left (the layout is
  planned again for the trimmed size and the output budget checked again; a trimmed
  source is decoded in full, as draft's scale was chosen for the untrimmed one); ``rect``,
  the fit layout and ``min-w``/``max-w``... (``renderer.geometry``) as one resampling;
  ``rot`` within the frame; the adjustments (``renderer.adjust``); the colour, detail and
  stylize parameters (``renderer.stylize``: after the adjustments, so ``px``/``htn`` blocks
  and dots are drawn on the final tones and stay crisp, and before the padding, so the
  padding is neither tinted, pixellated nor screened and every radius is in output pixels
  of the picture itself); the padding of fit=fill/fillmax, filled per ``fill``
  (``renderer.fill``); ``mask`` (``renderer.mask``), which covers that padding as imgix's
  does; the border and ``border-radius`` (``renderer.decorate``: the border is inside the
  image, the rounding cuts it too); ``pad`` around all of it; ``bg`` behind every
  transparent pixel, padding included; the overlays, watermark (``renderer.watermark``)
  then text (``renderer.text``); encoding. The frame comes after the adjustments and
  stylize parameters so a blur or a colour change never touches the border or padding
  colours. The overlays come last because imgix draws them on the finished picture: a
  watermark or a caption is never blurred, rotated, masked or recoloured with it, and is
  placed against the output's edges (border and padding included), with text above the
  watermark as imgix stacks them; every frame of an animation gets them. The output carries
  no Exif or XMP.
- The watermark's bytes are the caller's (``renderer.app`` fetches them from the origin and
  keys the render on their identity); they are decoded here once per render with the same
  decoders, under ``renderer.watermark.MAX_MARK_PIXELS``: a failure is a 400 naming ``mark``.
- Colour profiles: an ICC profile is kept when it still describes the output's colour
  space. Under ``auto=compress`` metadata is stripped, as imgix does; the pixels are first
  converted to sRGB so stripping the profile does not shift colours.
- Transparency survives when the output format has it. ``bg``
  (https://docs.imgix.com/apis/rendering/fill/background-color) paints behind transparent
  pixels and the padding of fill/fillmax; without ``bg`` both stay transparent, or become
  white for formats without alpha (JPEG).
- Output format: ``fm`` when given (``auto=format`` has already put its negotiated format
  there). Without it, the source's format, except under ``auto=compress``: PNG when the
  result has transparent pixels, JPEG otherwise; compress also overrides ``fm=gif`` that way
  (https://docs.imgix.com/apis/rendering/auto#compress,
  https://docs.imgix.com/apis/rendering/format/output-format).
- Animated sources (``renderer.animation``): the frames to draw are chosen from the header
  (``frame``, ``interval``, ``reverse``; every limit checked before decoding, in ``plan``
  too); each is drawn by ``_draw``, the whole order of work above, like a still, and an
  animated GIF/WebP output is written with their durations and ``loop``. Any other output
  is a still of the first chosen frame (the first frame, without ``frame``).
- Output parameters, in the order they act: ``fm=json`` answers before anything is decoded
  (``renderer.metadata``: the source's header). ``palette`` replaces the image once it is
  drawn (after ``bg``), before any output format applies (``renderer.palette``: imgix takes
  the palette of the processed image). ``cs`` acts after ``auto=compress``'s conversion
  (an explicit colour space wins over compress's stripping). ``fm=png8``/``png32``,
  ``dpi``, ``chromasub`` and ``jpg-progressive`` are encoder settings (``renderer.output``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace

from PIL import Image, ImageCms

from renderer import animation, decorate, geometry, metadata, orientation, output, palette
from renderer import fill as fill_modes
from renderer import mask as mask_shapes
from renderer import trim as trim_modes
from renderer.adjust import adjust
from renderer.errors import BadParam, OutputTooLarge, SourceTooLarge, UndecodableSource
from renderer.params import OUTPUT_FORMATS, PALETTE_TYPES, RenderSpec
from renderer.stylize import stylize
from renderer.text import draw_text
from renderer.watermark import MAX_MARK_PIXELS, draw_watermark

__all__ = [
    "AVAILABLE_FORMATS",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "DEFAULT_MAX_SOURCE_PIXELS",
    "INPUT_FORMATS",
    "Planned",
    "Rendered",
    "configure_worker",
    "plan",
    "render",
    "source_weight",
]

# Counted in RGB pixels (``source_weight``): 50 MP, 150 MB decoded, a high-end camera's
# full frame; an RGBA source of the same memory has 37.5 MP.
DEFAULT_MAX_SOURCE_PIXELS = 50_000_000
# The render budget. imgix allows 8192 px a side (geometry.MAX_OUTPUT_SIDE), 67 MP: a 256 MiB
# RGBA canvas, and about 19 s of one core for a PNG of it, which one request must not cost
# a node. 4096 x 4096 = 16.8 MP holds a 5K display's full screen (14.7 MP) in a 64 MiB
# canvas, and its slowest encoding (PNG of a noisy image) takes about 5 s of one core
# here, under the 10 s render timeout. An operator can raise it (--max-output-pixels).
DEFAULT_MAX_OUTPUT_PIXELS = 4096 * 4096
# The encoded size bound, checked as the encoder writes: a 16.8 MP PNG of a photo is
# 15-25 MiB; beyond 32 MiB an image is not a web image any more.
DEFAULT_MAX_OUTPUT_BYTES = 32 * 1024 * 1024
# Pillow format name -> the fm that keeps it when fm is absent.
INPUT_FORMATS: dict[str, str] = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "AVIF": "avif"}
# Decode at >= this many times the output resolution. The DCT-domain reduction of draft()
# is itself a clean low-pass, so 1.0 (Pillow's draft contract) is enough: on photo-like
# samples the result is within 50-52 dB PSNR of a full decode plus Lanczos, the same as
# with thumbnail()'s margin of 2.0, at two thirds of the CPU time (3000x2000 -> 400x300:
# 24 ms instead of 35 ms).
DRAFT_HEADROOM = 1.0
# AVIF encoder speed 0 (slowest, smallest) .. 10; 8 keeps a render in the tens of ms.
AVIF_SPEED = 8
_WHITE = (255, 255, 255, 255)
_ORIENTATION_TAG = 0x0112
_ENTROPY_SIDE = 256
_ENTROPY_STEPS = 9
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError)


def _encoders() -> frozenset[str]:
    """The fm values the installed Pillow can write (AVIF needs Pillow >= 11.2 with libavif)."""
    from PIL import features

    return frozenset(fm for fm in OUTPUT_FORMATS if fm != "avif" or features.check("avif"))


AVAILABLE_FORMATS = _encoders()


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    media_type: str
    fm: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Planned:
    """What a render would produce, known from the source's header alone: no pixel decoded.

    ``media_type`` is None when only the pixels can tell (``auto=compress`` without ``fm``
    picks PNG or JPEG by transparency)."""

    width: int
    height: int
    media_type: str | None


def plan(
    data: bytes,
    spec: RenderSpec,
    max_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
    mark: bytes | None = None,
) -> Planned:
    """The render ``spec`` would make of ``data``, after every limit checked, without
    decoding: a HEAD's answer, and the check a GET passes before it queues for a worker.
    ``mark``: the watermark's bytes, when ``spec`` has one (its header is checked too)."""
    if spec.fm == "json":
        image = _open(data, max_pixels)
        return Planned(image.width, image.height, OUTPUT_FORMATS["json"][1])
    image, layout, _, _, _ = _prepare(data, spec, max_pixels, max_output_pixels)
    if spec.mark is not None and mark is not None:
        _open_mark(mark)
    fm = _planned_format(spec, image.format or "")
    _frames(image, spec, fm, layout, max_pixels, max_output_pixels)
    media_type = OUTPUT_FORMATS[fm][1] if fm else None
    if spec.palette is not None:
        media_type = PALETTE_TYPES[spec.palette]
    output = layout.output  # before any trim, which only the pixels can tell
    return Planned(output.width, output.height, media_type)


def _planned_format(spec: RenderSpec, source_format: str) -> str | None:
    """The output fm known before decoding; None when only the pixels can tell."""
    fm: str | None = spec.fm if spec.fm is not None and not (spec.compress and spec.fm == "gif") else None
    if fm is None and not spec.compress:
        fm = INPUT_FORMATS.get(source_format, "jpg")
    return fm


def _frames(image: Image.Image, spec: RenderSpec, fm: str | None, layout: geometry.Layout, max_pixels: int,
            max_output_pixels: int) -> list[int]:
    canvas = layout.output.width * layout.output.height  # every frame is padded too
    return animation.choose(image, spec, fm in animation.ANIMATED_FORMATS and spec.palette is None, canvas,
                            max_output_pixels, max_pixels * animation.DECODE_FACTOR)


def render(
    data: bytes,
    spec: RenderSpec,
    max_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
    max_output_bytes: int | None = None,
    mark: bytes | None = None,
) -> Rendered:
    """Render ``spec`` from the encoded source ``data``; the encoded result may be at most
    ``max_output_bytes`` long (None: no bound), checked as the encoder writes it. ``mark``:
    the encoded watermark, required when ``spec`` has one."""
    if spec.fm == "json":
        source = _open(data, max_pixels)
        body = metadata.describe(source, len(data), _exif_orientation(source))
        return Rendered(body, OUTPUT_FORMATS["json"][1], "json", source.width, source.height)
    image, layout, turn, upright, request = _prepare(data, spec, max_pixels, max_output_pixels)
    watermark = _watermark(spec, mark)
    source_format = image.format or ""
    chosen = _frames(image, spec, _planned_format(spec, source_format), layout, max_pixels, max_output_pixels)
    if len(chosen) > 1:
        return _render_animation(image, chosen, spec, layout, turn, upright, request, max_output_pixels,
                                 max_output_bytes, watermark)
    if chosen[0]:
        _seek(image, chosen[0])
    image, icc, _ = _draw(image, source_format, spec, layout, turn, upright, request, max_output_pixels, watermark)
    if spec.palette is not None:
        body = palette.extract(image, spec.colors).encode(spec.palette, spec.prefix)
        return Rendered(body, PALETTE_TYPES[spec.palette], spec.palette, image.width, image.height)

    fm = _output_format(spec, source_format, image)
    if fm in ("jpg", "pjpg") and image.mode in ("RGBA", "LA"):
        backdrop = Image.new("RGBA", image.size, _WHITE)
        image = Image.alpha_composite(backdrop, image.convert("RGBA")).convert("RGB")
    if spec.compress and icc:
        image, icc = _to_srgb(image, icc), None
    if spec.cs is not None:
        image, icc = _colour_space(image, icc, spec.cs)
    pil_format, media_type = OUTPUT_FORMATS[fm]
    body = _encode(image, fm, pil_format, spec, icc, max_output_bytes)
    return Rendered(body, media_type, fm, image.width, image.height)


def _draw(
    image: Image.Image, source_format: str, spec: RenderSpec, layout: geometry.Layout, turn: int,
    upright: geometry.Size, request: geometry.Request, max_output_pixels: int,
    watermark: Image.Image | None = None,
) -> tuple[Image.Image, bytes | None, geometry.Layout]:
    """One frame (the source's current one) drawn: decoded, oriented, resized, adjusted,
    padded, on its background, with its overlays (``watermark``: the decoded mark); with
    the source's ICC profile, if any, and the layout used (``crop=entropy`` resolved)."""
    try:
        if source_format == "JPEG" and spec.trim is None:
            _draft(image, layout, upright, turn, spec.rot)
        image.load()
        icc = image.info.get("icc_profile")
        image = orientation.orient(image, turn, spec.flip)
        image = _working_mode(image)
    except Image.DecompressionBombError as exc:
        raise SourceTooLarge(str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise UndecodableSource(f"the source image cannot be decoded: {exc}") from None
    # From here on the image is ours: no Exif, XMP or profile rides along into a saver
    # that would otherwise copy it from ``info`` (PNG and AVIF do).
    image.info = {}
    if spec.trim is not None:
        image, layout, upright = _trimmed(image, spec, request, layout, upright, max_output_pixels)

    # draft() may have decoded at 1/2, 1/4 or 1/8 scale: map the layout's box onto it.
    sx, sy = image.width / upright.width, image.height / upright.height
    if "entropy" in spec.crop and "focalpoint" not in spec.crop and spec.fit in ("crop", "min"):
        area = geometry.region(upright, request.rect)
        anchor = _entropy_anchor(image, layout.box, area, sx, sy)
        layout = geometry.plan(upright, replace(request, anchor=anchor))  # same size, new place
    box = layout.box
    scaled_box = (box.left * sx, box.top * sy, box.right * sx, box.bottom * sy)
    target = (layout.scaled.width, layout.scaled.height)
    if target != image.size or scaled_box != (0, 0, image.width, image.height):
        # reducing_gap: a cheap integer box reduction first, then Lanczos over the last >= 3x,
        # which Pillow documents as indistinguishable from Lanczos all the way.
        image = image.resize(target, Image.Resampling.LANCZOS, box=scaled_box, reducing_gap=3.0)

    image = orientation.rotate_in_frame(image, spec.rot)
    image = adjust(
        image, bri=spec.bri, con=spec.con, exp=spec.exp, gam=spec.gam, sat=spec.sat,
        monochrome=spec.monochrome, sharp=spec.sharp, blur=spec.blur,
    )
    image = stylize(
        image, hue=spec.hue, vib=spec.vib, shad=spec.shad, high=spec.high, invert=spec.invert,
        nr=spec.nr, nrs=spec.nrs, usm=spec.usm, usmrad=spec.usmrad, sepia=spec.sepia,
        duotone_colors=spec.duotone, duotone_alpha=spec.duotone_alpha, px=spec.px, htn=spec.htn,
    )
    if layout.padded:
        if spec.fill is not None:
            canvas = (layout.canvas.width, layout.canvas.height)
            image = fill_modes.place(image, canvas, layout.offset, spec.fill, spec.fill_color)
        else:
            image = _pad(image, layout, spec.fit)
    if spec.mask is not None:
        image = mask_shapes.apply_mask(image, spec.mask, spec.corner_radius, spec.mask_bg)
    if spec.border is not None:
        width, colour = spec.border
        image = decorate.draw_border(image, width, colour, spec.border_radius, spec.border_radius_inner)
    image = decorate.pad(image, layout.padding)
    if spec.bg is not None and image.mode in ("RGBA", "LA"):
        backdrop = Image.new("RGBA", image.size, _rgba(spec.bg))
        image = Image.alpha_composite(backdrop, image.convert("RGBA"))
    image = _overlays(image, spec, watermark)
    return image, icc, layout


def _seek(image: Image.Image, index: int) -> None:
    try:
        image.seek(index)
    except _DECODE_ERRORS as exc:
        raise UndecodableSource(f"frame {index + 1} of the source cannot be decoded: {exc}") from None


def _render_animation(
    image: Image.Image, chosen: list[int], spec: RenderSpec, layout: geometry.Layout, turn: int,
    upright: geometry.Size, request: geometry.Request, max_output_pixels: int, max_output_bytes: int | None,
    watermark: Image.Image | None = None,
) -> Rendered:
    """An animated GIF or WebP: every chosen frame drawn like a still, in source order
    (frames decode in order), then written in ``chosen``'s order."""
    fm = _planned_format(spec, image.format or "")
    assert fm in animation.ANIMATED_FORMATS
    drawn: dict[int, Image.Image] = {}
    source_durations: dict[int, int] = {}
    wanted = set(chosen)
    for index in range(min(chosen), max(chosen) + 1):
        _seek(image, index)
        if index not in wanted:
            continue
        source_durations[index] = int(image.info.get("duration") or 0)
        # A copy, in a mode _draw keeps: it clears ``info``, which must stay the file's.
        frame = image.convert("RGBA" if image.has_transparency_data else "RGB")
        still, _, layout = _draw(frame, "", spec, layout, turn, upright, request, max_output_pixels, watermark)
        if drawn and still.size != next(iter(drawn.values())).size:  # every frame on one canvas
            still = still.resize(next(iter(drawn.values())).size, Image.Resampling.LANCZOS)
        drawn[index] = still
        # Later frames keep the first frame's crop (entropy would move it from frame to frame).
        spec = replace(spec, crop=tuple(c for c in spec.crop if c != "entropy"))
    frames = [drawn[index] for index in chosen]
    alpha = any(_has_transparency(f) for f in frames)
    frames = [f.convert("RGBA" if alpha else "RGB") for f in frames]
    options: dict[str, object] = {
        "save_all": True, "append_images": frames[1:], "loop": spec.loop,
        "duration": animation.durations(source_durations, chosen, spec),
    }
    if fm == "gif":
        if not alpha:
            # Pillow's own RGB->P conversion per frame is ten times slower than this.
            frames = [f.quantize(256, method=Image.Quantize.FASTOCTREE) for f in frames]
            options["append_images"] = frames[1:]
        options.update(disposal=2 if alpha else 1, optimize=False)
    else:
        options.update(quality=_quality(spec.q), lossless=spec.lossless)
    out = io.BytesIO() if max_output_bytes is None else _BoundedOutput(max_output_bytes)
    frames[0].save(out, OUTPUT_FORMATS[fm][0], **options)
    return Rendered(out.getvalue(), OUTPUT_FORMATS[fm][1], fm, frames[0].width, frames[0].height)


def _prepare(
    data: bytes, spec: RenderSpec, max_pixels: int, max_output_pixels: int
) -> tuple[Image.Image, geometry.Layout, int, geometry.Size, geometry.Request]:
    """The source opened (header only), its orientation and the layout, every limit checked."""
    image = _open(data, max_pixels)
    turn = spec.orient if spec.orient is not None else _exif_orientation(image)
    stored = geometry.Size(image.width, image.height)
    upright = geometry.Size(stored.height, stored.width) if orientation.swaps_axes(turn) else stored
    request = spec.request()
    layout = _layout(upright, request)
    _check_output(layout, max_output_pixels)
    return image, layout, turn, upright, request


def _watermark(spec: RenderSpec, mark: bytes | None) -> Image.Image | None:
    """The decoded watermark of a render with ``mark`` (once, for every frame)."""
    if spec.mark is None:
        return None
    if mark is None:
        raise ValueError("a render with mark needs the watermark's bytes")  # a caller's bug
    return _open_mark(mark, decode=True)


def _overlays(image: Image.Image, spec: RenderSpec, watermark: Image.Image | None) -> Image.Image:
    """The watermark, then the text, on the finished picture."""
    if spec.mark is not None and watermark is not None:
        image = draw_watermark(image, watermark, spec.mark, spec.dpr)
    if spec.text is not None:
        image = draw_text(image, spec.text, spec.dpr)
    return image


def _open_mark(data: bytes, decode: bool = False) -> Image.Image:
    """The watermark source, opened (and with ``decode``, decoded) under the watermark's own
    pixel limit; every failure is a 400 naming ``mark``, since the request chose the file."""
    try:
        image = _open(data, MAX_MARK_PIXELS)
        if decode:
            image.load()  # the first frame of an animation
            image = _working_mode(image)
    except (SourceTooLarge, UndecodableSource) as exc:
        raise BadParam(f"mark: {exc}", "mark", f"an image of at most {MAX_MARK_PIXELS / 1e6:.0f} MP") from None
    except _DECODE_ERRORS as exc:
        raise BadParam(f"mark: the watermark image cannot be decoded: {exc}", "mark") from None
    return image


def _layout(upright: geometry.Size, request: geometry.Request) -> geometry.Layout:
    try:
        return geometry.plan(upright, request)
    except geometry.GeometryError as exc:
        raise BadParam(str(exc), exc.param) from None
    except ValueError as exc:
        raise BadParam(str(exc), "rect") from None


def _trimmed(
    image: Image.Image,
    spec: RenderSpec,
    request: geometry.Request,
    layout: geometry.Layout,
    upright: geometry.Size,
    max_output_pixels: int,
) -> tuple[Image.Image, geometry.Layout, geometry.Size]:
    """The source without its frame (``trim``), and the layout planned again for it."""
    trimmed = trim_modes.trim(image, spec.trim or "", spec.trim_color, spec.trim_tol)
    if trimmed.size == image.size:
        return image, layout, upright
    upright = geometry.Size(trimmed.width, trimmed.height)
    layout = _layout(upright, request)
    _check_output(layout, max_output_pixels)
    return trimmed, layout, upright


def _output_format(spec: RenderSpec, source_format: str, image: Image.Image) -> str:
    if spec.fm is not None and not (spec.compress and spec.fm == "gif"):
        return spec.fm
    if spec.compress:
        return "png" if _has_transparency(image) else "jpg"
    return INPUT_FORMATS.get(source_format, "jpg")


def _has_transparency(image: Image.Image) -> bool:
    if image.mode not in ("RGBA", "LA"):
        return False
    low, _ = image.getchannel(image.mode[-1]).getextrema()
    return low < 255  # type: ignore[operator]


def _check_output(layout: geometry.Layout, max_output_pixels: int) -> None:
    # The output with its padding (pad, pad-*): that is what gets allocated and encoded.
    output = layout.output
    pixels = output.width * output.height
    if pixels > max_output_pixels:
        raise OutputTooLarge(
            f"the output would be {output.width}x{output.height} ({pixels / 1e6:.1f} MP); this renderer's "
            f"max_output_pixels is {max_output_pixels} ({max_output_pixels / 1e6:.1f} MP)",
            "pad" if any(layout.padding) else None,
            "smaller w/h/dpr" + (" or pad" if any(layout.padding) else ""),
        )
    if max(output.width, output.height) > geometry.MAX_OUTPUT_SIDE:
        # Only padding can get here (the geometry caps the image itself).
        raise OutputTooLarge(
            f"the output would be {output.width}x{output.height}; with its padding it must be at most "
            f"{geometry.MAX_OUTPUT_SIDE} px a side",
            "pad",
            f"pad and the image within {geometry.MAX_OUTPUT_SIDE} px a side",
        )


# Bytes a decoded pixel takes in Pillow, by mode; and what the pipeline's working copy
# takes (``_working_mode``: palette, 1-bit and 16-bit images become 8-bit RGB(A) or L).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
               "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2}
_WORKING_BYTES = {"1": 1, "L": 1, "LA": 2, "I": 4, "I;16": 4, "I;16B": 4, "I;16L": 4}


def source_weight(mode: str, transparency: bool, pixels: int) -> int:
    """A source's size in RGB pixels (3 bytes each): what ``max_source_pixels`` counts.

    Decoding holds the pixels in the source's mode, then the pipeline works on a copy in
    its working mode; an RGBA or 16-bit source takes more memory per pixel than RGB, so it
    counts for more (a 7000x7000 RGBA PNG is 65 MP of RGB, not 49)."""
    decoded = _MODE_BYTES.get(mode, 4)
    working = _WORKING_BYTES.get(mode, 4 if transparency or mode in ("RGBA", "LA", "PA", "RGBa", "La") else 3)
    if mode in ("L", "RGB") and transparency:
        working = decoded + 1
    return -(-pixels * max(decoded, working) // 3)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=tuple(INPUT_FORMATS))
    except Image.DecompressionBombError as exc:
        raise SourceTooLarge(str(exc)) from None
    except Image.UnidentifiedImageError:
        raise UndecodableSource(
            "the source is not an image in a supported format (" + ", ".join(INPUT_FORMATS) + ")"
        ) from None
    except _DECODE_ERRORS as exc:
        raise UndecodableSource(f"the source image header cannot be read: {exc}") from None
    pixels = image.width * image.height
    weight = source_weight(image.mode, "transparency" in image.info, pixels)
    if weight > max_pixels:
        bytes_per_pixel = weight * 3 / max(pixels, 1)
        raise SourceTooLarge(
            f"the source is {image.width}x{image.height} {image.mode} ({pixels / 1e6:.1f} MP, "
            f"{pixels * bytes_per_pixel / 2**20:.0f} MiB decoded); this renderer's max_source_pixels is "
            f"{max_pixels / 1e6:.1f} MP of RGB ({max_pixels * 3 / 2**20:.0f} MiB)"
        )
    if pixels == 0:
        raise UndecodableSource("the source image has no pixels")
    return image


def _entropy_anchor(
    image: Image.Image, window: geometry.Box, area: geometry.Box, sx: float, sy: float
) -> tuple[float, float]:
    """imgix's crop=entropy: slide the window along its free axis, keep the busiest place.

    Shannon entropy of the greyscale histogram (``Image.entropy``) measures detail; it is
    ranked on a copy at most ``_ENTROPY_SIDE`` pixels long, which is plenty to compare
    ``_ENTROPY_STEPS`` positions. Ties keep the position nearest the centre.
    https://docs.imgix.com/apis/rendering/size/crop-mode
    """
    slack_x, slack_y = area.width - window.width, area.height - window.height
    if max(slack_x, slack_y) < 1:
        return (0.5, 0.5)
    shrink = min(1.0, _ENTROPY_SIDE / max(area.width * sx, area.height * sy))
    fx, fy = sx * shrink, sy * shrink
    thumb = image.crop((round(area.left * sx), round(area.top * sy), round(area.right * sx), round(area.bottom * sy)))
    thumb = thumb.convert("L").resize((max(1, round(area.width * fx)), max(1, round(area.height * fy))))
    along_x = slack_x >= slack_y
    steps = sorted(range(_ENTROPY_STEPS), key=lambda i: abs(i - (_ENTROPY_STEPS - 1) / 2))
    best_offset, best_entropy = None, -1.0
    for step in steps:
        t = step / (_ENTROPY_STEPS - 1)
        left = slack_x * t if along_x else slack_x / 2
        top = slack_y / 2 if along_x else slack_y * t
        box = (left * fx, top * fy, (left + window.width) * fx, (top + window.height) * fy)
        entropy = thumb.crop(tuple(round(v) for v in box)).entropy()
        if entropy > best_entropy:
            best_offset, best_entropy = (left, top), entropy
    left, top = best_offset  # type: ignore[misc]
    return ((left + window.width / 2) / area.width, (top + window.height / 2) / area.height)


def _exif_orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(_ORIENTATION_TAG, 1))
    except _DECODE_ERRORS:
        return 1  # a broken EXIF block does not make the pixels unusable
    return value if value in orientation.ORIENTATIONS else 1


def _draft(image: Image.Image, layout: geometry.Layout, upright: geometry.Size, turn: int, rot: float) -> None:
    # The resolution the final resample needs, expressed as a size of the whole image;
    # rot zooms in, which needs that much more.
    zoom = orientation.rotation_zoom(layout.scaled.width, layout.scaled.height, rot) if rot else 1.0
    need_w = upright.width * layout.scaled.width / layout.box.width * DRAFT_HEADROOM * zoom
    need_h = upright.height * layout.scaled.height / layout.box.height * DRAFT_HEADROOM * zoom
    if orientation.swaps_axes(turn):
        need_w, need_h = need_h, need_w
    if need_w < image.width or need_h < image.height:
        image.draft(image.mode, (math.ceil(need_w), math.ceil(need_h)))


def _working_mode(image: Image.Image) -> Image.Image:
    """Modes that resample correctly: RGB(A) and L(A); palette and odd modes are converted."""
    if image.mode in ("RGBA", "LA"):
        return image
    if image.mode in ("RGB", "L"):
        # A tRNS chunk (PNG) makes one colour transparent: keep that as real alpha.
        return image.convert(image.mode + "A") if "transparency" in image.info else image
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit greyscale PNG: scale to 8 bits rather than clipping everything to white.
        return image.convert("I").point(lambda v: v / 256).convert("L")
    if image.mode == "1":
        return image.convert("L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _pad(image: Image.Image, layout: geometry.Layout, fit: str) -> Image.Image:
    """Place the image on its canvas; the padding is transparent until ``bg`` paints it."""
    canvas_size = (layout.canvas.width, layout.canvas.height)
    if fit == "clamp":
        return _clamp_edges(image, canvas_size, layout.offset)
    canvas = Image.new("RGBA", canvas_size, (0, 0, 0, 0))
    canvas.paste(image.convert("RGBA"), layout.offset)
    return canvas


def _clamp_edges(image: Image.Image, canvas_size: tuple[int, int], offset: tuple[int, int]) -> Image.Image:
    """imgix's fit=clamp: the padding repeats the outermost row/column of the image."""
    cw, ch = canvas_size
    ox, oy = offset
    iw, ih = image.size
    canvas = Image.new(image.mode, canvas_size)
    canvas.paste(image, offset)
    if ox > 0:
        canvas.paste(image.crop((0, 0, 1, ih)).resize((ox, ih)), (0, oy))
    if cw - ox - iw > 0:
        canvas.paste(image.crop((iw - 1, 0, iw, ih)).resize((cw - ox - iw, ih)), (ox + iw, oy))
    if oy > 0:
        canvas.paste(canvas.crop((0, oy, cw, oy + 1)).resize((cw, oy)), (0, 0))
    if ch - oy - ih > 0:
        row = canvas.crop((0, oy + ih - 1, cw, oy + ih))
        canvas.paste(row.resize((cw, ch - oy - ih)), (0, oy + ih))
    return canvas


def _rgba(color: str) -> tuple[int, int, int, int]:
    channels = [int(color[i:i + 2], 16) for i in range(0, len(color), 2)]
    return (channels[0], channels[1], channels[2], channels[3] if len(channels) == 4 else 255)


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """The pixels re-expressed in sRGB, for output without a profile; unchanged if the
    profile is unusable (a damaged profile must not fail the render)."""
    if image.mode not in ("RGB", "RGBA") or not _icc_fits(icc, image.mode):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, _srgb(), outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    return converted if converted is not None else image


def _colour_space(image: Image.Image, icc: bytes | None, cs: str) -> tuple[Image.Image, bytes | None]:
    """imgix's ``cs`` (https://docs.imgix.com/apis/rendering/format/color-space): the pixels
    in sRGB, then ``srgb`` embeds Pillow's sRGB profile and ``strip`` writes none (an
    untagged image is read as sRGB, so converting first keeps the colours). Grey images
    keep no profile: the sRGB profile describes RGB pixels."""
    if icc:
        image = _to_srgb(image, icc)
        # profileToProfile tags its result, and the PNG and AVIF savers copy ``info``.
        image.info.pop("icc_profile", None)
    return image, _srgb().tobytes() if cs == "srgb" else None


_SRGB: list[ImageCms.ImageCmsProfile] = []


def _srgb() -> ImageCms.ImageCmsProfile:
    if not _SRGB:
        _SRGB.append(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")))
    return _SRGB[0]


class _BoundedOutput(io.BytesIO):
    """The encoder's file: refuses to grow past ``limit`` bytes. Pillow's PNG, JPEG and GIF
    writers write as they encode, so a render that would be too large stops there rather
    than after the whole image is in memory (WebP and AVIF hand over their result at once:
    for them the bound is checked on that one write)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data, /):  # type: ignore[no-untyped-def, override]
        if self.tell() + len(data) > self.limit:
            raise OutputTooLarge(
                f"the encoded image is larger than this renderer's max_output_bytes ({self.limit} bytes, "
                f"{self.limit / 2**20:.0f} MiB)",
                None,
                "smaller w/h/dpr, a lossy format (fm=jpg, fm=webp) or a lower q",
            )
        return super().write(data)


def _encode(image: Image.Image, fm: str, pil_format: str, spec: RenderSpec, icc: bytes | None,
            max_bytes: int | None = None) -> bytes:
    options: dict[str, object] = {}
    if fm in ("jpg", "pjpg") and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    if icc and fm != "gif" and _icc_fits(icc, image.mode):
        options["icc_profile"] = icc
    if fm == "png8":
        image = output.to_png8(image)
    elif fm == "png32":
        image = output.to_png32(image)
    if fm in ("jpg", "pjpg"):
        options.update(quality=_quality(spec.q), **output.jpeg_options(fm, spec))
    elif fm in ("png", "png8", "png32"):
        options.update(output.png_options(spec))
    elif fm == "webp":
        options.update(quality=_quality(spec.q), lossless=spec.lossless)
    elif fm == "avif":
        options.update(quality=_quality(spec.q), speed=AVIF_SPEED)
    out = io.BytesIO() if max_bytes is None else _BoundedOutput(max_bytes)
    image.save(out, pil_format, **options)
    return out.getvalue()


def _icc_fits(icc: bytes, mode: str) -> bool:
    """A colour profile is kept only for pixels in its colour space (ICC.1 header, bytes
    16-19): a CMYK source's profile on RGB output would make browsers shift every colour."""
    space = icc[16:20]
    return (space == b"RGB " and mode in ("RGB", "RGBA")) or (space == b"GRAY" and mode in ("L", "LA"))


def _quality(q: int) -> int:
    return max(0, min(100, int(q)))


def configure_worker(max_pixels: int) -> None:
    """Render-worker initializer: line Pillow's decompression-bomb guard up with our limit.

    Pillow warns above ``MAX_IMAGE_PIXELS`` and refuses above twice that; ``_open`` refuses
    above ``max_pixels`` itself, so this only keeps Pillow from refusing a source the
    operator allowed (a limit above Pillow's 89 MP default).
    """
    Image.MAX_IMAGE_PIXELS = max(max_pixels, Image.MAX_IMAGE_PIXELS or 0)
