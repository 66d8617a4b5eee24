"""pixring.cpus: the CPUs the workers can use, from affinity and the cgroup's CPU quota."""

from __future__ import annotations

import os

import pytest

from pixring.cpus import CpuBudget, cpu_cgroup_dirs, quota_from_cfs, quota_from_cpu_max, read_cpu_budget, usable_cpus

# /proc/self/mountinfo lines as the kernel writes them (proc(5)), trimmed to the cgroup mounts.
HYBRID_MOUNTS = """\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


@pytest.mark.parametrize(
    "text, quota",
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000", 0.5), ("400000 200000", 2.0),
     ("", None)],
)
def test_cgroup_v2_cpu_max(text, quota):
    assert quota_from_cpu_max(text) == quota


@pytest.mark.parametrize(
    "quota_text, period_text, quota",
    [("-1\n", "100000\n", None), ("250000\n", "100000\n", 2.5), ("100000", "50000", 2.0)],
)
def test_cgroup_v1_cfs_quota_over_period(quota_text, period_text, quota):
    assert quota_from_cfs(quota_text, period_text) == quota


@pytest.mark.parametrize(
    "affinity, quota, usable",
    [
        (8, None, 8),  # no limit: every CPU of the affinity
        (8, 2.5, 2),  # rounded down: a third worker would run on half a CPU and get the group throttled
        (8, 0.5, 1),  # at least one worker
        (2, 4.0, 2),  # a quota above the affinity cannot add CPUs
        (4, 299_999 / 100_000, 2),
        (4, 300_000 / 100_000, 3),
        (0, None, 1),
    ],
)
def test_usable_cpus_are_the_affinity_capped_by_the_quota_rounded_down(affinity, quota, usable):
    assert usable_cpus(affinity, quota) == usable
    assert CpuBudget(affinity, quota).usable == usable


def test_describe_names_the_quota_only_when_it_is_the_limit():
    assert CpuBudget(2, None).describe() == "this process's affinity allows 2"
    assert CpuBudget(2, 4.0).describe() == "this process's affinity allows 2"
    assert CpuBudget(8, 1.5).describe() == "this process's affinity allows 8, its cgroup's CPU quota 1.5"


def test_hybrid_host_reads_the_v1_cpu_hierarchy_and_the_v2_one():
    proc_cgroup = "9:name=systemd:/\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n"
    assert cpu_cgroup_dirs(proc_cgroup, HYBRID_MOUNTS) == [("/sys/fs/cgroup/cpu", 1), ("/sys/fs/cgroup/unified", 2)]


def test_a_nested_cgroup_is_read_with_every_ancestor_up_to_the_mount():
    mounts = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    assert cpu_cgroup_dirs("0::/system.slice/pixring.service\n", mounts) == [
        ("/sys/fs/cgroup/system.slice/pixring.service", 2),
        ("/sys/fs/cgroup/system.slice", 2),
        ("/sys/fs/cgroup", 2),
    ]


def test_a_container_mount_rooted_at_its_own_cgroup():
    # Docker on cgroup v1 without a cgroup namespace: the container sees its cgroup's path in
    # /proc/self/cgroup, and the mount's root is that same cgroup.
    proc_cgroup = "4:cpu,cpuacct:/docker/0123abcd\n"
    mounts = "40 35 0:33 /docker/0123abcd /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
    assert cpu_cgroup_dirs(proc_cgroup, mounts) == [("/sys/fs/cgroup/cpu,cpuacct", 1)]
    below = "4:cpu,cpuacct:/docker/0123abcd/inner\n"
    assert cpu_cgroup_dirs(below, mounts) == [("/sys/fs/cgroup/cpu,cpuacct/inner", 1), ("/sys/fs/cgroup/cpu,cpuacct", 1)]


def test_mounts_that_cannot_hold_the_limit_are_skipped():
    # A mount of another part of the hierarchy, a cpuacct-only v1 mount, and a path with a
    # common prefix that is not an ancestor.
    mounts = (
        "40 35 0:33 /other /mnt/other rw - cgroup cgroup rw,cpu\n"
        "41 35 0:34 / /mnt/acct rw - cgroup cgroup rw,cpuacct\n"
        "42 35 0:35 /dock /mnt/dock rw - cgroup2 cgroup2 rw\n"
        "not a mountinfo line\n"
    )
    assert cpu_cgroup_dirs("1:cpu:/docker/x\n2:cpuacct:/\n0::/docker/x\n", mounts) == []


def test_escaped_mount_points_are_unescaped():
    mounts = "42 35 0:35 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n"
    assert cpu_cgroup_dirs("0::/\n", mounts) == [("/mnt/my cgroups", 2)]


def _fake_proc(tmp_path, proc_cgroup: str, mountinfo: str):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(proc_cgroup)
    (proc / "mountinfo").write_text(mountinfo)
    return proc


def test_the_tightest_limit_on_the_path_wins(tmp_path):
    mount = tmp_path / "cg"
    leaf = mount / "parent" / "leaf"
    leaf.mkdir(parents=True)
    (mount / "parent" / "cpu.max").write_text("200000 100000\n")
    (leaf / "cpu.max").write_text("max 100000\n")  # the leaf is unlimited; its parent binds it
    proc = _fake_proc(tmp_path, "0::/parent/leaf\n", f"30 24 0:26 / {mount} rw - cgroup2 cgroup2 rw\n")
    budget = read_cpu_budget(proc)
    assert budget.quota == 2.0
    assert budget.affinity == len(os.sched_getaffinity(0))
    (leaf / "cpu.max").write_text("50000 100000\n")
    assert read_cpu_budget(proc).quota == 0.5


def test_v1_files_and_the_tighter_of_two_hierarchies(tmp_path):
    v1, v2 = tmp_path / "cpu", tmp_path / "unified"
    (v1 / "job").mkdir(parents=True)
    (v2 / "job").mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    (v1 / "job" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "job" / "cpu.cfs_period_us").write_text("100000\n")
    (v2 / "job" / "cpu.max").write_text("150000 100000\n")
    mounts = f"32 31 0:29 / {v1} rw - cgroup cgroup rw,cpu\n41 31 0:38 / {v2} rw - cgroup2 cgroup2 rw\n"
    proc = _fake_proc(tmp_path, "1:cpu:/job\n0::/job\n", mounts)
    assert read_cpu_budget(proc).quota == 1.5


@pytest.mark.parametrize("content", [None, "garbage\n", ""])
def test_an_unreadable_limit_counts_as_none(tmp_path, content):
    mount = tmp_path / "cg"
    mount.mkdir()
    if content is not None:
        (mount / "cpu.max").write_text(content)
    proc = _fake_proc(tmp_path, "0::/\n", f"30 24 0:26 / {mount} rw - cgroup2 cgroup2 rw\n")
    assert read_cpu_budget(proc).quota is None


def test_no_proc_files_means_no_limit(tmp_path):
    budget = read_cpu_budget(tmp_path / "missing")
    assert budget == CpuBudget(len(os.sched_getaffinity(0)), None)
