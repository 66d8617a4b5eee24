"""The tier benchmark's own arithmetic on fixed inputs: the open-loop schedule, percentiles,
counters read across a restart, hit ratio, peak to mean, and the summary's shape."""

from __future__ import annotations

import math
import random

import pytest

from loadtest import tier_report
from loadtest.tier_report import FRONT_FIGURES, Outcome
from loadtest.tier_workload import (
    BURST_SHARE,
    PAGE_SPELLINGS,
    Phases,
    arrivals,
    build_schedule,
    burst_targets,
    catalog,
    page_spellings,
)
from loadtest.traffic import Target

PHASES = Phases(duration=60.0, warmup=5.0, burst_start=20.0, burst_seconds=10.0, kill_at=40.0, down_seconds=10.0)


@pytest.fixture(scope="module")
def targets() -> tuple[Target, ...]:
    return catalog(1)


# ---------------------------------------------------------------------------- the schedule


def test_arrivals_are_open_loop_poisson_at_the_rate() -> None:
    times = arrivals(50.0, 200.0, random.Random(3))
    assert times == sorted(times) and 0 <= times[0] and times[-1] < 200.0
    assert 9_400 < len(times) < 10_600  # 10,000 expected, sd 100
    gaps = [b - a for a, b in zip(times, times[1:])]
    # exponential gaps: the standard deviation is about the mean
    mean = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert 0.9 < sd / mean < 1.1


def test_the_warm_up_climbs_from_a_tenth_of_the_rate() -> None:
    times = arrivals(100.0, 40.0, random.Random(4), ramp=20.0)
    first, second, after = (sum(1 for t in times if lo <= t < lo + 5) for lo in (0, 10, 30))
    # expected counts: 5 s at 10-32.5% of 100/s = 106; at 55-77.5% = 331; at 100% = 500
    assert 70 < first < 145 and 270 < second < 390 and 430 < after < 570


def test_the_schedule_is_the_same_for_the_same_seed_and_differs_for_another(targets) -> None:
    one = build_schedule(PHASES, 20.0, "canonical", 1, targets, burst_targets())
    assert one == build_schedule(PHASES, 20.0, "canonical", 1, targets, burst_targets())
    assert one != build_schedule(PHASES, 20.0, "canonical", 2, targets, burst_targets())


def test_both_variants_ask_for_the_same_images_at_the_same_times(targets) -> None:
    canonical = build_schedule(PHASES, 20.0, "canonical", 1, targets, burst_targets())
    pages = build_schedule(PHASES, 20.0, "pages", 1, targets, burst_targets())
    assert [(r.at, r.key, r.burst) for r in canonical] == [(r.at, r.key, r.burst) for r in pages]
    assert all(r.url == r.key for r in canonical)
    respelled = sum(1 for r in pages if r.url != r.key)
    assert 0.45 * len(pages) < respelled < 0.75 * len(pages)  # 60% expected
    for key in {r.key for r in pages}:
        assert len({r.url for r in pages if r.key == key}) <= PAGE_SPELLINGS


def test_the_burst_takes_its_share_only_inside_its_window(targets) -> None:
    schedule = build_schedule(PHASES, 50.0, "canonical", 1, targets, burst_targets())
    burst_keys = {t.url for t in burst_targets()}
    inside = [r for r in schedule if PHASES.burst_start <= r.at < PHASES.burst_end]
    assert all(r.burst == (r.key in burst_keys) for r in schedule)
    assert not any(r.burst for r in schedule if not PHASES.burst_start <= r.at < PHASES.burst_end)
    share = sum(r.burst for r in inside) / len(inside)
    assert BURST_SHARE - 0.07 < share < BURST_SHARE + 0.07


def test_popularity_is_skewed_towards_the_first_ranks(targets) -> None:
    schedule = build_schedule(PHASES, 50.0, "canonical", 1, targets, burst_targets())
    steady = [r.key for r in schedule if not r.burst]
    top = sum(1 for k in steady if k == targets[0].url)
    tail = sum(1 for k in steady if k == targets[250].url)
    assert top > 20 * max(tail, 1)


def test_page_spellings_start_with_the_canonical_url_and_are_distinct(targets) -> None:
    spellings = page_spellings(targets[0], random.Random(5))
    assert spellings[0] == targets[0].url
    assert len(spellings) == len(set(spellings)) == PAGE_SPELLINGS
    # browsers resolve dot segments before sending: no page request carries one
    every = [url for target in targets for url in page_spellings(target, random.Random(target.url))]
    assert not [url for url in every if "/./" in url or "/../" in url]
    assert any("//" in url.partition("?")[0] for url in every)  # duplicate slashes are sent as written


