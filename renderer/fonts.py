"""Fonts for ``txt``: Pillow's built-in font by default, or a font file the host has.

https://docs.imgix.com/apis/rendering/text/text-font. Rules:

- The default font (no ``txt-font``, or a name this host cannot match) is Pillow's built-in
  scalable font, ``ImageFont.load_default(size=...)`` (Aileron Regular, embedded in Pillow,
  drawn by FreeType): every host with the same Pillow draws the same glyphs, whatever fonts
  it has installed. imgix's default is Helvetica Neue, which is not free to ship.
- ``txt-font`` is imgix's form: a family name or a CSS category (``serif``, ``sans-serif``,
  ``monospace``, ``cursive``, ``fantasy``), then optional ``bold``/``italic`` after commas
  (``sans-serif,bold,italic``). The name is matched against the font files under
  ``FONT_DIRS`` by their file names, compared without case, spaces, hyphens or underscores:
  ``DejaVu Sans,bold``, ``DejaVuSans-Bold`` and ``dejavusans,bold`` all pick
  ``DejaVuSans-Bold.ttf``. Italic also matches ``Oblique`` files; a plain name also matches
  ``-Regular``/``-Book``/``-Roman`` files. The CSS categories try DejaVu, Liberation and Noto
  families in that order; ``cursive`` and ``fantasy`` have no free equivalent and use the
  default. No match: the default font (imgix does the same for an unknown name).
- The font directories are listed once per process (at most ``MAX_FONT_FILES`` files, in
  sorted order, so the same files always give the same choice); loaded fonts are cached.
  A render's bytes therefore depend on the host's font files when ``txt-font`` names one:
  give every renderer of a fleet the same fonts, or the same URL renders differently on
  different nodes (the render key does not name font files).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

__all__ = ["FONT_DIRS", "MAX_FONT_FILES", "default_font", "font_files", "resolve_font"]

FONT_DIRS: tuple[Path, ...] = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
MAX_FONT_FILES = 10_000
_EXTENSIONS = (".ttf", ".otf", ".ttc")
_CATEGORIES: dict[str, tuple[str, ...]] = {
    "sans-serif": ("DejaVuSans", "LiberationSans", "NotoSans"),
    "serif": ("DejaVuSerif", "LiberationSerif", "NotoSerif"),
    "monospace": ("DejaVuSansMono", "LiberationMono", "NotoSansMono"),
    "cursive": (),
    "fantasy": (),
}
_PLAIN = ("", "regular", "book", "roman")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


@lru_cache(maxsize=1)
def font_files(directories: tuple[Path, ...] = FONT_DIRS) -> dict[str, Path]:
    """Normalized file stem -> font file, the first in sorted order winning."""
    found: list[Path] = []
    for directory in directories:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            found.extend(Path(root) / name for name in sorted(files) if name.lower().endswith(_EXTENSIONS))
            if len(found) >= MAX_FONT_FILES:
                break
    index: dict[str, Path] = {}
    for path in found[:MAX_FONT_FILES]:
        index.setdefault(_key(path.stem), path)
    return index


@lru_cache(maxsize=64)
def default_font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def resolve_font(name: str | None, size: int, directories: tuple[Path, ...] = FONT_DIRS) -> Font:
    """The font ``txt-font=name`` asks for at ``size`` pixels; the default when unmatched."""
    path = _match(name, font_files(directories)) if name else None
    if path is None:
        return default_font(size)
    return _load(str(path), size)


@lru_cache(maxsize=64)
def _load(path: str, size: int) -> Font:
    try:
        return ImageFont.truetype(path, size)
    except (OSError, ValueError):  # an unreadable or broken file: never fail the render
        return default_font(size)


def _match(name: str, index: dict[str, Path]) -> Path | None:
    parts = [part.strip() for part in name.split(",")]
    family, styles = parts[0], {part.lower() for part in parts[1:]}
    bold, italic = "bold" in styles, "italic" in styles
    if bold and italic:
        suffixes: tuple[str, ...] = ("bolditalic", "boldoblique")
    elif bold:
        suffixes = ("bold",)
    elif italic:
        suffixes = ("italic", "oblique")
    else:
        suffixes = _PLAIN
    families = _CATEGORIES.get(family.lower(), (family,))
    for candidate in families:
        for suffix in suffixes:
            path = index.get(_key(candidate) + suffix)
            if path is not None:
                return path
    return None
