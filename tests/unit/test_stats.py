"""The per-worker counters: the latency histogram's Prometheus buckets, per-member counters
and the snapshot the supervisor merges."""

from __future__ import annotations

from bisect import bisect_left

from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.stats import LATENCY_BUCKETS, NO_METHOD, Histogram, WorkerStats, merge_snapshots, method_index

# Every bound itself, next to either side of it, and anything from 0 to past the top.
_SECONDS = st.one_of(
    st.sampled_from(LATENCY_BUCKETS),
    st.sampled_from(LATENCY_BUCKETS).map(lambda b: b * (1 + 1e-12)),
    st.sampled_from(LATENCY_BUCKETS).map(lambda b: b * (1 - 1e-12)),
    st.floats(0, 100, allow_nan=False),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_SECONDS, max_size=50))
def test_each_observation_lands_in_the_bucket_of_the_first_bound_it_does_not_exceed(samples):
    """Prometheus's `le` buckets: a value equal to a bound counts in that bound's bucket."""
    histogram = Histogram()
    for seconds in samples:
        histogram.observe(seconds)
    expected = [0] * (len(LATENCY_BUCKETS) + 1)
    for seconds in samples:
        expected[bisect_left(LATENCY_BUCKETS, seconds)] += 1
    assert histogram.counts == expected
    assert histogram.total == sum(samples)


def test_snapshots_of_several_workers_add_up():
    first, second = Histogram(), Histogram()
    for seconds in (0.0004, 0.002, 50.0):
        first.observe(seconds)
    second.observe(0.002)
    merged = merge_snapshots([
        {"requests": [], "upstream_errors": [], "attempts": {}, "inflight": {}, "bytes_out": {},
         "request_latency": first.snapshot(), "upstream_latency": {}, "connections_open": 0,
         "connections_total": 0},
        {"requests": [], "upstream_errors": [], "attempts": {}, "inflight": {}, "bytes_out": {},
         "request_latency": second.snapshot(), "upstream_latency": {}, "connections_open": 0,
         "connections_total": 0},
    ])
    counts = merged["request_latency"]["counts"]
    assert counts[LATENCY_BUCKETS.index(0.0005)] == 1
    assert counts[LATENCY_BUCKETS.index(0.0025)] == 2
    assert counts[-1] == 1  # past the top bound: the +Inf slot
    assert merged["request_latency"]["sum"] == 0.0004 + 0.002 + 50.0 + 0.002


def test_member_counters_snapshot_with_labels_and_without_zero_series():
    stats = WorkerStats()
    node = stats.member("n1")
    assert stats.member("n1") is node  # one object per member, found once per exchange
    for method, status in ((b"GET", 200), (b"GET", 200), (b"HEAD", 304), (b"PURGE", 502), (b"GET", 99),
                           (b"GET", 600)):
        node.count_request(method_index(method), status)
    node.attempts += 3
    node.bytes_out += 2048
    node.latency.observe(0.002)
    stats.member("-").count_request(NO_METHOD, 400)
    stats.member("idle")  # looked up, never used: no series of zeros
    stats.inflight.start("n1")
    snap = stats.snapshot()
    assert sorted(map(tuple, snap["requests"])) == [
        ("-", "-", "4xx", 1),
        ("n1", "GET", "1xx", 1),  # below 100 counts as 1xx, above 599 as 5xx, as before
        ("n1", "GET", "2xx", 2),
        ("n1", "GET", "5xx", 1),
        ("n1", "HEAD", "3xx", 1),
        ("n1", "other", "5xx", 1),
    ]
    assert snap["attempts"] == {"n1": 3}
    assert snap["bytes_out"] == {"n1": 2048}
    assert list(snap["upstream_latency"]) == ["n1"]
    assert snap["inflight"] == {"n1": 1}
    merged = merge_snapshots([snap, snap])
    assert merged["requests"][("n1", "GET", "2xx")] == 4 and merged["attempts"] == {"n1": 6}
