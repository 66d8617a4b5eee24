"""One run of the tier benchmark: a fresh fleet of reference renderers, one front in front
of it, the schedule driven open loop, the renderers' counters scraped every second, and one
renderer killed and restarted on schedule.

Rules of this module
--------------------
* The client is this process (asyncio and aiohttp, keep-alive connections, no limit on
  connections, aiohttp's silent retry of a GET on a dropped connection switched off so that
  every cut request counts). Each request is sent at its scheduled time, whatever earlier
  ones are doing, and its latency runs from that time to its last body byte.
* Every process runs in a session of its own (``loadtest.fleet.Proc``), so stopping a run
  stops what it started and nothing else. The killed renderer gets SIGKILL on its whole
  process group, render worker included, as when its host dies.
* The renderers' Prometheus counters are read through ``renderer_metrics_url`` only (their
  admin listeners): the one place that knows where they are served.
* After a pixring run, its own counters (hot-key spreads, coalesced requests, retries,
  sheds) are read once from its admin listener, to say how it got its figures.

Documents relied on: aiohttp's client reference (``ClientSession``, ``TCPConnector``,
``ClientTimeout``: https://docs.aiohttp.org/en/stable/client_reference.html) and yarl's
``URL(..., encoded=True)`` (https://yarl.aio-libs.org/en/latest/api/), which sends a URL
as written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Sequence

import aiohttp
from yarl import URL

from loadtest import tier_configs, tier_report
from loadtest.backends import free_port, pixring_command
from loadtest.cpu import CLOCK_TICKS, snapshot, tree_delta
from loadtest.fleet import Metrics, Node, Proc, http, wait_until
from loadtest.tier_report import Outcome
from loadtest.tier_workload import Phases, Request

__all__ = ["KILLED", "Run", "log", "pixring_counters", "renderer_metrics_url", "run_one"]

KILLED = "r2"
SCRAPE_INTERVAL_S = 1.0
PROGRESS_INTERVAL_S = 5.0
REQUEST_TIMEOUT_S = 20.0
# Ready lines and health answers: seconds to wait.
READY_TIMEOUT_S = 30.0


def log(message: str) -> None:
    print(message, flush=True)


def renderer_metrics_url(node: Node) -> str:
    """Where a renderer's Prometheus counters are read: its admin listener, never its image port."""
    return f"http://127.0.0.1:{node.admin_port}/metrics"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ processes


def _renderer(name: str, origin: Path, log_dir: Path, cache_bytes: str) -> Node:
    admin_port = free_port()  # kept across a restart, as the image port is
    node = Node(name, lambda p: [*pixring_command(), "renderer", "--listen", f"127.0.0.1:{p}",
                                 "--admin", f"127.0.0.1:{admin_port}", "--origin", str(origin),
                                 "--render-workers", "1", "--cache-bytes", cache_bytes, "--no-access-log"],
                log_dir, 0)
    node.admin_port = admin_port  # type: ignore[attr-defined]
    return node


def _start_front(front: str, nodes: dict[str, Node], run_dir: Path, configs_dir: Path,
                 variant: str, pixring_extra: Sequence[str] = ()) -> tuple[Proc, str, str | None]:
    """The front as a process of its own session, its base URL and (pixring's) admin URL, once
    it answers."""
    ports = {name: node.port for name, node in nodes.items()}
    port = free_port()
    admin_url = None
    if front == "nginx":
        config = configs_dir / f"nginx-{variant}.conf"
        config.write_text(tier_configs.nginx_config(run_dir, port, ports, run_dir / "nginx-access.log"))
        argv = ["nginx", "-p", str(run_dir), "-c", str(config), "-e", str(run_dir / "nginx-error.log")]
        ready = f"http://127.0.0.1:{port}/healthz"
    elif front == "haproxy":
        config = configs_dir / f"haproxy-{variant}.cfg"
        config.write_text(tier_configs.haproxy_config(port, ports))
        argv = ["haproxy", "-db", "-f", str(config)]
        ready = f"http://127.0.0.1:{port}/healthz"
    else:
        admin = free_port()
        argv = [*tier_configs.pixring_argv(pixring_command(), port, admin, ports), *pixring_extra]
        (configs_dir / f"pixring-{variant}.argv").write_text(" ".join(argv) + "\n")
        admin_url = f"http://127.0.0.1:{admin}"
        ready = f"{admin_url}/readyz"
    proc = Proc(front, argv, run_dir / f"{front}.log")
    proc.spawn()
    if wait_until(lambda: not proc.alive() or http("GET", ready, timeout=1)[0] == 200, READY_TIMEOUT_S) is None \
            or not proc.alive():
        proc.cleanup()
        raise RuntimeError(f"{front} did not become ready:\n{proc.log()[-3000:]}")
    return proc, f"http://127.0.0.1:{port}", admin_url


