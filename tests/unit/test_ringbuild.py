"""The ring builder's inline decisions, which need neither a loop nor a child process.

Off-loop builds, coalescing and the fallback run real child processes in
``tests/integration/test_ringbuild.py``.
"""

from __future__ import annotations

import pytest

from balancer.ring import MAX_POINTS
from balancer.ringbuild import INLINE_MAX_POINTS, RingBuilder, ring_points
from pixring.membership import Member, Membership


def fleet(size: int, *, weight: float = 1.0, prefix: str = "render") -> Membership:
    return Membership.of(Member(f"{prefix}-{i:04d}", "10.0.0.1", 8000 + i, weight) for i in range(size))


class Applied(list):
    def __call__(self, table) -> None:
        self.append(table)


def test_ring_points_follow_the_rings_rule():
    mixed = Membership.of([Member("a", "h", 1, 1.0), Member("b", "h", 2, 0.004), Member("c", "h", 3, 0.0),
                           Member("d", "h", 4, 2.5)])
    assert ring_points(mixed) == 100 + 1 + 0 + 250
    assert ring_points(fleet(200)) == INLINE_MAX_POINTS


def test_a_small_membership_is_built_and_applied_before_submit_returns():
    applied = Applied()
    builder = RingBuilder(applied)
    builder.submit(fleet(3))
    builder.submit(fleet(200))  # at the threshold: still inline, and no loop is needed
    assert [len(t.membership) for t in applied] == [3, 200]
    assert applied[-1].ring.members == tuple(m.id for m in fleet(200).members)
    assert builder.built_inline == 2 and builder.building is None


def test_the_first_membership_is_built_inline_whatever_its_size():
    applied = Applied()
    builder = RingBuilder(applied, inline_max_points=0)
    builder.submit(fleet(50))  # no running loop: an off-loop build would raise here
    assert len(applied) == 1 and builder.built_inline == 1 and builder.built_off_loop == 0


def test_a_refused_membership_raises_naming_the_member_and_changes_nothing():
    applied = Applied()
    builder = RingBuilder(applied)
    builder.submit(fleet(3))
    heavy = Membership.of([*fleet(3).members, Member("huge", "10.0.0.9", 9000, MAX_POINTS / 50)])
    assert ring_points(heavy) > MAX_POINTS
    with pytest.raises(ValueError, match="'huge'"):
        builder.submit(heavy)
    assert len(applied) == 1
    builder.submit(fleet(4))
    assert [len(t.membership) for t in applied] == [3, 4]


def test_an_unknown_start_method_is_an_error_at_construction():
    with pytest.raises(ValueError):
        RingBuilder(Applied(), start_method="teleport")


def test_a_closed_builder_refuses_memberships():
    builder = RingBuilder(Applied())
    builder.close()
    with pytest.raises(RuntimeError, match="closed"):
        builder.submit(fleet(3))
