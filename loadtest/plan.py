"""``python -m loadtest.plan``: how many balancer cores, render cores, hosts and Consul servers a
fleet needs for a given image rate, from measured figures.

It reads the measured figures (``ops/capacity/measured.json``, or ``--measured FILE``: the
balancer's req/s per core from ``make bench``, the renderer's renders per core from
``loadtest.renderer_bench``, the cache hit ratio, which ``--capacity-summary`` takes from a
capacity run's ``summary.json``) and prints, for each rate (default 100,000 and 1,000,000
images a second: imgix's rate and its roadmap), the cores and hosts of each tier at the given
headroom, the watch fan-out on Consul and the figures where the design stops scaling.
docs/capacity-planning.md explains each line.

Pure arithmetic in ``plan_for`` (unit-tested); the command only reads files and prints.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["Inputs", "Plan", "SERIES_PER_NODE", "main", "plan_for", "render_table"]

REPO = Path(__file__).resolve().parent.parent
MEASURED = REPO / "ops" / "capacity" / "measured.json"

# Series one balancer exports per render node (balancer/metrics.py): requests_total by
# method x status class (4 x 5 = 20), the upstream latency histogram (15 buckets + +Inf +
# sum + count = 18), upstream errors by kind (5), attempts, shed, bytes, in flight and
# routable (4), health events by kind (~10 seen in practice).
SERIES_PER_NODE = 20 + 18 + 5 + 4 + 10
# Consul: 3 servers survive one failure, 5 survive two; past a few thousand watching agents,
# or at the rates where an outage costs most, the second server's failure matters too.
_FIVE_SERVERS_FROM_WATCHES = 2000
# Bytes of one member in a health query's answer (service, node, checks): about 1 KB.
_BYTES_PER_MEMBER_IN_ANSWER = 1000


@dataclass(frozen=True)
class Inputs:
    balancer_rps_per_core: float
    renders_per_core: float
    cache_hits_per_core: float
    hit_ratio: float
    headroom: float = 0.3  # the share of every tier's cores kept free (failures, peaks, deploys)
    balancer_host_cores: int = 16
    render_host_cores: int = 32
    balancer_workers_per_host: int = 0  # 0: one per core
    ring_rebuild_ms_per_1000_members: float = 70.0

    def check(self) -> None:
        if not 0.0 <= self.hit_ratio <= 1.0:
            raise ValueError(f"hit ratio {self.hit_ratio}: expected a fraction within 0-1")
        if not 0.0 <= self.headroom < 1.0:
            raise ValueError(f"headroom {self.headroom}: expected a fraction within 0-1 (0.3 keeps 30% free)")
        for name in ("balancer_rps_per_core", "renders_per_core", "cache_hits_per_core"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0")


@dataclass(frozen=True)
class Plan:
    rate: float
    balancer_cores: int
    balancer_hosts: int
    render_cores: int
    render_hosts: int
    renders_per_s: float
    render_share_of_cores: float  # render cores / all cores
    consul_servers: int
    watches: int  # blocking queries open on Consul: balancer hosts x workers each
    answer_bytes_per_change: int  # bytes Consul sends for one membership change, all watches together
    ring_members: int
    ring_rebuild_ms: float
    metrics_series: int  # pixring_* series per balancer host, per-node ones dominating


def _hosts(cores: float, per_host: int, minimum: int = 2) -> int:
    """Whole hosts for ``cores``, never fewer than ``minimum`` (one failure must not take a tier out)."""
    return max(minimum, math.ceil(cores / per_host))


def plan_for(rate: float, inputs: Inputs) -> Plan:
    """The fleet for ``rate`` images a second. Every tier is sized so that its busy share is
    ``1 - headroom`` of its cores; hosts are whole and at least two per tier."""
    inputs.check()
    usable = 1.0 - inputs.headroom
    balancer_cores = math.ceil(rate / inputs.balancer_rps_per_core / usable)
    renders = rate * (1.0 - inputs.hit_ratio)
    render_core_seconds = renders / inputs.renders_per_core + rate * inputs.hit_ratio / inputs.cache_hits_per_core
    render_cores = math.ceil(render_core_seconds / usable)
    balancer_hosts = _hosts(balancer_cores, inputs.balancer_host_cores)
    render_hosts = _hosts(render_cores, inputs.render_host_cores)
    workers = inputs.balancer_workers_per_host or inputs.balancer_host_cores
    watches = balancer_hosts * workers
    return Plan(
        rate=rate, balancer_cores=balancer_cores, balancer_hosts=balancer_hosts, render_cores=render_cores,
        render_hosts=render_hosts, renders_per_s=renders,
        render_share_of_cores=render_cores / (render_cores + balancer_cores),
        consul_servers=5 if watches >= _FIVE_SERVERS_FROM_WATCHES else 3,
        watches=watches, answer_bytes_per_change=watches * render_hosts * _BYTES_PER_MEMBER_IN_ANSWER,
        ring_members=render_hosts,
        ring_rebuild_ms=inputs.ring_rebuild_ms_per_1000_members * render_hosts / 1000,
        metrics_series=render_hosts * SERIES_PER_NODE,
    )


def _count(n: float) -> str:
    return f"{n:,.0f}"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.0f} TB"


def render_table(plans: Sequence[Plan], inputs: Inputs) -> str:
    rows: list[tuple[str, ...]] = [
        ("images per second", *(_count(p.rate) for p in plans)),
        ("renders per second (misses)", *(_count(p.renders_per_s) for p in plans)),
        ("balancer cores", *(_count(p.balancer_cores) for p in plans)),
        (f"balancer hosts ({inputs.balancer_host_cores} cores)", *(_count(p.balancer_hosts) for p in plans)),
        ("render cores", *(_count(p.render_cores) for p in plans)),
        (f"render hosts ({inputs.render_host_cores} cores)", *(_count(p.render_hosts) for p in plans)),
        ("render share of all cores", *(f"{100 * p.render_share_of_cores:.1f}%" for p in plans)),
        ("Consul servers", *(str(p.consul_servers) for p in plans)),
        ("watches (hosts x workers)", *(_count(p.watches) for p in plans)),
        ("Consul bytes per membership change", *(_bytes(p.answer_bytes_per_change) for p in plans)),
        ("ring members", *(_count(p.ring_members) for p in plans)),
        ("ring rebuild per change", *(f"{p.ring_rebuild_ms:.0f} ms" for p in plans)),
        ("per-node metric series per balancer", *(_count(p.metrics_series) for p in plans)),
    ]
    width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"inputs: {inputs.balancer_rps_per_core:,.0f} req/s per balancer core, {inputs.renders_per_core:g} renders/s "
        f"and {inputs.cache_hits_per_core:,.0f} cache hits/s per render core, hit ratio {100 * inputs.hit_ratio:.1f}%, "
        f"headroom {100 * inputs.headroom:.0f}%",
        "",
    ]
    for row in rows:
        lines.append("  ".join([row[0].ljust(width[0]), *(cell.rjust(width[i + 1]) for i, cell in enumerate(row[1:]))]))
    return "\n".join(lines)


def _load_measured(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    return {key: value for key, value in doc.items() if not key.startswith("_")}


def _hit_ratio_of(summary_path: Path) -> float:
    doc = json.loads(summary_path.read_text())
    ratio = (doc.get("cache") or {}).get("hit_ratio")
    if ratio is None:
        raise ValueError(f"{summary_path}: no cache hit ratio (the nodes sent no cache header)")
    return float(ratio)


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: expected rates such as 100000,1000000") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError(f"{text}: expected positive rates")
    return rates


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.plan",
                                     description="Cores, hosts and Consul servers a pixring fleet needs, from measured figures.")
    parser.add_argument("--measured", type=Path, default=MEASURED, metavar="FILE",
                        help="the measured figures (JSON; default: ops/capacity/measured.json)")
    parser.add_argument("--capacity-summary", default=None, metavar="FILE",
                        help="take the hit ratio from a capacity run's summary.json ('latest': the newest "
                             "under var/capacity/)")
    parser.add_argument("--rates", type=_rates, default=[100_000.0, 1_000_000.0], metavar="LIST",
                        help="images per second to plan for, comma-separated (default: 100000,1000000)")
    parser.add_argument("--hit-ratio", type=float, default=None, metavar="F", help="override the hit ratio")
    parser.add_argument("--headroom", type=float, default=0.3, metavar="F",
                        help="share of every tier's cores kept free (default: 0.3)")
    parser.add_argument("--balancer-host-cores", type=int, default=16, metavar="N", help="cores of a balancer host (default: 16)")
    parser.add_argument("--render-host-cores", type=int, default=32, metavar="N", help="cores of a render host (default: 32)")
    parser.add_argument("--json", action="store_true", help="print the plans as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        measured = _load_measured(args.measured)
        if args.capacity_summary == "latest":
            found = sorted(glob.glob(str(REPO / "var" / "capacity" / "*" / "summary.json")))
            if not found:
                parser.error("--capacity-summary latest: no var/capacity/*/summary.json yet (run `make capacity`)")
            args.capacity_summary = found[-1]
        if args.capacity_summary:
            measured["hit_ratio"] = _hit_ratio_of(Path(args.capacity_summary))
        if args.hit_ratio is not None:
            measured["hit_ratio"] = args.hit_ratio
        fields = set(Inputs.__dataclass_fields__)
        inputs = Inputs(**{k: v for k, v in measured.items() if k in fields}, headroom=args.headroom,
                        balancer_host_cores=args.balancer_host_cores, render_host_cores=args.render_host_cores)
        plans = [plan_for(rate, inputs) for rate in args.rates]
    except (OSError, ValueError, TypeError) as exc:
        print(f"loadtest.plan: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"inputs": asdict(inputs), "plans": [asdict(p) for p in plans]}, indent=2))
    else:
        print(render_table(plans, inputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
