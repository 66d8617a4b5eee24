"""``make tier-bench``: what the tier costs the render fleet behind it, pixring against nginx
and HAProxy in front of the same reference renderers.

Run: ``.venv/bin/python -m loadtest.tier`` (``--quick`` for the shortened schedule,
``--help`` for the knobs). Results go to ``var/tier/<time>/``.

Method
------
* For every variant of the workload (``canonical``, ``pages``: ``loadtest.tier_workload``)
  and every front (pixring with its production defaults, nginx, HAProxy:
  ``loadtest.tier_configs``), in turn: a fresh fleet of ``--renderers`` reference renderers
  (one render worker each, result caches of ``--cache-bytes``, so every front starts from
  empty caches), the front, and the same seeded open-loop schedule, with renderer ``r2``
  killed and restarted on schedule (``loadtest.tier_run``).
* The figures, the time series and the table are ``loadtest.tier_report``, the chart
  ``loadtest.tier_chart``; this module is the command line and the sequence.

Why these sizes: see ``DEFAULT_RATE`` and ``DEFAULT_CACHE_BYTES`` below and
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from loadtest import tier_chart, tier_report
from loadtest.cpu import steal_pct, steal_ticks
from loadtest.tier_report import FRONTS
from loadtest.tier_run import KILLED, log, run_one
from loadtest.tier_workload import BURST_SOURCE, VARIANTS, Phases, build_schedule, burst_targets, catalog
from loadtest.tools import ToolsError, require
from renderer.samples import Sample, ensure_samples, generate

REPO = Path(__file__).resolve().parent.parent
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
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run every front N times, seeds SEED..SEED+N-1, and report medians (default 1)")
    parser.add_argument("--pixring-extra", default="", metavar="FLAGS",
                        help="for diagnosis only: flags added to pixring's command line, e.g. "
                             "'--balance-factor 0' (a record is made with production defaults, without it)")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing nginx/haproxy")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "tier", help="results parent directory")
    args = parser.parse_args(argv)
    args.pixring_extra = shlex.split(args.pixring_extra)
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
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args

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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (and SIGINT, which a shell ignores in background jobs) stop the run through
    # the same path as Ctrl-C: every process started is stopped on the way out.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupt)
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
    burst = burst_targets()
    runs_total = args.repeat * len(args.variants) * len(args.fronts)
    log(f"tier-bench: {runs_total} runs of {phases.duration:g}s at {args.rate:g} req/s, {args.renderers} renderers "
        f"with {args.cache_bytes} caches; burst {phases.burst_start:g}-{phases.burst_end:g}s, "
        f"kill {KILLED} at {phases.kill_at:g}s, restart at {phases.restart_at:g}s; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.repeat > 1:
        log(f"tier-bench: {args.repeat} repeats, seeds {args.seed}-{args.seed + args.repeat - 1}, the fronts in turn "
            f"within each; the figures are medians over the repeats, errors their sum")
    if args.pixring_extra:
        log(f"tier-bench: pixring runs with {' '.join(args.pixring_extra)}: a diagnosis, not its production defaults")
    started = time.monotonic()
    repeats: dict[str, dict[str, list[dict]]] = {}
    details: dict[str, dict[str, dict]] = {}
    events: dict[str, dict[str, dict[str, float]]] = {}
    rows: list[dict[str, object]] = []
    request_rows: list[dict[str, object]] = []
    renders_chart: dict[str, dict[str, dict[str, float]]] = {}
    series_chart: dict[str, dict[str, list[dict]]] = {}
    loads: list[float] = []
    index = 0
    # Repeats outermost, so every front's runs are spread over the same stretch of time.
    for repeat in range(args.repeat):
        seed = args.seed + repeat
        targets = catalog(seed)
        for variant in args.variants:
            schedule = build_schedule(phases, args.rate, variant, seed, targets, burst)
            for front in args.fronts:
                index += 1
                label = f"{index}/{runs_total} {variant} {front}" + (f" seed {seed}" if args.repeat > 1 else "")
                log(f"[{label}] starting {args.renderers} renderers and {front}; {len(schedule)} requests; "
                    f"{time.monotonic() - started:.0f}s elapsed in all")
                loads.append(os.getloadavg()[0])
                logs = run_dir / f"seed{seed}" if args.repeat > 1 else run_dir
                steal_before, run_started = steal_ticks(), time.monotonic()
                run = run_one(front, variant, label, schedule, phases, args, origin, logs, configs_dir)
                # Renders are CPU work: a run in minutes when the hypervisor gave this
                # machine's CPUs to others renders slower, whatever the front did.
                steal = round(steal_pct(steal_before, steal_ticks(), time.monotonic() - run_started), 1)
                loads.append(os.getloadavg()[0])
                nodes = list(run.nodes)
                renders = {n: run.counter(n, "renders") for n in nodes}
                requests = {n: run.counter(n, "hits") + run.counter(n, "misses") for n in nodes}
                hits = sum(run.counter(n, "hits") for n in nodes)
                misses = sum(run.counter(n, "misses") for n in nodes)
                figures = tier_report.front_figures(run.outcomes, phases, renders, hits, misses)
                detail = tier_report.front_details(run.outcomes, phases, renders, requests)
                repeats.setdefault(variant, {}).setdefault(front, []).append(
                    {**figures, "burst_uncached_p99_ms": detail["burst_uncached_p99_ms"], "seed": seed,
                     "steal_pct": steal, "front_cpu_s": run.front_cpu_s})
                if repeat == 0:  # the first repeat's details, time series and chart stand for the rest
                    if run.balancer:
                        detail["balancer"] = run.balancer
                    details.setdefault(variant, {})[front] = detail
                    events.setdefault(variant, {})[front] = {k: round(v, 2) for k, v in run.events.items()}
                    renders_chart.setdefault(variant, {})[front] = renders
                    series_chart.setdefault(variant, {})[front] = tier_report.time_series(run.outcomes, phases)
                request_rows += ({"variant": variant, "front": front, "seed": seed, **row}
                                 for row in tier_report.request_rows(run.outcomes, phases))
                per_node = {n: run.per_second(n, "renders") for n in nodes}
                for second, row in enumerate(tier_report.time_series(run.outcomes, phases)):
                    rows.append({"variant": variant, "front": front, "seed": seed, **row,
                                 **{f"renders_{n}": round(per_node[n][second], 1) for n in nodes}})
                log(f"[{label}] renders {figures['renders']}  hit ratio {figures['hit_ratio']}  "
                    f"p99 {figures['p99_ms']} ms  burst p99 {figures['burst_p99_ms']} ms  "
                    f"failure p99 {figures['failure_p99_ms']} ms  errors {figures['errors']}  "
                    f"hypervisor steal {steal}% of a core  front CPU {run.front_cpu_s} s")
    variants: dict[str, dict[str, dict]] = {
        variant: {front: tier_report.combine_repeats(runs) for front, runs in fronts.items()}
        for variant, fronts in repeats.items()}
    imgix: dict[str, dict[str, object]] = {}
    for variant, fronts in repeats.items():
        if args.repeat > 1:
            for front, runs in fronts.items():
                details[variant][front]["repeats"] = runs
        if "pixring" in fronts:
            mine = fronts["pixring"]
            p99 = sorted(run["burst_uncached_p99_ms"] for run in mine)[(len(mine) - 1) // 2]
            imgix[variant] = {"pixring_burst_uncached_p99_ms": p99, "within": p99 < 700,
                              "requests": details[variant]["pixring"]["burst_uncached_requests"]}
    summary: dict[str, Any] = {
        "variants": variants,
        "ratios": {variant: tier_report.ratios(fronts) for variant, fronts in variants.items()},
        "details": details,
        "imgix_uncached_700ms": imgix,
        "events": events,
        "meta": {
            "time": stamp, "commit": _git_commit(), "quick": args.quick, "rate": args.rate, "seed": args.seed,
            "repeat": args.repeat,
            "renderers": args.renderers, "cache_bytes": args.cache_bytes, "killed": KILLED,
            "pixring_extra": args.pixring_extra,
            "phases": asdict(phases), "catalogue": len(catalog(args.seed)), "host": platform.node(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "load_average_1m": {"min": min(loads), "max": max(loads)},
            "wall_seconds": round(time.monotonic() - started, 1),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    tier_report.write_csv(out / "timeseries.csv", rows)
    tier_report.write_csv(out / "requests.csv", request_rows)
    tier_chart.draw(out / "chart.png", phases, series_chart, renders_chart, events)
    log("")
    log(tier_report.table(summary))
    for line in tier_report.repeat_lines(details):
        log(line)
    log("")
    log(f"load average (1 min) during the runs: {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs")
    for name in ("summary.json", "timeseries.csv", "requests.csv", "chart.png", "configs"):
        log(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