def test_phases_name_every_time_and_refuse_disorder() -> None:
    assert [PHASES.phase(t) for t in (0, 5, 19.9, 20, 29.9, 30, 40, 59)] == \
        ["warmup", "steady", "steady", "burst", "burst", "steady", "failure", "failure"]
    assert PHASES.restart_at == 50.0
    with pytest.raises(ValueError):
        Phases(duration=30.0, warmup=5.0, burst_start=20.0, burst_seconds=10.0, kill_at=25.0, down_seconds=1.0)
    for phases in (Phases.full(), Phases.quick()):
        assert phases.warmup <= phases.burst_start < phases.burst_end <= phases.kill_at < phases.restart_at \
            < phases.duration


# ---------------------------------------------------------------------------- the figures


def test_counter_increase_reads_a_drop_as_a_restart_and_skips_failed_scrapes() -> None:
    assert tier_report.counter_increase([0, 10, 25, None, 40]) == 40
    # killed at 30 (its last scrape), back from zero: 7 then 12 more
    assert tier_report.counter_increase([0, 10, 30, None, None, 7, 19]) == 30 + 19
    assert tier_report.counter_increase([None, 5]) == 0


def test_increase_per_bucket_puts_growth_in_the_later_scrapes_second() -> None:
    samples = [(0.0, 0.0), (1.0, 4.0), (2.1, 10.0), (3.0, None), (4.2, 3.0)]
    assert tier_report.increase_per_bucket(samples, 5.0) == [0.0, 4.0, 6.0, 0.0, 3.0]


def test_hit_ratio_and_peak_to_mean() -> None:
    assert tier_report.hit_ratio(90, 10) == 0.9
    assert math.isnan(tier_report.hit_ratio(0, 0))
    assert tier_report.peak_to_mean([10, 20, 30]) == 1.5
    assert math.isnan(tier_report.peak_to_mean([0, 0]))


def _outcome(at: float, ms: float, status: int = 200, cache: str | None = "hit") -> Outcome:
    return Outcome(at, ms / 1000, status, cache, 100)


def test_request_rows_are_in_send_order_with_their_phase_and_image() -> None:
    late = Outcome(25.0, 0.3004, 200, "miss", 2048, True, "/new.jpg?w=640")
    early = Outcome(10.0, 0.0051, 0, None, 0, False, "/a.jpg?w=100")
    rows = tier_report.request_rows([late, early], PHASES)
    assert rows == [
        {"at": 10.0, "phase": "steady", "latency_ms": 5.1, "status": 0, "cache": "", "bytes": 0, "burst": 0,
         "key": "/a.jpg?w=100"},
        {"at": 25.0, "phase": "burst", "latency_ms": 300.4, "status": 200, "cache": "miss", "bytes": 2048,
         "burst": 1, "key": "/new.jpg?w=640"},
    ]


def test_front_figures_on_fixed_outcomes() -> None:
    outcomes = [_outcome(1.0, 5000)]  # in the warm-up: counted as an error only, if one
    outcomes += [_outcome(10.0 + i / 100, float(i + 1)) for i in range(100)]  # steady 1..100 ms
    outcomes += [_outcome(25.0, 300.0, cache="miss"), _outcome(25.5, 200.0)]  # burst
    outcomes += [_outcome(45.0, 900.0, status=502), _outcome(46.0, 0.0, status=0), _outcome(47.0, 50, cache="miss")]
    figures = tier_report.front_figures(outcomes, PHASES, {"r1": 30, "r2": 10, "r3": 20}, hits=90, misses=10)
    assert list(figures) == list(FRONT_FIGURES)
    assert figures["renders"] == 60
    assert figures["hit_ratio"] == 0.9
    assert figures["peak_to_mean"] == 1.5
    # 105 counted latencies; nearest rank 99 of 105 is the 104th smallest: 300 ms
    assert figures["p99_ms"] == 300.0
    assert figures["burst_p99_ms"] == 300.0
    assert figures["failure_p99_ms"] == 900.0
    assert figures["uncached_p99_ms"] == 300.0
    assert figures["errors"] == 2
    details = tier_report.front_details(outcomes, PHASES, {"r1": 30}, {"r1": 100})
    assert details["p50_ms"] == 51.0  # rank 53 of 105: 0, 1..50, 50, 51
    assert details["errors_cut"] == 1 and details["errors_5xx"] == 1
    assert details["bytes"] == 100 * len(outcomes) and details["client_seen_renders"] == 2
    assert details["renders_per_1000_ok"] == round(1000 * 30 / 104, 1)  # 104 of 106 answered 200


