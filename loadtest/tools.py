"""The programs the benchmark drives (and one the Ansible test needs), installed from
Debian's packages when missing.

Rules of this module
--------------------
* Only what is missing is installed, with ``apt-get update`` once and then
  ``apt-get install -y`` of the Debian packages named in ``PACKAGES`` (Debian 12 ships
  nginx 1.22, HAProxy 2.6 and wrk 4.1, the versions of DESIGN.md's anchors; perf, for
  ``make profile``, comes with linux-perf).
* Installing a server package may start its system service (Debian's maintainer scripts
  call ``invoke-rc.d``, unless ``policy-rc.d`` forbids it). The benchmark starts its own
  instances with its own configs; a service that *our* install started is stopped again by
  the pid in its pid file, and one that was running before is left alone.
* Not root and something missing: a clear error with the command to run, never a prompt.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["PACKAGES", "ToolsError", "ensure_tools", "missing", "require"]

# program -> Debian package that provides it
PACKAGES = {"nginx": "nginx", "haproxy": "haproxy", "wrk": "wrk", "taskset": "util-linux", "perf": "linux-perf",
            # for tests/e2e/test_ansible.py: it checks the units the roles write (no systemd runs)
            "systemd-analyze": "systemd",
            # for tests/unit/test_ops_rules.py: `promtool check rules` on ops/prometheus/alerts.yml
            "promtool": "prometheus",
            # for `make test-browser`: the status page in a real headless browser
            "chromium": "chromium",
            # for loadtest.worker_instructions: a real worker's instructions per request
            "valgrind": "valgrind", "callgrind_control": "valgrind"}
# pid files of the services those packages may start (Debian's defaults)
SERVICE_PID_FILES = {"nginx": Path("/run/nginx.pid"), "haproxy": Path("/run/haproxy.pid"),
                     "prometheus": Path("/run/prometheus/prometheus.pid")}


class ToolsError(RuntimeError):
    pass


def missing(programs: Iterable[str], which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """The Debian packages to install for the programs not on PATH, in order, without repeats."""
    packages: list[str] = []
    for program in programs:
        if program not in PACKAGES:
            raise ValueError(f"no known Debian package for {program!r}")
        if which(program) is None and PACKAGES[program] not in packages:
            packages.append(PACKAGES[program])
    return packages


def _live_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def ensure_tools(programs: Iterable[str] = tuple(PACKAGES), log: Callable[[str], None] = print) -> list[str]:
    """Install what is missing; returns the packages installed (empty when nothing was)."""
    packages = missing(programs)
    if not packages:
        return []
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if os.geteuid() != 0:
        raise ToolsError(f"missing {', '.join(packages)}; install them as root: "
                         f"apt-get update && {' '.join(command)}")
    before = {name: _live_pid(path) for name, path in SERVICE_PID_FILES.items()}
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"installing {', '.join(packages)} from Debian's packages (apt-get update; {' '.join(command)})")
    for step in (["apt-get", "update", "-q"], command):
        done = subprocess.run(step, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ToolsError(f"{' '.join(step)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    for name, path in SERVICE_PID_FILES.items():
        pid = _live_pid(path)
        if pid is not None and before[name] is None:
            log(f"stopping the {name} system service our install started (pid {pid})")
            os.kill(pid, signal.SIGTERM)
    still = missing(programs)
    if still:
        raise ToolsError(f"still missing after install: {', '.join(still)}")
    return packages


def require(programs: Iterable[str], *, install: bool, log: Callable[[str], None] = print) -> None:
    """Install what is missing, or with ``install`` false refuse with the packages named."""
    if install:
        ensure_tools(programs, log=log)
        return
    absent = missing(programs)
    if absent:
        raise ToolsError(f"missing packages {', '.join(absent)} (--no-install given)")
