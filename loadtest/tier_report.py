"""The tier benchmark's arithmetic: from what the client saw and what the renderers counted
to the figures of ``summary.json``, the time series and the printed table. Pure: no I/O
but the CSV writer's file.

Rules of this module
--------------------
* Latency counts from a request's *scheduled* time (open loop), so a front that stalls is
  charged for every request that waited behind the stall.
* Percentiles are nearest-rank (``loadtest.steadyload.percentile``): every figure is a
  latency some request really had.
* Renderer counters are read as Prometheus ``increase()`` does: a drop means the process
  restarted from zero (the killed renderer), and the count after the drop is new work. What
  a killed process did between its last scrape and its death is lost (at most one scrape
  interval), the same for every front.
* An error is what the issue calls one: an answer with a 5xx status, or a request cut (no
  answer, a connection error, a short body, a timeout). A 4xx is counted apart: the workload
  only sends valid URLs, so one is a bug to look at, not load.
* ``peak_to_mean`` is over the renders each renderer did (the CPU the tier made it spend),
  the busiest node's count over the mean.
* Ratios compare pixring with the best of nginx and HAProxy on each figure (lower is better
  for every one but the hit ratio): below 1 pixring is better.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from loadtest.steadyload import percentile
from loadtest.tier_workload import Phases

__all__ = [
    "FRONTS",
    "FRONT_FIGURES",
    "Outcome",
    "counter_increase",
    "combine_repeats",
    "front_figures",
    "front_details",
    "hit_ratio",
    "increase_per_bucket",
    "peak_to_mean",
    "ratios",
    "repeat_lines",
    "request_rows",
    "table",
    "time_series",
    "write_csv",
]

FRONTS = ("pixring", "nginx", "haproxy")
# The figures each front's object in summary.json holds, in the names and order.
FRONT_FIGURES = ("renders", "hit_ratio", "peak_to_mean", "p99_ms", "burst_p99_ms", "failure_p99_ms",
                 "uncached_p99_ms", "errors")
HIGHER_IS_BETTER = {"hit_ratio"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request as the client saw it."""

    at: float  # scheduled send time, seconds from the run's start
    latency: float  # seconds from ``at`` to the last body byte (or to the failure)
    status: int  # 0 when cut
    cache: str | None  # the renderer's X-Render-Cache: hit, hit-disk, miss
    body_bytes: int
    burst: bool = False
    key: str = ""  # the canonical URL the request meant (the same image for every front)

    @property
    def error(self) -> bool:
        return self.status == 0 or self.status >= 500

    @property
    def rendered(self) -> bool:
        """The request waited for a render (it led one, or joined one in flight)."""
        return self.cache == "miss"


def counter_increase(values: Sequence[float | None]) -> float:
    """How much a counter grew over successive scrapes (None: the scrape failed); a drop is a
    restart from zero, so the value after it is all new."""
    total, last = 0.0, None
    for value in values:
        if value is None:
            continue
        if last is None:
            last = value
            continue
        total += value - last if value >= last else value
        last = value
    return total


