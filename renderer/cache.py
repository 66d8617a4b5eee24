"""A byte-bounded LRU of finished renders, keyed by render identity.

Rules: the key already says everything the bytes depend on (source path, size and mtime,
canonical spec, pipeline version; see ``renderer.app``), so entries never go stale: an
edited source gets a new key and its old renders simply age out. Capacity is counted in
body bytes plus a fixed per-entry overhead, so a flood of tiny renders cannot grow the
dict without bound. A render larger than an eighth of the capacity is not kept: one
huge image must not flush the whole working set. Capacity 0 disables the cache.
Not thread-safe: it lives on the event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Protocol, TypeVar

__all__ = ["ENTRY_OVERHEAD", "ResultCache"]

# Rough cost of the key string, the entry object and the dict slot, in bytes.
ENTRY_OVERHEAD = 256


class _Sized(Protocol):
    @property
    def body(self) -> bytes: ...


V = TypeVar("V", bound=_Sized)


class ResultCache(Generic[V]):
    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("cache capacity must be >= 0 bytes")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._entries: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def resize(self, max_bytes: int) -> None:
        """A new capacity (a SIGHUP); shrinking evicts the least recently used at once."""
        if max_bytes < 0:
            raise ValueError("cache capacity must be >= 0 bytes")
        self.max_bytes = max_bytes
        self._evict()

    def put(self, key: str, value: V) -> bool:
        """Keep ``value``; False if it is too large to be worth a place."""
        cost = _cost(value)
        if cost > self.max_bytes // 8:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= _cost(old)
        self._entries[key] = value
        self.bytes += cost
        self._evict()
        return True

    def _evict(self) -> None:
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= _cost(evicted)
            self.evictions += 1


def _cost(value: _Sized) -> int:
    return len(value.body) + ENTRY_OVERHEAD
