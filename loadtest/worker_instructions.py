"""Instructions a real pixring worker executes per proxied request:
``python -m loadtest.worker_instructions``.

``make bench`` measures requests per second and CPU per request, which move by 10-20% between
runs on a shared machine: too much to see a change of a few percent. ``request_path_bench``
counts instructions, noise-free, but over pixring's own code with the sockets stubbed out.
This counts them in the real thing: ``pixring balancer --workers 1`` under valgrind's
callgrind, in front of the benchmark's nginx backends (``loadtest.backends``), driven over
real sockets by keep-alive clients (eight by default; ``--connections 1`` puts one request in
each event-loop turn, so costs paid per turn rather than per request show in full). Kernel time is not counted (callgrind sees user
space only); everything pixring runs in its worker is: parsing, normalization (cached),
picking, hot keys, coalescing, forwarding, the access log, metrics.

Method: warm up (every URL normalized, the pools full), zero the worker's counters, send
``--requests`` requests and dump; zero again, send twice as many and dump. The difference of
the two windows, divided by ``--requests``, cancels what a window costs whatever its requests
(timers firing, the dump itself). Under callgrind a request takes ~50x its normal time, so
the default 2,000 takes a minute or two. Compare two commits by running this module from each
checkout (``PYTHONPATH`` or the checkout as the working directory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtest.backends import StartError, free_port, pixring_argv, start_backends
from loadtest.cpu import children, descendants, snapshot
from loadtest.tools import ToolsError, require

CONNECTIONS = 8
URLS = 2000
_SUMMARY = re.compile(r"^summary:\s*(\d+)", re.MULTILINE)


def log(message: str) -> None:
    print(message, flush=True)


async def _client(port: int, targets: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for target in targets:
            writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
                raise RuntimeError(f"{target}: {status_line}")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
    finally:
        writer.close()


def send(port: int, count: int, connections: int = CONNECTIONS) -> None:
    """``count`` requests over ``connections`` keep-alive connections, one at a time each."""
    per = max(1, count // connections)
    targets = [f"/img/{i % URLS}.jpg?w=400&h=300" for i in range(per * connections)]

    async def main() -> None:
        await asyncio.gather(*(_client(port, targets[k::connections]) for k in range(connections)))

    asyncio.run(main())


def _wait_up(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            send(port, CONNECTIONS)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise StartError(f"pixring under valgrind did not answer on port {port} in {timeout:g}s") from None
            time.sleep(0.5)


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def _window(port: int, worker: int, count: int, connections: int, out_prefix: str, label: str) -> int:
    """Instructions the worker ran while ``count`` requests went through it."""
    _control("-z", str(worker))
    started = time.monotonic()
    send(port, count, connections)
    _control("-d", label, str(worker))
    dumps = sorted(Path(out_prefix).parent.glob(f"{Path(out_prefix).name}.{worker}.out.*"),
                   key=lambda p: p.stat().st_mtime)
    match = _SUMMARY.search(dumps[-1].read_text(errors="replace"))
    if match is None:
        raise StartError(f"no instruction count in {dumps[-1]}")
    log(f"  {count:>6} requests in {time.monotonic() - started:.0f}s under callgrind: {int(match.group(1)):,} instructions")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.worker_instructions", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests in the first window (default 2000)")
    parser.add_argument("--connections", type=int, default=CONNECTIONS,
                        help=f"keep-alive clients sending one request at a time each (default {CONNECTIONS})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run folder (the callgrind dumps, for callgrind_annotate) and print its path")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing nginx and valgrind")
    args = parser.parse_args(argv)
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    if args.requests < args.connections:
        parser.error("--requests must be at least --connections")
    try:
        require(["nginx", "valgrind", "callgrind_control"], install=not args.no_install, log=log)
    except ToolsError as exc:
        log(f"worker_instructions: {exc}")
        return 2
    run_dir = Path(tempfile.mkdtemp(prefix="pixring-instructions-"))
    run_dir.chmod(0o755)  # nginx workers run as an unprivileged user
    out_prefix = str(run_dir / "callgrind")
    backends = start_backends(run_dir, None)
    port, admin = free_port(), free_port()
    argv_ = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out_prefix}.%p.out",
             sys.executable, "-m", "pixring", *pixring_argv([], port=port, admin_port=admin,
                                                            backend_ports=backends.ports, workers=1,
                                                            access_log=run_dir / "access.log"),
             # Active probes would be the largest cost that grows with time, not requests, and
             # a request takes ~50x its time under callgrind: rare, they stay out of the windows.
             "--probe-interval", "3600"]
    with open(run_dir / "pixring.stderr", "wb") as stderr:
        pixring = subprocess.Popen(argv_, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        log("starting pixring (one worker) under callgrind ...")
        _wait_up(port, 300)
        workers = children(snapshot(), pixring.pid)
        if len(workers) != 1:
            raise StartError(f"expected one worker process under the supervisor, found {workers}")
        log(f"warming up: {2 * URLS} requests over {URLS} URLs ...")
        send(port, 2 * URLS)
        first = _window(port, workers[0], args.requests, args.connections, out_prefix, "first")
        second = _window(port, workers[0], 2 * args.requests, args.connections, out_prefix, "second")
    except (StartError, subprocess.CalledProcessError, RuntimeError) as exc:
        log(f"worker_instructions: {exc}")
        return 1
    finally:
        # The counts are taken: the tree is killed, not drained (a drain under callgrind
        # takes minutes), every process of it by its pid.
        for pid in sorted(descendants(snapshot(), pixring.pid) | {pixring.pid}, reverse=True):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pixring.wait(30)
        backends.stop()
        if args.keep:
            log(f"callgrind dumps kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    per_request = (second - first) / args.requests
    log(f"worker instructions per request: {per_request:,.0f} "
        f"(({second:,} - {first:,}) / {args.requests:,}; user space only, kernel not counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
