"""Medians over rounds, same-round ratios, the targets, and soak growth."""

from __future__ import annotations

import pytest

from loadtest.summary import RunRecord, evaluate_targets, median_interval, memory_growth, paired_ratio, summarize


def run(config: str, round_: int, rps: float, cpu_us: float | None = 20.0, *, connections: int = 64,
        p99_ms: float = 2.0, disturbed: bool = False, attempt: int = 1, failed: int = 0,
        wall_s: float = 10.0) -> RunRecord:
    requests = int(rps * wall_s)
    cpu_s = None if cpu_us is None else cpu_us * requests / 1e6
    return RunRecord(
        config=config, connections=connections, round=round_, attempt=attempt, requests=requests, wall_s=wall_s,
        rps=rps, p50_ms=1.0, p90_ms=1.5, p99_ms=p99_ms, max_ms=9.0, failed=failed,
        proxy_user_s=None if cpu_s is None else cpu_s * 0.4, proxy_system_s=None if cpu_s is None else cpu_s * 0.6,
        other_pct=9.0 if disturbed else 0.5, disturbed=disturbed,
    )


def row(rows, config, connections=64):
    return next(r for r in rows if r.config == config and r.connections == connections)


def test_per_run_figures_come_from_tree_cpu_and_requests():
    record = run("pixring", 1, 40_000, cpu_us=25.0)
    assert record.cpu_us_per_request == pytest.approx(25.0)
    assert record.requests_per_cpu_s == pytest.approx(40_000)
    assert record.proxy_cpu_pct == pytest.approx(100.0)
    direct = run("direct", 1, 60_000, cpu_us=None)
    assert direct.cpu_us_per_request is None and direct.requests_per_cpu_s is None


def test_ratios_are_medians_of_same_round_ratios_not_ratios_of_medians():
    # nginx drifts between rounds; pixring follows it at 0.5x each round. Medians taken
    # across rounds would give 30k/50k = 0.6; the same-round ratio is 0.5 every time.
    records = [run("nginx", 1, 100_000), run("nginx", 2, 50_000), run("nginx", 3, 20_000),
               run("pixring", 1, 50_000), run("pixring", 2, 25_000), run("pixring", 3, 10_000)]
    ratio = row(summarize(records), "pixring").ratios["nginx"]
    assert ratio["rps"] == pytest.approx(0.5)
    assert ratio["rounds"] == 3


def test_cpu_ratio_is_reference_cost_over_ours():
    records = [run("nginx", 1, 50_000, cpu_us=18.0), run("pixring", 1, 40_000, cpu_us=30.0)]
    assert row(summarize(records), "pixring").ratios["nginx"]["cpu"] == pytest.approx(0.6)
    assert "nginx" not in row(summarize(records), "nginx").ratios  # no ratio to itself


def test_disturbed_runs_are_left_out_and_a_clean_retry_replaces_them():
    records = [run("nginx", 1, 10_000, disturbed=True), run("nginx", 1, 50_000, attempt=2),
               run("nginx", 2, 52_000), run("nginx", 3, 54_000)]
    summary = row(summarize(records), "nginx")
    assert (summary.runs, summary.dropped, summary.only_disturbed) == (3, 1, False)
    assert summary.rps == 52_000 and summary.rps_min == 50_000


def test_only_disturbed_runs_are_used_when_there_is_nothing_else_and_flagged():
    summary = row(summarize([run("haproxy", 1, 30_000, disturbed=True), run("haproxy", 2, 31_000, disturbed=True)]),
                  "haproxy")
    assert summary.only_disturbed and summary.runs == 2 and summary.rps == pytest.approx(30_500)


def test_failures_are_summed_and_concurrencies_kept_apart():
    records = [run("pixring", 1, 40_000, failed=3), run("pixring", 1, 9_000, connections=8, failed=1)]
    rows = summarize(records)
    assert row(rows, "pixring").failed == 3 and row(rows, "pixring", 8).failed == 1
    assert row(rows, "pixring", 8).rps == 9_000


def _targets(records, **kw):
    return {t.name: t for t in evaluate_targets(records, **kw)}


