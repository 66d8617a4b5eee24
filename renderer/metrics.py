"""The renderer's Prometheus metrics, in a registry of its own.

Rules: names start with ``pixring_renderer_``; labels have a small fixed set of values
(an output format, an HTTP status, a cache tier: ``memory`` or ``disk``), never a path or a
parameter value, so cardinality stays bounded whatever clients send. A request that misses
memory and then hits disk counts a memory miss and a disk hit; one that misses both counts
a miss in each tier it looked in. Its own ``CollectorRegistry`` keeps several apps in
one test process from colliding in the global one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["RendererMetrics", "declared_metrics", "metrics_reference"]

# Renders run from ~5 ms (small PNG) to seconds (8192 px AVIF); buckets cover that range.
RENDER_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RendererMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.renders = Counter(
            "pixring_renderer_renders_total", "Renders completed, by output format.", ["format"], registry=r
        )
        self.cache_hits = Counter(
            "pixring_renderer_cache_hits_total", "Look-ups answered by a result-cache tier.", ["tier"], registry=r
        )
        self.cache_misses = Counter(
            "pixring_renderer_cache_misses_total", "Look-ups a result-cache tier could not answer.", ["tier"], registry=r
        )
        self.coalesced = Counter(
            "pixring_renderer_coalesced_total", "Cache misses that joined an identical render already in flight.", registry=r
        )
        self.render_seconds = Histogram(
            "pixring_renderer_render_seconds",
            "Wall time of one render: source fetch, queueing and the worker's decode/transform/encode.",
            buckets=RENDER_SECONDS_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "pixring_renderer_errors_total", "Requests answered with an error, by HTTP status.", ["status"], registry=r
        )
        self.bytes_out = Counter(
            "pixring_renderer_bytes_out_total", "Image body bytes sent (GET responses with a body).", registry=r
        )
        self.not_modified = Counter(
            "pixring_renderer_not_modified_total", "Conditional requests answered 304.", registry=r
        )
        self.abandoned = Counter(
            "pixring_renderer_abandoned_total",
            "Renders cancelled because every request waiting for them went away (the balancer gave up).",
            registry=r,
        )
        self.cache_bytes = Gauge(
            "pixring_renderer_cache_bytes", "Bytes held by a result-cache tier.", ["tier"], registry=r
        )
        self.cache_entries = Gauge(
            "pixring_renderer_cache_entries", "Renders held by a result-cache tier.", ["tier"], registry=r
        )
        self.pool_pending = Gauge(
            "pixring_renderer_pool_pending", "Render jobs admitted to the worker pool (running + waiting).", registry=r
        )
        self.pool_capacity = Gauge(
            "pixring_renderer_pool_capacity", "Jobs the pool admits before answering 503.", registry=r
        )



def declared_metrics() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(exposed name, type, label names, help) of every metric, declared or not yet sampled.
    A counter is exposed with ``_total`` (prometheus_client adds it); label names come
    from the metric object, since a labelled metric has no sample before its first use."""
    out = []
    for metric in vars(RendererMetrics()).values():
        if isinstance(metric, MetricWrapperBase):
            kind = metric._type  # noqa: SLF001 - prometheus_client keeps these on the object
            name = metric._name + ("_total" if kind == "counter" else "")  # noqa: SLF001
            out.append((name, kind, tuple(metric._labelnames), metric._documentation))  # noqa: SLF001
    return out


def metrics_reference() -> str:
    """The manual's table of the renderer's metrics (docs/metrics.md), from the metric objects
    themselves so it cannot drift: ``tests/unit/test_docs.py`` compares and prints it."""
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for name, kind, labels, help_text in declared_metrics():
        shown = ", ".join(f"`{label}`" for label in labels) or "–"
        lines.append(f"| `{name}` | {kind} | {shown} | {help_text} |")
    return "\n".join(lines)
