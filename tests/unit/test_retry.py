"""The retry budget's arithmetic and the backoff's bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.retry import RetryBudget, RetryError, RetryPolicy, backoff_s


@pytest.mark.parametrize("field, value", [
    ("budget_ratio", -0.1), ("budget_ratio", 1.5), ("budget_ratio", float("nan")),
    ("min_concurrent", -1), ("min_concurrent", 1.5), ("backoff_base_s", -1),
    ("backoff_max_s", 0.001), ("backoff_max_s", float("inf")),
])
def test_policy_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(RetryError, match=field):
        RetryPolicy(**{field: value})


def budget(**policy) -> RetryBudget:
    return RetryBudget(RetryPolicy(**policy))


def grant_all(b: RetryBudget) -> int:
    granted = 0
    while b.try_retry():
        granted += 1
    return granted


def test_the_minimum_applies_when_traffic_is_light():
    b = budget(budget_ratio=0.2, min_concurrent=3)
    b.request_started()
    assert grant_all(b) == 3
    assert b.active_retries == 3 and b.exhausted_total == 1


def test_the_ratio_applies_when_traffic_is_heavy():
    b = budget(budget_ratio=0.2, min_concurrent=3)
    for _ in range(100):
        b.request_started()
    assert b.limit == 20
    assert grant_all(b) == 20
    assert not b.try_retry()
    assert b.exhausted_total == 2
    b.retry_finished()
    assert b.try_retry()
    assert b.retries_total == 21


def test_the_limit_follows_requests_finishing():
    b = budget(budget_ratio=0.5, min_concurrent=0)
    for _ in range(10):
        b.request_started()
    assert grant_all(b) == 5
    for _ in range(6):
        b.request_finished()
    assert b.limit == 2
    assert not b.try_retry()  # 5 retries in flight, 2 allowed: wait for them to finish
    for _ in range(3):
        b.retry_finished()
    assert not b.try_retry()  # 2 in flight, 2 allowed
    b.retry_finished()
    assert b.try_retry()


def test_a_zero_budget_refuses_every_retry():
    b = budget(budget_ratio=0, min_concurrent=0)
    for _ in range(50):
        b.request_started()
    assert not b.try_retry()
    assert b.exhausted_total == 1


def test_unpaired_finishes_never_drive_counters_negative():
    b = budget(min_concurrent=1)
    b.request_finished()
    b.retry_finished()
    assert b.active_requests == 0 and b.active_retries == 0
    assert b.try_retry() and not b.try_retry()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["start", "finish", "retry", "retry_done"]), max_size=200),
       st.floats(0, 1), st.integers(0, 5))
def test_retries_in_flight_never_exceed_the_budget_when_granted(ops, ratio, minimum):
    b = budget(budget_ratio=ratio, min_concurrent=minimum)
    refused = 0
    for op in ops:
        if op == "start":
            b.request_started()
        elif op == "finish":
            b.request_finished()
        elif op == "retry":
            if b.try_retry():
                assert b.active_retries <= max(minimum, ratio * b.active_requests)
            else:
                refused += 1
        else:
            b.retry_finished()
        assert b.active_requests >= 0 and b.active_retries >= 0
    assert b.exhausted_total == refused


# -- backoff -----------------------------------------------------------------------------


def test_the_first_try_waits_nothing_and_bad_attempts_are_refused():
    assert backoff_s(0, RetryPolicy(), lambda: 0.9) == 0.0
    with pytest.raises(RetryError, match="attempt"):
        backoff_s(-1, RetryPolicy(), lambda: 0.5)


def test_the_ceiling_doubles_then_caps():
    policy = RetryPolicy(backoff_base_s=0.005, backoff_max_s=0.05)
    almost_one = 1.0 - 1e-12
    ceilings = [backoff_s(a, policy, lambda: almost_one) for a in range(1, 7)]
    assert ceilings == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.05, 0.05])
    assert backoff_s(10_000, policy, lambda: almost_one) == pytest.approx(0.05)


def test_full_jitter_draws_from_zero_to_the_ceiling():
    policy = RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.05)
    rng = random.Random(7)
    draws = [backoff_s(2, policy, rng.random) for _ in range(2000)]
    assert all(0 <= d < 0.02 for d in draws)
    assert min(draws) < 0.002 and max(draws) > 0.018  # the whole range is used, not a fixed delay


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.floats(0, 1, exclude_max=True), st.floats(0, 0.1), st.floats(0, 1))
def test_backoff_is_within_bounds(attempt, r, base, extra):
    policy = RetryPolicy(backoff_base_s=base, backoff_max_s=base + extra)
    d = backoff_s(attempt, policy, lambda: r)
    assert 0 <= d <= policy.backoff_max_s
    if attempt:
        assert d <= policy.backoff_base_s * 2 ** (attempt - 1)
