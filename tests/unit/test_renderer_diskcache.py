"""The disk tier: round trip, LRU within the byte budget, restart, damage, concurrent writers."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from renderer import diskcache
from renderer.diskcache import DiskCache
from renderer.pipeline import Rendered


def key(n: int) -> str:
    return f"{n:032x}"


def item(n: int, size: int = 1000) -> Rendered:
    return Rendered(bytes([n % 256]) * size, "image/webp", "webp", 10 + n, 20)


def record_size(cache: DiskCache) -> int:
    cache.put(key(999), item(999))
    size = cache.bytes
    cache._remove(key(999), cache._path(key(999)))
    return size


def test_round_trip_and_restart(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "cache", 1_000_000)
    cache.open()
    assert cache.get(key(1)) is None
    assert cache.put(key(1), item(1))
    assert cache.get(key(1)) == item(1)
    again = DiskCache(tmp_path / "cache", 1_000_000)  # a new process, after a restart
    again.open()
    assert key(1) in again and again.bytes == cache.bytes
    assert again.get(key(1)) == item(1)


def test_least_recently_used_goes_first(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 1)  # sized below
    cache.open()
    one = record_size(DiskCache(tmp_path / "probe", 1_000_000))
    cache.max_bytes = 8 * one + 10  # eight records, and each is at most an eighth of that
    for n in range(8):
        assert cache.put(key(n), item(n))
    assert cache.get(key(0)) is not None  # 0 is now the most recently used
    cache.put(key(8), item(8))
    assert key(0) in cache and key(1) not in cache
    assert not cache._path(key(1)).exists()
    assert cache.bytes <= cache.max_bytes and cache.evictions == 1


def test_recency_survives_a_restart(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 1_000_000)
    cache.open()
    for n in range(3):
        cache.put(key(n), item(n))
        os.utime(cache._path(key(n)), (1_000_000 + n, 1_000_000 + n))  # distinct mtimes
    os.utime(cache._path(key(0)), (2_000_000, 2_000_000))  # 0 used last
    again = DiskCache(tmp_path, 1_000_000)
    again.open()
    assert list(again._index) == [key(1), key(2), key(0)]


def test_too_large_or_disabled_is_not_kept(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 8000)
    cache.open()
    assert not cache.put(key(1), item(1, size=2000))  # more than an eighth of the capacity
    assert cache.put(key(2), item(2, size=500))
    disabled = DiskCache(tmp_path / "off", 0)
    disabled.open()
    assert not disabled.put(key(3), item(3, size=1))


@pytest.mark.parametrize("damage", ["truncate", "flip-a-byte", "garbage", "empty"])
def test_a_damaged_file_is_a_miss_and_is_removed(tmp_path: Path, damage: str) -> None:
    cache = DiskCache(tmp_path, 1_000_000)
    cache.open()
    cache.put(key(5), item(5))
    path = cache._path(key(5))
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:-10]
    elif damage == "flip-a-byte":
        data[-1] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(b"not a cache record at all")
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert cache.get(key(5)) is None
    assert not path.exists() and key(5) not in cache


def test_stale_temporary_files_are_cleaned_and_fresh_ones_kept(tmp_path: Path) -> None:
    shard = tmp_path / "ab"
    shard.mkdir()
    stale, fresh = shard / ".abc.1.2.tmp", shard / ".abd.1.3.tmp"
    stale.write_bytes(b"half a record")
    fresh.write_bytes(b"being written right now")
    old = 1_000_000
    os.utime(stale, (old, old))
    DiskCache(tmp_path, 1_000_000).open()
    assert not stale.exists() and fresh.exists()


def test_concurrent_writers_never_expose_a_partial_file(tmp_path: Path) -> None:
    writers = [DiskCache(tmp_path, 50_000_000) for _ in range(4)]  # as four processes would
    for cache in writers:
        cache.open()
    reader = writers[0]
    big = Rendered(os.urandom(300_000), "image/png", "png", 1, 1)
    failures: list[str] = []
    stop = threading.Event()

    def write(cache: DiskCache) -> None:
        for _ in range(20):
            cache.put(key(7), big)

    def read() -> None:
        while not stop.is_set():
            found = reader.get(key(7))
            if found is not None and found != big:
                failures.append("a partial or mixed record was read")

    threads = [threading.Thread(target=write, args=(c,)) for c in writers]
    watcher = threading.Thread(target=read)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert not failures
    assert reader.get(key(7)) == big
    assert not list(tmp_path.glob("*/*.tmp"))


def test_another_process_files_are_learned_on_rescan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine, theirs = DiskCache(tmp_path, 1_000_000), DiskCache(tmp_path, 1_000_000)
    mine.open()
    theirs.open()
    theirs.put(key(1), item(1))
    assert key(1) not in mine  # not seen yet...
    assert mine.get(key(1)) == item(1)  # ...but served, and now known
    theirs.put(key(2), item(2))
    monkeypatch.setattr(diskcache, "RESCAN_SECONDS", 0.0)
    mine.put(key(3), item(3))  # a put past the rescan interval re-reads the directory
    assert {key(1), key(2), key(3)} <= set(mine._index)
    assert mine.bytes == sum(p.stat().st_size for p in tmp_path.glob("*/*.pxr"))


def test_keys_are_checked(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 1000)
    with pytest.raises(ValueError):
        cache.get("../../etc/passwd")
