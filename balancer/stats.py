"""Per-worker traffic counters, kept as plain numbers and merged across workers.

The request path only increments integers in objects it already holds (a member's
``MemberStats`` travels with the member's pre-rendered lines): no locks, no metric
objects, no per-request allocation or dict lookup. Once a second the worker writes a
``snapshot()`` for the supervisor, which ``merge``s the snapshots of all workers
(and the last snapshot of workers that have exited, so counters never go
backwards when a worker is replaced) into the numbers that ``/metrics`` and
``/status`` report. This is the same idea as prometheus-client's multiprocess mode,
with the aggregation done on plain data so the hot path stays cheap.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final, Iterable

from balancer.picker import Inflight

__all__ = [
    "LATENCY_BUCKETS",
    "METHOD_LABELS",
    "NO_METHOD",
    "Histogram",
    "MemberStats",
    "WorkerStats",
    "merge_snapshots",
    "method_index",
]

# Seconds. Renders are tens to hundreds of milliseconds; cache hits on a node are
# around a millisecond; the top buckets catch slow origins and timeouts.
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)


class Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last slot is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # A scan from the bottom, where request latencies are: a few comparisons of
        # machine floats when compiled, where bisect compares float objects. The index
        # is bisect_left's (the first bound >= seconds; the +Inf slot past them all).
        index = 0
        for bound in LATENCY_BUCKETS:
            if seconds <= bound:
                break
            index += 1
        self.counts[index] += 1
        self.total += seconds

    def snapshot(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "sum": self.total}


_STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")
_CLASSES: Final = 5
# The request counter's method label, by method_index; "-" for a request that was never
# parsed far enough to have one.
METHOD_LABELS: Final = ("GET", "HEAD", "other", "-")
_METHOD_INDEX: Final = {b"GET": 0, b"HEAD": 1}
NO_METHOD: Final = 3


def _class_index(status: int) -> int:
    return min(max(status // 100, 1), 5) - 1


def method_index(method: bytes) -> int:
    return _METHOD_INDEX.get(method, 2)


class MemberStats:
    """One member's counters in one worker ("-" for answers no member gave)."""

    def __init__(self) -> None:
        self.attempts = 0
        self.shed = 0  # answers of 503 with Retry-After: the node shedding load, not failing
        self.bytes_out = 0
        self.latency = Histogram()  # of its attempts
        # Requests by (method, status class): slot method_index * _CLASSES + class index.
        self.requests = [0] * (len(METHOD_LABELS) * _CLASSES)

    def count_request(self, method: int, status: int) -> None:
        self.requests[method * _CLASSES + _class_index(status)] += 1


# A worker's plain counters, summed over workers as they are.
COUNTERS: Final = ("connections_shed", "retries", "retries_refused", "hedges", "hot_spread", "bounded_overflow", "steered", "coalesced",
                   "coalesce_leaders", "coalesce_alone")


