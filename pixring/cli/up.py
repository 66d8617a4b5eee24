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

The terminal gets one line per event that matters (start, ready, a member down or up, a
child that died, stop); every child's own output (the JSON logs: access lines, health
events) goes to a file of its own under ``--log-dir`` (default ``var/log/up-<date-time>``),
which the banner names. A child that fails at start-up has the end of its log copied to
stderr, so its own error still reaches the person. Member changes come from the admin
listener's ``/status``, polled every ``--watch-interval`` seconds: the same view an operator has.

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
from typing import IO

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
        "--log-dir",
        default=None,
        metavar="DIR",
        help="where every child's log goes, one file each (default: var/log/up-<date-time>)",
    )
    parser.add_argument(
        "--watch-interval",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between looks at the balancer's /status for members going down or up (default: 1)",
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
    def __init__(self, name: str, proc: asyncio.subprocess.Process, log_path: Path, log: IO[bytes]) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path
        self._log = log

    def close_log(self) -> None:
        self._log.close()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _say(line: str, *, error: bool = False) -> None:
    print(f"pixring up: {line}", file=sys.stderr if error else sys.stdout, flush=True)


async def _start(name: str, log_dir: Path, *argv: str) -> _Child:
    log_path = log_dir / f"{name.split()[-1]}.log"
    log = open(log_path, "ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pixring.cli", *argv, preexec_fn=die_with_parent,
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
    )
    return _Child(name, proc, log_path, log)


def member_changes(before: dict[str, str], members: list[dict]) -> tuple[dict[str, str], list[str]]:
    """The members' states now, and one line for each member whose state changed since
    ``before`` (pure). A line says what failed when a member went down: its last probe."""
    now: dict[str, str] = {}
    lines = []
    for member in members:
        node, state = str(member.get("id")), str(member.get("state"))
        now[node] = state
        previous = before.get(node)
        if previous == state or (previous is None and state == "up"):
            continue  # nothing new; a member that joins healthy is no event
        probes = [v["last_probe"] for v in member.get("health_by_worker", {}).values() if v.get("last_probe")]
        failed = [p for p in probes if not p.get("ok")]
        why = f" ({failed[0].get('result')})" if failed and state != "up" else ""
        lines.append(f"member {node} is {state}{why}" + (f", was {previous}" if previous else ""))
    for node in sorted(set(before) - set(now)):
        lines.append(f"member {node} left the membership")
    return now, lines


async def _watch_members(session: aiohttp.ClientSession, admin: str, interval: float, stop: asyncio.Event) -> None:
    """One line per member that goes down, comes back or leaves, from the admin's /status."""
    states: dict[str, str] = {}
    while not stop.is_set():
        try:
            async with session.get(f"{admin}/status", timeout=aiohttp.ClientTimeout(total=2)) as response:
                doc = await response.json()
            states, lines = member_changes(states, doc.get("members", []))
            for line in lines:
                _say(line)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            pass  # the balancer's own death is reported by its watcher
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


async def _wait_http(session: aiohttp.ClientSession, url: str, child: _Child, deadline: float) -> None:
    while time.monotonic() < deadline:
        if child.proc.returncode is not None:
            raise RuntimeError(f"{child.name} exited with code {child.proc.returncode} during start-up; "
                               f"the end of its log ({child.log_path}):\n{child.tail()}")
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} was not ready within {_START_TIMEOUT_S:g}s ({url}); see {child.log_path}")


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
        child.close_log()


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
    log_dir = Path(args.log_dir) if args.log_dir else Path("var") / "log" / time.strftime("up-%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    _say(f"starting {args.renderers} renderers and a balancer; logs in {log_dir}/")
    children: list[_Child] = []
    secrets_dir = Path(tempfile.mkdtemp(prefix="pixring-up-"))
    try:
        return await _run(args, loop, stop, origin, samples, children, secrets_dir, log_dir)
    finally:
        shutil.rmtree(secrets_dir, ignore_errors=True)


def _admin_token_file(directory: Path) -> Path:
    """A new admin token in a file only this user can read."""
    path = directory / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(24) + "\n")
    return path


