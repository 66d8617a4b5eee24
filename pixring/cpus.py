"""How many CPUs the workers can keep busy: the process's CPU affinity, capped by the CPU
quota of its cgroup (a container's CPU limit).

Why: ``--workers 0`` starts one worker per CPU. In a container limited to 2 CPUs on a
32-core host the affinity still names 32 CPUs, so 32 workers would take turns on two CPUs'
worth of time. ``make bench`` measured what taking turns costs: two workers on one core
serve 0.79-0.94x the requests per CPU-second of one, at a p99 of 6.0-6.2 ms against
2.3-2.7 ms at 64 connections, and of 4.4-4.8 ms against 0.4-0.5 ms at 8
(bench-20261126-223306; docs/performance.md, "Two workers on one core").
Past its quota a cgroup is worse off still: the kernel stops every task in it until the
next period begins (CFS bandwidth control, the kernel's
Documentation/scheduler/sched-bwc.rst), up to 100 ms with the default period.

Rounding: down, and at least one worker. A worker is one thread that runs flat out under
load; the fraction of a CPU left over goes to the supervisor, the admin listener and the
kernel's network work. Go's runtime, which has read the same limit since Go 1.25 (proposal
golang/go#73193), rounds up; golang/go#76835 asks it to round down for the throttling
above, and a proxy that answers in a millisecond has more to lose from a 100 ms stall than
from a fraction of a CPU left idle.

The limit read is the tightest on the path from the process's own cgroup up to the root of
the hierarchy as mounted: a parent's limit binds its children (the case golang/go#81180
reports Go missing). Both hierarchies are read: cgroup v2's ``cpu.max`` (the kernel's
Documentation/admin-guide/cgroup-v2.rst) and cgroup v1's ``cpu.cfs_quota_us`` over
``cpu.cfs_period_us``, which hybrid hosts (this project's CI machines among them) still
use for the cpu controller. A file that cannot be read counts as no limit: pixring must
start on any host, and an unknown quota leaves it as it was, one worker per CPU.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CpuBudget", "cpu_budget", "cpu_cgroup_dirs", "quota_from_cfs", "quota_from_cpu_max", "read_cpu_budget",
    "usable_cpus",
]

_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class CpuBudget:
    affinity: int  # CPUs the scheduler may run this process on
    quota: float | None  # CPUs' worth of time a period the cgroup allows; None: no limit

    @property
    def usable(self) -> int:
        return usable_cpus(self.affinity, self.quota)

    def describe(self) -> str:
        """For messages: where the count of usable CPUs comes from."""
        affinity = f"this process's affinity allows {self.affinity}"
        if self.quota is None or self.usable == self.affinity:
            return affinity
        return f"{affinity}, its cgroup's CPU quota {self.quota:g}"


def usable_cpus(affinity: int, quota: float | None) -> int:
    if quota is None:
        return max(1, affinity)
    return max(1, min(affinity, math.floor(quota)))


def quota_from_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max``: ``"$MAX $PERIOD"`` in microseconds, ``max`` for no limit."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    period = int(fields[1]) if len(fields) > 1 else 100_000
    return _quota(int(fields[0]), period)


def quota_from_cfs(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``; a quota of -1 is no limit."""
    return _quota(int(quota_text), int(period_text))


def _quota(quota_us: int, period_us: int) -> float | None:
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def cpu_cgroup_dirs(proc_cgroup: str, mountinfo: str) -> list[tuple[str, int]]:
    """The directories holding this process's CPU limits, with their cgroup version: for
    each mounted hierarchy that has the cpu controller, its cgroup and every ancestor up to
    the mount's root, innermost first.

    ``proc_cgroup`` is ``/proc/self/cgroup`` (``ID:CONTROLLERS:PATH`` a line; v2's is
    ``0::PATH``), ``mountinfo`` is ``/proc/self/mountinfo`` (``proc(5)``: the fourth field is
    the mount's root within its hierarchy, the fifth where it is mounted, and after the
    lone ``-`` come the filesystem type, the source and the superblock options, which for
    a v1 cgroup name its controllers).
    """
    v1_path = v2_path = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif "cpu" in controllers.split(","):
            v1_path = path
    dirs: list[tuple[str, int]] = []
    found: set[int] = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4 or dash < 5:
            continue
        fstype, options = fields[dash + 1], fields[dash + 3].split(",")
        if fstype == "cgroup2" and v2_path is not None and 2 not in found:
            version, path = 2, v2_path
        elif fstype == "cgroup" and "cpu" in options and v1_path is not None and 1 not in found:
            version, path = 1, v1_path
        else:
            continue
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        relative = _relative(path, root)
        if relative is None:
            continue  # this mount shows another part of the hierarchy
        found.add(version)
        base = mount_point.rstrip("/")
        while True:
            dirs.append((base + relative or "/", version))
            if not relative:
                break
            relative = relative.rsplit("/", 1)[0]
    return dirs


def _relative(path: str, root: str) -> str | None:
    """``path`` below ``root``, as ``""`` or ``"/a/b"``; None when it is not below it."""
    if root == "/":
        return path.rstrip("/")
    if path == root:
        return ""
    if path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")):].rstrip("/")
    return None


def _unescape(field: str) -> str:
    """mountinfo writes a space, tab, newline or backslash in a path as an octal escape."""
    return _OCTAL.sub(lambda match: chr(int(match[1], 8)), field)


def read_cpu_budget(proc: Path = Path("/proc/self")) -> CpuBudget:
    """Read the affinity and the quota now (files under ``proc``; tests point it elsewhere)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 1
    try:
        dirs = cpu_cgroup_dirs((proc / "cgroup").read_text(), (proc / "mountinfo").read_text())
    except OSError:
        return CpuBudget(affinity, None)
    quotas = [quota for quota in map(_read_quota, dirs) if quota is not None]
    return CpuBudget(affinity, min(quotas) if quotas else None)


def _read_quota(entry: tuple[str, int]) -> float | None:
    directory, version = entry
    try:
        if version == 2:
            return quota_from_cpu_max(Path(directory, "cpu.max").read_text())
        return quota_from_cfs(Path(directory, "cpu.cfs_quota_us").read_text(),
                              Path(directory, "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None  # no such file (v2's root has no cpu.max), or not a number: no limit here


@functools.cache
def cpu_budget() -> CpuBudget:
    """This process's budget, read once: the worker count it sets is fixed for the life of a
    supervisor, as ``worker_processes auto`` is for nginx's master. A quota changed later is
    taken up by a restart."""
    return read_cpu_budget()
