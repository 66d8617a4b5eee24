"""``make profile``: where one pixring worker's CPU goes under the benchmark's load.

Run: ``.venv/bin/python -m loadtest.profile`` (``--help`` for the knobs).

The set-up is ``make bench``'s (``loadtest.runner``): three nginx backends and wrk on
``--load-cpu``, pixring with one worker and production defaults on ``--proxy-cpu``,
~10,000 image URLs, a warm-up first. During one wrk run ``perf record`` samples the
worker at ``--frequency`` Hz (perf itself runs on the load CPU); ``perf report`` then
gives the samples per shared object and symbol, which ``loadtest.cpu_layers`` sorts into
layers (kernel, CPython, pixring's compiled path, httptools, uvloop, libc). With the
requests wrk counted and the server's CPU time (its process tree) from /proc, each layer's share becomes
microseconds per request.

``--server skeleton`` and ``--server nginx`` profile the design's floor and the reference
the same way.

Why perf and not py-spy: the request path is compiled (mypyc), and compiled functions
have no Python frames, so py-spy's default sampling sees one frame, the event loop.
``py-spy --native`` sees them but stops the worker for each sample, and on this path that
skews the result: it put 84% of its samples in system calls where perf, which samples
without stopping anything, measures 52% in the kernel (2026-11-26, same worker, same load).

The perf data is kept in ``--out`` (``var/bench/profile-<time>.data``) for ``perf report -i``,
with the tables as JSON beside it (``profile-<time>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import httptools
import uvloop

import balancer
from loadtest import wrk
from loadtest.backends import StartError
from loadtest.cpu import snapshot
from loadtest.cpu_layers import Layers, Profile, ProfileError, parse_report, summarize
from loadtest.quiet import DEFAULT_LIMIT_PCT
from loadtest.runner import Runner
from loadtest.summary import RunRecord
from loadtest.targets import DEFAULT_COUNT
from loadtest.tools import ToolsError, require

REPO = Path(__file__).resolve().parent.parent
_PERF_GRACE_S = 15  # perf's own start and its write of the data file, beyond the run


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.profile",
        description="Profile one pixring worker under wrk's load with perf: CPU by layer and by function.")
    parser.add_argument("--server", choices=("pixring", "skeleton", "nginx"), default="pixring",
                        help="what to profile: pixring's worker (default), loadtest.skeleton (the design's floor) "
                             "or nginx's worker (the reference), each under the same load")
    parser.add_argument("--seconds", type=int, default=8, help="seconds of load sampled (default 8)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--frequency", type=int, default=999, help="perf samples per second (default 999)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before sampling (default 2)")
    parser.add_argument("--urls", type=int, default=DEFAULT_COUNT, help=f"distinct image URLs (default {DEFAULT_COUNT})")
    parser.add_argument("--proxy-cpu", type=int, default=0, help="CPU for pixring (default 0)")
    parser.add_argument("--load-cpu", type=int, default=1, help="CPU for wrk, the backends and perf (default 1)")
    parser.add_argument("--top", type=int, default=15, help="rows of the function and symbol tables (default 15)")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing nginx/wrk/perf")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench", help="directory for the perf data")
    args = parser.parse_args(argv)
    for name in ("seconds", "connections", "frequency", "warmup", "urls", "top"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    cpus = os.sched_getaffinity(0)
    if args.proxy_cpu == args.load_cpu or not {args.proxy_cpu, args.load_cpu} <= cpus:
        parser.error(f"--proxy-cpu and --load-cpu must be two different CPUs of {sorted(cpus)}")
    return args


def runner_args(args: argparse.Namespace) -> argparse.Namespace:
    """What ``loadtest.runner`` reads, in ``make bench``'s terms."""
    return argparse.Namespace(urls=args.urls, proxy_cpu=args.proxy_cpu, load_cpu=args.load_cpu,
                              connections=[args.connections], duration=args.seconds, max_other=DEFAULT_LIMIT_PCT)


def package_objects(package: ModuleType) -> frozenset[str]:
    """The base names of a package's compiled extension modules (what perf names them by)."""
    directory = Path(str(package.__file__)).parent
    return frozenset(path.name for path in directory.rglob("*.so"))


def layers() -> Layers:
    named = {name: "httptools (HTTP parsing)" for name in package_objects(httptools)}
    named.update({name: "uvloop (event loop, transports)" for name in package_objects(uvloop)})
    named["nginx"] = "nginx (its own code)"  # the binary, when profiling the reference
    return Layers(pixring=package_objects(balancer), named=named)