# What pixring's own counters say it did (docs/metrics.md): read once, after a run.
PIXRING_COUNTERS = ("pixring_hot_spread_total", "pixring_coalesced_total", "pixring_retries_total",
                    "pixring_retries_refused_total", "pixring_upstream_shed_total", "pixring_steered_total")


def pixring_counters(admin_url: str) -> dict[str, float]:
    status, _, body = http("GET", admin_url + "/metrics")
    if status != 200:
        return {}
    metrics = Metrics(body.decode())
    return {name.removeprefix("pixring_").removesuffix("_total"): metrics.value(name) for name in PIXRING_COUNTERS}


def _kill_group(node: Node) -> None:
    """SIGKILL the renderer and its render worker (its own process group), as a host dying."""
    try:
        os.killpg(node.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if node.popen is not None:
        node.popen.wait()


# ------------------------------------------------------------------------------ one run


class Run:
    """One front and variant: the schedule driven, the renderers scraped, the kill done."""

    def __init__(self, label: str, base: str, nodes: dict[str, Node], schedule: Sequence[Request],
                 phases: Phases) -> None:
        self.label = label
        self.base = base
        self.nodes = nodes
        self.schedule = schedule
        self.phases = phases
        self.outcomes: list[Outcome] = []
        self.scrapes: dict[str, list[tuple[float, dict[str, float] | None]]] = {name: [] for name in nodes}
        self.events: dict[str, float] = {}
        self.balancer: dict[str, float] = {}
        self.front_cpu_s = 0.0  # the front's process tree, user and system, over the run
        self.sent = 0
        self.start = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    async def go(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session, \
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SCRAPE_INTERVAL_S)) as scraper:
            # Count every cut request: no silent retry of a GET on a dropped keep-alive connection.
            session._retry_connection = False  # type: ignore[attr-defined]
            self.start = time.monotonic()
            for name in self.nodes:  # fresh processes: every counter starts from zero
                self.scrapes[name].append((0.0, {"renders": 0.0, "hits": 0.0, "misses": 0.0}))
            background = [asyncio.create_task(c) for c in
                          (self._scrape_loop(scraper), self._control(), self._progress())]
            await self._drive(session)
            for task in background:
                task.cancel()
            for outcome in await asyncio.gather(*background, return_exceptions=True):
                if isinstance(outcome, Exception):  # the kill or the restart went wrong: say so
                    self.events["control_failed"] = self.elapsed()
                    self._progress_line(f"kill/restart failed: {outcome!r}")
            await self._scrape_all(scraper)
            self._progress_line("done")

    async def _drive(self, session: aiohttp.ClientSession) -> None:
        pending: set[asyncio.Task] = set()
        for request in self.schedule:
            delay = self.start + request.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._one(session, request))
            pending.add(task)
            task.add_done_callback(pending.discard)
            self.sent += 1
        if pending:
            await asyncio.gather(*pending)

    async def _one(self, session: aiohttp.ClientSession, request: Request) -> None:
        due = self.start + request.at
        try:
            # encoded=True: sent byte for byte as the page spelled it (yarl would otherwise
            # resolve dot segments and decode escapes before the front sees them).
            async with session.get(URL(self.base + request.url, encoded=True)) as response:
                body = await response.read()
                outcome = Outcome(request.at, time.monotonic() - due, response.status,
                                  response.headers.get("X-Render-Cache"), len(body), request.burst, request.key)
        except Exception:  # noqa: BLE001 - a cut request (reset, refused, short body, timeout) is a measurement
            outcome = Outcome(request.at, time.monotonic() - due, 0, None, 0, request.burst, request.key)
        self.outcomes.append(outcome)

    async def _scrape_loop(self, scraper: aiohttp.ClientSession) -> None:
        while True:
            await asyncio.sleep(SCRAPE_INTERVAL_S)
            await self._scrape_all(scraper)

    async def _scrape_all(self, scraper: aiohttp.ClientSession) -> None:
        results = await asyncio.gather(*(self._scrape(scraper, node) for node in self.nodes.values()))
        t = self.elapsed()
        for name, reading in zip(self.nodes, results):
            self.scrapes[name].append((t, reading))

    async def _scrape(self, scraper: aiohttp.ClientSession, node: Node) -> dict[str, float] | None:
        try:
            async with scraper.get(renderer_metrics_url(node)) as response:
                if response.status != 200:
                    return None
                metrics = Metrics(await response.text())
        except Exception:  # noqa: BLE001 - a dead or busy node's scrape fails; the gap is read as such
            return None
        return {"renders": metrics.value("pixring_renderer_renders_total"),
                "hits": metrics.value("pixring_renderer_cache_hits_total", tier="memory"),
                "misses": metrics.value("pixring_renderer_cache_misses_total", tier="memory")}

    async def _control(self) -> None:
        node = self.nodes[KILLED]
        await asyncio.sleep(max(0.0, self.start + self.phases.kill_at - time.monotonic()))
        _kill_group(node)
        self.events["kill"] = self.elapsed()
        self._progress_line(f"killed {KILLED}")
        await asyncio.sleep(max(0.0, self.start + self.phases.restart_at - time.monotonic()))
        node.restart()
        self.events["restart"] = self.elapsed()
        await asyncio.to_thread(node.ready, READY_TIMEOUT_S)
        self.events["restarted_ready"] = self.elapsed()
        self._progress_line(f"{KILLED} restarted, ready after {self.events['restarted_ready'] - self.events['restart']:.1f}s")

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            self._progress_line(self.phases.phase(self.elapsed()))

    def _progress_line(self, what: str) -> None:
        done = len(self.outcomes)
        errors = sum(1 for o in self.outcomes if o.error)
        log(f"  [{self.label}] {what:<28} t={self.elapsed():5.1f}/{self.phases.duration:g}s  sent {self.sent:5d}  "
            f"answered {done:5d}  errors {errors}")

    # -------------------------------------------------------------------- readings

    def counter(self, node: str, name: str) -> float:
        return tier_report.counter_increase([r[name] if r else None for _, r in self.scrapes[node]])

    def per_second(self, node: str, name: str) -> list[float]:
        return tier_report.increase_per_bucket([(t, r[name] if r else None) for t, r in self.scrapes[node]],
                                               self.phases.duration)