async def _run(args, loop, stop, origin, samples, children, secrets_dir, log_dir: Path) -> int:
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + _START_TIMEOUT_S
            nodes = []
            renderer_admins: list[int] = []
            for i in range(1, args.renderers + 1):
                port, admin = _free_port(), _free_port()  # metrics on a listener of their own
                child = await _start(f"renderer r{i}", log_dir, "renderer", "--listen", f"127.0.0.1:{port}",
                                     "--admin", f"127.0.0.1:{admin}", "--origin", str(origin), *args.renderer_arg)
                children.append(child)
                nodes.append((f"r{i}", port))
                renderer_admins.append(admin)
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
            balancer = await _start("balancer", log_dir, *balancer_argv)
            children.append(balancer)
            await _wait_http(session, f"http://127.0.0.1:{args.admin_port}/readyz", balancer, deadline)
    except (RuntimeError, OSError) as exc:
        _say(str(exc), error=True)
        await _stop(children)
        return 1

    example = next((p.relative_to(origin).as_posix() for p in samples if p.suffix == ".jpg"), "photos/sample.jpg")
    base = f"http://127.0.0.1:{args.port}"
    renderer_metrics = ", ".join(f"{name}=:{admin}" for (name, _), admin in zip(nodes, renderer_admins))
    print(
        "\npixring is up:\n"
        f"  balancer   {base}  ({len(nodes)} renderers: {', '.join(f'{n}=:{p}' for n, p in nodes)})\n"
        f"  try        curl -sS -D- -o /tmp/out.webp '{base}/{example}?w=400&h=300&fit=crop&fm=webp'\n"
        f"             curl -sS -D- -o /dev/null '{base}/{example}?H=300&width=400.0&fit=crop&fm=webp&utm_source=x'\n"
        f"  status     http://127.0.0.1:{args.admin_port}/  (a page for a browser; JSON at /status)\n"
        f"  metrics    curl -sS http://127.0.0.1:{args.admin_port}/metrics\n"
        f"             the renderers' on their admin ports ({renderer_metrics}), e.g.\n"
        f"             curl -sS http://127.0.0.1:{renderer_admins[0] if renderer_admins else 0}/metrics\n"
        f"  logs       {log_dir}/  ({', '.join(child.log_path.name for child in children)}: JSON lines)\n"
        f"  admin      curl -sS -XPOST -H \"Authorization: Bearer $(cat {token_file})\" "
        f"http://127.0.0.1:{args.admin_port}/members/r1/drain\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    async def report_death(child: _Child) -> None:
        code = await child.proc.wait()
        if not stop.is_set():
            _say(f"{child.name} exited with code {code}; the balancer routes around it (log: {child.log_path})", error=True)

    watchers = [loop.create_task(report_death(child)) for child in children[:-1]]
    session = aiohttp.ClientSession()
    watchers.append(loop.create_task(_watch_members(session, f"http://127.0.0.1:{args.admin_port}",
                                                    args.watch_interval, stop)))
    balancer_exit = loop.create_task(balancer.proc.wait())
    stopper = loop.create_task(stop.wait())
    await asyncio.wait([stopper, balancer_exit], return_when=asyncio.FIRST_COMPLETED)
    crashed = balancer_exit.done() and not stop.is_set()
    stop.set()
    if crashed:
        _say(f"the balancer exited with code {balancer.proc.returncode}; stopping (log: {balancer.log_path})\n"
             f"{balancer.tail()}", error=True)
    else:
        _say("stopping")
    await _stop(children)
    for task in (stopper, balancer_exit, *watchers):
        task.cancel()
    await session.close()
    _say("stopped")
    return 1 if crashed else 0


def run_up(args: argparse.Namespace) -> int:
    import uvloop

    return uvloop.run(_up(args))
