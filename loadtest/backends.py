"""The servers of the benchmark: three cheap backends, and the balancers under test.

Rules of this module
--------------------
* Every server is our own instance with its own config in a private run directory
  (``nginx -p DIR -c FILE -e FILE``, ``haproxy -db -f FILE``, ``pixring balancer``), in the
  foreground, started in its own session so that stopping it reaches its whole process
  group by the leader's id, and nothing else. System services are never touched.
* Pinning is done with ``taskset -c CPU`` *before* exec, so it is inherited by every process
  the server forks (nginx's worker, pixring's workers); taskset execs the server, so the
  Popen pid is the server's own pid and the root of the tree whose CPU time is counted.
* Backends: one nginx worker answering any path on three ports with a fixed body of
  ``BODY_BYTES`` (image/jpeg), keep-alive on, no log: a render node so cheap that the
  proxy in front is what the benchmark measures.
* Balancers have access logs on: nginx buffered (``buffer=64k flush=1s``, as pixring buffers
  its own), HAProxy one line per request to stdout (its container-logging mode), pixring
  its JSON log. A server is ready when a real request through it returns the full body.
* Config rendering (``render`` and the ``*_config`` functions) is pure and tested.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from loadtest.cpu import ProcStat, children, descendants

__all__ = [
    "BODY_BYTES",
    "Server",
    "StartError",
    "backend_config",
    "free_port",
    "haproxy_config",
    "nginx_balancer_config",
    "pixring_argv",
    "render",
    "start_backends",
    "start_haproxy",
    "start_nginx_balancer",
    "start_pixring",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"
BODY_BYTES = 2048  # the "fixed 2 KB body": a small thumbnail's worth of bytes
BACKEND_COUNT = 3
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_READY_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 15.0


class StartError(RuntimeError):
    """A server did not come up; the message names it and quotes its error output."""


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill ``{{name}}`` placeholders; a missing or an unused value is an error, not a
    silently broken config."""
    wanted = set(_PLACEHOLDER.findall(template))
    missing = sorted(wanted - values.keys())
    unused = sorted(values.keys() - wanted)
    if missing or unused:
        raise ValueError(f"template placeholders: missing {missing}, unused {unused}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text()


def _body(size: int) -> str:
    # Plain ASCII that needs no escaping inside an nginx quoted string.
    return ("pixring-bench-" * (size // 14 + 1))[:size]


def backend_config(run_dir: Path, ports: Sequence[int], body_bytes: int = BODY_BYTES) -> str:
    if not ports:
        raise ValueError("backends need at least one port")
    listens = "\n".join(f"        listen 127.0.0.1:{port};" for port in ports)
    return render(_template("nginx-backends.conf"),
                  {"run_dir": run_dir, "listens": listens, "body": _body(body_bytes), "body_bytes": body_bytes})


def nginx_balancer_config(run_dir: Path, port: int, backend_ports: Sequence[int], access_log: Path, *,
                          workers: int = 1, name: str = "nginx-balancer", tls: tuple[Path, Path] | None = None) -> str:
    """nginx's balancer; with several workers each has its own listening socket
    (``reuseport``), as pixring's workers do, so the kernel spreads connections the same way.
    With ``tls`` (certificate, key) it terminates TLS with them, as pixring's TLS row does
    (https://nginx.org/en/docs/http/configuring_https_servers.html)."""
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in backend_ports)
    options = (" ssl" if tls else "") + (" reuseport" if workers > 1 else "")
    tls_lines = f"ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};" if tls else ""
    return render(_template("nginx-balancer.conf"),
                  {"run_dir": run_dir, "port": port, "servers": servers, "access_log": access_log, "workers": workers,
                   "name": name, "listen_options": options, "tls": tls_lines})


def haproxy_config(port: int, backend_ports: Sequence[int]) -> str:
    servers = "\n".join(f"    server b{i} 127.0.0.1:{p}" for i, p in enumerate(backend_ports, 1))
    return render(_template("haproxy.cfg"), {"port": port, "servers": servers})


def pixring_argv(pixring: Sequence[str], *, port: int, admin_port: int, backend_ports: Sequence[int],
                 workers: int, access_log: Path, profile: str = "imgix",
                 tls: tuple[Path, Path] | None = None) -> list[str]:
    """The documented CLI contract; everything else stays at pixring's production defaults."""
    argv = [*pixring, "balancer", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin_port}",
            "--workers", str(workers), "--profile", profile, "--access-log", str(access_log)]
    if tls:
        argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    for i, p in enumerate(backend_ports, 1):
        argv += ["--node", f"b{i}=http://127.0.0.1:{p}"]
    return argv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One running server we started: its process (the tree root), port and files."""

    name: str
    port: int
    proc: subprocess.Popen
    log_dir: Path
    access_log: Path | None = None
    admin_port: int | None = None
    ports: list[int] = field(default_factory=list)
    tls: bool = False  # the public port speaks TLS

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self, stats: Mapping[int, ProcStat]) -> set[int]:
        return descendants(stats, self.proc.pid)

    def workers(self, stats: Mapping[int, ProcStat]) -> list[int]:
        """Direct children: nginx's worker, pixring's worker processes."""
        return children(stats, self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only its tree
            except ProcessLookupError:
                pass
            self.proc.wait(5)

    def stderr_tail(self, lines: int = 20) -> str:
        path = self.log_dir / f"{self.name}.stderr"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _spawn(name: str, argv: list[str], run_dir: Path, cpu: int | None, stdout: Path | None = None,
           checkout: Path | None = None) -> subprocess.Popen:
    """``checkout``: run the code of that pixring checkout (its folder first on the path)."""
    pinned = (["taskset", "-c", str(cpu)] if cpu is not None else []) + argv
    err = open(run_dir / f"{name}.stderr", "ab")
    out = open(stdout, "ab") if stdout is not None else subprocess.DEVNULL
    env = None if checkout is None else {**os.environ, "PYTHONPATH": str(checkout)}
    try:
        return subprocess.Popen(pinned, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=checkout, env=env)
    finally:
        err.close()
        if stdout is not None:
            out.close()


def _get(port: int, path: str, timeout: float = 2.0, tls: bool = False) -> tuple[int, bytes]:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ssl._create_unverified_context())
            if tls else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_ready(server: Server, port: int, path: str, expect_bytes: int | None, tls: bool = False) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if not server.alive():
            raise StartError(f"{server.name} exited with code {server.proc.returncode}:\n{server.stderr_tail()}")
        try:
            status, body = _get(port, path, tls=tls)
            if status == 200 and (expect_bytes is None or len(body) == expect_bytes):
                return
            last = f"status {status}, {len(body)} bytes"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    server.stop()
    raise StartError(f"{server.name} not ready on port {port} after {_READY_TIMEOUT_S:g}s ({last}):\n"
                     f"{server.stderr_tail()}")


PROBE_TARGET = "/img/1.jpg?w=400&h=300"


def start_backends(run_dir: Path, cpu: int | None) -> Server:
    ports = [free_port() for _ in range(BACKEND_COUNT)]
    config = run_dir / "nginx-backends.conf"
    config.write_text(backend_config(run_dir, ports))
    proc = _spawn("backends", ["nginx", "-p", str(run_dir), "-c", str(config), "-e", str(run_dir / "backends-error.log")],
                  run_dir, cpu)
    server = Server("backends", ports[0], proc, run_dir, ports=ports)
    for port in ports:
        _wait_ready(server, port, PROBE_TARGET, BODY_BYTES)
    return server


def start_nginx_balancer(run_dir: Path, backend_ports: Sequence[int], cpu: int | None, *, name: str = "nginx",
                         workers: int = 1, tls: tuple[Path, Path] | None = None) -> Server:
    port, access_log = free_port(), run_dir / f"{name}-access.log"
    config = run_dir / f"{name}-balancer.conf"
    config.write_text(nginx_balancer_config(run_dir, port, backend_ports, access_log, workers=workers,
                                            name=f"{name}-balancer", tls=tls))
    error_log = run_dir / f"{name}-balancer-error.log"
    proc = _spawn(name, ["nginx", "-p", str(run_dir), "-c", str(config), "-e", str(error_log)], run_dir, cpu)
    server = Server(name, port, proc, run_dir, access_log=access_log, tls=tls is not None)
    _wait_ready(server, port, PROBE_TARGET, BODY_BYTES, tls=server.tls)
    return server


def start_haproxy(run_dir: Path, backend_ports: Sequence[int], cpu: int | None) -> Server:
    port, access_log = free_port(), run_dir / "haproxy-access.log"
    config = run_dir / "haproxy.cfg"
    config.write_text(haproxy_config(port, backend_ports))
    proc = _spawn("haproxy", ["haproxy", "-db", "-f", str(config)], run_dir, cpu, stdout=access_log)
    server = Server("haproxy", port, proc, run_dir, access_log=access_log)
    _wait_ready(server, port, PROBE_TARGET, BODY_BYTES)
    return server


def pixring_command() -> list[str]:
    """The ``pixring`` script of the running interpreter's environment (the venv)."""
    script = Path(sys.executable).parent / "pixring"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pixring"]


def start_pixring(name: str, run_dir: Path, backend_ports: Sequence[int], cpu: int | None, *, workers: int,
                  profile: str = "imgix", tls: tuple[Path, Path] | None = None,
                  checkout: Path | None = None) -> Server:
    """``checkout``: another pixring checkout to run instead of this one (``loadtest.compare``)."""
    port, admin_port, access_log = free_port(), free_port(), run_dir / f"{name}-access.log"
    argv = pixring_argv(pixring_command(), port=port, admin_port=admin_port, backend_ports=backend_ports,
                        workers=workers, access_log=access_log, profile=profile, tls=tls)
    proc = _spawn(name, argv, run_dir, cpu, checkout=checkout)
    server = Server(name, port, proc, run_dir, access_log=access_log, admin_port=admin_port, tls=tls is not None)
    _wait_ready(server, admin_port, "/readyz", None)
    _wait_ready(server, port, PROBE_TARGET, BODY_BYTES, tls=server.tls)
    return server


def start_skeleton(run_dir: Path, backend_ports: Sequence[int], cpu: int | None) -> Server:
    """``loadtest.skeleton``: the design's floor, without pixring's features (no access log)."""
    port = free_port()
    proc = _spawn("skeleton", [sys.executable, "-m", "loadtest.skeleton", str(port), *map(str, backend_ports)],
                  run_dir, cpu)
    server = Server("skeleton", port, proc, run_dir)
    _wait_ready(server, port, PROBE_TARGET, BODY_BYTES)
    return server