def run_one(front: str, variant: str, label: str, schedule: Sequence[Request], phases: Phases,
            args: argparse.Namespace, origin: Path, run_dir: Path, configs_dir: Path) -> Run:
    log_dir = run_dir / f"{variant}-{front}"
    log_dir.mkdir(parents=True, exist_ok=True)
    names = [f"r{i}" for i in range(1, args.renderers + 1)]
    nodes = {name: _renderer(name, origin, log_dir, args.cache_bytes) for name in names}
    procs: list[Proc] = list(nodes.values())
    try:
        for node in nodes.values():
            node.spawn()
        for node in nodes.values():
            node.ready(READY_TIMEOUT_S)
        proc, base, admin_url = _start_front(front, nodes, log_dir, configs_dir, variant, args.pixring_extra)
        procs.append(proc)
        run = Run(label, base, nodes, schedule, phases)
        before = snapshot()
        asyncio.run(run.go())
        # The front shares the CPUs with the renderers: what it used is CPU they did not get.
        run.front_cpu_s = round(sum(tree_delta(before, snapshot(), proc.pid)) / CLOCK_TICKS, 2)
        if admin_url is not None:
            run.balancer = pixring_counters(admin_url)
        return run
    finally:
        for proc in reversed(procs):
            proc.cleanup()
