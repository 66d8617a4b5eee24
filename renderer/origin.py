"""Origins, and the local-directory one: a URL path -> a source file certainly inside the root.

An origin is anything with the ``Origin`` interface (async ``source``/``fetch``/``close``):
this directory origin, or ``renderer.http_origin.HttpOrigin``. ``Source`` is what an origin
says about one source image: its name, its *version* (what changes when its bytes do) and,
where known, its modification time and size. Its ``identity`` (name + version) is part of
every render key.

Rules of the directory origin (the renderer serves files named by strangers, so this
module is the fence):

- The path arrives still percent-encoded (the raw request target) and is decoded exactly
  once here, as strict UTF-8; a bad escape or bad UTF-8 is a 400. Decoding once means
  ``%2e%2e`` is checked as the ``..`` it becomes, and ``%252e`` stays a harmless name.
- After decoding: NUL, other control characters, a backslash, a ``.`` or ``..`` segment, or
  an empty path are 400s. The path is always taken relative to the root (a leading ``/`` is
  the URL's, never the filesystem's).
- Then the real path is resolved (symlinks followed) and must be inside the resolved root
  (``Path.resolve`` + ``is_relative_to``): a symlink out of the root is as missing as a
  file that does not exist (404), so the answer says nothing about what lies outside.
- Missing files and directories are 404. A file larger than ``max_bytes`` is 413, decided
  from ``stat`` before a byte is read; the read itself refuses to return more.
- A file's version is its size and mtime (ns). An edit in place changes the mtime, so
  renders of the old bytes are never served for the new.

``locate``/``read`` block on the filesystem; ``source``/``fetch`` are the same in a thread.
"""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from renderer.errors import BadPath, SourceNotFound, SourceTooLarge

__all__ = ["DEFAULT_MAX_SOURCE_BYTES", "LocalOrigin", "Origin", "Source", "decode_path"]

DEFAULT_MAX_SOURCE_BYTES = 64 * 1024 * 1024
_MAX_PATH_CHARS = 1024  # PATH_MAX is 4096; no real image library nests this deep


@dataclass(frozen=True, slots=True)
class Source:
    """A located source image: where it is and the identity its renders are cached under."""

    name: str  # the decoded relative path as requested, '/'-separated
    version: str  # changes whenever the bytes do: size+mtime, or the HTTP validators
    size: int | None = None  # bytes, when known before reading
    modified: float | None = None  # Unix seconds, for Last-Modified, when known
    path: Path | None = None  # a directory origin's file: absolute, resolved, inside the root
    url: str | None = None  # an HTTP origin's URL

    @property
    def identity(self) -> str:
        return f"{self.name}\x00{self.version}"


class Origin(Protocol):
    """Where source images come from."""

    async def source(self, name: str) -> Source:
        """The source named by a ``decode_path`` name: SourceNotFound, SourceTooLarge..."""
        ...

    async def fetch(self, source: Source) -> bytes:
        """Its bytes, never more than the origin's byte limit."""
        ...

    async def close(self) -> None: ...


def decode_path(raw_path: str) -> str:
    """The relative source name for a raw (percent-encoded) URL path; BadPath if unusable."""
    if len(raw_path) > _MAX_PATH_CHARS * 3:
        raise BadPath("the path is too long")
    try:
        decoded = unquote(raw_path, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadPath("the path is not valid UTF-8 once percent-decoded") from None
    if "%" in raw_path and _has_bad_escape(raw_path):
        raise BadPath("the path has an invalid percent-escape")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise BadPath("the path contains a control character (NUL, newline, ...)")
    if "\\" in decoded:
        raise BadPath("the path contains a backslash")
    name = decoded.lstrip("/")
    if not name:
        raise BadPath("the path names no file")
    segments = name.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise BadPath("the path contains a '.' or '..' segment")
    if len(name) > _MAX_PATH_CHARS:
        raise BadPath("the path is too long")
    # Empty segments (a//b) are what the filesystem would collapse anyway.
    return "/".join(segment for segment in segments if segment)


class LocalOrigin:
    """Sources from one directory tree."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_SOURCE_BYTES) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"origin {root} is not a directory")
        self.max_bytes = max_bytes

    def locate(self, name: str) -> Source:
        """The source for a name from ``decode_path``: SourceNotFound / SourceTooLarge."""
        candidate = self.root / name
        try:
            resolved = candidate.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise SourceNotFound(f"no source image at /{name}") from None
        except (OSError, RuntimeError):  # symlink loop, name too long, permission
            raise SourceNotFound(f"no source image at /{name}") from None
        if not resolved.is_relative_to(self.root):
            raise SourceNotFound(f"no source image at /{name}")
        try:
            info = resolved.stat()
        except OSError:
            raise SourceNotFound(f"no source image at /{name}") from None
        if not stat.S_ISREG(info.st_mode):
            raise SourceNotFound(f"no source image at /{name}")
        if info.st_size > self.max_bytes:
            raise SourceTooLarge(
                f"the source is {info.st_size} bytes; the limit is {self.max_bytes} bytes"
            )
        return Source(
            name=name,
            version=f"{info.st_size}:{info.st_mtime_ns}",
            size=info.st_size,
            modified=info.st_mtime_ns / 1e9,
            path=resolved,
        )

    def read(self, source: Source, limit: int | None = None) -> bytes:
        """The bytes of a located source, never more than ``max_bytes``; with ``limit``,
        only its first ``limit`` bytes (a header, to plan a render)."""
        assert source.path is not None, "not a source of a directory origin"
        try:
            with open(source.path, "rb", opener=_no_follow_opener) as handle:
                if limit is not None and limit <= self.max_bytes:
                    return handle.read(limit)
                data = handle.read(self.max_bytes + 1)
        except FileNotFoundError:
            raise SourceNotFound(f"no source image at /{source.name}") from None
        except OSError:
            raise SourceNotFound(f"no source image at /{source.name}") from None
        if len(data) > self.max_bytes:
            raise SourceTooLarge(f"the source is larger than the limit of {self.max_bytes} bytes")
        return data

    async def source(self, name: str) -> Source:
        return await asyncio.to_thread(self.locate, name)

    async def fetch(self, source: Source) -> bytes:
        return await asyncio.to_thread(self.read, source)

    async def close(self) -> None:
        pass


def _no_follow_opener(path: str, flags: int) -> int:
    # ``path`` is already resolved; refusing a symlink here closes the window in which one
    # could be swapped in between locate() and read().
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


def _has_bad_escape(raw: str) -> bool:
    index = raw.find("%")
    while index != -1:
        pair = raw[index + 1 : index + 3]
        if len(pair) != 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            return True
        index = raw.find("%", index + 3)
    return False
