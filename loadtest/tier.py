"""``make tier-bench``: what the tier costs the render fleet behind it, pixring against nginx
and HAProxy in front of the same reference renderers.

Run: ``.venv/bin/python -m loadtest.tier`` (``--quick`` for the shortened schedule,
``--help`` for the knobs). Results go to ``var/tier/<time>/``.

Method
------
* For every variant of the workload (``canonical``, ``pages``: ``loadtest.tier_workload``)
  and every front (pixring with its production defaults, nginx, HAProxy:
  ``loadtest.tier_configs``), a fresh fleet: ``--renderers`` reference renderers, one render
  worker each, result caches of ``--cache-bytes`` (so every front starts from empty caches),
  then the front, then the same seeded open-loop schedule. One renderer (``r2``) gets
  SIGKILL (its whole process group, render worker included, as when its host dies) at the
  schedule's kill time and is started again on the same port ``down_seconds`` later.
* The client is this process (asyncio and aiohttp, keep-alive connections, no limit on
  connections, aiohttp's silent retry of a GET on a dropped connection switched off so that
  every cut request counts). Each request is sent at its scheduled time and its latency runs
  from that time to its last body byte.
* Every second the renderers' own counters are scraped (renders, memory-cache hits and
  misses) through ``renderer_metrics_url``, the one place that knows where they are.
* The arithmetic is ``loadtest.tier_report``, the chart ``loadtest.tier_chart``.

Why these sizes: see ``DEFAULT_RATE`` and ``DEFAULT_CACHE_BYTES`` below and
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import aiohttp

from loadtest import tier_chart, tier_configs, tier_report
from loadtest.backends import free_port, pixring_command
from loadtest.fleet import Metrics, Node, Proc, http, wait_until
from loadtest.tier_report import FRONTS, Outcome
from loadtest.tier_workload import BURST_SOURCE, VARIANTS, Phases, Request, build_schedule, burst_targets, catalog
from loadtest.tools import ToolsError, require
from renderer.samples import Sample, ensure_samples, generate

REPO = Path(__file__).resolve().parent.parent
KILLED = "r2"
SCRAPE_INTERVAL_S = 1.0
PROGRESS_INTERVAL_S = 5.0
REQUEST_TIMEOUT_S = 20.0
# Offered load, requests per second. The renderers are the bottleneck: a render of the
# catalogue takes ~220 ms of wall time on the shared 2-core machine (mean; p50 100 ms, p90
# 520 ms, measured one at a time), so three one-worker renderers do at best ~10 renders a
# second, fewer when the machine's other work takes its share. At 20/s, after the warm-up,
# a front that keeps locality asks for ~2 new renders a second (the Zipf tail still brings
# images not seen yet): the render workers are a third to half busy, with room for the
# burst's new image and the killed node's keys moving. A front that renders one image on
# several nodes makes them two to three times busier, close to saturation: that is the
# cost the benchmark is there to show.
DEFAULT_RATE = 20.0
# Per renderer. Renders average ~90 KB; a full run renders ~240 distinct images, ~22 MB, so
# with the keys partitioned a node needs ~7 MB to keep its whole share. 6 MB keeps most of
# it: the coldest renders are evicted whoever is in front, and a front that puts one image
# on several nodes loses more of every cache to the copies.
DEFAULT_CACHE_BYTES = "6M"
# Ready lines and health answers: seconds to wait.
READY_TIMEOUT_S = 30.0


def log(message: str) -> None:
    print(message, flush=True)


def renderer_metrics_url(node: Node) -> str:
    """Where a renderer's Prometheus counters are read: the one line to change when they move
    to the renderer's admin listener."""
    return f"{node.url}/metrics"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.tier",
                                     description="pixring, nginx and HAProxy in front of the same render fleet.")
    parser.add_argument("--quick", action="store_true", help="the shortened schedule (same phases, under 4 minutes)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help=f"offered requests per second (default {DEFAULT_RATE:g})")
    parser.add_argument("--renderers", type=int, default=3, help="reference renderers (default 3)")
    parser.add_argument("--cache-bytes", default=DEFAULT_CACHE_BYTES,
                        help=f"each renderer's result cache (default {DEFAULT_CACHE_BYTES})")
    parser.add_argument("--fronts", default=",".join(FRONTS), help=f"fronts to run (default {','.join(FRONTS)})")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"workload variants (default {','.join(VARIANTS)})")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing nginx/haproxy")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "tier", help="results parent directory")
    args = parser.parse_args(argv)
    args.fronts = [f.strip() for f in args.fronts.split(",") if f.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for name, given, known in (("--fronts", args.fronts, FRONTS), ("--variants", args.variants, VARIANTS)):
        unknown = [g for g in given if g not in known]
        if unknown or not given:
            parser.error(f"{name}: unknown or none: {', '.join(unknown)} (known: {', '.join(known)})")
    if args.renderers < 2 or KILLED not in [f"r{i}" for i in range(1, args.renderers + 1)]:
        parser.error("--renderers must be at least 2 (one is killed)")
    if not args.rate > 0:
        parser.error("--rate must be positive")
    return args


# ------------------------------------------------------------------------------ processes


def _renderer(name: str, origin: Path, log_dir: Path, cache_bytes: str) -> Node:
    return Node(name, lambda p: [*pixring_command(), "renderer", "--listen", f"127.0.0.1:{p}", "--origin", str(origin),
                                 "--render-workers", "1", "--cache-bytes", cache_bytes, "--no-access-log"],
                log_dir, 0)


def _start_front(front: str, nodes: dict[str, Node], run_dir: Path, configs_dir: Path, variant: str) -> tuple[Proc, str]:
    """The front as a process of its own session, and its base URL, once it answers."""
    ports = {name: node.port for name, node in nodes.items()}
    port = free_port()
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
        argv = tier_configs.pixring_argv(pixring_command(), port, admin, ports)
        (configs_dir / f"pixring-{variant}.argv").write_text(" ".join(argv) + "\n")
        ready = f"http://127.0.0.1:{admin}/readyz"
    proc = Proc(front, argv, run_dir / f"{front}.log")
    proc.spawn()
    if wait_until(lambda: not proc.alive() or http("GET", ready, timeout=1)[0] == 200, READY_TIMEOUT_S) is None \
            or not proc.alive():
        proc.cleanup()
        raise RuntimeError(f"{front} did not become ready:\n{proc.log()[-3000:]}")
    return proc, f"http://127.0.0.1:{port}"


def _kill_group(node: Node) -> None:
    """SIGKILL the renderer and its render worker (its own process group), as a host dying."""
    try:
        os.killpg(node.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
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
            await asyncio.gather(*background, return_exceptions=True)
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
            async with session.get(self.base + request.url) as response:
                body = await response.read()
                outcome = Outcome(request.at, time.monotonic() - due, response.status,
                                  response.headers.get("X-Render-Cache"), len(body), request.burst)
        except Exception:  # noqa: BLE001 - a cut request (reset, refused, short body, timeout) is a measurement
            outcome = Outcome(request.at, time.monotonic() - due, 0, None, 0, request.burst)
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
        proc, base = _start_front(front, nodes, log_dir, configs_dir, variant)
        procs.append(proc)
        run = Run(label, base, nodes, schedule, phases)
        asyncio.run(run.go())
        return run
    finally:
        for proc in reversed(procs):
            proc.cleanup()


# ------------------------------------------------------------------------------ the command


def prepare_origin(directory: Path) -> Path:
    """The sample images, and the burst's new image beside them."""
    ensure_samples(directory)
    burst = directory / BURST_SOURCE.lstrip("/")
    if not burst.exists():
        burst.parent.mkdir(parents=True, exist_ok=True)
        burst.write_bytes(generate(Sample(BURST_SOURCE.lstrip("/"), 2400, 1600, seed=19)))
    return directory


def _git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require(["nginx", "haproxy"], install=not args.no_install, log=log)
    except ToolsError as exc:
        log(f"tier-bench: {exc}")
        return 2
    phases = Phases.quick() if args.quick else Phases.full()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / stamp
    configs_dir = out / "configs"
    configs_dir.mkdir(parents=True, exist_ok=True)
    run_dir = out / "logs"
    origin = prepare_origin(args.out / "origin")
    targets, burst = catalog(args.seed), burst_targets()
    runs_total = len(args.variants) * len(args.fronts)
    log(f"tier-bench: {runs_total} runs of {phases.duration:g}s at {args.rate:g} req/s, {args.renderers} renderers "
        f"with {args.cache_bytes} caches; burst {phases.burst_start:g}-{phases.burst_end:g}s, "
        f"kill {KILLED} at {phases.kill_at:g}s, restart at {phases.restart_at:g}s; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.monotonic()
    summary: dict[str, object] = {"variants": {}, "details": {}, "ratios": {}, "events": {}}
    rows: list[dict[str, object]] = []
    renders_chart: dict[str, dict[str, dict[str, float]]] = {}
    latency_chart: dict[str, dict[str, list[dict[str, object]]]] = {}
    loads: list[float] = []
    index = 0
    for variant in args.variants:
        schedule = build_schedule(phases, args.rate, variant, args.seed, targets, burst)
        for front in args.fronts:
            index += 1
            label = f"{index}/{runs_total} {variant} {front}"
            log(f"[{label}] starting {args.renderers} renderers and {front}; {len(schedule)} requests; "
                f"{time.monotonic() - started:.0f}s elapsed in all")
            loads.append(os.getloadavg()[0])
            run = run_one(front, variant, label, schedule, phases, args, origin, run_dir, configs_dir)
            loads.append(os.getloadavg()[0])
            nodes = list(run.nodes)
            renders = {n: run.counter(n, "renders") for n in nodes}
            requests = {n: run.counter(n, "hits") + run.counter(n, "misses") for n in nodes}
            hits = sum(run.counter(n, "hits") for n in nodes)
            misses = sum(run.counter(n, "misses") for n in nodes)
            summary["variants"].setdefault(variant, {})[front] = tier_report.front_figures(  # type: ignore[union-attr]
                run.outcomes, phases, renders, hits, misses)
            summary["details"].setdefault(variant, {})[front] = tier_report.front_details(  # type: ignore[union-attr]
                run.outcomes, phases, renders, requests)
            summary["events"].setdefault(variant, {})[front] = {k: round(v, 2) for k, v in run.events.items()}  # type: ignore[union-attr]
            series = tier_report.time_series(run.outcomes, phases)
            per_node = {n: run.per_second(n, "renders") for n in nodes}
            for row in series:
                second = int(row["t"])  # type: ignore[call-overload]
                rows.append({"variant": variant, "front": front, **row,
                             **{f"renders_{n}": round(per_node[n][second], 1) for n in nodes}})
            renders_chart.setdefault(variant, {})[front] = renders
            latency_chart.setdefault(variant, {})[front] = series
            figures = summary["variants"][variant][front]  # type: ignore[index]
            log(f"[{label}] renders {figures['renders']}  hit ratio {figures['hit_ratio']}  p99 {figures['p99_ms']} ms  "
                f"burst p99 {figures['burst_p99_ms']} ms  failure p99 {figures['failure_p99_ms']} ms  "
                f"errors {figures['errors']}")
    for variant, fronts in summary["variants"].items():  # type: ignore[union-attr]
        summary["ratios"][variant] = tier_report.ratios(fronts)  # type: ignore[index]
        pixring = summary["details"][variant].get("pixring")  # type: ignore[index]
        if pixring:
            summary.setdefault("imgix_uncached_700ms", {})[variant] = {  # type: ignore[union-attr]
                "pixring_burst_uncached_p99_ms": pixring["burst_uncached_p99_ms"],
                "requests": pixring["burst_uncached_requests"], "within": pixring["burst_uncached_p99_ms"] < 700}
    summary["meta"] = {
        "time": stamp, "commit": _git_commit(), "quick": args.quick, "rate": args.rate, "seed": args.seed,
        "renderers": args.renderers, "cache_bytes": args.cache_bytes, "killed": KILLED, "phases": asdict(phases),
        "catalogue": len(targets), "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "load_average_1m": {"min": min(loads), "max": max(loads)},
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    tier_report.write_csv(out / "timeseries.csv", rows)
    tier_chart.draw(out / "chart.png", phases, latency_chart, renders_chart, summary["events"])  # type: ignore[arg-type]
    log("")
    log(tier_report.table(summary))
    log("")
    log(f"load average (1 min) during the runs: {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs")
    for name in ("summary.json", "timeseries.csv", "chart.png", "configs"):
        log(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
