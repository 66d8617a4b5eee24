"""The result cache (byte-bounded LRU) and single-flight."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from renderer.cache import ENTRY_OVERHEAD, ResultCache
from renderer.singleflight import SingleFlight


@dataclass(frozen=True)
class Item:
    body: bytes


def test_lru_evicts_least_recently_used_within_the_byte_budget() -> None:
    cache: ResultCache[Item] = ResultCache(max_bytes=8 * (100 + ENTRY_OVERHEAD))
    for key in "abcdefgh":
        assert cache.put(key, Item(b"x" * 100))
    assert len(cache) == 8
    cache.get("a")  # a is now the most recent
    cache.put("i", Item(b"x" * 100))
    assert "a" in cache and "b" not in cache
    assert cache.bytes <= cache.max_bytes
    assert cache.evictions == 1


def test_oversized_renders_are_not_kept_and_zero_disables() -> None:
    cache: ResultCache[Item] = ResultCache(max_bytes=8000)
    assert not cache.put("huge", Item(b"x" * 1001))  # over an eighth of the capacity
    assert cache.get("huge") is None
    off: ResultCache[Item] = ResultCache(0)
    assert not off.put("k", Item(b""))
    assert len(off) == 0 and off.bytes == 0


def test_replacing_a_key_keeps_the_accounting_right() -> None:
    cache: ResultCache[Item] = ResultCache(10_000)
    cache.put("k", Item(b"x" * 10))
    cache.put("k", Item(b"x" * 20))
    assert cache.bytes == 20 + ENTRY_OVERHEAD and len(cache) == 1


async def test_single_flight_runs_once_for_concurrent_callers() -> None:
    flights: SingleFlight[int] = SingleFlight()
    gate = asyncio.Event()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    callers = [asyncio.ensure_future(flights.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    assert len(flights) == 1
    gate.set()
    results = await asyncio.gather(*callers)
    assert calls == 1
    assert [value for value, _ in results] == [42] * 5
    assert sum(led for _, led in results) == 1
    assert len(flights) == 0


async def test_single_flight_shares_errors_and_survives_a_cancelled_caller() -> None:
    flights: SingleFlight[int] = SingleFlight()
    gate = asyncio.Event()

    async def failing() -> int:
        await gate.wait()
        raise ValueError("broken source")

    first = asyncio.ensure_future(flights.run("k", failing))
    second = asyncio.ensure_future(flights.run("k", failing))
    await asyncio.sleep(0)
    first.cancel()  # the leader's client went away: the work goes on for the other
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(ValueError, match="broken source"):
        await second
    assert len(flights) == 0  # and the key is free for a retry
