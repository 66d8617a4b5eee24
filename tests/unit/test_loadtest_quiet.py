"""What other processes used during a window, from two /proc snapshots."""

from __future__ import annotations

import pytest

from loadtest.cpu import CLOCK_TICKS, ProcStat
from loadtest.quiet import foreign_pct, foreign_ticks


def proc(pid: int, ppid: int, own: int = 0, reaped: int = 0) -> ProcStat:
    return ProcStat(pid, f"p{pid}", "S", ppid, own, 0, reaped, 0)


def snap(*procs: ProcStat) -> dict[int, ProcStat]:
    return {p.pid: p for p in procs}


def test_our_processes_and_kernel_threads_are_not_foreign():
    before = snap(proc(1, 0), proc(2, 0), proc(30, 2, 10), proc(100, 1, 50), proc(200, 1, 0))
    after = snap(proc(1, 0), proc(2, 0), proc(30, 2, 90), proc(100, 1, 900), proc(200, 1, 7))
    assert foreign_ticks(before, after, exclude={100}) == 7


def test_a_process_born_in_the_window_counts_in_full():
    before = snap(proc(1, 0))
    after = snap(proc(1, 0), proc(300, 1, 12))
    assert foreign_ticks(before, after, exclude=set()) == 12


def test_a_child_reaped_in_the_window_counts_only_its_time_inside_it():
    # The child had used 40 ticks before the window and 15 inside; once reaped, its whole
    # 55 show up in the parent's reaped-children time.
    before = snap(proc(1, 0), proc(400, 1, own=5), proc(401, 400, own=40))
    after = snap(proc(1, 0), proc(400, 1, own=8, reaped=55))
    assert foreign_ticks(before, after, exclude=set()) == 3 + 15


def test_a_chain_that_exits_inside_the_window_counts_once():
    # 701 reaped 702 and then was reaped by 700: all of 702's and 701's earlier time shows
    # up in 700's reaped time and must not count as work done inside the window.
    before = snap(proc(1, 0), proc(700, 1, own=2), proc(701, 700, own=30), proc(702, 701, own=50))
    after = snap(proc(1, 0), proc(700, 1, own=2, reaped=30 + 4 + 50 + 6))
    assert foreign_ticks(before, after, exclude=set()) == 4 + 6


def test_our_own_reaped_children_stay_ours():
    before = snap(proc(1, 0), proc(500, 1, own=1), proc(501, 500, own=40))
    after = snap(proc(1, 0), proc(500, 1, own=1, reaped=60))
    assert foreign_ticks(before, after, exclude={500, 501}) == 0


def test_percent_of_a_core():
    before = snap(proc(1, 0), proc(600, 1, 0))
    after = snap(proc(1, 0), proc(600, 1, CLOCK_TICKS))  # one CPU-second
    assert foreign_pct(before, after, set(), 2.0) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        foreign_pct(before, after, set(), 0.0)