def test_targets_met_and_not_met():
    records = [run("nginx", r, 50_000, cpu_us=18.0) for r in (1, 2, 3)]
    records += [run("pixring", r, 32_000, cpu_us=28.0, p99_ms=2.5) for r in (1, 2, 3)]  # 0.64x, 0.643x
    records += [run("pixring-2w", r, 30_000, cpu_us=33.0) for r in (1, 2, 3)]  # 28/33 = 0.85x per CPU-s
    targets = _targets(records, worker_rss_mib=85.0)
    assert targets["pixring req/s vs nginx, c=64"].met is True
    assert targets["pixring req/s vs nginx, c=64"].measured == pytest.approx(0.64)
    assert targets["pixring CPU per request vs nginx, c=64"].met is True
    assert targets["pixring p99, c=64 (nginx 2.00 ms in the same rounds)"].met is True
    scaling = targets["pixring-2w req per CPU-second vs pixring, c=64"]
    assert scaling.measured == pytest.approx(28 / 33) and scaling.met is False
    assert targets["RSS per worker (largest seen)"].met is False


def test_median_interval_takes_the_binomial_order_statistics():
    # n=30: P(B <= 9) = 0.021 and P(B <= 10) = 0.049 for B ~ Binomial(30, 1/2), so the 95%
    # interval is (x_10, x_21), the 10th and 21st smallest.
    values = [float(v) for v in range(100, 130)]
    assert median_interval(values[::-1]) == (109.0, 120.0)
    # n=6: the whole range covers 1 - 2/64 = 97%; with n=5 it covers only 94%.
    assert median_interval([5.0, 1.0, 4.0, 2.0, 6.0, 3.0]) == (1.0, 6.0)
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None
    assert median_interval([]) is None


def test_median_interval_covers_the_median_about_95_percent_of_the_time():
    import random

    rng = random.Random(7)
    trials, covered = 2000, 0
    for _ in range(trials):
        low, high = median_interval([rng.expovariate(1.0) for _ in range(30)])  # skewed; true median ln 2
        covered += low <= 0.6931 <= high
    assert 0.93 <= covered / trials <= 0.985


def test_paired_ratio_of_another_figure_cancels_the_drift_in_it_too():
    # loadtest.compare pairs two builds on requests per second: the machine halves its
    # speed between pairs, the build under test is 0.95x the base inside every pair.
    speeds = [16_000, 8_000, 14_000, 9_000, 15_000, 12_000]
    pairs = [(run("pixring", i, 0.95 * speed), run("pixring-base", i, speed)) for i, speed in enumerate(speeds)]
    pairs.append((run("pixring", 99, 4_000, disturbed=True), run("pixring-base", 99, 16_000)))
    result = paired_ratio(pairs, lambda r: r.rps)
    assert (result.pairs, result.dropped) == (6, 1)
    assert result.median == pytest.approx(0.95)
    # By default the same pairs are compared on requests per CPU-second (equal here).
    assert paired_ratio(pairs).median == pytest.approx(1.0)


def test_paired_ratio_is_the_median_pair_ratio_and_leaves_disturbed_pairs_out():
    # The machine's speed (requests per CPU-second) wanders from pair to pair, 40k to 20k;
    # inside a pair two workers do 0.9x of one. A disturbed pair (0.5x) is left out.
    speeds = [40_000, 20_000, 35_000, 25_000, 30_000, 22_000, 38_000]
    pairs = [(run("pixring-2w", i, 30_000, cpu_us=1e6 / (0.9 * speed)), run("pixring", i, 30_000, cpu_us=1e6 / speed))
             for i, speed in enumerate(speeds)]
    pairs.append((run("pixring-2w", 99, 30_000, cpu_us=1e6 / 15_000, disturbed=True),
                  run("pixring", 99, 30_000, cpu_us=1e6 / 30_000)))
    result = paired_ratio(pairs)
    assert (result.ours, result.reference, result.pairs, result.dropped) == ("pixring-2w", "pixring", 7, 1)
    assert result.median == pytest.approx(0.9)
    assert result.low == pytest.approx(0.9) and result.high == pytest.approx(0.9)
    with pytest.raises(ValueError, match="mix concurrencies"):
        paired_ratio([(run("pixring-2w", 1, 9, connections=8), run("pixring", 1, 10))])
    with pytest.raises(ValueError, match="mix configurations"):
        paired_ratio([pairs[0], (run("nginx-2w", 1, 9), run("nginx", 1, 10))])


