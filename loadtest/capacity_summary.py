"""The figures of a capacity run: locust's final statistics and the traffic tally, summarized.

``loadtest.capacity`` runs locust and hands this module what locust wrote; this module turns
it into what a person running a capacity test asks: how much, how fast, how often it failed
and why, how evenly the nodes were used, whether equivalent URLs stayed on one node, how
often a node's cache answered. Pure: data in, figures and text out; unit-tested.

Rules of this module
--------------------
* Requests, failures, rates and latency come from locust's ``--json-file`` output
  (https://docs.locust.io/en/stable/configuration.html, ``--json-file``): it is written at
  shutdown from the final statistics, where the ``--csv`` files are only rewritten once a
  second and can miss the last second of a run. The percentiles are computed from its
  response-time histograms exactly as locust computes its own
  (``locust.stats.calculate_response_time_percentile``: the largest recorded time t such
  that at most that share of the requests were faster than t; locust rounds times above
  100 ms to two significant digits, so these are locust's "approximated" percentiles).
* Node spread, cache outcomes, failure kinds and affinity come from the tally the
  locustfile writes (``loadtest.tally.Tally``).
* Affinity is judged on the groups of equivalent URLs that were actually tested: those with
  at least one non-canonical spelling among two or more answers. A group that landed on
  more than one node is listed: with a healthy fleet and a light load that is a
  normalization bug; under heavy load it can be bounded load moving a hot key off its
  busy owner, which the balancer does on purpose (docs/resilience.md, "Bounded load").
* The phases (``loadtest.steps``: the warm-up, then the load or the steps) come from the
  locustfile's ``phases.json``; the capacity is ``steps.capacity_of`` over them, the same
  judgement that stopped the run.
* Affinity's headline is the share of requests served by their group's main node, next to
  what the configuration expects: 100% less the requests the balancer moved on purpose while
  the run went (retries, hedges, bounded-load overflow and hot-key spreading where the
  balancer reports them), read from its ``/status`` before and after. A count of "groups on
  one node" is shown after it: under load a single overflow splits a group, so that count
  swings from run to run while the request share does not.
* ``progress_line`` reads one row of locust's ``*_stats_history.csv`` (the columns of
  https://docs.locust.io/en/stable/retrieving-stats.html) and never fails on a partial row.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from loadtest import steps
from loadtest.steps import percentile
from loadtest.tally import Tally

__all__ = [
    "Affinity",
    "Latency",
    "Summary",
    "affinity_of",
    "balancer_delta",
    "cache_hits",
    "latency_of",
    "parse_duration",
    "percentile",
    "progress_line",
    "render",
    "summarize",
]

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_SPLIT_GROUPS_SHOWN = 5
CACHE_HITS = ("hit", "hit-disk")  # the reference renderer's X-Render-Cache values that are hits


def parse_duration(text: str) -> float:
    """Seconds of a locust time span (``30s``, ``5m``, ``1h30m``) or of plain seconds (``45``)."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        match = _DURATION.fullmatch(text)
        if not text or match is None:
            raise ValueError(f"{text!r} is not a duration: expected e.g. 30s, 5m, 1h30m or a number of seconds")
        hours, minutes, secs = (int(part) if part else 0 for part in match.groups())
        seconds = float(hours * 3600 + minutes * 60 + secs)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a run must last more than 0 seconds")
    return seconds


# ---------------------------------------------------------------------------- latency


@dataclass(frozen=True)
class Latency:
    """The whole run's request figures, all locust stats entries together."""

    requests: int
    failures: int
    seconds: float
    p50_ms: int
    p95_ms: int
    p99_ms: int
    max_ms: float
    mean_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def latency_of(entries: Iterable[Mapping[str, Any]], started: float = 0.0) -> Latency:
    """Merge locust's ``--json-file`` entries (one per request name) into one ``Latency``.

    ``started``: when the load began (the locustfile's ``test_start``, epoch seconds). An
    entry's own ``start_time`` is when its first request *completed* (locust creates the
    entry then), so without it a cold run's first renders would be left out of the time."""
    histogram: dict[int, int] = {}
    requests = failures = 0
    total_ms = 0.0
    max_ms = 0.0
    starts, ends = [], []
    for entry in entries:
        requests += int(entry.get("num_requests") or 0)
        failures += int(entry.get("num_failures") or 0)
        total_ms += float(entry.get("total_response_time") or 0)
        max_ms = max(max_ms, float(entry.get("max_response_time") or 0))
        for time_ms, count in (entry.get("response_times") or {}).items():
            histogram[int(time_ms)] = histogram.get(int(time_ms), 0) + int(count)
        if entry.get("start_time"):
            starts.append(float(entry["start_time"]))
        if entry.get("last_request_timestamp"):
            ends.append(float(entry["last_request_timestamp"]))
    if started and starts:
        starts.append(started)
    seconds = max(ends) - min(starts) if starts and ends else 0.0
    return Latency(
        requests=requests, failures=failures, seconds=max(seconds, 0.0),
        p50_ms=percentile(histogram, 0.50), p95_ms=percentile(histogram, 0.95), p99_ms=percentile(histogram, 0.99),
        max_ms=max_ms, mean_ms=total_ms / requests if requests else 0.0,
    )


