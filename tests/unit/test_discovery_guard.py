"""The mass-drop guard (discovery.guard): which valid answers may replace the ring."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from discovery.guard import DropGuard, Hold, Publish, Unchanged
from pixring.membership import Member, Membership


def members(*ids: str, weight: float = 1.0) -> Membership:
    return Membership.of([Member(i, "10.0.0.1", 8000 + ord(i[0]), weight) for i in ids], source="consul")


def accepted_guard(*ids: str, fraction: float = 0.5) -> DropGuard:
    guard = DropGuard(fraction)
    assert isinstance(guard.offer(members(*ids), 0.0), Publish)
    return guard


def test_first_non_empty_answer_is_published():
    decision = DropGuard().offer(members("a", "b"), 0.0)
    assert isinstance(decision, Publish) and [m.id for m in decision.membership.members] == ["a", "b"]


def test_first_empty_answer_is_held_not_published():
    guard = DropGuard()
    assert isinstance(guard.offer(members(), 0.0), Hold)
    assert guard.accepted is None


def test_the_same_members_again_is_unchanged():
    guard = accepted_guard("a", "b", "c")
    assert isinstance(guard.offer(members("c", "b", "a"), 0.0), Unchanged)


def test_a_weight_change_is_published():
    guard = accepted_guard("a", "b")
    assert isinstance(guard.offer(members("a", "b", weight=2.0), 0.0), Publish)


def test_additions_and_a_small_drop_are_followed():
    guard = accepted_guard("a", "b", "c")
    assert isinstance(guard.offer(members("a", "b", "c", "d"), 0.0), Publish)
    assert isinstance(guard.offer(members("a", "b", "c"), 0.0), Publish)  # 1 of 4 gone
    assert [m.id for m in guard.accepted.members] == ["a", "b", "c"]


def test_an_empty_answer_is_held_and_the_last_set_kept():
    guard = accepted_guard("a", "b", "c")
    decision = guard.offer(members(), 0.0)
    assert isinstance(decision, Hold)
    assert decision.dropped == ("a", "b", "c")
    assert "empty" in decision.reason
    assert [m.id for m in guard.accepted.members] == ["a", "b", "c"]


def test_dropping_most_members_at_once_is_held():
    guard = accepted_guard("a", "b", "c")
    decision = guard.offer(members("a"), 0.0)
    assert isinstance(decision, Hold)
    assert decision.dropped == ("b", "c")
    assert "2 of 3" in decision.reason


def test_dropping_exactly_the_fraction_is_followed():
    guard = accepted_guard("a", "b", "c", "d")
    assert isinstance(guard.offer(members("a", "b"), 0.0), Publish)  # 50% is not "most"


def test_recovery_releases_the_hold_without_a_rebuild():
    guard = accepted_guard("a", "b", "c")
    guard.offer(members(), 0.0)
    assert isinstance(guard.offer(members("a", "b", "c"), 0.0), Unchanged)
    assert guard.held is None


def test_a_partial_recovery_below_the_threshold_is_published():
    guard = accepted_guard("a", "b", "c")
    guard.offer(members("a"), 0.0)
    assert isinstance(guard.offer(members("a", "b"), 0.0), Publish)
    assert guard.held is None


def test_confirm_accepts_the_latest_held_answer():
    guard = accepted_guard("a", "b", "c", "d")
    guard.offer(members(), 0.0)
    guard.offer(members("d"), 0.0)  # the held answer follows Consul's latest
    confirmed = guard.confirm(0.0)
    assert [m.id for m in confirmed.members] == ["d"]
    assert guard.held is None
    # From now on the confirmed set is the baseline: d alone again is no change.
    assert isinstance(guard.offer(members("d"), 0.0), Unchanged)


def test_confirm_without_a_hold_does_nothing():
    guard = accepted_guard("a")
    assert guard.confirm(0.0) is None
    assert [m.id for m in guard.accepted.members] == ["a"]


def test_fraction_zero_holds_any_drop_and_one_holds_only_empty():
    strict = accepted_guard("a", "b", "c", fraction=0.0)
    assert isinstance(strict.offer(members("a", "b"), 0.0), Hold)
    lax = accepted_guard("a", "b", "c", fraction=1.0)
    assert isinstance(lax.offer(members("a"), 0.0), Publish)
    assert isinstance(lax.offer(members(), 0.0), Hold)


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_bad_fraction_is_refused(fraction):
    with pytest.raises(ValueError, match="drop_guard_fraction"):
        DropGuard(fraction)


ids = st.sets(st.sampled_from("abcdefghij"), max_size=10)


@given(before=ids.filter(bool), after=ids, fraction=st.floats(0, 1))
def test_guard_never_publishes_an_empty_set_nor_an_over_threshold_drop(before, after, fraction):
    guard = accepted_guard(*sorted(before), fraction=fraction)
    decision = guard.offer(members(*sorted(after)), 0.0)
    dropped = len(before - after)
    if isinstance(decision, Publish):
        assert after and dropped <= fraction * len(before)
        assert guard.accepted == decision.membership
    else:
        assert [m.id for m in guard.accepted.members] == sorted(before)
    if isinstance(decision, Unchanged):
        assert after == before


def test_a_collapse_spread_over_several_answers_is_measured_against_the_window():
    guard = accepted_guard("a", "b", "c", "d")
    assert isinstance(guard.offer(members("b", "c", "d"), 1.0), Publish)  # 1 of 4
    assert isinstance(guard.offer(members("c", "d"), 2.0), Publish)  # 2 of 4: not most
    decision = guard.offer(members("d"), 3.0)  # 3 of the 4 seen within the window
    assert isinstance(decision, Hold) and decision.dropped == ("a", "b", "c")
    assert [m.id for m in guard.accepted.members] == ["c", "d"]


def test_members_gone_longer_than_the_window_no_longer_count():
    guard = DropGuard(0.5, window_s=60)
    guard.offer(members("a", "b", "c", "d"), 0.0)
    guard.offer(members("c", "d"), 10.0)
    assert guard.reference(10.0) == {"a", "b", "c", "d"}
    assert guard.reference(100.0) == {"c", "d"}
    assert isinstance(guard.offer(members("d"), 100.0), Publish)  # 1 of 2 is not "most"


def test_confirm_resets_the_reference_to_the_confirmed_set():
    guard = accepted_guard("a", "b", "c", "d")
    guard.offer(members("a"), 1.0)
    guard.confirm(2.0)
    assert guard.reference(2.0) == {"a"}
    assert isinstance(guard.offer(members("a", "e"), 3.0), Publish)


def test_bad_window_is_refused():
    with pytest.raises(ValueError, match="drop_guard_window_s"):
        DropGuard(0.5, window_s=-1)
