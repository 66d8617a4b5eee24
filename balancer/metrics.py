"""Prometheus exposition of the whole balancer, from the workers' merged state.

Every metric is named ``pixring_*``; the manual's reference (docs/metrics.md) lists them and
is a contract for alert rules and dashboards: rename nothing without a deprecation.
The numbers come from ``stats.merge_snapshots`` over all workers, so a scrape
describes the balancer, not one worker. Worker state is written once a second, so
a scrape may lag the traffic by up to a second.
"""

from __future__ import annotations

from typing import Any, Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from balancer.stats import COUNTERS, LATENCY_BUCKETS

__all__ = ["BalancerCollector", "METRIC_HELP"]

# name -> (type, help). docs/metrics.md's reference is generated from this table.
METRIC_HELP: dict[str, tuple[str, str]] = {
    "pixring_requests_total": ("counter", "Requests answered, by node (- when pixring answered itself), method and status class."),
    "pixring_request_duration_seconds": ("histogram", "Time from a request's first byte read to its last byte written."),
    "pixring_upstream_duration_seconds": ("histogram", "Time from sending a request to a node to the end of its response, by node."),
    "pixring_upstream_errors_total": ("counter", "Failed exchanges with nodes, by node and kind (connect, connect_timeout, timeout, reset, protocol)."),
    "pixring_upstream_attempts_total": ("counter", "Requests sent to each node, retries included."),
    "pixring_upstream_shed_total": ("counter", "Answers of 503 with Retry-After, by node: the node shedding load. Not a failure: it neither ejects the node nor moves its keys."),
    "pixring_response_bytes_total": ("counter", "Response body bytes forwarded from each node."),
    "pixring_inflight_requests": ("gauge", "Requests being answered by each node right now."),
    "pixring_connections_open": ("gauge", "Client connections open now."),
    "pixring_connections_total": ("counter", "Client connections accepted."),
    "pixring_connections_shed_total": ("counter", "Idle client connections closed to make room for new ones at max_connections per worker."),
    "pixring_ring_members": ("gauge", "Members in the ring (the largest count among workers)."),
    "pixring_ring_size": ("gauge", "Points or table entries in the ring."),
    "pixring_ring_info": ("gauge", "1 for each ring version a worker routes with, labelled by algorithm and version; more than one series means the workers disagree."),
    "pixring_ring_versions": ("gauge", "Distinct ring versions among the workers: 1 when they agree."),
    "pixring_workers": ("gauge", "Worker processes reporting."),
    "pixring_ready": ("gauge", "1 when /readyz answers 200."),
    "pixring_discovery_stale": ("gauge", "1 when a worker routes with a last known membership because discovery is failing."),
    "pixring_discovery_last_success_age_seconds": ("gauge", "Seconds since discovery last answered well (the oldest among workers)."),
    "pixring_retries_total": ("counter", "Retries sent to the next member of a key's list."),
    "pixring_retries_refused_total": ("counter", "Retries (and hedges) the retry budget refused."),
    "pixring_hedges_total": ("counter", "Hedged requests sent to a second member while the first was slow."),
    "pixring_hot_keys": ("gauge", "Keys hot on at least one worker now (their share of the worker's recent requests is at least hot_key_share)."),
    "pixring_hot_spread_total": ("counter", "Requests for a hot key, sent to one of its replicas (the first members of its list) rather than its owner alone."),
    "pixring_bounded_overflow_total": ("counter", "Requests bounded load sent past their key's first member because it was over its bound."),
    "pixring_steered_total": ("counter", "Requests for a key new to the balancer (expected to render) sent to its second member because its owner was rendering."),
    "pixring_coalesced_total": ("counter", "Requests answered with an identical request's answer, without a request of their own to a node."),
    "pixring_coalesce_leaders_total": ("counter", "Answers from a node that also answered identical requests waiting for them."),
    "pixring_coalesce_alone_total": ("counter", "Requests that waited for an identical one whose answer could not be shared (an error, private, too large) and then went to a node on their own."),
    "pixring_health_events_total": ("counter", "Health changes by member and kind (down, up, ejected, readmitted, drain, maintenance, ready, ...)."),
    "pixring_member_routable": ("gauge", "Fraction of workers that route to the member (1 healthy, 0 out)."),
    "pixring_panic": ("gauge", "1 when a worker routes over all members because too few are healthy."),
    "pixring_source_requests_total": ("counter", "Requests by source (a configured name, or - for a Host no source names) and result: admitted, or refused (a missing, wrong or expired signature; an unknown Host)."),
    "pixring_build_info": ("gauge", "1, labelled with the pixring version."),
}


def _histogram(name: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, METRIC_HELP[name][1], labels=labels)


def _buckets(snapshot: dict[str, Any]) -> tuple[list[tuple[str, float]], float]:
    cumulative = 0
    buckets = []
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), snapshot["counts"]):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    return buckets, snapshot["sum"]


