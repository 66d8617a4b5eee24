"""The policy simulator at a small scale: deterministic, and its counts add up."""

from __future__ import annotations

import pytest

from loadtest.simulate import POLICIES, Model, main, make_trace, partitioned_hit_ratio, simulate, zipf_cumulative

SMALL = Model(requests=12_000, keys=3_000, nodes=5, cache=0.04, balancers=2, workers=2, window=1.0, seed=3)


@pytest.fixture(scope="module")
def zipf_trace():
    return make_trace(SMALL, "zipf")


@pytest.fixture(scope="module")
def results(zipf_trace):
    keys, arrivals = zipf_trace
    return {policy: simulate(SMALL, policy, keys, arrivals) for policy in POLICIES}


def test_traces_are_made_from_the_seed_alone():
    keys, arrivals = make_trace(SMALL, "zipf")
    again, arrivals_again = make_trace(SMALL, "zipf")
    assert keys == again and arrivals == arrivals_again
    other, _ = make_trace(Model(**{**SMALL.__dict__, "seed": 4}), "zipf")
    assert other != keys
    assert arrivals == sorted(arrivals)
    # Zipf: the most popular key takes about 1 / H(K, s) of the requests.
    cumulative = zipf_cumulative(SMALL.keys, SMALL.zipf)
    assert abs(list(keys).count(0) / len(keys) - 1 / cumulative[-1]) < 0.02


def test_the_burst_key_takes_its_share_in_the_middle_of_the_trace():
    keys, _ = make_trace(SMALL, "burst")
    n = len(keys)
    middle = keys[int(0.3 * n):int(0.6 * n)]
    assert abs(list(middle).count(SMALL.keys) / len(middle) - SMALL.burst_share) < 0.03
    assert SMALL.keys not in keys[:int(0.3 * n)] and SMALL.keys not in keys[int(0.6 * n):]


def test_a_run_is_deterministic(zipf_trace, results):
    keys, arrivals = zipf_trace
    assert simulate(SMALL, "pixring+coalesce", keys, arrivals) == results["pixring+coalesce"]


def test_the_counts_add_up(results):
    measured = SMALL.requests - int(SMALL.warmup * SMALL.requests)
    for policy, r in results.items():
        assert r.upstream + r.coalesced == measured, policy
        assert 0 < r.renders <= r.upstream
        assert r.hit_ratio == pytest.approx(1 - r.renders / measured)
        assert 1.0 <= r.peak_to_mean <= r.worst_window
    assert all(r.coalesced == 0 for p, r in results.items() if p != "pixring+coalesce")
    assert results["pixring+coalesce"].coalesced > 0
    assert results["pixring"].spread > 0 and results["ch"].spread == results["bounded"].spread == 0


def test_the_policies_differ_the_way_the_model_says(results):
    rr, ch, pixring = results["rr"], results["ch"], results["pixring"]
    assert rr.peak_to_mean < 1.1  # round robin balances requests
    assert rr.hit_ratio < ch.hit_ratio  # and every cache holds the same keys
    assert ch.peak_to_mean > 1.5  # the top key's owner
    assert pixring.peak_to_mean < ch.peak_to_mean


def test_the_partitioned_hit_ratio_is_between_the_cached_mass_and_one():
    cumulative = zipf_cumulative(SMALL.keys, SMALL.zipf)
    cached = int(SMALL.nodes * SMALL.cache * SMALL.keys)
    ideal = cumulative[cached - 1] / cumulative[-1]  # a cache that keeps exactly the top keys
    assert 0.7 * ideal < partitioned_hit_ratio(SMALL) < ideal


def test_main_prints_a_row_per_policy_and_the_verdict(capsys):
    assert main(["--requests", "4000", "--keys", "1000", "--nodes", "4", "--trace", "zipf", "--window", "0.5",
                 "--policies", "ch,bounded,pixring"]) == 0
    out = capsys.readouterr().out
    for name in ("consistent hashing", "CH + bounded load", "pixring"):
        assert f"| {name} " in out
    assert "round robin" not in out
    assert "pixring: peak/mean" in out


def test_main_names_a_bad_argument(capsys):
    assert main(["--policies", "ch,magic"]) == 2
    assert "magic" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--requests", "0"])
