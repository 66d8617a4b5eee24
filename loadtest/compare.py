"""Two checkouts of pixring, paired on the same machine in the same minutes:
``python -m loadtest.compare --base DIR``.

``make bench`` gives each build's requests per second as a ratio to nginx's, and three
runs of it scatter by 10-20% on a shared machine: a change of 5% hides in that. Comparing
two builds needs no nginx in between. This starts both (one worker each, on the proxy CPU,
in front of the same nginx backends on the load CPU, as ``make bench`` does) and measures
them in many short back-to-back pairs, the order alternating (base first, then this
checkout first), so drift in the machine's speed falls on both sides of every pair. The
figures are medians of the pairs' ratios (this checkout over the base), with the middle
half of them beside: one worker's requests per second, and the CPU its process tree used per
request (from ``/proc``). A pair during which the hypervisor stole more than ``--max-steal``
percent of a core (``steal`` in /proc/stat: this virtual machine's CPUs wanted to run and
another machine ran) is printed and left out of the medians.

The base is another checkout (``git worktree add ../base COMMIT``) whose request path is
compiled (``PYTHONPATH=../base python -m balancer.compile``); it runs with this
environment's interpreter and its own code first on the path. Both keep pixring's
production defaults (hot keys and coalescing on).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest import wrk
from loadtest.backends import Server, StartError, start_backends, start_pixring
from loadtest.cpu import CLOCK_TICKS, snapshot, steal_pct, steal_ticks, tree_delta
from loadtest.quiet import DEFAULT_LIMIT_PCT
from loadtest.targets import DEFAULT_COUNT, image_targets, write_targets
from loadtest.tools import ToolsError, require

REPO = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class Run:
    rps: float
    cpu_us: float  # CPU of the pixring tree (worker and supervisor) per request, user and system
    steal_pct: float  # what the hypervisor took from this machine meanwhile, % of one core


def measure(server: Server, connections: int, seconds: int, targets: Path, cpu: int) -> Run:
    argv = wrk.command(f"http://127.0.0.1:{server.port}", connections=connections, seconds=seconds,
                       targets_file=targets, cpu=cpu)
    before, steal_before, started = snapshot(), steal_ticks(), time.monotonic()
    out, err = wrk.start(argv).communicate(timeout=seconds + 30)
    user, system = tree_delta(before, snapshot(), server.pid)
    steal = steal_pct(steal_before, steal_ticks(), time.monotonic() - started)
    result = wrk.parse_result(out, err)
    if result.failed:
        raise StartError(f"{server.name}: {result.failed} failed requests at c={connections}")
    # The access log is truncated so that a long comparison does not fill the disk.
    assert server.access_log is not None
    server.access_log.write_bytes(b"")
    return Run(result.rps, (user + system) / CLOCK_TICKS * 1e6 / result.requests, steal)


def paired_ratios(base: list[float], ours: list[float]) -> list[float]:
    """Each pair's figure of this checkout over the base's."""
    return [b / a for a, b in zip(base, ours)]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 4:
        middle = statistics.median(values)
        return min(values), middle, max(values)
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the other checkout, its request path compiled")
    parser.add_argument("--connections", default="8,64", help="wrk concurrencies, comma-separated (default 8,64)")
    parser.add_argument("--pairs", type=int, default=20, help="pairs per concurrency (default 20)")
    parser.add_argument("--seconds", type=int, default=2, help="seconds per run (default 2)")
    parser.add_argument("--max-steal", type=float, default=DEFAULT_LIMIT_PCT,
                        help="%% of a core the hypervisor may steal during a pair's runs before the pair is left "
                             f"out (default {DEFAULT_LIMIT_PCT:g})")
    parser.add_argument("--proxy-cpu", type=int, default=0, help="CPU for both pixrings (default 0)")
    parser.add_argument("--load-cpu", type=int, default=1, help="CPU for wrk and the backends (default 1)")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing nginx, wrk, taskset")
    args = parser.parse_args(argv)
    base_dir = args.base.resolve()
    if not (base_dir / "balancer" / "front.py").is_file():
        parser.error(f"--base {args.base}: not a pixring checkout (no balancer/front.py)")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    try:
        concurrencies = [int(c) for c in args.connections.split(",")]
    except ValueError:
        parser.error(f"--connections must be integers separated by commas, got {args.connections!r}")
    try:
        require(["nginx", "wrk", "taskset"], install=not args.no_install, log=log)
    except ToolsError as exc:
        log(f"compare: {exc}")
        return 2
    # A stop from outside still stops the servers (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_dir = Path(tempfile.mkdtemp(prefix="pixring-compare-"))
    run_dir.chmod(0o755)  # nginx workers run as an unprivileged user
    targets = write_targets(run_dir / "targets.txt", image_targets(DEFAULT_COUNT))
    servers: list[Server] = []
    try:
        backends = start_backends(run_dir, args.load_cpu)
        servers.append(backends)
        base = start_pixring("base", run_dir, backends.ports, args.proxy_cpu, workers=1, checkout=base_dir)
        servers.append(base)
        ours = start_pixring("this", run_dir, backends.ports, args.proxy_cpu, workers=1, checkout=REPO)
        servers.append(ours)
        log(f"base {base_dir} against this checkout {REPO}: {args.pairs} pairs of {args.seconds}s runs "
            f"per concurrency, order alternating")
        for server in (base, ours):  # caches filled, pools open
            measure(server, max(concurrencies), 2, targets, args.load_cpu)
        for connections in concurrencies:
            base_runs: list[Run] = []
            our_runs: list[Run] = []
            for index in range(args.pairs):
                order = (base, ours) if index % 2 == 0 else (ours, base)
                got = {server.name: measure(server, connections, args.seconds, targets, args.load_cpu)
                       for server in order}
                base_runs.append(got["base"])
                our_runs.append(got["this"])
                stolen = max(got["base"].steal_pct, got["this"].steal_pct)
                log(f"  c={connections} pair {index + 1:>2}/{args.pairs}: base {got['base'].rps:>8,.0f} req/s "
                    f"{got['base'].cpu_us:5.1f} us/req, this {got['this'].rps:>8,.0f} req/s "
                    f"{got['this'].cpu_us:5.1f} us/req, steal {stolen:4.1f}%"
                    + (" DISTURBED, left out" if stolen > args.max_steal else ""))
            clean = [(b, o) for b, o in zip(base_runs, our_runs) if max(b.steal_pct, o.steal_pct) <= args.max_steal]
            if not clean:
                log(f"c={connections}: every pair was disturbed (steal above {args.max_steal:g}%): no figure")
                continue
            for label, figure in (("req/s", lambda run: run.rps), ("CPU us per request", lambda run: run.cpu_us)):
                q1, median, q3 = quartiles(paired_ratios([figure(b) for b, _ in clean], [figure(o) for _, o in clean]))
                log(f"c={connections} {label}: this / base, median of {len(clean)} paired ratios {median:.3f} "
                    f"(middle half {q1:.3f}-{q3:.3f}; {args.pairs - len(clean)} disturbed pairs left out); "
                    f"medians {statistics.median(figure(o) for _, o in clean):,.1f} "
                    f"against {statistics.median(figure(b) for b, _ in clean):,.1f}")
    except (StartError, wrk.WrkError, subprocess.TimeoutExpired) as exc:
        log(f"compare: {exc}")
        return 1
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
