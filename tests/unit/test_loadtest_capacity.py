"""The capacity run's figures (``loadtest.capacity_summary``) and the command's pure checks
(``loadtest.capacity``): percentiles as locust computes them, affinity, spread, the verdict,
durations, and the loopback guard."""

from __future__ import annotations

import pytest

from loadtest import capacity, capacity_summary
from loadtest.capacity_summary import (
    affinity_of,
    cache_hits,
    latency_of,
    parse_duration,
    percentile,
    progress_line,
    render,
    summarize,
)
from loadtest.tally import Tally


def entry(name: str, times: dict[int, int], failures: int = 0, start: float = 100.0, last: float = 110.0) -> dict:
    requests = sum(times.values())
    return {"name": name, "method": "GET", "num_requests": requests, "num_failures": failures,
            "total_response_time": sum(t * n for t, n in times.items()), "max_response_time": max(times),
            "min_response_time": min(times), "response_times": {str(t): n for t, n in times.items()},
            "start_time": start, "last_request_timestamp": last}


def test_percentile_matches_locusts_definition():
    # The values locust 2.47's calculate_response_time_percentile gives for this histogram
    # (run once by hand: the test process must not import locust): the time at which no
    # more than (1 - fraction) of the requests remain above.
    times = {1: 50, 2: 30, 10: 15, 100: 4, 1000: 1}
    assert [percentile(times, f) for f in (0.5, 0.8, 0.95, 0.99, 1.0)] == [2, 10, 100, 1000, 1000]
    assert percentile({}, 0.5) == 0


def test_latency_merges_every_entry():
    latency = latency_of([entry("/a.jpg", {5: 90, 50: 10}, failures=2, start=100.0, last=104.0),
                          entry("/b.jpg", {5: 80, 500: 20}, start=101.0, last=110.0)])
    assert latency.requests == 200 and latency.failures == 2
    assert latency.seconds == pytest.approx(10.0) and latency.rps == pytest.approx(20.0)
    assert (latency.p50_ms, latency.p95_ms, latency.p99_ms) == (5, 500, 500)
    assert latency.max_ms == 500
    assert latency.failure_ratio == pytest.approx(0.01)
    assert latency_of([]).requests == 0 and latency_of([]).rps == 0.0


def test_the_run_is_timed_from_the_load_start_not_from_the_first_answer():
    # locust dates an entry from its first *completed* request: a cold first render of
    # 2 s would be left out of the time, and the rate overstated.
    entries = [entry("/a.jpg", {5: 100}, start=102.0, last=110.0)]
    assert latency_of(entries).seconds == pytest.approx(8.0)
    assert latency_of(entries, started=100.0).seconds == pytest.approx(10.0)
    tally = Tally(started=100.0)
    assert summarize(entries, tally).latency.rps == pytest.approx(10.0)


def test_affinity_counts_only_groups_that_tested_an_equivalent_spelling():
    tally = Tally()
    for node in ("r1", "r1", "r1"):
        tally.record("/one-node", True, node, None)
    tally.record("/split", True, "r1", None)
    tally.record("/split", False, "r2", None)
    tally.record("/canonical-only", False, "r1", None)
    tally.record("/canonical-only", False, "r2", None)  # never respelled: not an affinity test
    tally.record("/single-answer", True, "r3", None)  # one answer cannot split
    affinity = affinity_of(tally)
    assert affinity.groups == 2 and affinity.one_node == 1 and affinity.ratio == 0.5
    assert (affinity.requests, affinity.on_main_node) == (5, 4)  # 3 of 3, and 1 of the split pair
    assert affinity.split == (("/split", {"r1": 1, "r2": 1}),)
    assert affinity_of(Tally()).ratio is None


def test_cache_hits_count_memory_and_disk():
    tally = Tally(cache={"hit": 6, "hit-disk": 1, "miss": 3})
    assert cache_hits(tally) == (7, 10)


def summary_of(tally: Tally, failures: int = 0, **kw):
    return summarize([entry("/a.jpg", {5: 100}, failures=failures)], tally, **kw)


def test_spread_names_idle_members_and_strangers():
    tally = Tally(nodes={"r1": 60, "r2": 40, "x9": 1})
    summary = summary_of(tally, expected_nodes=["r1", "r2", "r3"])
    assert summary.spread == {"r1": 60, "r2": 40, "r3": 0, "x9": 1}
    assert summary.unknown_nodes == ["x9"]
    text = render(summary)
    assert "r3" in text and "(not a member)" in text
    assert "3 of 4 served" in text  # a member that served nothing is not counted as serving


def test_verdict_follows_the_failure_limit():
    assert summary_of(Tally(), failures=1, max_failure_ratio=0.01).passed  # 1 of 100 is the limit
    failed = summary_of(Tally(), failures=2, max_failure_ratio=0.01)
    assert not failed.passed and failed.verdict().startswith("FAIL: 2.00% failed")
    empty = summarize([], Tally())
    assert not empty.passed and "no request" in empty.verdict()


