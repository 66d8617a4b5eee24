"""Consul's blocking-query rules (discovery.blocking), driven without a loop or a clock."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from discovery import blocking


@pytest.mark.parametrize("header, expected", [("1", 1), ("42", 42), (" 7 ", 7), ("18446744073709551615", 2**64 - 1)])
def test_index_header_parses_as_an_integer(header, expected):
    assert blocking.parse_index(header) == expected


@pytest.mark.parametrize("header", [None, "", "-1", "1.5", "abc", "+3", "٣"])
def test_garbage_index_header_is_refused(header):
    with pytest.raises(blocking.IndexHeaderError):
        blocking.parse_index(header)


def test_index_is_compared_as_an_integer_not_as_text():
    # As text "9" > "10"; as integers 10 moved forwards and must not reset the loop.
    assert blocking.next_index(9, blocking.parse_index("10")) == 10


def test_index_going_backwards_resets_to_zero():
    assert blocking.next_index(120, 5) == 0


def test_index_is_never_below_one_after_an_answer():
    assert blocking.next_index(0, 0) == 1
    assert blocking.next_index(0, 1) == 1


@given(previous=st.integers(0, 2**64), returned=st.integers(0, 2**64))
def test_next_index_is_zero_only_when_the_index_went_backwards(previous, returned):
    result = blocking.next_index(previous, returned)
    if returned < previous:
        assert result == 0
    else:
        assert result == max(returned, 1) >= 1


def test_wait_is_a_go_duration_in_milliseconds():
    assert blocking.wait_param(55) == "55000ms"
    assert blocking.wait_param(0.25) == "250ms"
    with pytest.raises(ValueError, match="positive"):
        blocking.wait_param(0)


@pytest.mark.parametrize("wait", [0.1, 1.0, 55.0, 600.0])
def test_request_timeout_outlasts_the_servers_longest_hold(wait):
    longest_hold = wait + wait / blocking.JITTER_DIVISOR
    assert longest_hold < blocking.request_timeout_s(wait) <= longest_hold + 5.0


def test_backoff_grows_exponentially_up_to_the_cap():
    ceilings = [blocking.backoff_delay_s(n, base_s=0.5, cap_s=30, rand=0.999999) for n in range(1, 10)]
    assert ceilings[0] == pytest.approx(0.5, rel=1e-3)
    assert ceilings[1] == pytest.approx(1.0, rel=1e-3)
    assert ceilings[3] == pytest.approx(4.0, rel=1e-3)
    assert max(ceilings) <= 30
    assert ceilings[-1] == pytest.approx(30, rel=1e-3)


@given(failures=st.integers(1, 10_000), rand=st.floats(0, 1, exclude_max=True))
def test_backoff_is_jittered_within_zero_and_the_ceiling(failures, rand):
    delay = blocking.backoff_delay_s(failures, base_s=0.5, cap_s=30, rand=rand)
    assert 0 <= delay < 30


def test_no_backoff_without_a_failure():
    assert blocking.backoff_delay_s(0, base_s=1, cap_s=10, rand=0.9) == 0


def test_token_bucket_allows_a_burst_of_two_then_spaces_requests():
    bucket = blocking.TokenBucket(rate_per_s=10, burst=2)
    assert bucket.reserve(100.0) == 0
    assert bucket.reserve(100.0) == 0
    assert bucket.reserve(100.0) == pytest.approx(0.1)
    # The caller waited 0.1 s; the next request must wait one more interval.
    assert bucket.reserve(100.1) == pytest.approx(0.1)


def test_token_bucket_refills_when_the_loop_is_quiet():
    bucket = blocking.TokenBucket(rate_per_s=10, burst=2)
    for _ in range(3):
        bucket.reserve(0.0)
    assert bucket.reserve(60.0) == 0  # a long blocking answer refilled it
    assert bucket.reserve(60.0) == 0
    assert bucket.reserve(60.0) > 0


@given(st.lists(st.floats(0, 5), min_size=1, max_size=50))
def test_token_bucket_never_lets_more_than_burst_plus_rate_through(gaps):
    rate, burst = 10.0, 2
    bucket = blocking.TokenBucket(rate_per_s=rate, burst=burst)
    now, starts = 0.0, []
    for gap in gaps:
        now += gap
        delay = bucket.reserve(now)
        now += delay  # the caller honours the delay
        starts.append(now)
    span = starts[-1] - starts[0]
    assert len(starts) <= burst + span * rate + 1e-6 + 1


def test_token_bucket_rejects_nonsense():
    with pytest.raises(ValueError):
        blocking.TokenBucket(rate_per_s=0)
    with pytest.raises(ValueError):
        blocking.TokenBucket(rate_per_s=1, burst=0)
