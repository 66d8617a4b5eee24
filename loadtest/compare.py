"""Two checkouts of pixring, paired on the same machine in the same minutes:
``python -m loadtest.compare --base DIR``.

``make bench`` gives each build's requests per second as a ratio to nginx's, and three
runs of it scatter by 10-20% on a shared machine: a change of 5% hides in that. Comparing
two builds needs no nginx in between. This starts both (one worker each, on the proxy CPU,
in front of the same nginx backends on the load CPU) and measures them with ``make
bench``'s own run (``loadtest.runner``) in many short back-to-back pairs, the order
alternating, so drift in the machine's speed falls on both sides of every pair. The
figures are ``make bench``'s paired ratios (``loadtest.summary.paired_ratio``: the median
of the pairs' ratios, this checkout over the base, with its 95% interval) of requests per
second and of requests per CPU-second. A pair with a disturbed run (other processes, or
the hypervisor stealing more than ``--max-other`` percent of a core) is printed and left
out.

The base is another checkout (``git worktree add ../base COMMIT``) whose request path is
compiled (``PYTHONPATH=../base python -m balancer.compile``); it runs with this
environment's interpreter and its own code first on the path. Both keep pixring's
production defaults (hot keys and coalescing on).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from loadtest import report, wrk
from loadtest.backends import StartError, start_backends, start_pixring
from loadtest.quiet import DEFAULT_LIMIT_PCT
from loadtest.runner import Runner
from loadtest.summary import PairedRatio, RunRecord, paired_ratio
from loadtest.targets import DEFAULT_COUNT
from loadtest.tools import ToolsError, require

REPO = Path(__file__).resolve().parent.parent
BASE, THIS = "pixring-base", "pixring"


def log(message: str) -> None:
    print(message, flush=True)


def ratio_line(label: str, result: PairedRatio) -> str:
    if result.median is None:
        return f"c={result.connections} {label}: every pair was disturbed, no figure"
    interval = (f"95% interval {result.low:.3f}-{result.high:.3f}" if result.low is not None
                else "too few pairs for an interval")
    return (f"c={result.connections} {label}, this / base: median of {result.pairs} paired ratios "
            f"{result.median:.3f} ({interval}; {result.dropped} disturbed pairs left out)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the other checkout, its request path compiled")
    parser.add_argument("--connections", default="8,64", help="wrk concurrencies, comma-separated (default 8,64)")
    parser.add_argument("--pairs", type=int, default=20, help="pairs per concurrency (default 20)")
    parser.add_argument("--seconds", type=int, default=2, help="seconds per run (default 2)")
    parser.add_argument("--max-other", type=float, default=DEFAULT_LIMIT_PCT,
                        help="%% of a core other processes may use during a run, or the hypervisor may steal, "
                             f"before its pair is left out (default {DEFAULT_LIMIT_PCT:g})")
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
        args.connections = [int(c) for c in args.connections.split(",")]
    except ValueError:
        parser.error(f"--connections must be integers separated by commas, got {args.connections!r}")
    args.duration, args.urls = args.seconds, DEFAULT_COUNT  # what loadtest.runner reads
    try:
        require(["nginx", "wrk", "taskset"], install=not args.no_install, log=log)
    except ToolsError as exc:
        log(f"compare: {exc}")
        return 2
    # A stop from outside still stops the servers (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_dir = Path(tempfile.mkdtemp(prefix="pixring-compare-"))
    run_dir.chmod(0o755)  # nginx workers run as an unprivileged user
    bench = Runner(args, run_dir, log)
    try:
        bench.backends = start_backends(run_dir, args.load_cpu)
        for config, checkout in ((BASE, base_dir), (THIS, REPO)):
            bench.servers[config] = start_pixring(config, run_dir, bench.backends.ports, args.proxy_cpu,
                                                  workers=1, checkout=checkout)
        log(f"base {base_dir} against this checkout {REPO}: {args.pairs} pairs of {args.seconds}s runs "
            f"per concurrency, order alternating")
        for config in (BASE, THIS):  # caches filled, pools open
            bench.warm(config, 2)
        for connections in args.connections:
            pairs: list[tuple[RunRecord, RunRecord]] = []
            for index in range(1, args.pairs + 1):
                bench.check_alive()
                order = (BASE, THIS) if index % 2 else (THIS, BASE)
                got = {config: bench.measure(config, connections, args.seconds, round_=index, attempt=1, waited_s=0.0)
                       for config in order}
                pairs.append((got[THIS], got[BASE]))
                log(f"{report.pair_line(index, args.pairs, got[THIS], got[BASE])}  "
                    f"({got[BASE].rps:,.0f} and {got[THIS].rps:,.0f} req/s, steal "
                    f"{max(got[BASE].steal_pct, got[THIS].steal_pct):.1f}%)")
            log(ratio_line("req/s", paired_ratio(pairs, lambda r: r.rps)))
            log(ratio_line("requests per CPU-second", paired_ratio(pairs)))
    except (StartError, wrk.WrkError) as exc:
        log(f"compare: {exc}")
        return 1
    finally:
        bench.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
