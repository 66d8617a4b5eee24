"""Process accounting from /proc text, and the time a process tree used."""

from __future__ import annotations

import os

import pytest

from loadtest.cpu import (
    ProcStat,
    children,
    descendants,
    parse_stat,
    parse_status_kib,
    parse_steal_ticks,
    steal_pct,
    read_stat,
    rss_kib,
    steal_ticks,
    tree_delta,
    tree_ticks,
)


def stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int = 0, cstime: int = 0) -> str:
    # fields 3..17 of proc(5); the ones after comm that we do not read are zeros
    return (f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 "
            f"{utime} {stime} {cutime} {cstime} 20 0 1 0 100 1000 50 18446744073709551615")


def proc(pid: int, ppid: int, utime: int = 0, stime: int = 0, cutime: int = 0, cstime: int = 0) -> ProcStat:
    return ProcStat(pid, f"p{pid}", "S", ppid, utime, stime, cutime, cstime)


def test_parse_stat_finds_fields_after_a_comm_with_spaces_and_parentheses():
    stat = parse_stat(stat_line(4321, "we ird) (name", 17, utime=250, stime=40, cutime=7, cstime=3))
    assert (stat.pid, stat.comm, stat.ppid) == (4321, "we ird) (name", 17)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (250, 40, 7, 3)
    assert stat.own_ticks == 290 and stat.all_ticks == 300


@pytest.mark.parametrize("text", ["", "12 nocomm S 1", "12 (x) S 1 2 3"])
def test_parse_stat_refuses_what_is_not_a_stat_line(text):
    with pytest.raises(ValueError):
        parse_stat(text)


def test_kernel_threads_are_recognised_by_their_parent():
    assert proc(2, 0).is_kernel_thread and proc(30, 2).is_kernel_thread
    assert not proc(30, 1).is_kernel_thread


def test_parse_status_reads_kib_and_tolerates_absence():
    text = "Name:\tpython\nVmPeak:\t  300000 kB\nVmRSS:\t   51234 kB\nThreads:\t3\n"
    assert parse_status_kib(text) == 51234
    assert parse_status_kib(text, "VmPeak") == 300000
    assert parse_status_kib("Name:\tkthreadd\n") is None
    with pytest.raises(ValueError, match="expected kB"):
        parse_status_kib("VmRSS:\t12 MB\n")


def test_descendants_and_children_walk_the_tree():
    stats = {p.pid: p for p in [proc(1, 0), proc(10, 1), proc(11, 10), proc(12, 10), proc(13, 12), proc(20, 1)]}
    assert descendants(stats, 10) == {10, 11, 12, 13}
    assert descendants(stats, 99) == set()
    assert children(stats, 10) == [11, 12]
    assert tree_ticks({10: proc(10, 1, 5, 1), 11: proc(11, 10, 7, 2)}, [10, 11, 99]) == (12, 3)


def test_tree_delta_counts_growth_and_newborns_but_not_strangers():
    before = {1: proc(1, 0), 10: proc(10, 1, 100, 50), 11: proc(11, 10, 30, 10), 20: proc(20, 1, 5, 5)}
    after = {1: proc(1, 0), 10: proc(10, 1, 160, 70), 11: proc(11, 10, 45, 10), 12: proc(12, 10, 8, 2),
             20: proc(20, 1, 500, 500)}
    assert tree_delta(before, after, 10) == (60 + 15 + 8, 20 + 0 + 2)


def test_readers_see_this_process():
    stat = read_stat(os.getpid())
    assert stat is not None and stat.ppid == os.getppid()
    assert (rss_kib(os.getpid()) or 0) > 1000
    assert read_stat(2**22 + 12345) is None  # above pid_max: never a live process


def test_steal_is_the_eighth_value_of_the_all_cpu_line():
    text = ("cpu  4082675 21407 625805 3544028 14151 0 154989 56783 0 0\n"
            "cpu0 1747141 10011 286794 2089558 3313 0 83583 28434 0 0\n")
    assert parse_steal_ticks(text) == 56783
    # A kernel older than steal accounting prints fewer values: nothing was stolen that it saw.
    assert parse_steal_ticks("cpu  1 2 3 4 5 6 7\n") == 0
    with pytest.raises(ValueError):
        parse_steal_ticks("cpu0 1 2 3 4 5 6 7 8\n")


def test_steal_over_a_window_is_in_percent_of_one_core():
    from loadtest.cpu import CLOCK_TICKS

    # Two CPUs stolen for a whole 4 s window: 8 s of ticks, 200% of one core.
    assert steal_pct(1000, 1000 + 8 * CLOCK_TICKS, 4.0) == pytest.approx(200.0)
    assert steal_pct(1000, 1000 + CLOCK_TICKS // 10, 2.0) == pytest.approx(5.0)
    assert steal_pct(5, 5, 0.0) == 0.0  # an empty window steals nothing, rather than dividing by zero


def test_steal_of_this_machine_is_a_count_that_only_grows():
    first = steal_ticks()
    assert 0 <= first <= steal_ticks()
