"""Render steering's table, render counts and check (balancer.placement), on real shared memory."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys

import pytest

from balancer.headers import answer_rendered
from balancer.placement import (
    CHECK_MIN,
    CHECK_WINDOW,
    COLUMNS,
    ROWS,
    Placement,
    clear_row,
    region_bytes,
    shared_region,
)

SLOTS = 1024


def region() -> mmap.mmap:
    return mmap.mmap(-1, region_bytes(SLOTS))


def fields(*pairs: tuple[bytes, bytes]) -> list[bytes]:
    """End-to-end fields in balancer.headers' layout: name, ": ", value, CRLF."""
    out: list[bytes] = []
    for name, value in pairs:
        out += [name, b": ", value, b"\r\n"]
    return out


def steering_on(p: Placement) -> Placement:
    for _ in range(CHECK_MIN):
        p.checked(1)
    assert p.steering
    return p


def test_an_unknown_key_has_no_rank_and_a_placed_one_reads_back():
    p = Placement(region(), SLOTS, 0)
    h = 0x1234_5678_9ABC_DEF0
    assert p.rank(h) == -1
    p.place(h, 0)
    assert p.rank(h) == 0
    p.place(h, 1)
    assert p.rank(h) == 1


def test_a_key_sharing_a_slot_is_not_taken_for_another_and_takes_the_slot_over():
    p = Placement(region(), SLOTS, 0)
    a = 0xAAAA_0000_0000_0005
    b = 0xBBBB_0000_0000_0005  # same low bits: the same slot, another tag
    p.place(a, 1)
    assert p.rank(b) == -1
    p.place(b, 0)
    assert p.rank(b) == 0
    assert p.rank(a) == -1  # forgotten: it looks new again


def test_every_64_bit_hash_round_trips():
    p = Placement(region(), SLOTS, 0)
    for h in (0, 1, 2**63, 2**64 - 1, 0xFF, 0x100):
        p.place(h, 2)
        assert p.rank(h) == 2, hex(h)


def test_two_workers_share_the_table_and_each_counts_its_own_renders():
    shared = region()
    one, two = Placement(shared, SLOTS, 0), Placement(shared, SLOTS, 1)
    one.place(42, 1)
    assert two.rank(42) == 1
    one.render_started("r1")
    two.render_started("r1")
    two.render_started("r2")
    assert one.renders("r1") == two.renders("r1") == 2
    assert one.renders("r2") == 1
    one.render_finished("r1")
    assert two.renders("r1") == 1
    one.render_finished("r1")  # a finish without a start never goes below zero
    assert two.renders("r1") == 1


def test_a_worker_starting_at_a_row_clears_what_its_predecessor_left():
    shared = region()
    dead = Placement(shared, SLOTS, 3)
    dead.render_started("r1")
    dead.render_started("r1")
    assert dead.renders("r1") == 2
    Placement(shared, SLOTS, 3 + ROWS)  # the same row
    assert dead.renders("r1") == 0
    dead.render_started("r1")
    clear_row(shared, SLOTS, 3)  # as the supervisor does when a worker exits
    assert dead.renders("r1") == 0


def test_steering_waits_for_the_check_then_moves_only_off_a_rendering_owner():
    p = Placement(region(), SLOTS, 0)
    p.render_started("r1")
    assert not p.steers("r1", "r2")  # nothing checked yet
    steering_on(p)
    assert p.steers("r1", "r2")
    assert not p.steers("r2", "r1")  # the owner is idle
    p.render_started("r2")
    assert not p.steers("r1", "r2")  # the second is as busy
    p.render_finished("r1")
    p.render_finished("r2")
    assert not p.steers("r1", "r2")


def test_steering_stops_when_new_keys_answer_as_hits_and_comes_back():
    p = steering_on(Placement(region(), SLOTS, 0))
    for _ in range(CHECK_MIN):  # a restarted balancer: every key looks new but is cached
        p.checked(0)
    assert not p.steering
    for _ in range(CHECK_WINDOW):
        p.checked(1)
    assert p.steering
    p.checked(-1)  # an answer without the header says nothing
    assert p.steering


def test_the_check_is_a_bounded_window():
    p = Placement(region(), SLOTS, 0)
    for _ in range(10 * CHECK_WINDOW):
        p.checked(0)
    assert p.unknown_answers < CHECK_WINDOW
    assert not p.steering


@pytest.mark.parametrize("pairs, expected", [
    (((b"X-Render-Cache", b"miss"),), 1),
    (((b"x-render-cache", b"HIT"),), 0),
    (((b"X-Render-Cache", b"hit-disk"),), 0),
    (((b"Content-Type", b"image/webp"),), -1),
    ((), -1),
])
def test_a_nodes_answer_says_whether_it_rendered(pairs, expected):
    assert answer_rendered(fields(*pairs), b"x-render-cache") == expected


def test_rfc_9211_cache_status_is_read_the_same_way():
    assert answer_rendered(fields((b"Cache-Status", b"node; fwd=miss; stored")), b"cache-status") == 1
    assert answer_rendered(fields((b"Cache-Status", b"node; hit")), b"cache-status") == 0


def test_a_table_size_that_is_not_a_power_of_two_or_a_short_region_is_refused():
    with pytest.raises(ValueError, match="power of two"):
        Placement(region(), 1000, 0)
    with pytest.raises(ValueError, match="needs"):
        Placement(bytearray(100), SLOTS, 0)


def test_memory_is_fixed_by_the_table_size():
    assert region_bytes(1 << 20) == 8 * (1 << 20) + 4 * ROWS * COLUMNS


_CHILD = """
import mmap, sys
from balancer.placement import Placement, region_bytes
fd, slots = int(sys.argv[1]), int(sys.argv[2])
p = Placement(mmap.mmap(fd, region_bytes(slots)), slots, 1)
assert p.rank(7) == 1, p.rank(7)
p.place(99, 0)
p.render_started("r3")
"""


def test_a_worker_process_maps_the_supervisors_memory():
    fd, mine = shared_region(SLOTS)
    try:
        supervisor = Placement(mine, SLOTS, 0)
        supervisor.place(7, 1)
        subprocess.run([sys.executable, "-c", _CHILD, str(fd), str(SLOTS)], pass_fds=(fd,), check=True,
                       timeout=60)
        assert supervisor.rank(99) == 0
        assert supervisor.renders("r3") == 1
    finally:
        os.close(fd)
