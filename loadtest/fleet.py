"""A pixring tier as real processes, and its readings: for the failover benchmark and the
end-to-end fault tests (which add their fault nodes, ``tests/e2e/faultkit.py``).

The load they run is ``loadtest.steadyload``.

Rules of this module:

* Every process is started in a session (process group) of its own, so that cleanup can
  stop what it spawned (the renderer's render pool, the balancer's workers) by the group
  id it got at start, and nothing else. A process the test stopped with SIGSTOP is sent
  SIGCONT before it is killed, so that nothing is left frozen.
* Times are ``time.monotonic()`` of this process, the load's clock too, so a request's
  send time can be compared with the moment a signal was sent. Health events read from a
  balancer's log carry wall-clock time (``time.time()``).
* Nothing here asserts. Helpers measure and return; the tests decide what must hold,
  and the benchmark prints.

Documents relied on: Prometheus text exposition format
(https://prometheus.io/docs/instrumenting/exposition_formats/), proc(5) for
``/proc/<pid>/task/<tid>/children`` and ``/proc/<pid>/cmdline``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "PIXRING",
    "SAMPLE",
    "Balancer",
    "Fleet",
    "Metrics",
    "Node",
    "Proc",
    "RenderNode",
    "children",
    "free_port",
    "http",
    "image_urls",
    "placement",
    "start_all",
    "wait_until",
]

PIXRING = [sys.executable, "-m", "pixring.cli"]
N = TypeVar("N", bound="Node")
SAMPLE = "photos/small-640x427.jpg"
_START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: object | None = None, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """One blocking request; status 0 when nothing answered (refused, reset, timed out)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return 0, {}, str(exc).encode()


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until ``predicate()`` was true, or None if it never was within ``timeout``."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(interval)