def test_two_worker_target_is_judged_on_the_pairs_when_there_are_some():
    records = [run("nginx", r, 50_000, cpu_us=18.0) for r in (1, 2, 3)]
    records += [run("pixring", r, 32_000, cpu_us=28.0) for r in (1, 2, 3)]
    records += [run("pixring-2w", r, 30_000, cpu_us=33.0) for r in (1, 2, 3)]  # rounds alone: 0.85x
    pairs = [(run("pixring-2w", i, 30_000, cpu_us=28.0 / ratio), run("pixring", i, 32_000, cpu_us=28.0))
             for i, ratio in enumerate([0.93, 0.97, 0.88, 0.95, 1.01, 0.92, 0.96])]
    control = [(run("nginx-2w", i, 40_000, cpu_us=18.0 / 0.83), run("nginx", i, 50_000, cpu_us=18.0)) for i in range(7)]
    targets = evaluate_targets(records, scaling=[paired_ratio(pairs), paired_ratio(control)])
    scaling = next(t for t in targets if t.name.startswith("pixring-2w") and "c=64" in t.name)
    assert scaling.measured == pytest.approx(0.95) and scaling.met is True
    assert scaling.name.endswith("(median of 7 back-to-back pairs, 95% interval 0.88-1.01; "
                                 "nginx-2w vs nginx in the same minutes: 0.83)")
    # Without pixring's own pairs the rounds decide, as before; the control alone is no verdict.
    rounds_only = evaluate_targets(records, scaling=[paired_ratio(control)])
    scaling = next(t for t in rounds_only if t.name.startswith("pixring-2w"))
    assert scaling.name == "pixring-2w req per CPU-second vs pixring, c=64"
    assert scaling.measured == pytest.approx(28 / 33) and scaling.met is False


def test_targets_not_measured_when_pixring_did_not_run():
    targets = _targets([run("nginx", 1, 50_000)])
    assert all(t.met is None for t in targets.values())


def test_p99_target_fails_above_three_ms_and_names_the_references_p99():
    records = [run("nginx", 1, 50_000, p99_ms=3.1), run("pixring", 1, 40_000, p99_ms=3.4),
               run("skeleton", 1, 45_000, p99_ms=2.9)]
    target = next(t for t in evaluate_targets(records) if "p99" in t.name)
    assert target.name == "pixring p99, c=64 (nginx 3.10 ms, skeleton 2.90 ms in the same rounds)"
    assert target.measured == pytest.approx(3.4) and target.met is False


def test_memory_growth_flat_noise_is_not_growth():
    samples = [50_000, 51_000, 50_500, 51_200, 50_800, 51_100, 50_900, 51_150]
    assert memory_growth(samples)["grew"] is False


def test_memory_growth_steady_climb_is_growth():
    samples = [50_000 + 1_000 * i for i in range(12)]
    growth = memory_growth(samples)
    assert growth["grew"] is True and growth["growth_kib"] == 61_000 - 52_000


def test_memory_growth_needs_samples():
    assert memory_growth([1, 2, 3])["grew"] is None


def test_memory_trend_shows_a_slow_climb_inside_the_tolerance():
    times = [30.0 * i for i in range(10)]
    samples = [48_000 + 100 * i for i in range(10)]  # +200 KiB per minute, 900 KiB in all
    growth = memory_growth(samples, times)
    assert growth["grew"] is False
    assert growth["trend_kib_per_min"] == pytest.approx(200.0)
    assert memory_growth([5, 5, 5, 5], [0, 1, 2, 3])["trend_kib_per_min"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        memory_growth([1, 2, 3, 4], [0, 1])