def test_shed_answers_are_shown_apart_and_do_not_fail_the_gate():
    # locust counted 30 failures: 28 were a node's 503 with Retry-After, 2 were real.
    tally = Tally(failures={"HTTP 500": 2}, shed={"r1": 20, "r2": 8})
    summary = summary_of(tally, failures=30, max_failure_ratio=0.02)
    assert (summary.shed, summary.failures, summary.passed) == (28, 2, True)
    text = render(summary)
    for expected in ("failures        2 (2.0%)", "shed            28 (28.0%)", "by r1", "20",
                     "PASS: 2.00% failed, limit 2.00%; 28.00% shed (503 + Retry-After), not counted as failed"):
        assert expected in text, expected
    doc = summary.to_json()
    assert (doc["failures"], doc["shed"], doc["shed_by_node"]) == (2, 28, {"r1": 20, "r2": 8})
    assert not summary_of(tally, failures=31, max_failure_ratio=0.02).passed, "a third real failure is over"


def test_render_and_json_carry_every_figure():
    tally = Tally(nodes={"r1": 70, "r2": 30}, cache={"hit": 75, "miss": 25}, failures={"HTTP 503": 2},
                  groups={"/a?w=1": ({"r1": 3}, 1), "/b": ({"r1": 1, "r2": 1}, 1)})
    summary = summary_of(tally, failures=2, expected_nodes=["r1", "r2"], notes=["a note"])
    text = render(summary)
    for expected in ("100 in 10.0s = 10.0 req/s", "HTTP 503", "p50 5 ms", "peak/mean 1.40", "70.0%",
                     "1 of 2 groups", "80.0% of 5 requests for equivalent URLs served by their group's main node",
                     "split: /b", "balance-factor=0", "cache hit ratio 75.0% of 100",
                     "note: a note", "FAIL"):
        assert expected in text, expected
    doc = summary.to_json()
    assert doc["affinity"]["ratio"] == 0.5 and doc["cache"]["hit_ratio"] == 0.75
    assert doc["failures_by_kind"] == {"HTTP 503": 2} and doc["nodes"] == {"r1": 70, "r2": 30}
    assert doc["passed"] is False


def test_unmeasured_figures_say_so():
    text = render(summary_of(Tally(untagged=100)))
    assert "no answer named its node" in text and "--node-header" in text
    assert "affinity        not measured" in text and "cache hit ratio not measured" in text


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("45", 45), ("2.5", 2.5),
                                           ("1m5s", 65)])
