"""One benchmark stage: the servers under test, running, and one measured wrk run against them.

Rules of this module
--------------------
* Backends and wrk run on the load CPU, every balancer on the proxy CPU (``taskset``, see
  ``loadtest.backends``); all balancers run at once, idle while another is measured, so the
  alternation inside a round needs no restarts and every server stays warm.
* A run measures, around one wrk process: the CPU of the server's process tree, of the
  backends, of wrk, of everyone else (``loadtest.quiet``), per-CPU busy time, the RSS of
  pixring's workers every second, and the access log written (proof that it is on).
* A run is disturbed when other processes used more than ``--max-other`` percent of a core,
  or when the hypervisor stole as much (``steal`` in /proc/stat: this machine's CPUs wanted
  to run and another machine ran). Steal shows in no process's time, yet it slowed a
  pixring worker's requests here from ~60 to ~120 µs of CPU each for minutes at a time.
* A disturbed run is retried up to ``--attempts`` times, while the time budget allows: waits
  and retries only spend the part of the budget the remaining runs do not need.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping

from loadtest import report, wrk
from loadtest.backends import (
    Server,
    StartError,
    start_backends,
    start_haproxy,
    start_nginx_balancer,
    start_pixring,
    start_skeleton,
)
from loadtest.cpu import (
    CLOCK_TICKS,
    ProcStat,
    cpu_idle_us,
    descendants,
    rss_kib,
    snapshot,
    steal_pct,
    steal_ticks,
    tree_delta,
)
from loadtest.quiet import foreign_pct, wait_for_quiet
from loadtest.summary import RunRecord
from loadtest.targets import image_targets, write_targets

__all__ = ["RSS_SAMPLE_S", "Runner", "worker_rss"]

RSS_SAMPLE_S = 1.0


def worker_rss(server: Server) -> list[int]:
    stats = snapshot()
    pids = server.workers(stats) if server.name.startswith("pixring") else []
    return [kib for kib in (rss_kib(pid) for pid in pids) if kib is not None]


class Runner:
    """The running servers and the measurement of one run against one of them."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, log: Callable[[str], None] = print) -> None:
        self.args = args
        self.log = log
        self.run_dir = run_dir
        self.targets_file = write_targets(run_dir / "targets.txt", image_targets(args.urls))
        self.backends: Server | None = None
        self.servers: dict[str, Server | None] = {}
        self.deadline = float("inf")
        self.per_run_s = args.duration + 1.5  # wrk's run, the quiet check before it, the /proc scans

    def ours(self, stats: Mapping[int, ProcStat]) -> set[int]:
        return descendants(stats, os.getpid())

    def start(self, configs: list[str]) -> None:
        args = self.args
        self.log(f"starting 3 nginx backends (2 KB body) on CPU {args.load_cpu} ...")
        self.backends = start_backends(self.run_dir, args.load_cpu)
        ports = self.backends.ports
        starters = {
            "nginx": lambda: start_nginx_balancer(self.run_dir, ports, args.proxy_cpu),
            "nginx-2w": lambda: start_nginx_balancer(self.run_dir, ports, args.proxy_cpu, name="nginx-2w", workers=2),
            "haproxy": lambda: start_haproxy(self.run_dir, ports, args.proxy_cpu),
            "pixring": lambda: start_pixring("pixring", self.run_dir, ports, args.proxy_cpu, workers=1),
            "pixring-2w": lambda: start_pixring("pixring-2w", self.run_dir, ports, args.proxy_cpu, workers=2),
            # TLS on the public side, the same self-signed certificate for both.
            "nginx-tls": lambda: start_nginx_balancer(self.run_dir, ports, args.proxy_cpu, name="nginx-tls",
                                                      tls=self.certificate()),
            "pixring-tls": lambda: start_pixring("pixring-tls", self.run_dir, ports, args.proxy_cpu, workers=1,
                                                 tls=self.certificate()),
            "skeleton": lambda: start_skeleton(self.run_dir, ports, args.proxy_cpu),
            "direct": lambda: None,
        }
        for config in configs:
            self.log(f"starting {config} on CPU {args.proxy_cpu} ..." if config != "direct" else "direct: no proxy")
            self.servers[config] = starters[config]()

    def certificate(self) -> tuple[Path, Path]:
        """The TLS rows' certificate and key, made on first use."""
        cert, key = self.run_dir / "tls" / "bench.crt", self.run_dir / "tls" / "bench.key"
        if not cert.exists():
            from loadtest.certs import self_signed

            cert, key = self_signed(self.run_dir / "tls", "bench")
        return cert, key

    def url(self, config: str) -> str:
        server = self.servers.get(config)
        return f"{server.scheme if server is not None else 'http'}://127.0.0.1:{self.port(config)}/"

    def stop(self) -> None:
        for server in [*reversed(list(self.servers.values())), self.backends]:
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # keep stopping the others
                    self.log(f"stopping {server.name}: {exc}")

    def port(self, config: str) -> int:
        server = self.servers[config]
        if server is None:
            assert self.backends is not None
            return self.backends.ports[0]
        return server.port

    def check_alive(self) -> None:
        for server in [self.backends, *self.servers.values()]:
            if server is not None and not server.alive():
                raise StartError(f"{server.name} exited (code {server.proc.returncode}) during the benchmark:\n"
                                 f"{server.stderr_tail()}")

    def warm(self, config: str, seconds: int) -> None:
        argv = wrk.command(self.url(config), connections=max(self.args.connections),
                           seconds=seconds, targets_file=self.targets_file, cpu=self.args.load_cpu)
        out, err = wrk.start(argv).communicate(timeout=seconds + 30)
        result = wrk.parse_result(out, err)
        if result.failed:
            self.log(f"warning: {config} warm-up had {result.failed} failed requests")
        self._truncate_log(config)

    def _truncate_log(self, config: str) -> int:
        """Bytes of access log written since the last call; the file is emptied to bound disk use.

        Counted from allocated blocks, not the size: HAProxy switches its stdout to
        non-blocking and drops O_APPEND on the way, so after a truncation it keeps writing
        at its old offset and the size jumps over a hole; the blocks hold only what was
        written since (rounded to a 4 KiB block, nothing next to megabytes per run).
        """
        server = self.servers.get(config)
        if server is None or server.access_log is None:
            return 0
        try:
            written = server.access_log.stat().st_blocks * 512
            os.truncate(server.access_log, 0)
            return written
        except OSError:
            return 0

    def measure(self, config: str, connections: int, seconds: int, *, round_: int, attempt: int,
                waited_s: float, rss_samples: list[tuple[float, list[int]]] | None = None,
                sample_every: float = RSS_SAMPLE_S) -> RunRecord:
        """One wrk run, with the CPU of the server's tree and of everyone else around it."""
        args = self.args
        server = self.servers[config]
        assert self.backends is not None
        argv = wrk.command(self.url(config), connections=connections, seconds=seconds,
                           targets_file=self.targets_file, cpu=args.load_cpu)
        before = snapshot()
        workers = server.workers(before) if server is not None and config.startswith("pixring") else []
        peaks = [rss_kib(pid) or 0 for pid in workers]
        steal0 = steal_ticks()
        idle0, usage0, started = cpu_idle_us(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
        proc = wrk.start(argv)
        hard_stop = started + seconds + 30
        while True:
            try:
                proc.wait(timeout=sample_every)
                break
            except subprocess.TimeoutExpired:
                sizes = [rss_kib(pid) or 0 for pid in workers]
                peaks = [max(a, b) for a, b in zip(peaks, sizes)]
                if rss_samples is not None:
                    rss_samples.append((time.monotonic() - started, sizes))
                if time.monotonic() > hard_stop:
                    proc.kill()
        out, err = proc.communicate()
        ended, idle1, usage1 = time.monotonic(), cpu_idle_us(), resource.getrusage(resource.RUSAGE_CHILDREN)
        after, steal1 = snapshot(), steal_ticks()
        result = wrk.parse_result(out, err)
        wall = ended - started
        steal = steal_pct(steal0, steal1, wall)
        if server is not None:
            user, system = tree_delta(before, after, server.pid)
            proxy_user, proxy_system = user / CLOCK_TICKS, system / CLOCK_TICKS
        else:
            proxy_user = proxy_system = None
        backend_ticks = sum(tree_delta(before, after, self.backends.pid))
        other = foreign_pct(before, after, self.ours(before) | self.ours(after), wall)
        busy = {f"cpu{cpu}": max(0.0, min(100.0, 100.0 * (1 - (idle1[cpu] - idle0[cpu]) / 1e6 / wall)))
                for cpu in idle0 if cpu in idle1}
        load_cpu_s = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        log_bytes = self._truncate_log(config)
        return RunRecord(
            config=config, connections=connections, round=round_, attempt=attempt,
            requests=result.requests, wall_s=round(wall, 3), rps=round(result.rps, 1),
            p50_ms=result.p50_us / 1000, p90_ms=result.p90_us / 1000, p99_ms=result.p99_us / 1000,
            max_ms=result.max_us / 1000, failed=result.failed,
            proxy_user_s=proxy_user, proxy_system_s=proxy_system,
            other_pct=round(other, 2), steal_pct=round(steal, 2),
            disturbed=other > args.max_other or steal > args.max_other, waited_s=round(waited_s, 1),
            cpu_busy_pct={k: round(v, 1) for k, v in busy.items()},
            backend_cpu_pct=round(100.0 * backend_ticks / CLOCK_TICKS / wall, 1),
            load_cpu_pct=round(100.0 * load_cpu_s / wall, 1),
            worker_rss_kib_peak=tuple(peaks),
            log_bytes_per_request=(round(log_bytes / result.requests, 1)
                                   if server is not None and server.access_log is not None else None),
        )

    def slack(self, runs_left: int) -> float:
        """Seconds of the budget not needed by the runs still to do: what waits and retries may use."""
        return self.deadline - time.monotonic() - runs_left * self.per_run_s

    def run_once(self, config: str, connections: int, round_: int, index: int, total: int) -> list[RunRecord]:
        """A run, retried while disturbed (bounded by --attempts and the time budget)."""
        args = self.args
        records = []
        runs_left = total - index  # after this one
        for attempt in range(1, args.attempts + 1):
            self.check_alive()
            max_wait = max(0.0, min(args.max_wait, self.slack(runs_left + 1)))
            waited, _ = wait_for_quiet(self.ours, limit_pct=args.max_other, max_wait_s=max_wait)
            record = self.measure(config, connections, args.duration, round_=round_, attempt=attempt, waited_s=waited)
            records.append(record)
            retry = record.disturbed and attempt < args.attempts and self.slack(runs_left + 1) > 0
            self.log(report.progress_line(index, total, record, retrying=retry))
            if not retry:
                break
        return records
