"""The arithmetic of ``python -m loadtest.compare``: each pair's ratio is this checkout's
rate over the base's in the same pair, and the spread printed is the middle half."""

import pytest

from loadtest.compare import paired_ratios, quartiles


def test_each_ratio_is_this_checkout_over_the_base_of_the_same_pair():
    base = [10_000.0, 20_000.0, 12_000.0]
    ours = [9_000.0, 22_000.0, 12_000.0]
    assert paired_ratios(base, ours) == pytest.approx([0.9, 1.1, 1.0])


def test_a_slow_machine_minute_moves_both_sides_of_a_pair_and_not_the_ratio():
    # The same builds, the machine half as fast for the second pair: the rates scatter by
    # 2x, the ratios not at all (what pairing buys over separate runs).
    ratios = paired_ratios([14_000.0, 7_000.0], [13_300.0, 6_650.0])
    assert ratios == pytest.approx([0.95, 0.95])


def test_quartiles_are_the_middle_half_and_the_median():
    q1, median, q3 = quartiles([0.90, 0.92, 0.95, 0.97, 1.00, 1.20, 0.50, 0.96])
    assert median == pytest.approx(0.955)
    assert 0.90 < q1 < median < q3 < 1.00


def test_quartiles_of_fewer_than_four_pairs_are_the_range():
    assert quartiles([0.9, 1.1]) == (0.9, 1.0, 1.1)
    assert quartiles([0.97]) == (0.97, 0.97, 0.97)
