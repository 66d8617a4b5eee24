"""The capacity test's users honour Retry-After (loadtest/retry_after.py)."""

import pytest

from loadtest.retry_after import MAX_WAIT_S, retry_after_seconds

NOW = 1_780_000_000.0  # a Unix time


@pytest.mark.parametrize("value, seconds", [
    ("1", 1.0), (" 7 ", 7.0), ("0", 0.0), ("3600", MAX_WAIT_S),
    (None, None), ("", None), ("soon", None), ("-1", None), ("1.5", None),
])
def test_delta_seconds_are_read_and_capped(value, seconds):
    assert retry_after_seconds(value, NOW) == seconds


def test_an_http_date_counts_from_now_and_a_past_one_means_at_once():
    from email.utils import formatdate

    assert retry_after_seconds(formatdate(NOW + 12, usegmt=True), NOW) == pytest.approx(12.0)
    assert retry_after_seconds(formatdate(NOW - 100, usegmt=True), NOW) == 0.0
    assert retry_after_seconds("Wed, 31 Feb 2026 25:00:00 GMT", NOW) is None