def children(pid: int) -> list[int]:
    """Direct children of a process (proc(5): /proc/<pid>/task/<tid>/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


class Proc:
    """A child process in its own session, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.popen: subprocess.Popen | None = None
        self.groups: list[int] = []  # every process group this Proc started (one per spawn)
        self._log = None
        self._log_start = 0

    def spawn(self) -> None:
        self._log = open(self.log_path, "a")
        self._log_start = self._log.tell()  # a restart's readiness is read past the old run's lines
        self.popen = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True, cwd=_repo_root())
        self.groups.append(self.popen.pid)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self, since: int = 0) -> str:
        """The log, from byte offset ``since``."""
        try:
            return self.log_path.read_bytes()[since:].decode(errors="replace")
        except OSError:
            return ""

    def wait_for_line(self, marker: str, timeout: float = _START_TIMEOUT_S) -> str:
        """The newest log line containing ``marker``; RuntimeError if the process exits first."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            lines = [line for line in self.log(self._log_start).splitlines() if marker in line]
            if lines:
                return lines[-1]
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}) before printing "
                                   f"{marker!r}:\n{self.log()[-3000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not print {marker!r} within {timeout:g}s:\n{self.log()[-3000:]}")

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process itself (its children are its own business, as after a crash)."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()

    def cleanup(self) -> None:
        """Stop the process and everything in the process groups it started (a killed
        renderer's render pool included)."""
        for group in self.groups:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.killpg(group, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        if self.popen is not None:
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None


def _repo_root() -> str:
    return str(Path(__file__).resolve().parents[1])


class Node(Proc):
    """A render node process that prints ``listening on http://HOST:PORT`` when ready."""

    def __init__(self, name: str, argv_for_port: Callable[[int], list[str]], log_dir: Path, port: int = 0) -> None:
        super().__init__(name, argv_for_port(port), log_dir / f"{name}.log")
        self._argv_for_port = argv_for_port
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self, timeout: float = _START_TIMEOUT_S) -> None:
        line = self.wait_for_line("listening on http://", timeout)
        self.port = int(line.rsplit(":", 1)[1])

    def restart(self) -> None:
        """Start again on the same port (after a kill): a node coming back."""
        assert not self.alive(), "restart a node only after it stopped"
        if self._log is not None:
            self._log.close()
        self.argv = self._argv_for_port(self.port)
        self.popen = None
        self.spawn()


class RenderNode(Node):
    """The reference renderer, one render worker, no access log; its metrics on an admin
    listener of its own (``admin``), as in production, never on the image port."""

    def __init__(self, name: str, origin: Path, log_dir: Path, port: int = 0, extra: Sequence[str] = ()) -> None:
        self.admin_port = free_port()
        super().__init__(
            name,
            lambda p: [*PIXRING, "renderer", "--listen", f"127.0.0.1:{p}", "--admin", f"127.0.0.1:{self.admin_port}",
                       "--origin", str(origin), "--render-workers", "1", "--no-access-log", *extra],
            log_dir, port,
        )

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def metrics(self) -> "Metrics":
        status, _, body = http("GET", self.admin + "/metrics")
        if status != 200:
            raise RuntimeError(f"{self.name} /metrics answered {status}: {body[:300]!r}")
        return Metrics(body.decode())


class StaticFileNode(Node):
    """Python's own ``http.server`` serving a directory: an HTTP server that knows nothing of
    pixring (404 for every path but its files, ``/healthz`` included)."""

    def __init__(self, name: str, directory: Path, log_dir: Path, port: int = 0) -> None:
        super().__init__(
            name,
            lambda p: [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                       str(directory), str(p)],
            log_dir, port,
        )

    def ready(self, timeout: float = 30.0) -> None:
        line = self.wait_for_line("Serving HTTP on", timeout)  # "... on 127.0.0.1 port 41234 (http://...) ..."
        self.port = int(line.split(" port ", 1)[1].split()[0])


def start_all(nodes: Iterable[Node]) -> None:
    """Spawn every node, then wait for each: start-ups overlap."""
    nodes = list(nodes)
    for node in nodes:
        node.spawn()
    for node in nodes:
        node.ready()


class Fleet:
    """The processes of one test or benchmark run; ``cleanup`` stops them all, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc_info) -> None:
        self.cleanup()

    def renderers(self, names: Iterable[str], origin: Path, extra: Sequence[str] = ()) -> dict[str, RenderNode]:
        return self.start_nodes({name: RenderNode(name, origin, self.log_dir, extra=extra) for name in names})

    def start_nodes(self, nodes: dict[str, N]) -> dict[str, N]:
        """Start ``nodes`` (their start-ups overlap) as processes of this fleet."""
        self.procs += nodes.values()
        start_all(nodes.values())
        return nodes

    def balancer(self, nodes: dict[str, Node], *, workers: int = 2, extra: Sequence[str] = (),
                 urls: dict[str, str] | None = None) -> "Balancer":
        """A balancer over ``nodes`` (and ``urls``: members that are no process of this
        fleet, a closed port say)."""
        balancer = Balancer({**{name: node.url for name, node in nodes.items()}, **(urls or {})}, self.log_dir,
                            workers=workers, extra=extra)
        self.procs.append(balancer)
        balancer.start()
        return balancer

    def cleanup(self) -> None:
        for proc in reversed(self.procs):
            proc.cleanup()
        self.procs.clear()


class Metrics:
    """A parsed ``/metrics`` scrape: sample name and labels -> value."""

    def __init__(self, text: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples.append((sample.name, dict(sample.labels), sample.value))

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``."""
        return sum(v for n, ls, v in self.samples
                   if n == name and all(ls.get(k) == want for k, want in labels.items()))


class Balancer(Proc):
    """``pixring balancer`` over static nodes, its log (health events included) in a file."""

    def __init__(self, nodes: dict[str, str], log_dir: Path, *, workers: int = 2, extra: Sequence[str] = ()) -> None:
        self.port, self.admin_port = free_port(), free_port()
        argv = [*PIXRING, "balancer", "--listen", f"127.0.0.1:{self.port}", "--admin", f"127.0.0.1:{self.admin_port}",
                "--workers", str(workers), "--access-log", "off"]
        for name, url in nodes.items():
            argv += ["--node", f"{name}={url}"]
        super().__init__("balancer", [*argv, *extra], log_dir / "balancer.log")
        self.workers = workers
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = _START_TIMEOUT_S) -> None:
        self.spawn()
        if wait_until(lambda: not self.alive() or http("GET", self.admin + "/readyz", timeout=1)[0] == 200,
                      timeout) is None or not self.alive():
            raise RuntimeError(f"balancer not ready:\n{self.log()[-3000:]}")

    def status(self) -> dict:
        status, _, body = http("GET", self.admin + "/status")
        if status != 200:
            raise RuntimeError(f"/status answered {status}: {body[:300]!r}")
        return json.loads(body)

    def readyz(self) -> tuple[int, str]:
        status, _, body = http("GET", self.admin + "/readyz")
        return status, json.loads(body)["reason"]

    def metrics(self) -> Metrics:
        status, _, body = http("GET", self.admin + "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}: {body[:300]!r}")
        return Metrics(body.decode())

    def routable(self, member: str, status: dict | None = None) -> list[bool]:
        """Per reporting worker, whether it routes to ``member`` (as /status shows it)."""
        doc = status if status is not None else self.status()
        for entry in doc["members"]:
            if entry["id"] == member:
                return [bool(h.get("routable")) for h in entry["health_by_worker"].values()]
        return []

    def routable_everywhere(self, member: str) -> bool:
        views = self.routable(member)
        return len(views) == self.workers and all(views)

    def unroutable_everywhere(self, member: str) -> bool:
        views = self.routable(member)
        return len(views) == self.workers and not any(views)

    def worker_pids(self) -> list[int]:
        return [pid for pid in children(self.pid) if any("pixring.cli.worker" in arg for arg in cmdline(pid))]

    def health_events(self) -> list[dict]:
        """The health events the workers logged (JSON lines ``{"event": "health.<kind>", ...}``)."""
        events = []
        for line in self.log().splitlines():
            if line.startswith("{") and '"health.' in line:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def first_event(self, kind: str, member: str | None, since_wall: float) -> float | None:
        """Wall time of the first ``kind`` event for ``member`` at or after ``since_wall``."""
        times = [e["time"] for e in self.health_events()
                 if e["event"] == f"health.{kind}" and e.get("member") == member and e["time"] >= since_wall]
        return min(times, default=None)


def placement(base: str, urls: Iterable[str]) -> dict[str, str | None]:
    """Which node serves each URL, asked one at a time (no concurrency, so bounded load
    never overflows a key to its next member); None when the answer was not 200."""
    out: dict[str, str | None] = {}
    for url in urls:
        status, headers, _ = http("GET", base + url, timeout=10)
        out[url] = headers.get("X-Pixring-Node") if status == 200 else None
    return out


def image_urls(count: int, start: int = 100) -> list[str]:
    """Distinct small renders of the small sample: cheap to render, cache hits after."""
    return [f"/{SAMPLE}?w={w}" for w in range(start, start + count)]
