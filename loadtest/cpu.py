"""CPU and memory accounting of process trees, from /proc.

Rules of this module
--------------------
* A server's cost is the CPU time of its whole process *tree* (nginx master + worker, the
  pixring supervisor + its workers): utime + stime from ``/proc/<pid>/stat`` (proc(5),
  fields 14-17), in clock ticks of ``SC_CLK_TCK``. The kernel derives these from the
  precise per-task runtime, so over seconds they are exact to a tick; the tick-sampled
  busy counters of ``/proc/stat`` are not used (they are badly wrong at low load on VMs).
* Per-CPU busy time comes from cpuidle residency
  (``/sys/devices/system/cpu/cpuN/cpuidle/state*/time``, microseconds; kernel docs
  admin-guide/pm/cpuidle.rst) and is a diagnostic only.
* Memory is ``VmRSS`` of ``/proc/<pid>/status`` (proc(5)), in KiB.
* Parsing is pure (text in, values out) and tested; the readers are thin and tolerate a
  process that exits between listing and reading (they skip it).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Iterable, Mapping

__all__ = [
    "CLOCK_TICKS",
    "ProcStat",
    "children",
    "cpu_idle_us",
    "descendants",
    "parse_stat",
    "parse_status_kib",
    "read_stat",
    "rss_kib",
    "snapshot",
    "tree_delta",
    "tree_ticks",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KERNEL_THREADS_PARENT = 2  # kthreadd; every kernel thread is its child


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int

    @property
    def own_ticks(self) -> int:
        return self.utime + self.stime

    @property
    def all_ticks(self) -> int:
        """Own time plus the time of reaped children (which moves here when they exit)."""
        return self.utime + self.stime + self.cutime + self.cstime

    @property
    def is_kernel_thread(self) -> bool:
        return self.pid == KERNEL_THREADS_PARENT or self.ppid == KERNEL_THREADS_PARENT


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line. ``comm`` may hold spaces and parentheses, so the
    fields after it are found from the *last* ``)``."""
    open_paren, close_paren = text.find("("), text.rfind(")")
    if open_paren < 0 or close_paren < open_paren:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    rest = text[close_paren + 2:].split()
    if len(rest) < 15:
        raise ValueError(f"/proc/<pid>/stat line too short: {text[:80]!r}")
    # rest[0] is field 3 (state); utime..cstime are fields 14..17.
    return ProcStat(
        pid=int(text[:open_paren]),
        comm=text[open_paren + 1:close_paren],
        state=rest[0],
        ppid=int(rest[1]),
        utime=int(rest[11]),
        stime=int(rest[12]),
        cutime=int(rest[13]),
        cstime=int(rest[14]),
    )


def parse_status_kib(text: str, field: str = "VmRSS") -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status``; None when absent (kernel threads, zombies)."""
    prefix = field + ":"
    for line in text.splitlines():
        if line.startswith(prefix):
            value, _, unit = line[len(prefix):].strip().partition(" ")
            if unit.strip() != "kB":
                raise ValueError(f"{field} is in {unit!r}, expected kB")
            return int(value)
    return None


def descendants(stats: Mapping[int, ProcStat], root: int) -> set[int]:
    """``root`` and every process below it (empty when ``root`` is not in ``stats``)."""
    if root not in stats:
        return set()
    kids: dict[int, list[int]] = {}
    for stat in stats.values():
        kids.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:  # a pid cycle cannot happen in /proc, but a bad snapshot must not hang us
            continue
        found.add(pid)
        todo.extend(kids.get(pid, ()))
    return found


def children(stats: Mapping[int, ProcStat], parent: int) -> list[int]:
    return sorted(s.pid for s in stats.values() if s.ppid == parent)


def tree_ticks(stats: Mapping[int, ProcStat], pids: Iterable[int]) -> tuple[int, int]:
    """(utime, stime) summed over ``pids`` present in ``stats``."""
    user = system = 0
    for pid in pids:
        stat = stats.get(pid)
        if stat is not None:
            user += stat.utime
            system += stat.stime
    return user, system


def tree_delta(before: Mapping[int, ProcStat], after: Mapping[int, ProcStat], root: int) -> tuple[int, int]:
    """(utime, stime) ticks the tree under ``root`` used between two snapshots.

    A process born in between counts in full; one that exited in between is lost (a
    server whose worker dies mid-run is reported as such, not measured).
    """
    user = system = 0
    for pid in descendants(after, root):
        new, old = after[pid], before.get(pid)
        user += new.utime - (old.utime if old is not None else 0)
        system += new.stime - (old.stime if old is not None else 0)
    return user, system


def read_stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_stat(f.read())
    except (OSError, ValueError):
        return None


def snapshot() -> dict[int, ProcStat]:
    """Every process visible in /proc right now."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return parse_status_kib(f.read())
    except OSError:
        return None


def parse_steal_ticks(text: str) -> int:
    """The ``steal`` field of /proc/stat's all-CPU line: clock ticks the hypervisor ran
    someone else while this machine's CPUs wanted to run (proc(5), the 8th value)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = line.split()[1:]
            return int(values[7]) if len(values) > 7 else 0
    raise ValueError("no all-CPU line in /proc/stat")


def steal_ticks() -> int:
    """Steal ticks so far, summed over the CPUs (0 where the kernel does not count them)."""
    try:
        with open("/proc/stat") as f:
            return parse_steal_ticks(f.read())
    except (OSError, ValueError):
        return 0


def steal_pct(ticks_before: int, ticks_after: int, seconds: float) -> float:
    """Steal over a window, in percent of one core (two CPUs fully stolen make 200)."""
    return 100.0 * (ticks_after - ticks_before) / CLOCK_TICKS / seconds if seconds > 0 else 0.0


def cpu_idle_us() -> dict[int, int]:
    """Cumulative idle residency per CPU, microseconds (empty when cpuidle is absent)."""
    idle = {}
    for directory in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpuidle"):
        cpu = int(directory.split("/")[-2][3:])
        total = 0
        for state in glob.glob(directory + "/state*/time"):
            with open(state) as f:
                total += int(f.read())
        idle[cpu] = total
    return idle
