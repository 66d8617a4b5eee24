"""The disk tier of the result cache: finished renders as files under one directory.

Rules:

- One file per render key, ``<dir>/<key[:2]>/<key>.pxr``: a fixed header (magic and
  format version, header length), a small JSON header (media type, fm, size, body length,
  xxh64 of the body) and the body. A file that does not parse or whose checksum does not
  match (a damaged disk, a foreign file) is a miss and is deleted.
- Writers never expose a partial file: each write goes to a temporary file in the same
  directory and is renamed over the final name (``os.replace`` is atomic on POSIX), so
  several renderer processes can share one directory; two writers of one key write equal
  bytes, so whichever rename lands last is fine. Temporary files older than
  ``STALE_TEMP_SECONDS`` (a writer that crashed) are removed on start-up.
- Byte-bounded, least recently used first: a hit touches the file's mtime, the index is
  ordered by it, and a put evicts the oldest entries until the total fits. The index is
  built from a directory scan at ``open()`` (so the cache survives a restart) and rescanned
  every ``RESCAN_SECONDS``, which is how one process learns about the others' files: the
  bound holds to within what other processes wrote since the last scan. A render larger
  than an eighth of the capacity is not kept, as in the memory tier.
- Every method blocks on the filesystem: the app calls them in a thread. The index is
  guarded by a lock; file I/O happens outside it.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import OrderedDict
from pathlib import Path

import orjson
import xxhash

from renderer.pipeline import Rendered

__all__ = ["DiskCache", "RESCAN_SECONDS", "STALE_TEMP_SECONDS"]

_MAGIC = b"PXR1"  # bump the digit when the record layout changes: old files become misses
_PREFIX = struct.Struct(">4sI")  # magic, header length
_SUFFIX = ".pxr"
_TEMP = ".tmp"
_MAX_HEADER = 4096
RESCAN_SECONDS = 60.0
STALE_TEMP_SECONDS = 600.0


class DiskCache:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("disk cache capacity must be >= 0 bytes")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._index: OrderedDict[str, int] = OrderedDict()  # key -> file size, oldest first
        self._lock = threading.Lock()
        self._scanned_at = 0.0

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def open(self) -> None:
        """Create the directory if needed and index what an earlier run left there."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._rescan(remove_stale=True)

    def get(self, key: str) -> Rendered | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:  # absent, or evicted by another process just now
            self._forget(key)
            return None
        rendered = _decode(data)
        if rendered is None:
            self._remove(key, path)
            return None
        try:
            os.utime(path)  # most recently used, for this process and every other
        except OSError:
            pass
        with self._lock:
            if key not in self._index:
                self.bytes += len(data)
            self._index[key] = len(data)
            self._index.move_to_end(key)
        return rendered

    def put(self, key: str, rendered: Rendered) -> bool:
        """Keep ``rendered``; False if it is too large to be worth a place (or capacity is 0)."""
        record = _encode(rendered)
        if len(record) > self.max_bytes // 8:
            return False
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}{_TEMP}")
        try:
            temp.write_bytes(record)
            os.replace(temp, path)
        except OSError:
            temp.unlink(missing_ok=True)
            return False  # a full or read-only disk degrades to a memory-only cache
        with self._lock:
            self.bytes += len(record) - self._index.pop(key, 0)
            self._index[key] = len(record)
            victims = self._evictions_locked()
        for victim in victims:
            self._path(victim).unlink(missing_ok=True)
        if time.monotonic() - self._scanned_at > RESCAN_SECONDS:
            self._rescan()
        return True

    def resize(self, max_bytes: int) -> None:
        """A new capacity (a SIGHUP); shrinking removes the least recently used files at once.
        Blocks on the filesystem: call it off the event loop."""
        if max_bytes < 0:
            raise ValueError("disk cache capacity must be >= 0 bytes")
        with self._lock:
            self.max_bytes = max_bytes
            victims = self._evictions_locked()
        for victim in victims:
            self._path(victim).unlink(missing_ok=True)

    def _evictions_locked(self) -> list[str]:
        victims = []
        while self.bytes > self.max_bytes and self._index:
            victim, size = self._index.popitem(last=False)
            self.bytes -= size
            self.evictions += 1
            victims.append(victim)
        return victims

    def _rescan(self, remove_stale: bool = False) -> None:
        found: list[tuple[float, str, int]] = []
        now = time.time()
        for shard in _subdirectories(self.directory):
            for entry in _entries(shard):
                name = entry.name
                try:
                    info = entry.stat()
                except OSError:
                    continue
                if name.endswith(_TEMP):
                    if remove_stale and now - info.st_mtime > STALE_TEMP_SECONDS:
                        Path(entry.path).unlink(missing_ok=True)
                elif name.endswith(_SUFFIX):
                    found.append((info.st_mtime, name[: -len(_SUFFIX)], info.st_size))
        found.sort()
        with self._lock:
            self._index = OrderedDict((key, size) for _, key, size in found)
            self.bytes = sum(size for _, _, size in found)
            self._scanned_at = time.monotonic()
            victims = self._evictions_locked()
        for victim in victims:
            self._path(victim).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        if len(key) < 3 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a render key: {key!r}")
        return self.directory / key[:2] / (key + _SUFFIX)

    def _forget(self, key: str) -> None:
        with self._lock:
            size = self._index.pop(key, None)
            if size is not None:
                self.bytes -= size

    def _remove(self, key: str, path: Path) -> None:
        self._forget(key)
        path.unlink(missing_ok=True)


def _encode(rendered: Rendered) -> bytes:
    header = orjson.dumps({
        "media_type": rendered.media_type,
        "fm": rendered.fm,
        "width": rendered.width,
        "height": rendered.height,
        "length": len(rendered.body),
        "xxh64": xxhash.xxh64_hexdigest(rendered.body),
    })
    return _PREFIX.pack(_MAGIC, len(header)) + header + rendered.body


def _decode(data: bytes) -> Rendered | None:
    if len(data) < _PREFIX.size:
        return None
    magic, header_length = _PREFIX.unpack_from(data)
    if magic != _MAGIC or header_length > _MAX_HEADER:
        return None
    start = _PREFIX.size + header_length
    try:
        header = orjson.loads(data[_PREFIX.size:start])
        body = data[start:]
        if len(body) != header["length"] or xxhash.xxh64_hexdigest(body) != header["xxh64"]:
            return None
        return Rendered(body, str(header["media_type"]), str(header["fm"]), int(header["width"]), int(header["height"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _subdirectories(directory: Path) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return [entry.path for entry in entries if len(entry.name) == 2 and entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _entries(shard: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(shard) as entries:
            return list(entries)
    except OSError:
        return []
