"""Driving wrk: the command line for one run, and reading its result.

Rules of this module
--------------------
* wrk runs with one thread (``-t1``) pinned with ``taskset`` to the load CPU, for a fixed
  duration (``-d``); nothing here can loop forever. The replay script
  (``templates/replay.lua``) prints one ``PIXRING-WRK {json}`` line; that line is the
  contract, and ``parse_result`` refuses output without it (wrk exits 0 even when it could
  not connect, so its exit code alone proves nothing).
* Latencies come from wrk's HdrHistogram in microseconds (wrk's README and
  ``scripts/`` docs: ``latency:percentile(p)``, ``summary.errors``). ``bad_status`` counts
  responses outside 2xx/3xx.
* ``parse_result`` is pure; ``start`` only builds the process.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MARKER", "REPLAY_SCRIPT", "WrkError", "WrkResult", "command", "parse_result", "start"]

MARKER = "PIXRING-WRK "
REPLAY_SCRIPT = Path(__file__).resolve().parent / "templates" / "replay.lua"
_FIELDS = ("requests", "duration_us", "bytes", "p50_us", "p90_us", "p99_us", "max_us",
           "connect_errors", "read_errors", "write_errors", "timeouts", "bad_status")


class WrkError(RuntimeError):
    """wrk did not produce a usable result; the message carries what it printed."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_us: int
    bytes: int
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    bad_status: int

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def socket_errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts

    @property
    def failed(self) -> int:
        """Requests that did not end in a 2xx/3xx answer, as far as wrk can tell."""
        return self.socket_errors + self.bad_status


def parse_result(stdout: str, stderr: str = "") -> WrkResult:
    """The ``PIXRING-WRK`` line of a wrk run, checked; ``WrkError`` naming the problem otherwise."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if len(lines) != 1:
        found = "no" if not lines else f"{len(lines)}"
        raise WrkError(f"wrk printed {found} {MARKER.strip()} line(s); stdout:\n{stdout}\nstderr:\n{stderr}")
    try:
        raw = json.loads(lines[0][len(MARKER):])
    except ValueError as exc:
        raise WrkError(f"unreadable {MARKER.strip()} line {lines[0]!r}: {exc}") from None
    missing = [name for name in _FIELDS if name not in raw]
    if missing:
        raise WrkError(f"{MARKER.strip()} line lacks {', '.join(missing)}: {lines[0]!r}")
    values = {name: raw[name] for name in _FIELDS}
    if values["duration_us"] <= 0:
        raise WrkError(f"wrk reported a non-positive duration: {lines[0]!r}")
    if values["requests"] <= 0:
        raise WrkError(f"wrk completed no request (is the server up?); stdout:\n{stdout}\nstderr:\n{stderr}")
    return WrkResult(**values)


def command(url: str, *, connections: int, seconds: int, targets_file: Path, cpu: int | None,
            timeout_s: int = 5) -> list[str]:
    """The argv of one run; ``cpu`` pins wrk with taskset (None: unpinned).

    wrk reads durations as whole numbers (``-d8s``), so fractions are refused here.
    """
    if connections < 1:
        raise ValueError(f"connections must be at least 1, got {connections}")
    if not isinstance(seconds, int) or seconds < 1:
        raise ValueError(f"duration must be a whole number of seconds >= 1, got {seconds!r}")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s", "--latency",
            "-s", str(REPLAY_SCRIPT), url, "--", str(targets_file)]
    return (["taskset", "-c", str(cpu)] if cpu is not None else []) + argv


def start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
