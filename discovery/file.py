"""The file membership source: a JSON or TOML member list, re-read when it changes.

For operators without Consul. The file is polled (its size, mtime and inode, so an
editor's write-and-rename is seen) and re-read at once when ``reload()`` is called,
which is what the balancer's SIGHUP handler does. Formats, by file extension:

JSON (any extension but ``.toml``), a list or an object with a ``members`` list::

    {"members": [{"id": "r1", "host": "10.0.0.1", "port": 8080, "weight": 2}]}

TOML (https://toml.io/en/v1.0.0#array-of-tables)::

    [[members]]
    id = "r1"
    host = "10.0.0.1"
    port = 8080
    weight = 2              # optional, default 1; 0 drains the member
    meta = { zone = "a" }   # optional, strings only

Rules: unknown keys are errors (a typo must not silently drop a setting); an empty
list is an error, not an instruction to empty the ring. A file that cannot be read or
parsed leaves the last good membership in place (static stability) and is reported in
``status()`` as stale, with the reason naming the file and the problem.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
import tomllib
from pathlib import Path
from typing import Any, Callable

from discovery.source import Publish, SourceStatus
from pixring.membership import Member, Membership, MembershipError

__all__ = ["FileSource", "MemberFileError", "parse_member_file"]

log = logging.getLogger("pixring.discovery.file")

_MEMBER_KEYS = {"id", "host", "port", "weight", "meta"}


class MemberFileError(ValueError):
    """A member file that cannot be used; the message names the file and the problem."""


def _member(item: Any, where: str) -> Member:
    if not isinstance(item, dict):
        raise MemberFileError(f"{where}: expected a table/object with id, host, port")
    unknown = sorted(set(item) - _MEMBER_KEYS)
    if unknown:
        raise MemberFileError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_MEMBER_KEYS))})")
    for key in ("id", "host", "port"):
        if key not in item:
            raise MemberFileError(f"{where}: missing {key!r}")
    if not isinstance(item["id"], str) or not isinstance(item["host"], str):
        raise MemberFileError(f"{where}: 'id' and 'host' must be strings")
    port = item["port"]
    if not isinstance(port, int) or isinstance(port, bool):
        raise MemberFileError(f"{where}: 'port' must be an integer, got {port!r}")
    weight = item.get("weight", 1.0)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight):
        raise MemberFileError(f"{where}: 'weight' must be a number, got {weight!r}")
    meta = item.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise MemberFileError(f"{where}: 'meta' must map strings to strings")
    try:
        return Member(id=item["id"], host=item["host"], port=port, weight=float(weight), meta=dict(meta))
    except MembershipError as exc:
        raise MemberFileError(f"{where}: {exc}") from None


def parse_member_file(text: str, *, toml: bool, name: str = "member file") -> Membership:
    """The membership a file's text describes; any problem raises ``MemberFileError``."""
    try:
        document: Any = tomllib.loads(text) if toml else json.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise MemberFileError(f"{name}: not valid {'TOML' if toml else 'JSON'} ({exc})") from None
    if isinstance(document, dict):
        extra = sorted(set(document) - {"members"})
        if extra:
            raise MemberFileError(f"{name}: unknown top-level key(s) {', '.join(extra)} (expected 'members')")
        items = document.get("members")
    else:
        items = document
    if not isinstance(items, list):
        raise MemberFileError(f"{name}: expected a list of members (or a 'members' list)")
    if not items:
        raise MemberFileError(f"{name}: lists no members; refusing to empty the ring")
    members = [_member(item, f"{name}: members[{i}]") for i, item in enumerate(items)]
    try:
        return Membership.of(members, source="file")
    except MembershipError as exc:
        raise MemberFileError(f"{name}: {exc}") from None


class FileSource:
    """Publishes the members listed in a file, and again whenever its content changes."""

    kind = "file"

    def __init__(
        self, path: str | os.PathLike[str], *, poll_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (math.isfinite(poll_interval_s) and poll_interval_s > 0):
            raise ValueError(f"file poll_interval_s={poll_interval_s!r} must be > 0")
        self.path = Path(path)
        self.poll_interval_s = poll_interval_s
        self._toml = self.path.suffix.lower() == ".toml"
        self._clock = clock
        self._wake = asyncio.Event()
        self._signature: tuple[int, int, int] | None = None
        self._current: Membership | None = None
        self._error = ""
        self._last_ok: float | None = None

    def reload(self) -> None:
        """Re-read the file now, changed or not (wire this to SIGHUP)."""
        self._signature = None
        self._wake.set()

    def status(self) -> SourceStatus:
        age = None if self._last_ok is None else max(0.0, self._clock() - self._last_ok)
        return SourceStatus(
            kind=self.kind,
            ready=self._current is not None,
            stale=self._current is not None and bool(self._error),
            detail=self._error,
            last_success_age_s=age,
        )

    async def run(self, publish: Publish) -> None:
        while True:
            self._poll(publish)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except TimeoutError:
                pass

    def _poll(self, publish: Publish) -> None:
        try:
            stat = self.path.stat()
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if signature != self._signature:
                # A small file: reading it inline costs less than a thread hop.
                membership = parse_member_file(self.path.read_text(encoding="utf-8"), toml=self._toml, name=str(self.path))
                self._signature = signature
                if membership != self._current:
                    self._current = membership  # first: the state written as the table is swapped in says ready
                    publish(membership)
                    log.info("file %s: publishing %d members", self.path, len(membership))
        except (OSError, UnicodeDecodeError, MemberFileError) as exc:
            message = str(exc) if isinstance(exc, MemberFileError) else f"{self.path}: {exc}"
            if message != self._error:
                log.warning("%s; keeping the last good membership", message)
            self._error = message
            return
        if self._error:
            log.warning("file %s: readable again", self.path)
        self._error = ""
        self._last_ok = self._clock()