class BalancerCollector(Collector):
    """Reads a fresh merged view on every scrape."""

    def __init__(self, view) -> None:
        self._view = view  # () -> dict with "stats", "workers", "ready" (AdminState.metrics_view)

    def collect(self) -> Iterable[Metric]:
        from pixring import __version__

        view = self._view()
        stats = view["stats"]
        workers = view["workers"]

        def family(cls, name, labels=()):
            return cls(name, METRIC_HELP[name][1], labels=list(labels))

        requests = family(CounterMetricFamily, "pixring_requests_total", ("node", "method", "code"))
        for (node, method, code), n in sorted(stats["requests"].items()):
            requests.add_metric([node, method, code], n)
        yield requests

        latency = _histogram("pixring_request_duration_seconds", [])
        buckets, total = _buckets(stats["request_latency"])
        latency.add_metric([], buckets, total)
        yield latency

        upstream = _histogram("pixring_upstream_duration_seconds", ["node"])
        for node, snap in sorted(stats["upstream_latency"].items()):
            buckets, total = _buckets(snap)
            upstream.add_metric([node], buckets, total)
        yield upstream

        errors = family(CounterMetricFamily, "pixring_upstream_errors_total", ("node", "kind"))
        for (node, kind), n in sorted(stats["upstream_errors"].items()):
            errors.add_metric([node, kind], n)
        yield errors

        for name, key, cls in (
            ("pixring_upstream_attempts_total", "attempts", CounterMetricFamily),
            ("pixring_upstream_shed_total", "shed", CounterMetricFamily),
            ("pixring_response_bytes_total", "bytes_out", CounterMetricFamily),
            ("pixring_inflight_requests", "inflight", GaugeMetricFamily),
        ):
            metric = family(cls, name, ("node",))
            for node, n in sorted(stats[key].items()):
                metric.add_metric([node], n)
            yield metric

        yield GaugeMetricFamily("pixring_connections_open", METRIC_HELP["pixring_connections_open"][1], value=stats["connections_open"])
        yield CounterMetricFamily("pixring_connections_total", METRIC_HELP["pixring_connections_total"][1], value=stats["connections_total"])

        rings = [w["ring"] for w in workers]
        yield GaugeMetricFamily("pixring_ring_members", METRIC_HELP["pixring_ring_members"][1], value=max((r["members"] for r in rings), default=0))
        yield GaugeMetricFamily("pixring_ring_size", METRIC_HELP["pixring_ring_size"][1], value=max((r["size"] for r in rings), default=0))
        info = family(GaugeMetricFamily, "pixring_ring_info", ("algorithm", "version"))
        versions = sorted({(r["algorithm"], r["version"]) for r in rings})
        for algorithm, version in versions:
            info.add_metric([algorithm, version], 1)
        yield info
        yield GaugeMetricFamily("pixring_ring_versions", METRIC_HELP["pixring_ring_versions"][1], value=len(versions))
        yield GaugeMetricFamily("pixring_workers", METRIC_HELP["pixring_workers"][1], value=len(workers))
        yield GaugeMetricFamily("pixring_ready", METRIC_HELP["pixring_ready"][1], value=1 if view["ready"] else 0)
        discovery = [w["discovery"] for w in workers]
        yield GaugeMetricFamily("pixring_discovery_stale", METRIC_HELP["pixring_discovery_stale"][1], value=1 if any(d["stale"] for d in discovery) else 0)
        ages = [d["last_success_age_s"] for d in discovery if d["last_success_age_s"] is not None]
        yield GaugeMetricFamily(
            "pixring_discovery_last_success_age_seconds",
            METRIC_HELP["pixring_discovery_last_success_age_seconds"][1],
            value=max(ages, default=0.0),
        )
        for name in COUNTERS:
            metric_name = f"pixring_{name}_total"
            yield CounterMetricFamily(metric_name, METRIC_HELP[metric_name][1], value=stats[name])
        events = family(CounterMetricFamily, "pixring_health_events_total", ("node", "kind"))
        for (node, kind), n in sorted(stats["health_events"].items()):
            events.add_metric([node, kind], n)
        yield events
        routable = family(GaugeMetricFamily, "pixring_member_routable", ("node",))
        members = sorted({m for w in workers for m in w.get("health", {})})
        for node in members:
            views = [w["health"].get(node) for w in workers if node in w.get("health", {})]
            share = sum(1 for v in views if v.get("routable")) / len(views) if views else 0.0
            routable.add_metric([node], share)
        yield routable
        hot = {entry[0] for w in workers for entry in w.get("hot_keys", [])}
        yield GaugeMetricFamily("pixring_hot_keys", METRIC_HELP["pixring_hot_keys"][1], value=len(hot))
        yield GaugeMetricFamily("pixring_panic", METRIC_HELP["pixring_panic"][1], value=1 if any(w.get("panic") for w in workers) else 0)
        sources = family(CounterMetricFamily, "pixring_source_requests_total", ("source", "result"))
        for (source, result), n in sorted(stats.get("sources", {}).items()):
            sources.add_metric([source, result], n)
        yield sources
        build = family(GaugeMetricFamily, "pixring_build_info", ("version",))
        build.add_metric([__version__], 1)
        yield build