# ---------------------------------------------------------------------------- tally figures


@dataclass(frozen=True)
class Affinity:
    """Groups of equivalent URLs that were tested, and those that landed on more than one node.

    ``requests`` counts the tested groups' answers, ``on_main_node`` those that landed on
    their group's most used node: a split group with 72 answers on one node and 1 elsewhere
    is a bounded-load overflow, not a normalization bug, and this figure shows the difference.
    """

    groups: int
    split: tuple[tuple[str, Mapping[str, int]], ...]
    requests: int = 0
    on_main_node: int = 0

    @property
    def one_node(self) -> int:
        return self.groups - len(self.split)

    @property
    def ratio(self) -> float | None:
        return self.one_node / self.groups if self.groups else None


def affinity_of(tally: Tally) -> Affinity:
    tested = requests = on_main_node = 0
    split_groups = []
    for url, (by_node, variants) in sorted(tally.groups.items()):
        answers = sum(by_node.values())
        if variants < 1 or answers < 2:
            continue  # no non-canonical spelling, or a single answer: nothing was tested
        tested += 1
        requests += answers
        on_main_node += max(by_node.values())
        if len(by_node) > 1:
            split_groups.append((url, dict(by_node)))
    split_groups.sort(key=lambda item: -sum(item[1].values()))
    return Affinity(tested, tuple(split_groups), requests, on_main_node)


def cache_hits(tally: Tally) -> tuple[int, int]:
    """(hits, answers with a cache header): memory and disk hits both count as hits."""
    hits = sum(tally.cache.get(outcome, 0) for outcome in CACHE_HITS)
    return hits, sum(tally.cache.values())


