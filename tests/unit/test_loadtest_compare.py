"""What ``python -m loadtest.compare`` prints of a paired ratio (its arithmetic is
``loadtest.summary.paired_ratio``'s, tested with the summary)."""

from loadtest.compare import ratio_line
from loadtest.summary import PairedRatio


def test_a_ratio_says_its_median_interval_and_what_was_left_out():
    line = ratio_line("req/s", PairedRatio("pixring", "pixring-base", 8, 19, 1, 1.01, 0.962, 1.049))
    assert line == ("c=8 req/s, this / base: median of 19 paired ratios 1.010 "
                    "(95% interval 0.962-1.049; 1 disturbed pairs left out)")


def test_too_few_pairs_and_no_clean_pair_are_said_as_such():
    few = ratio_line("req/s", PairedRatio("pixring", "pixring-base", 64, 3, 0, 0.98, None, None))
    assert "too few pairs for an interval" in few and "0.980" in few
    none = ratio_line("req/s", PairedRatio("pixring", "pixring-base", 64, 0, 20, None, None, None))
    assert none == "c=64 req/s: every pair was disturbed, no figure"
