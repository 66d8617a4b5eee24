"""Is the machine quiet? CPU used by processes that are not part of the benchmark.

The benchmark VM is shared: other sessions run tests and their own benchmarks on the
same two cores, and a run they disturb measures them, not us. So before a run we wait
(bounded) for a quiet moment, and after it we count what others used *during* it; a run
over the limit is marked disturbed and retried, and the summary leaves it out.

Rules of this module
--------------------
* "Foreign" = user-space processes outside ``exclude`` (our own process trees); kernel
  threads are left out (their softirq work is largely our own loopback traffic).
* A process that exits inside the window is still counted: its own and reaped-children
  time moves into its reaper's ``cutime``/``cstime`` when it is waited for (proc(5)), so
  the sum of own + reaped time over all foreign processes only grows by what they ran
  inside the window. (A child reaped by ignoring SIGCHLD leaves no trace: we under-count
  it, so a disturbed run may pass as clean; nothing is ever over-counted.)
* Limits are in percent of one core over the window. The pure function is tested; the
  sampler sleeps a bounded time.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping

from loadtest.cpu import CLOCK_TICKS, ProcStat, snapshot

__all__ = ["DEFAULT_LIMIT_PCT", "foreign_pct", "foreign_ticks", "sample_foreign_pct", "wait_for_quiet"]

# 5% of a core: the reference method's threshold. A 10 s run at ~100% of the proxy core
# tolerates half a second of someone else's work before its figure is thrown away.
DEFAULT_LIMIT_PCT = 5.0


def foreign_ticks(before: Mapping[int, ProcStat], after: Mapping[int, ProcStat], exclude: set[int]) -> int:
    """Clock ticks used between two snapshots by processes not in ``exclude``.

    Own + reaped-children time is conserved when a process exits and is reaped (it moves
    to the reaper), so the difference of the two sums is the time spent inside the window,
    whoever exited, and however deep the chain of reapers.
    """
    def total(stats: Mapping[int, ProcStat]) -> int:
        return sum(s.all_ticks for pid, s in stats.items() if pid not in exclude and not s.is_kernel_thread)

    return max(total(after) - total(before), 0)


def foreign_pct(before: Mapping[int, ProcStat], after: Mapping[int, ProcStat], exclude: set[int],
                seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"window must be positive, got {seconds}")
    return 100.0 * foreign_ticks(before, after, exclude) / CLOCK_TICKS / seconds


def sample_foreign_pct(ours: Callable[[Mapping[int, ProcStat]], set[int]], seconds: float = 1.0) -> float:
    """Foreign CPU over the next ``seconds``; ``ours`` names our pids in a snapshot."""
    before, started = snapshot(), time.monotonic()
    time.sleep(seconds)
    after, ended = snapshot(), time.monotonic()
    return foreign_pct(before, after, ours(before) | ours(after), ended - started)


def wait_for_quiet(ours: Callable[[Mapping[int, ProcStat]], set[int]], *, limit_pct: float,
                   max_wait_s: float, sample_s: float = 1.0) -> tuple[float, float]:
    """Sample until foreign CPU is under ``limit_pct`` or ``max_wait_s`` has passed.

    Returns (seconds waited, the last foreign figure); the caller decides what a
    still-busy machine means (the run's own figure is what marks it disturbed).
    """
    started = time.monotonic()
    while True:
        other = sample_foreign_pct(ours, sample_s)
        waited = time.monotonic() - started
        if other < limit_pct or waited >= max_wait_s:
            return waited, other
