"""``fm=json``: the source image's metadata as a JSON document instead of an image.

https://docs.imgix.com/apis/rendering/format/output-format and imgix's tutorial "Extract Image
Metadata with JSON Output Format" (https://docs.imgix.com/getting-started/tutorials/performance-and-metadata/extract-image-metadata-with-json-output-format)
show the shape: Apple ImageIO-style keys describing the *source* (not the rendered output).
Rules:

- Only what can be read honestly from the source's header with Pillow, with imgix's key
  names: ``PixelWidth``/``PixelHeight`` (as stored, before the Exif rotation), ``Orientation``
  (1-8, 1 when absent), ``ColorModel`` (``RGB``, ``Gray``, ``CMYK``, ``Lab``), ``Depth`` (bits
  per sample), ``HasAlpha``, ``DPIWidth``/``DPIHeight`` (only when the file states a
  density), ``ProfileName`` (the ICC profile's description, when there is one),
  ``Content-Type`` and ``Content-Length`` (a string, as imgix writes it) of the source,
  ``JFIF.IsProgressive`` for JPEG, ``Output.Frames`` and ``GIF.DelayTime`` (the first
  frame's, in seconds) for an animation (imgix's frame-selection and interval pages show
  these; ``Frames`` is null past ``animation.MAX_SOURCE_FRAMES``, where counting stops), and ``TIFF``/``Exif``
  dictionaries holding a fixed list of camera fields when the file has them.
- GPS and maker-note fields are never reported (they locate and identify people), and no
  field imgix would compute from pixels (nothing is decoded: the answer costs a header read).
- Values are JSON scalars: rationals become numbers (integers when whole), byte strings are
  dropped unless they are short ASCII, text is cut at ``MAX_TEXT`` characters, so a hostile
  source cannot make the answer large. Keys are sorted: equal sources give equal bytes.
"""

from __future__ import annotations

import io
from typing import Any

import orjson
from PIL import Image, ImageCms

from renderer import animation

__all__ = ["MAX_TEXT", "describe"]

MAX_TEXT = 256
_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "AVIF": "image/avif"}
_GRAY = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"}
_DEPTH = {"1": 1, "I": 32, "F": 32, "I;16": 16, "I;16B": 16, "I;16L": 16}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
# Exif IFD0 (TIFF) and Exif sub-IFD tags reported, by imgix's (ImageIO's) key.
_TIFF_TAGS = {
    0x010F: "Make", 0x0110: "Model", 0x0131: "Software", 0x0132: "DateTime", 0x0112: "Orientation",
    0x011A: "XResolution", 0x011B: "YResolution", 0x0128: "ResolutionUnit",
}
_EXIF_TAGS = {
    0x9003: "DateTimeOriginal", 0x9004: "DateTimeDigitized", 0x829A: "ExposureTime", 0x829D: "FNumber",
    0x8822: "ExposureProgram", 0x8827: "ISOSpeedRatings", 0x9204: "ExposureBiasValue", 0x9207: "MeteringMode",
    0x9209: "Flash", 0x920A: "FocalLength", 0xA405: "FocalLengthIn35mmFilm", 0xA001: "ColorSpace",
    0xA002: "PixelXDimension", 0xA003: "PixelYDimension", 0xA403: "WhiteBalance", 0xA434: "LensModel",
}
_EXIF_IFD = 0x8769
_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, ZeroDivisionError)


def describe(image: Image.Image, length: int, orientation: int) -> bytes:
    """The JSON document for the source ``image`` (opened, not decoded) of ``length`` bytes
    whose Exif orientation is ``orientation``."""
    info = image.info
    doc: dict[str, Any] = {
        "PixelWidth": image.width,
        "PixelHeight": image.height,
        "Orientation": orientation,
        "ColorModel": "Gray" if image.mode in _GRAY else {"CMYK": "CMYK", "LAB": "Lab"}.get(image.mode, "RGB"),
        "Depth": _DEPTH.get(image.mode, 8),
        "HasAlpha": image.mode in _ALPHA_MODES or "transparency" in info,
        "Content-Type": _MEDIA_TYPES.get(image.format or "", "application/octet-stream"),
        "Content-Length": str(length),
    }
    dpi = info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2:
        doc["DPIWidth"], doc["DPIHeight"] = _number(dpi[0]), _number(dpi[1])
    icc = info.get("icc_profile")
    if icc:
        name = _profile_name(icc)
        if name:
            doc["ProfileName"] = name
    if image.format == "JPEG":
        doc["JFIF"] = {"IsProgressive": bool(info.get("progressive"))}
    frames = _frames(image)
    if frames != 1:
        doc["Output"] = {"Frames": frames}
        if image.format == "GIF" and isinstance(info.get("duration"), (int, float)):
            doc["GIF"] = {"DelayTime": _number(info["duration"] / 1000)}
    tiff, exif = _exif(image)
    if tiff:
        doc["TIFF"] = tiff
    if exif:
        doc["Exif"] = exif
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def _frames(image: Image.Image) -> int | None:
    # Counted without decoding and only so far: past the limit the count is not reported.
    count = animation.count_frames(image, animation.MAX_SOURCE_FRAMES)
    return count if count <= animation.MAX_SOURCE_FRAMES else None


def _profile_name(icc: bytes) -> str | None:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = ImageCms.getProfileDescription(profile)
    except (ImageCms.PyCMSError, *_ERRORS):
        return None
    text = _text(name)
    return text.strip() if text else None


def _exif(image: Image.Image) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        exif = image.getexif()
        tiff = {key: exif.get(tag) for tag, key in _TIFF_TAGS.items()}
        sub = exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {}
        camera = {key: sub.get(tag) for tag, key in _EXIF_TAGS.items()}
    except _ERRORS:
        return {}, {}
    return _clean(tiff), _clean(camera)


def _clean(values: dict[str, object]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        scalar = _scalar(value)
        if scalar is not None:
            out[key] = scalar
    return out


def _scalar(value: object) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (tuple, list)):
        items = [_scalar(v) for v in value[:8]]
        return items if items and all(v is not None for v in items) else None
    if isinstance(value, (str, bytes)):
        return _text(value)
    try:
        return _number(float(value))  # type: ignore[arg-type]  # int, float, IFDRational
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _number(value: float) -> int | float | None:
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return int(value) if value.is_integer() and abs(value) < 2**53 else round(value, 6)


def _text(value: str | bytes) -> str | None:
    if isinstance(value, bytes):
        if not value.isascii():
            return None
        value = value.decode("ascii")
    value = value.replace("\x00", "").strip()
    # Control characters and lone surrogates would make the JSON unreadable or unencodable.
    value = "".join(ch for ch in value[:MAX_TEXT] if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF)
    return value or None