def increase_per_bucket(samples: Sequence[tuple[float, float | None]], duration: float,
                        bucket: float = 1.0) -> list[float]:
    """A counter's growth per ``bucket`` seconds from timed scrapes ``(t, value)`` (None: the
    scrape failed), with restarts read as ``counter_increase`` does; the growth between two
    scrapes is put in the bucket of the later one."""
    out = [0.0] * int(math.ceil(duration / bucket))
    last = None
    for t, value in samples:
        if value is None:
            continue
        if last is not None:
            grown = value - last if value >= last else value
            index = min(max(int(t // bucket), 0), len(out) - 1)
            out[index] += grown
        last = value
    return out


def hit_ratio(hits: float, misses: float) -> float:
    """Memory-cache hits over look-ups (renderer counters' increases); NaN with no look-ups."""
    lookups = hits + misses
    return hits / lookups if lookups > 0 else float("nan")


def peak_to_mean(per_node: Iterable[float]) -> float:
    values = list(per_node)
    mean = sum(values) / len(values) if values else 0.0
    return max(values) / mean if mean > 0 else float("nan")


def _ms(values: Sequence[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 1) if values else float("nan")


def _counted(outcomes: Sequence[Outcome], phases: Phases) -> list[Outcome]:
    """The requests the latency figures are over: all but the warm-up's."""
    return [o for o in outcomes if o.at >= phases.warmup]


def front_figures(outcomes: Sequence[Outcome], phases: Phases, renders_per_node: Mapping[str, float],
                  hits: float, misses: float) -> dict[str, float | int]:
    """The eight figures of one front and variant, as summary.json holds them."""
    counted = _counted(outcomes, phases)
    burst = [o.latency for o in counted if phases.phase(o.at) == "burst"]
    failure = [o.latency for o in counted if phases.phase(o.at) == "failure"]
    return {
        "renders": int(round(sum(renders_per_node.values()))),
        "hit_ratio": round(hit_ratio(hits, misses), 4),
        "peak_to_mean": round(peak_to_mean(renders_per_node.values()), 3),
        "p99_ms": _ms([o.latency for o in counted], 99),
        "burst_p99_ms": _ms(burst, 99),
        "failure_p99_ms": _ms(failure, 99),
        "uncached_p99_ms": _ms([o.latency for o in counted if o.rendered], 99),
        "errors": sum(1 for o in outcomes if o.error),
    }


def front_details(outcomes: Sequence[Outcome], phases: Phases, renders_per_node: Mapping[str, float],
                  requests_per_node: Mapping[str, float]) -> dict[str, Any]:
    """The other figures of one front and variant (outside ``variants`` in summary.json)."""
    counted = _counted(outcomes, phases)
    by_phase = {name: [o.latency for o in counted if phases.phase(o.at) == name] for name in ("burst", "failure")}
    latencies = [o.latency for o in counted]
    burst_rendered = [o.latency for o in counted if phases.phase(o.at) == "burst" and o.rendered]
    ok = sum(1 for o in outcomes if o.status == 200)
    return {
        "requests": len(outcomes),
        "p50_ms": _ms(latencies, 50),
        "p99_ms": _ms(latencies, 99),
        "p999_ms": _ms(latencies, 99.9),
        "burst_p50_ms": _ms(by_phase["burst"], 50),
        "burst_p999_ms": _ms(by_phase["burst"], 99.9),
        "failure_p50_ms": _ms(by_phase["failure"], 50),
        "failure_p999_ms": _ms(by_phase["failure"], 99.9),
        "burst_uncached_p99_ms": _ms(burst_rendered, 99),
        "burst_uncached_requests": len(burst_rendered),
        "client_seen_renders": sum(1 for o in outcomes if o.rendered),
        # renders per 1,000 requests answered 200: a front that fails requests renders less
        "renders_per_1000_ok": round(1000 * sum(renders_per_node.values()) / ok, 1) if ok else float("nan"),
        "errors_5xx": sum(1 for o in outcomes if o.status >= 500),
        "errors_cut": sum(1 for o in outcomes if o.status == 0),
        "client_4xx": sum(1 for o in outcomes if 400 <= o.status < 500),
        "bytes": sum(o.body_bytes for o in outcomes),
        "renders_per_node": {node: int(round(n)) for node, n in sorted(renders_per_node.items())},
        "requests_per_node": {node: int(round(n)) for node, n in sorted(requests_per_node.items())},
    }


def combine_repeats(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """One front's figures over repeated runs: the median of each (the lower middle of an
    even count, so it is a figure some run had), errors summed, since the target is none in
    any run. A p99 over a 20-second window is a handful of requests, and which renders meet
    in one node's queue there is chance: one run of each front cannot rank them."""
    out: dict[str, float] = {}
    for figure in FRONT_FIGURES:
        values = [run[figure] for run in runs if figure in run and not _nan(run[figure])]
        if figure == "errors":
            out[figure] = sum(values)
        elif values:
            out[figure] = sorted(values)[(len(values) - 1) // 2]
        else:
            out[figure] = float("nan")
    return out


def repeat_lines(details: Mapping[str, Mapping[str, Mapping]]) -> list[str]:
    """Each repeat's figure beside the median, per variant and figure, for the noisy ones."""
    lines = []
    for variant, fronts in details.items():
        for figure in ("burst_p99_ms", "p99_ms", "failure_p99_ms", "renders", "errors", "steal_pct", "front_cpu_s"):
            cells = [f"{front} {'/'.join(_cell(run[figure]) for run in detail['repeats'])}"
                     for front, detail in fronts.items()
                     if detail.get("repeats") and all(figure in run for run in detail["repeats"])]
            if cells:
                lines.append(f"{variant} {figure} by repeat: " + ", ".join(cells))
    return lines


def ratios(fronts: Mapping[str, Mapping[str, float]]) -> dict[str, float | None]:
    """pixring's figure over the best other front's, per figure (None where undefined: no
    other front, a zero best, a NaN)."""
    out: dict[str, float | None] = {}
    for figure in FRONT_FIGURES:
        mine = fronts.get("pixring", {}).get(figure)
        others = [f[figure] for name, f in fronts.items() if name != "pixring" and figure in f
                  and not _nan(f[figure])]
        if mine is None or _nan(mine) or not others:
            out[figure] = None
            continue
        best = max(others) if figure in HIGHER_IS_BETTER else min(others)
        if best == 0:
            out[figure] = None if mine else 1.0
        else:
            out[figure] = round(mine / best, 3)
    return out


def _nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def time_series(outcomes: Sequence[Outcome], phases: Phases, bucket: float = 1.0) -> list[dict[str, object]]:
    """Per ``bucket`` seconds of scheduled time: requests, errors, renders seen, p50/p99/max."""
    buckets: dict[int, list[Outcome]] = {}
    for o in outcomes:
        buckets.setdefault(int(o.at // bucket), []).append(o)
    rows = []
    for index in range(int(math.ceil(phases.duration / bucket))):
        group = buckets.get(index, [])
        latencies = [o.latency for o in group]
        rows.append({
            "t": round(index * bucket, 3),
            "phase": phases.phase(index * bucket),
            "requests": len(group),
            "errors": sum(1 for o in group if o.error),
            "rendered": sum(1 for o in group if o.rendered),
            "p50_ms": _ms(latencies, 50),
            "p99_ms": _ms(latencies, 99),
            "max_ms": round(max(latencies) * 1000, 1) if latencies else float("nan"),
        })
    return rows


def request_rows(outcomes: Sequence[Outcome], phases: Phases) -> list[dict[str, object]]:
    """Every request in send order, as the client saw it: where a figure's tail comes from
    (which image, which phase, a render or not) is read here."""
    return [{"at": round(o.at, 3), "phase": phases.phase(o.at), "latency_ms": round(o.latency * 1000, 1),
             "status": o.status, "cache": o.cache or "", "bytes": o.body_bytes, "burst": int(o.burst), "key": o.key}
            for o in sorted(outcomes, key=lambda o: o.at)]


def write_csv(path: Path, rows: Iterable[Mapping[str, object]]) -> None:
    rows = list(rows)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _cell(value: object) -> str:
    if value is None or _nan(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def table(summary: Mapping[str, Mapping]) -> str:
    """The summary as a Markdown table: a row per variant and front, the ratio rows after."""
    head = ["variant", "front", *FRONT_FIGURES, "renders_per_1000_ok", "p50_ms", "p999_ms", "bytes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    details = summary.get("details", {})
    for variant, fronts in summary["variants"].items():
        for front, figures in fronts.items():
            extra = details.get(variant, {}).get(front, {})
            cells = [variant, front, *(figures.get(f) for f in FRONT_FIGURES), extra.get("renders_per_1000_ok"),
                     extra.get("p50_ms"), extra.get("p999_ms"), extra.get("bytes")]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    for variant, figures in summary.get("ratios", {}).items():
        cells = [variant, "pixring / best other", *(figures.get(f) for f in FRONT_FIGURES), None, None, None, None]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)