# ---------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class Summary:
    latency: Latency
    tally: Tally
    affinity: Affinity
    expected_nodes: tuple[str, ...] = ()
    max_failure_ratio: float = 0.01
    notes: tuple[str, ...] = field(default=())
    phases: tuple[steps.PhaseFigures, ...] = ()
    capacity: Mapping[str, Any] = field(default_factory=dict)
    find_capacity: bool = False
    stopped_by: str | None = None
    balancer: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spread(self) -> dict[str, int]:
        """Requests per node, the expected members included (a member with none is a finding)."""
        counts = {node: 0 for node in self.expected_nodes}
        counts.update(self.tally.nodes)
        return dict(sorted(counts.items()))

    @property
    def unknown_nodes(self) -> list[str]:
        if not self.expected_nodes:
            return []
        return sorted(set(self.tally.nodes) - set(self.expected_nodes))

    @property
    def shed(self) -> int:
        """Answers of 503 with Retry-After: the fleet shedding load, waited out by the users."""
        return sum(self.tally.shed.values())

    @property
    def failures(self) -> int:
        """What locust counted as failed, less what was shed: the requests that really failed."""
        return max(0, self.latency.failures - self.shed)

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.latency.requests if self.latency.requests else 0.0

    @property
    def passed(self) -> bool:
        if self.find_capacity:  # the run's purpose is to break a step: it passed when one held first
            return bool(self.capacity.get("phase_at_capacity"))
        return self.latency.requests > 0 and self.failure_ratio <= self.max_failure_ratio

    @property
    def moved_on_purpose(self) -> dict[str, int]:
        """What the balancer counted during the run that sends a request off its key's
        owner by design, by reason (only the counters this balancer reports)."""
        totals = self.balancer.get("totals", {})
        reasons = {"retries": "retries", "hedges": "hedges", "bounded_overflow": "bounded load",
                   "hot_spread": "hot-key spreading"}
        return {label: int(totals[key]) for key, label in reasons.items() if isinstance(totals.get(key), (int, float))}

    @property
    def uncounted_policies(self) -> list[str]:
        """Policies on in this balancer that move requests but that it does not count, so the
        expected share is an upper bound (today: bounded load before its overflow counter)."""
        config, totals = self.balancer.get("config", {}), self.balancer.get("totals", {})
        try:
            factor = float(config.get("balance_factor", 0) or 0)
        except (TypeError, ValueError):
            factor = 0.0
        if factor > 0 and "bounded_overflow" not in totals:
            return [f"bounded load (balance_factor {factor:g})"]
        return []

    @property
    def expected_main_share(self) -> float | None:
        """The share of the affinity requests the configuration expects on their group's
        main node: all but those the balancer moved on purpose (an upper bound on what moved:
        the balancer's counters cover every request, the affinity only the tested groups)."""
        if not self.affinity.requests:
            return None
        balancer_requests = int(self.balancer.get("totals", {}).get("requests", 0) or 0)
        moved = sum(self.moved_on_purpose.values())
        if not balancer_requests:
            return 1.0
        return max(0.0, 1.0 - moved / balancer_requests)

    def verdict(self) -> str:
        latency = self.latency
        if self.find_capacity:
            capacity = self.capacity
            if not capacity.get("phase_at_capacity"):
                broke = capacity.get("broke_at") or {}
                return f"FAIL: no step held ({broke.get('phase', 'no step ran')}: {broke.get('why', 'no figures')})"
            return f"PASS: capacity found, {capacity['capacity_rps']:,.1f} req/s at {capacity['users_at_capacity']} users"
        if latency.requests == 0:
            return "FAIL: no request was answered"
        ratio = f"{100 * self.failure_ratio:.2f}% failed, limit {100 * self.max_failure_ratio:.2f}%"
        if self.shed:
            ratio += f"; {100 * self.shed / latency.requests:.2f}% shed (503 + Retry-After), not counted as failed"
        return ("PASS: " if self.passed else "FAIL: ") + ratio

    def to_json(self) -> dict[str, Any]:
        latency = self.latency
        hits, with_header = cache_hits(self.tally)
        return {
            "passed": self.passed,
            "requests": latency.requests, "failures": self.failures,
            "failure_ratio": self.failure_ratio, "max_failure_ratio": self.max_failure_ratio,
            "failures_by_kind": dict(self.tally.failures),
            "shed": self.shed, "shed_by_node": dict(self.tally.shed),
            "seconds": round(latency.seconds, 3), "rps": round(latency.rps, 2),
            "latency_ms": {"p50": latency.p50_ms, "p95": latency.p95_ms, "p99": latency.p99_ms,
                           "mean": round(latency.mean_ms, 2), "max": round(latency.max_ms, 2)},
            "nodes": self.spread, "unknown_nodes": self.unknown_nodes, "untagged": self.tally.untagged,
            "affinity": {"groups": self.affinity.groups, "one_node": self.affinity.one_node,
                         "ratio": self.affinity.ratio, "requests": self.affinity.requests,
                         "on_main_node": self.affinity.on_main_node,
                         "main_node_share": (self.affinity.on_main_node / self.affinity.requests
                                             if self.affinity.requests else None),
                         "expected_main_node_share": self.expected_main_share,
                         "moved_on_purpose": self.moved_on_purpose,
                         "uncounted_policies": self.uncounted_policies,
                         "split": [{"url": url, "nodes": dict(nodes)} for url, nodes in self.affinity.split]},
            "cache": {"outcomes": dict(self.tally.cache), "hits": hits, "answers": with_header,
                      "hit_ratio": hits / with_header if with_header else None},
            "notes": list(self.notes),
            **{key: self.capacity.get(key) for key in ("capacity_rps", "p99_ms_at_capacity", "error_ratio_at_capacity",
                                                        "limit_hit")},
            "capacity": dict(self.capacity), "find_capacity": self.find_capacity, "stopped_by": self.stopped_by,
            "phases": [phase.to_json() for phase in self.phases],
            "balancer_during_run": dict(self.balancer.get("totals", {})),
        }


def phase_figures(phases_doc: Mapping[str, Any]) -> list[steps.PhaseFigures]:
    """Each recorded phase's own figures, from the locustfile's ``phases.json``."""
    out = []
    for record in phases_doc.get("phases", []):
        if not record.get("end"):
            continue
        out.append(steps.figures_of(steps.Phase(**record["phase"]), steps.Snapshot.from_json(record["start"]),
                                    steps.Snapshot.from_json(record["end"])))
    return out