def test_durations_in_locusts_syntax(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "5x", "m", "-3", "1.5m"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_progress_line_uses_the_rate_between_rows_and_survives_partial_rows():
    previous = {"Timestamp": "100", "Total Request Count": "100"}
    row = {"Timestamp": "102", "User Count": "10", "Requests/s": "0", "Total Request Count": "300",
           "Total Failure Count": "1", "50%": "12", "95%": "N/A"}
    line = progress_line(row, 12.0, 30.0, previous)
    assert "users 10" in line and "req/s 100.0" in line and "requests 300" in line
    assert "failures 1" in line and "p50 12 ms" in line and "p95 - ms" in line
    assert "req/s 25.0" in progress_line(row, 12.0, 30.0)  # no previous row: the average so far
    assert "users -" in progress_line({}, 1.0, 30.0)


@pytest.mark.parametrize("url, loopback", [
    ("http://127.0.0.1:8080", True), ("http://127.8.9.10", True), ("https://localhost:443/", True),
    ("http://[::1]:8080", True), ("http://10.0.0.5:8080", False), ("http://example.com", False),
    ("http://localhost.example.com", False), ("http://0.0.0.0:8080", False), ("ftp://127.0.0.1", False),
    ("127.0.0.1:8080", False), ("http://127.0.0.1:notaport", False),
])
def test_only_loopback_hosts_pass_the_guard(url, loopback):
    assert capacity.is_loopback_url(url) is loopback


def test_locust_command_stops_by_itself_and_writes_its_figures(tmp_path):
    args = capacity.build_parser().parse_args(["--run-time", "1m", "--users", "7", "--processes", "2",
                                               "--locust-arg=--loglevel=DEBUG"])
    argv = capacity.locust_argv(args, "http://127.0.0.1:1", tmp_path)
    joined = " ".join(argv)
    for expected in ("--headless", "--run-time 60s", "--users 7", "--spawn-rate 7", "--processes 2",
                     f"--json-file {tmp_path}/locust", f"--csv {tmp_path}/locust",
                     f"--pixring-tally {tmp_path}/tally.json", "--exit-code-on-error 0"):
        assert expected in joined, expected
    assert argv[-1] == "--loglevel=DEBUG"  # passed through last, so it can override


@pytest.mark.parametrize("arg", ["--host=http://203.0.113.7", "-Hhttp://203.0.113.7", "--locustfile=x.py",
                                 "-f", "--config=remote.conf"])
def test_a_locust_argument_cannot_aim_the_load_elsewhere(arg, capsys):
    # locust takes the last --host: one passed through would slip past the loopback check.
    with pytest.raises(SystemExit) as exited:
        capacity.main(["--host", "http://127.0.0.1:9", f"--locust-arg={arg}"])
    assert exited.value.code == 2
    assert "the target is --host" in capsys.readouterr().err


def test_a_master_with_local_workers(tmp_path):
    args = capacity.build_parser().parse_args(["--run-time", "20s", "--locust-workers", "2", "--find-capacity",
                                               "--step-users", "5", "--max-p99", "800"])
    joined = " ".join(capacity.locust_argv(args, "http://127.0.0.1:1", tmp_path, master_port=5599))
    for expected in ("--master", "--master-bind-port 5599", "--expect-workers 2", "--pixring-find-capacity",
                     "--pixring-step-users 5", "--pixring-max-p99 800", f"--pixring-phases {tmp_path}/phases.json"):
        assert expected in joined, expected
    assert "--processes" not in joined
    worker = " ".join(capacity.worker_argv(5599))
    assert "--worker" in worker and "--master-port 5599" in worker and "--master-host 127.0.0.1" in worker


def test_phases_in_the_summary_separate_the_cold_warm_up_and_carry_the_capacity():
    def snap(t, requests, failures, times):
        return {"time": t, "requests": requests, "failures": failures, "response_times": times}

    phases = {"find_capacity": True, "stopped_by": "step 2 (20 users): p99 1500 ms over the limit 1000 ms",
              "limits": {"max_error_ratio": 0.01, "max_p99_ms": 1000.0},
              "phases": [
                  {"phase": {"name": "warm-up", "users": 10, "seconds": 10, "counted": False},
                   "start": snap(0, 0, 0, {}), "end": snap(10, 100, 0, {"900": 100})},
                  {"phase": {"name": "step 1", "users": 10, "seconds": 10, "counted": True},
                   "start": snap(10, 100, 0, {"900": 100}), "end": snap(20, 1100, 1, {"900": 100, "20": 1000})},
                  {"phase": {"name": "step 2", "users": 20, "seconds": 10, "counted": True},
                   "start": snap(20, 1100, 1, {"900": 100, "20": 1000}),
                   "end": snap(30, 2100, 2, {"900": 100, "20": 1000, "40": 980, "1500": 20})},
              ]}
    summary = summarize([entry("/a.jpg", {20: 2000, 900: 100})], Tally(), phases=phases)
    doc = summary.to_json()
    assert doc["capacity_rps"] == 100.0 and doc["p99_ms_at_capacity"] == 20
    assert doc["error_ratio_at_capacity"] == 0.001 and doc["limit_hit"] == "p99"
    assert doc["capacity"]["broke_at"]["phase"] == "step 2"
    assert [p["name"] for p in doc["phases"]] == ["warm-up", "step 1", "step 2"]
    assert summary.passed
    text = render(summary)
    for expected in ("cold, not counted", "capacity        100.0 req/s at 10 users (step 1)",
                     "broke at step 2 (20 users, 100.0 req/s): p99 1500 ms over the limit 1000 ms",
                     "PASS: capacity found"):
        assert expected in text, expected


def test_affinity_is_read_against_what_the_balancer_moved_on_purpose():
    tally = Tally(nodes={"r1": 100}, groups={"/a": ({"r1": 95, "r2": 5}, 10)})
    before = {"totals": {"requests": 0, "retries": 0, "hedges": 0, "bounded_overflow": 0}}
    after = {"totals": {"requests": 1000, "retries": 30, "hedges": 0, "bounded_overflow": 20}}
    summary = summarize([entry("/a", {5: 100})], tally, balancer=capacity_summary.balancer_delta(before, after))
    assert summary.moved_on_purpose == {"retries": 30, "hedges": 0, "bounded load": 20}
    assert summary.expected_main_share == pytest.approx(0.95)
    text = render(summary)
    assert "95.0% of 100 requests" in text and "expected for this configuration: 95.0%" in text
    assert "retries 30" in text and "bounded load 20" in text
    assert "normalization bug" not in text  # explained by what the balancer did
    unexplained = summarize([entry("/a", {5: 100})], tally, balancer=capacity_summary.balancer_delta(
        before, {"totals": {"requests": 1000, "retries": 0}}))
    assert "normalization bug" in render(unexplained)


def test_bounded_load_that_the_balancer_does_not_count_is_named_and_no_bug_is_claimed():
    tally = Tally(nodes={"r1": 100}, groups={"/a": ({"r1": 80, "r2": 20}, 10)})
    balancer = capacity_summary.balancer_delta({"totals": {"requests": 0, "retries": 0}},
                                               {"totals": {"requests": 100, "retries": 0},
                                                "config": {"balance_factor": 1.25}})
    summary = summarize([entry("/a", {5: 100})], tally, balancer=balancer)
    assert summary.uncounted_policies == ["bounded load (balance_factor 1.25)"]
    text = render(summary)
    assert "not counted by this balancer: bounded load (balance_factor 1.25)" in text
    assert "normalization bug" not in text