def test_ratios_compare_pixring_with_the_best_other_front() -> None:
    fronts = {
        "pixring": {"renders": 100, "hit_ratio": 0.9, "p99_ms": 50.0, "errors": 0, "burst_p99_ms": float("nan")},
        "nginx": {"renders": 250, "hit_ratio": 0.6, "p99_ms": 40.0, "errors": 3, "burst_p99_ms": 10.0},
        "haproxy": {"renders": 200, "hit_ratio": 0.75, "p99_ms": 80.0, "errors": 0, "burst_p99_ms": 12.0},
    }
    got = tier_report.ratios(fronts)
    assert got["renders"] == 0.5 and got["hit_ratio"] == 1.2 and got["p99_ms"] == 1.25
    assert got["errors"] == 1.0  # zero against a best of zero: a tie
    assert got["burst_p99_ms"] is None and got["peak_to_mean"] is None


def test_time_series_buckets_by_scheduled_second() -> None:
    rows = tier_report.time_series([_outcome(0.2, 10), _outcome(0.7, 30, status=503), _outcome(2.5, 5, cache="miss")],
                                   Phases(duration=3.0, warmup=0.0, burst_start=1.0, burst_seconds=1.0, kill_at=2.0,
                                          down_seconds=0.5))
    assert [(r["t"], r["phase"], r["requests"], r["errors"], r["rendered"]) for r in rows] == \
        [(0.0, "steady", 2, 1, 0), (1.0, "burst", 0, 0, 0), (2.0, "failure", 1, 0, 1)]
    assert rows[0]["p99_ms"] == 30.0 and math.isnan(rows[1]["p50_ms"])


def test_the_table_has_a_row_per_front_and_a_ratio_row_per_variant() -> None:
    figures = dict.fromkeys(FRONT_FIGURES, 1.5)
    summary = {"variants": {"pages": {"pixring": figures, "nginx": {**figures, "renders": 300}}},
               "details": {"pages": {"pixring": {"p50_ms": 9.9}}},
               "ratios": {"pages": {"renders": 0.721}}}
    lines = tier_report.table(summary).splitlines()
    assert len(lines) == 2 + 2 + 1
    assert lines[2].startswith("| pages | pixring | 1.5 |") and "| 9.9 |" in lines[2]
    assert lines[3].startswith("| pages | nginx | 300 |")
    assert lines[4].startswith("| pages | pixring / best other | 0.721 | - |")


def test_repeats_combine_into_medians_with_errors_summed() -> None:
    def run(renders: int, burst: float, errors: int, failure: float = float("nan")) -> dict:
        return {**dict.fromkeys(FRONT_FIGURES, 1.0), "renders": renders, "burst_p99_ms": burst,
                "errors": errors, "failure_p99_ms": failure, "seed": 7}
    three = tier_report.combine_repeats([run(300, 500.0, 0), run(280, 220.0, 2), run(310, 250.0, 1, 90.0)])
    assert list(three) == list(FRONT_FIGURES)  # the seed and anything else stay outside
    assert three["renders"] == 300 and three["burst_p99_ms"] == 250.0
    assert three["errors"] == 3  # any error in any run counts against "zero errors"
    assert three["failure_p99_ms"] == 90.0  # NaNs (no request in the window) are left out
    # An even count takes the lower middle: a value some run had, not an average of two.
    assert tier_report.combine_repeats([run(1, 400.0, 0), run(2, 200.0, 0)])["burst_p99_ms"] == 200.0
    assert tier_report.combine_repeats([run(5, 9.0, 0)])["renders"] == 5
    assert math.isnan(tier_report.combine_repeats([run(5, float("nan"), 0)])["burst_p99_ms"])


def test_repeat_lines_list_each_run_per_front() -> None:
    details = {"canonical": {
        "pixring": {"repeats": [{**dict.fromkeys(FRONT_FIGURES, 0), "burst_p99_ms": 294.0},
                                {**dict.fromkeys(FRONT_FIGURES, 0), "burst_p99_ms": 217.5}]},
        "nginx": {"repeats": [{**dict.fromkeys(FRONT_FIGURES, 0), "burst_p99_ms": 229.0},
                              {**dict.fromkeys(FRONT_FIGURES, 0), "burst_p99_ms": 508.0}]}}}
    lines = tier_report.repeat_lines(details)
    assert lines[0] == "canonical burst_p99_ms by repeat: pixring 294/218, nginx 229/508"
    assert len(lines) == 5 and tier_report.repeat_lines({"canonical": {"pixring": {"p50_ms": 1.0}}}) == []
    # Runs that recorded the hypervisor's steal show it too, beside their latencies.
    for front, stolen in (("pixring", (0.4, 31.0)), ("nginx", (0.2, 0.3))):
        for run, pct in zip(details["canonical"][front]["repeats"], stolen):
            run["steal_pct"] = pct
    assert tier_report.repeat_lines(details)[-1] == "canonical steal_pct by repeat: pixring 0.4/31, nginx 0.2/0.3"