class WorkerStats:
    """One worker's counters since it started."""

    def __init__(self) -> None:
        self.members: dict[str, MemberStats] = {}
        self.upstream_errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.inflight = Inflight()  # the picker reads it for bounded load
        self.request_latency = Histogram()
        self.connections_open = 0
        self.connections_total = 0
        self.connections_shed = 0  # idle ones closed to make room for new ones at max_connections
        self.retries = 0
        self.retries_refused = 0
        self.hedges = 0
        self.hot_spread = 0  # requests for a hot key, spread over its replicas
        self.bounded_overflow = 0  # requests bounded load moved off their key's first member
        self.steered = 0  # expected renders sent to their key's second member (balancer.placement)
        self.coalesced = 0  # requests answered with another's answer
        self.coalesce_leaders = 0  # upstream answers that served waiting requests too
        self.coalesce_alone = 0  # waiting requests sent upstream on their own (answer not shareable)
        self.health_events: defaultdict[tuple[str, str], int] = defaultdict(int)
        # (source name, "admitted" | "refused"): configured names only, and "-" for a Host
        # no source names, so the metric's label stays bounded whatever clients send.
        self.sources: defaultdict[tuple[str, str], int] = defaultdict(int)

    def member(self, member_id: str) -> MemberStats:
        """The member's counters, created on first use (kept: counters never go back)."""
        stats = self.members.get(member_id)
        if stats is None:
            stats = self.members[member_id] = MemberStats()
        return stats

    def snapshot(self) -> dict[str, Any]:
        members = self.members.items()
        return {
            "requests": [[node, METHOD_LABELS[slot // _CLASSES], _STATUS_CLASSES[slot % _CLASSES], n]
                         for node, m in members for slot, n in enumerate(m.requests) if n],
            "upstream_errors": [[*key, n] for key, n in self.upstream_errors.items()],
            "attempts": {node: m.attempts for node, m in members if m.attempts},
            "shed": {node: m.shed for node, m in members if m.shed},
            "inflight": {node: n for node, n in self.inflight.items() if n},
            "bytes_out": {node: m.bytes_out for node, m in members if m.bytes_out},
            "request_latency": self.request_latency.snapshot(),
            "upstream_latency": {node: m.latency.snapshot() for node, m in members if any(m.latency.counts)},
            "connections_open": self.connections_open,
            "connections_total": self.connections_total,
            "connections_shed": self.connections_shed,
            "retries": self.retries,
            "retries_refused": self.retries_refused,
            "hedges": self.hedges,
            "hot_spread": self.hot_spread,
            "bounded_overflow": self.bounded_overflow,
            "steered": self.steered,
            "coalesced": self.coalesced,
            "coalesce_leaders": self.coalesce_leaders,
            "coalesce_alone": self.coalesce_alone,
            "health_events": [[*key, n] for key, n in self.health_events.items()],
            "sources": [[*key, n] for key, n in self.sources.items()],
        }


def _add_histogram(into: dict[str, Any], snap: dict[str, Any]) -> None:
    if not into:
        into["counts"] = [0] * (len(LATENCY_BUCKETS) + 1)
        into["sum"] = 0.0
    for i, n in enumerate(snap["counts"]):
        into["counts"][i] += n
    into["sum"] += snap["sum"]


def merge_snapshots(live: Iterable[dict[str, Any]], exited: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """Sum worker snapshots. Exited workers contribute counters, never gauges."""
    requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)
    errors: defaultdict[tuple[str, str], int] = defaultdict(int)
    attempts: defaultdict[str, int] = defaultdict(int)
    shed: defaultdict[str, int] = defaultdict(int)
    inflight: defaultdict[str, int] = defaultdict(int)
    bytes_out: defaultdict[str, int] = defaultdict(int)
    latency: dict[str, Any] = {}
    upstream: defaultdict[str, dict[str, Any]] = defaultdict(dict)
    connections_open = 0
    connections_total = 0
    totals = dict.fromkeys(COUNTERS, 0)
    health_events: defaultdict[tuple[str, str], int] = defaultdict(int)
    sources: defaultdict[tuple[str, str], int] = defaultdict(int)
    for is_live, snaps in ((True, live), (False, exited)):
        for snap in snaps:
            for node, method, cls, n in snap["requests"]:
                requests[(node, method, cls)] += n
            for node, kind, n in snap["upstream_errors"]:
                errors[(node, kind)] += n
            for node, n in snap["attempts"].items():
                attempts[node] += n
            for node, n in snap.get("shed", {}).items():
                shed[node] += n
            for node, n in snap["bytes_out"].items():
                bytes_out[node] += n
            _add_histogram(latency, snap["request_latency"])
            for node, hist in snap["upstream_latency"].items():
                _add_histogram(upstream[node], hist)
            connections_total += snap["connections_total"]
            for name in totals:
                totals[name] += snap.get(name, 0)
            for member, kind, n in snap.get("health_events", ()):
                health_events[(member, kind)] += n
            for source, result, n in snap.get("sources", ()):
                sources[(source, result)] += n
            if is_live:
                for node, n in snap["inflight"].items():
                    inflight[node] += n
                connections_open += snap["connections_open"]
    return {
        "requests": dict(requests),
        "upstream_errors": dict(errors),
        "attempts": dict(attempts),
        "shed": dict(shed),
        "inflight": dict(inflight),
        "bytes_out": dict(bytes_out),
        "request_latency": latency or Histogram().snapshot(),
        "upstream_latency": dict(upstream),
        "connections_open": connections_open,
        "connections_total": connections_total,
        **totals,
        "health_events": dict(health_events),
        "sources": dict(sources),
    }