def record(runner: Runner, args: argparse.Namespace, data: Path) -> RunRecord:
    """One wrk run with perf sampling the server throughout (pixring and nginx: their one worker)."""
    server = runner.servers[args.server]
    assert server is not None
    if args.server == "skeleton":
        pid = server.pid  # one process, no workers
    else:
        workers = server.workers(snapshot())
        if len(workers) != 1:
            raise StartError(f"expected one {args.server} worker, found {len(workers)}")
        pid = workers[0]
    perf = subprocess.Popen(
        ["taskset", "-c", str(args.load_cpu), "perf", "record", "-F", str(args.frequency), "-p", str(pid),
         "-o", str(data), "--", "sleep", str(args.seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        run = runner.measure(args.server, args.connections, args.seconds, round_=1, attempt=1, waited_s=0.0)
        _, err = perf.communicate(timeout=args.seconds + _PERF_GRACE_S)
    finally:
        if perf.poll() is None:
            perf.kill()
    if perf.returncode != 0 or not data.exists():
        raise ProfileError(f"perf record failed ({perf.returncode}): {err.strip()[-1000:]}")
    return run


def report(data: Path) -> str:
    done = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,sym",
                           "-n", "-t", "\t"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise ProfileError(f"perf report failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
    return done.stdout


def render(profile: Profile, run: RunRecord, args: argparse.Namespace) -> str:
    us_per_request = run.cpu_us_per_request or 0.0
    cpu_s = run.proxy_cpu_s
    system_pct = 100.0 * (run.proxy_system_s or 0.0) / cpu_s if cpu_s else 0.0

    def table(title: str, rows: list[tuple[str, int]]) -> list[str]:
        lines = [f"{title:<52} {'share':>6} {'µs/req':>7}"]
        lines += [f"  {name:<50} {100 * profile.share(n):5.1f}% {us_per_request * profile.share(n):7.2f}"
                  for name, n in rows]
        return lines

    what = args.server if args.server == "skeleton" else f"{args.server}, 1 worker"
    lines = [
        f"{what} on CPU {args.proxy_cpu}; wrk c={args.connections} for {args.seconds} s on CPU {args.load_cpu}; "
        f"perf at {args.frequency} Hz: {profile.samples:,} samples",
        f"{run.rps:,.0f} req/s, {us_per_request:.1f} µs of {args.server}'s CPU per request "
        f"({system_pct:.0f}% of it system time by /proc), {run.failed} failed",
        "",
        *table("where a request's CPU goes (by shared object)", profile.layers),
        "",
    ]
    if profile.pixring_functions:  # none when profiling the skeleton, or pixring uncompiled
        lines += [*table("pixring's compiled functions (their own code only)", profile.pixring_functions), ""]
    lines += [
        f"{'hottest symbols':<52} {'share':>6}",
        *(f"  {symbol[:38]:<38} {layer.split()[0]:>11} {100 * profile.share(n):5.1f}%"
          for layer, symbol, n in profile.symbols),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require(["nginx", "taskset", "wrk", "perf"], install=not args.no_install, log=log)
    except ToolsError as exc:
        print(f"profile: {exc}", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {args.load_cpu})
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("" if args.server == "pixring" else f"-{args.server}")
    data = args.out / f"profile-{stamp}.data"
    run_dir = Path(tempfile.mkdtemp(prefix="pixring-profile-"))
    run_dir.chmod(0o755)  # nginx workers run as an unprivileged user
    runner = Runner(runner_args(args), run_dir, log)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        runner.start([args.server])
        log(f"warming up for {args.warmup} s ...")
        runner.warm(args.server, args.warmup)
        log(f"sampling {args.server} for {args.seconds} s under c={args.connections} ...")
        run = record(runner, args, data)
        profile = summarize(parse_report(report(data)), layers(), top=args.top)
    except (StartError, wrk.WrkError, ProfileError) as exc:
        print(f"profile: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("profile: interrupted; stopping the servers", file=sys.stderr)
        return 130
    finally:
        runner.stop()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(run_dir, ignore_errors=True)
    log("\n" + render(profile, run, args))
    summary = {"run": asdict(run), "samples": profile.samples,
               "layers": profile.layers, "pixring_functions": profile.pixring_functions,
               "symbols": profile.symbols}
    (args.out / f"profile-{stamp}.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    log(f"\nperf data: {data} (perf report -i {data})")
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