def balancer_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What the balancer counted between two ``/status`` reads (numeric totals only)."""
    if not before or not after:
        return {}
    old, new = before.get("totals", {}), after.get("totals", {})
    totals = {key: new[key] - old.get(key, 0) for key, value in new.items()
              if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return {"totals": totals, "config": after.get("config", {})}


def summarize(entries: Iterable[Mapping[str, Any]], tally: Tally, *, expected_nodes: Sequence[str] = (),
              max_failure_ratio: float = 0.01, notes: Sequence[str] = (), phases: Mapping[str, Any] | None = None,
              balancer: Mapping[str, Any] | None = None) -> Summary:
    phases = phases or {}
    figures = phase_figures(phases)
    limits = steps.Limits(**phases["limits"]) if phases.get("limits") else steps.Limits(max_failure_ratio)
    capacity = steps.capacity_of(figures, limits) if figures else {}
    return Summary(latency_of(entries, tally.started), tally, affinity_of(tally), tuple(expected_nodes), max_failure_ratio,
                   tuple(notes), tuple(figures), capacity, bool(phases.get("find_capacity")),
                   phases.get("stopped_by"), balancer or {})


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def render(summary: Summary) -> str:
    """The summary as a person reads it: one figure per line, each saying what it measures."""
    latency, tally = summary.latency, summary.tally
    lines = ["", "capacity summary", "----------------"]
    lines.append(f"requests        {latency.requests:,} in {latency.seconds:.1f}s = {latency.rps:,.1f} req/s"
                 + (" (all phases, the cold warm-up included)" if summary.phases else ""))
    lines.append(f"failures        {summary.failures:,} ({_percent(summary.failures, latency.requests)})")
    for kind, count in sorted(tally.failures.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"  {kind:<32}{count:,}")  # "from node rN" or "from pixring": who answered
    if summary.shed:
        lines.append(f"shed            {summary.shed:,} ({_percent(summary.shed, latency.requests)}): 503 with "
                     f"Retry-After, the fleet full; the users waited as told")
        for sender, count in sorted(tally.shed.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  by {sender:<23}{count:,}")
    lines.append(f"latency         p50 {latency.p50_ms} ms   p95 {latency.p95_ms} ms   p99 {latency.p99_ms} ms"
                 f"   max {latency.max_ms:.0f} ms")
    spread = summary.spread
    tagged = sum(spread.values())
    if spread:
        mean = tagged / len(spread)
        peak = max(spread.values())
        served = sum(1 for count in spread.values() if count)
        lines.append(f"nodes           {served} of {len(spread)} served, peak/mean {peak / mean:.2f}" if mean else "nodes")
        for node, count in spread.items():
            mark = "  (not a member)" if node in summary.unknown_nodes else ""
            lines.append(f"  {node:<26}{count:>8,}  {_percent(count, tagged):>6}{mark}")
    else:
        lines.append("nodes           no answer named its node")
    if tally.untagged:
        lines.append(f"  untagged answers          {tally.untagged:,} (no node header: is --node-header right?)")
    affinity = summary.affinity
    if affinity.ratio is None:
        lines.append("affinity        not measured (no group of equivalent URLs got 2+ answers naming their node)")
    else:
        expected = summary.expected_main_share
        moved = summary.moved_on_purpose
        lines.append(f"affinity        {_percent(affinity.on_main_node, affinity.requests)} of {affinity.requests:,} "
                     f"requests for equivalent URLs served by their group's main node"
                     + (f"; expected for this configuration: {100 * expected:.1f}% (100% less what the balancer moved on purpose)" if expected is not None else ""))
        if moved:
            shown = ", ".join(f"{label} {count:,}" for label, count in moved.items())
            lines.append(f"  moved on purpose by the balancer during the run: {shown}")
        uncounted = summary.uncounted_policies
        if uncounted:
            lines.append(f"  also on, and not counted by this balancer: {', '.join(uncounted)}, which moves a key off "
                         "an owner with too many requests in flight; the expected share is less by that much")
        lines.append(f"  {affinity.one_node:,} of {affinity.groups:,} groups on one node: one overflow splits a group, "
                     "so this count swings between runs; the request share above does not")
        for url, nodes in affinity.split[:_SPLIT_GROUPS_SHOWN]:
            shown = ", ".join(f"{node}={count}" for node, count in sorted(nodes.items()))
            lines.append(f"  split: {url}  ({shown})")
        if len(affinity.split) > _SPLIT_GROUPS_SHOWN:
            lines.append(f"  ... and {len(affinity.split) - _SPLIT_GROUPS_SHOWN} more split groups")
        if (expected is not None and not uncounted and affinity.requests
                and affinity.on_main_node / affinity.requests < expected - 0.02):
            lines.append("  below what the configuration explains: with few --users and "
                         "--balancer-arg=--balance-factor=0 a share under 100% is a normalization bug")
    hits, with_header = cache_hits(tally)
    if with_header:
        outcomes = ", ".join(f"{name} {count:,}" for name, count in sorted(tally.cache.items()))
        lines.append(f"cache hit ratio {_percent(hits, with_header)} of {with_header:,} answers ({outcomes})")
    else:
        lines.append("cache hit ratio not measured (no answer carried the cache header)")
    lines.extend(_phase_lines(summary))
    for note in summary.notes:
        lines.append(f"note: {note}")
    lines.append(summary.verdict())
    return "\n".join(lines)


def _phase_lines(summary: Summary) -> list[str]:
    """The phases one per line (the cold warm-up apart from the warm load), then the capacity."""
    if not summary.phases:
        return []
    lines = ["phases          (each on its own requests; the warm-up is not counted)"]
    for phase in summary.phases:
        mark = "cold, not counted" if not phase.counted else ""
        lines.append(f"  {phase.name:<10}{phase.users:>5} users {phase.seconds:6.1f}s {phase.rps:>9,.1f} req/s  "
                     f"p50 {phase.p50_ms:>5} ms  p99 {phase.p99_ms:>5} ms  errors {100 * phase.error_ratio:5.2f}%  {mark}".rstrip())
    capacity = summary.capacity
    if not capacity:
        return lines
    broke = capacity.get("broke_at")
    limits = capacity.get("limits", {})
    held = capacity.get("phase_at_capacity")
    if held:
        lines.append(f"capacity        {capacity['capacity_rps']:,.1f} req/s at {capacity['users_at_capacity']} users "
                     f"({held}): p50 {capacity['p50_ms_at_capacity']} ms, p99 {capacity['p99_ms_at_capacity']} ms, "
                     f"errors {100 * capacity['error_ratio_at_capacity']:.2f}%")
    else:
        lines.append("capacity        no counted phase held its limits")
    if summary.find_capacity and capacity.get("phase_at_peak") and capacity.get("phase_at_peak") != held:
        lines.append(f"  the most served: {capacity['peak_rps']:,.1f} req/s at {capacity['users_at_peak']} users "
                     f"({capacity['phase_at_peak']}); past it more users only queued")
    if broke:
        lines.append(f"  broke at {broke['phase']} ({broke['users']} users, {broke['rps']:,.1f} req/s): {broke['why']}")
    elif summary.find_capacity:
        lines.append(f"  no step broke (limits p99 {limits.get('max_p99_ms', 0):g} ms, errors "
                     f"{100 * limits.get('max_error_ratio', 0):g}%): the capacity is at least this; "
                     "raise --max-users or --run-time")
    return lines


# ---------------------------------------------------------------------------- progress


def _number(row: Mapping[str, str], column: str) -> float | None:
    try:
        value = float(row.get(column) or "nan")
    except ValueError:
        return None
    return None if math.isnan(value) else value


def progress_line(row: Mapping[str, str], elapsed: float, run_seconds: float,
                  previous: Mapping[str, str] | None = None) -> str:
    """One progress line from a ``*_stats_history.csv`` row (the Aggregated one).

    With the ``previous`` line's row, req/s is the rate between the two; locust's own
    ``Requests/s`` column is a 10-second sliding window that starts at 0 and lags behind.
    """
    users = _number(row, "User Count")
    rps = _number(row, "Requests/s")
    if previous is not None:
        count, before = _number(row, "Total Request Count"), _number(previous, "Total Request Count")
        now, then = _number(row, "Timestamp"), _number(previous, "Timestamp")
        if None not in (count, before, now, then) and now > then:  # type: ignore[operator]
            rps = (count - before) / (now - then)  # type: ignore[operator]
    elif _number(row, "Total Request Count") is not None and elapsed > 0:
        rps = _number(row, "Total Request Count") / elapsed  # type: ignore[operator]
    fails = _number(row, "Total Failure Count")
    total = _number(row, "Total Request Count")
    p50 = _number(row, "50%")
    p95 = _number(row, "95%")

    def show(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    return (f"[{elapsed:5.0f}s/{run_seconds:.0f}s] users {show(users, '.0f')}  req/s {show(rps, '.1f')}  "
            f"requests {show(total, ',.0f')}  failures {show(fails, ',.0f')}  "
            f"p50 {show(p50, '.0f')} ms  p95 {show(p95, '.0f')} ms")
