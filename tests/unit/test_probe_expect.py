"""What a probe's answer means (balancer/probe_expect.py)."""

import pytest

from balancer.probe_expect import describe_statuses, is_alive, parse_expect


@pytest.mark.parametrize("status, alive", [(200, True), (301, True), (400, True), (404, True), (499, True),
                                           (500, False), (503, False)])
def test_by_default_any_answer_below_500_is_alive(status, alive):
    assert is_alive(status, frozenset()) is alive


def test_expect_narrows_alive_to_the_listed_statuses():
    expect = parse_expect("200-204,301")
    assert is_alive(204, expect) and is_alive(301, expect)
    assert not is_alive(205, expect) and not is_alive(404, expect) and not is_alive(503, expect)
    assert is_alive(503, parse_expect("503")), "an operator may even call a 503 alive"


@pytest.mark.parametrize("text, message", [("abc", "'abc' is not a status"), ("200-", "'200-' is not a status"),
                                           ("99", "from 100 to 599"), ("300-200", "low to high")])
def test_a_bad_expect_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_expect(text)


def test_statuses_are_described_as_ranges():
    assert describe_statuses(parse_expect("201,200,202,404")) == "200-202,404"
    assert describe_statuses(frozenset()) == ""
