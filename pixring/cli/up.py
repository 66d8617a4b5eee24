"""``pixring up``: the whole tier on one machine, for trying it and for end-to-end tests.

Starts N reference renderers on free loopback ports (sample images generated on
first run), then a balancer with a static membership of them, waits until the
balancer is ready and prints URLs to try. Every child is a real process started
with a parent-death signal, so none can outlive ``up``, even if ``up`` is killed.
Ctrl-C or SIGTERM stops the children in reverse order (balancer first, so it
drains before its nodes go) and exits 0. A child that dies at start-up stops
everything and ``up`` exits 1, after the child's own error on stderr. Later, a
renderer that dies is reported and the balancer routes around it (that is what
the tier is for); a balancer that dies stops everything with exit code 1.

The balancer gets a fresh admin token for the admin API's POST endpoints, passed as a
file (``--admin-token-file``, mode 0600, removed on exit), never on a command line that
every local user can read in /proc; ``up`` prints where it is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from pixring.process import die_with_parent

__all__ = ["add_arguments", "run_up"]

_START_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--renderers", type=int, default=3, metavar="N", help="reference renderers to start (default: 3)")
    parser.add_argument("--port", type=int, default=8080, metavar="P", help="the balancer's public port on 127.0.0.1 (default: 8080)")
    parser.add_argument("--admin-port", type=int, default=8081, metavar="Q", help="the balancer's admin port on 127.0.0.1 (default: 8081)")
    parser.add_argument("--workers", type=int, default=0, metavar="N", help="balancer worker processes; 0 = one per CPU (default: 0)")
    parser.add_argument(
        "--origin",
        default="var/samples",
        metavar="DIR",
        help="source images for the renderers; sample images are generated there if missing (default: var/samples)",
    )
    parser.add_argument(
        "--balancer-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra argument for `pixring balancer`, e.g. --balancer-arg=--connect-timeout=0.5 (repeatable)",
    )
    parser.add_argument(
        "--renderer-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra argument for every `pixring renderer` (repeatable)",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Child:
    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc


async def _start(name: str, *argv: str) -> _Child:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pixring.cli", *argv, preexec_fn=die_with_parent
    )
    return _Child(name, proc)


async def _wait_http(session: aiohttp.ClientSession, url: str, child: _Child, deadline: float) -> None:
    while time.monotonic() < deadline:
        if child.proc.returncode is not None:
            raise RuntimeError(f"{child.name} exited with code {child.proc.returncode} during start-up")
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} was not ready within {_START_TIMEOUT_S:g}s ({url})")


async def _stop(children: list[_Child], timeout: float = 15.0) -> None:
    for child in reversed(children):  # the balancer first: it drains before its nodes go
        if child.proc.returncode is None:
            try:
                child.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            await asyncio.wait_for(child.proc.wait(), timeout)
        except asyncio.TimeoutError:
            child.proc.kill()
            await child.proc.wait()


async def _up(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    origin = Path(args.origin)
    if not origin.exists() or not any(origin.iterdir()):
        print(f"pixring up: generating sample images in {origin} (first run only)", flush=True)
    from renderer.samples import ensure_samples

    samples = await loop.run_in_executor(None, ensure_samples, origin)
    children: list[_Child] = []
    secrets_dir = Path(tempfile.mkdtemp(prefix="pixring-up-"))
    try:
        return await _run(args, loop, stop, origin, samples, children, secrets_dir)
    finally:
        shutil.rmtree(secrets_dir, ignore_errors=True)


def _admin_token_file(directory: Path) -> Path:
    """A new admin token in a file only this user can read."""
    path = directory / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(24) + "\n")
    return path


async def _run(args, loop, stop, origin, samples, children, secrets_dir) -> int:
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + _START_TIMEOUT_S
            nodes = []
            for i in range(1, args.renderers + 1):
                port = _free_port()
                child = await _start(f"renderer r{i}", "renderer", "--listen", f"127.0.0.1:{port}", "--origin", str(origin), *args.renderer_arg)
                children.append(child)
                nodes.append((f"r{i}", port))
            for child, (_, port) in zip(list(children), nodes):
                await _wait_http(session, f"http://127.0.0.1:{port}/healthz", child, deadline)
            token_file = _admin_token_file(secrets_dir)
            balancer_argv = [
                "balancer",
                "--admin-token-file", str(token_file),
                "--listen", f"127.0.0.1:{args.port}",
                "--admin", f"127.0.0.1:{args.admin_port}",
                "--workers", str(args.workers),
                *[arg for name, port in nodes for arg in ("--node", f"{name}=http://127.0.0.1:{port}")],
                *args.balancer_arg,
            ]
            balancer = await _start("balancer", *balancer_argv)
            children.append(balancer)
            await _wait_http(session, f"http://127.0.0.1:{args.admin_port}/readyz", balancer, deadline)
    except (RuntimeError, OSError) as exc:
        print(f"pixring up: {exc}", file=sys.stderr, flush=True)
        await _stop(children)
        return 1

    example = next((p.relative_to(origin).as_posix() for p in samples if p.suffix == ".jpg"), "photos/sample.jpg")
    base = f"http://127.0.0.1:{args.port}"
    print(
        "\npixring is up:\n"
        f"  balancer   {base}  ({len(nodes)} renderers: {', '.join(f'{n}=:{p}' for n, p in nodes)})\n"
        f"  try        curl -sS -D- -o /tmp/out.webp '{base}/{example}?w=400&h=300&fit=crop&fm=webp'\n"
        f"             curl -sS -D- -o /dev/null '{base}/{example}?H=300&width=400.0&fit=crop&fm=webp&utm_source=x'\n"
        f"  status     curl -sS http://127.0.0.1:{args.admin_port}/status\n"
        f"  metrics    curl -sS http://127.0.0.1:{args.admin_port}/metrics\n"
        f"  admin      curl -sS -XPOST -H \"Authorization: Bearer $(cat {token_file})\" "
        f"http://127.0.0.1:{args.admin_port}/members/r1/drain\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    async def report_death(child: _Child) -> None:
        code = await child.proc.wait()
        if not stop.is_set():
            print(f"pixring up: {child.name} exited with code {code}; the balancer routes around it", file=sys.stderr, flush=True)

    watchers = [loop.create_task(report_death(child)) for child in children[:-1]]
    balancer_exit = loop.create_task(balancer.proc.wait())
    stopper = loop.create_task(stop.wait())
    await asyncio.wait([stopper, balancer_exit], return_when=asyncio.FIRST_COMPLETED)
    crashed = balancer_exit.done() and not stop.is_set()
    stop.set()
    if crashed:
        print(f"pixring up: the balancer exited with code {balancer.proc.returncode}; stopping", file=sys.stderr, flush=True)
    else:
        print("pixring up: stopping", flush=True)
    await _stop(children)
    for task in (stopper, balancer_exit, *watchers):
        task.cancel()
    return 1 if crashed else 0


def run_up(args: argparse.Namespace) -> int:
    import uvloop

    return uvloop.run(_up(args))
