"""The picker over a ring: skipped members' keys go to their next member and nothing else moves."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.health import HealthPolicy, HealthTable, Outcome
from balancer.picker import Inflight, PickError, PickPolicy, accepts_during_ramp, candidates
from balancer.ring import build_ring

MEMBERS = ("n1", "n2", "n3", "n4", "n5")
KEYS = [xxhash.xxh3_64_intdigest(f"/photos/{i}.jpg?w=400".encode()) for i in range(10_000)]
NO_BOUND = PickPolicy(balance_factor=0)


class FakeRing:
    """A small ketama ring offering what the picker uses: ``members`` and ``preference``."""

    def __init__(self, members, points: int = 64) -> None:
        pts = sorted((xxhash.xxh3_64_intdigest(f"{m}#{i}".encode()), m) for m in members for i in range(points))
        self._hashes = [h for h, _ in pts]
        self._owners = [m for _, m in pts]
        self.members = tuple(sorted(members))

    def owner(self, key_hash: int) -> str | None:
        first = self.preference(key_hash, 1)
        return first[0] if first else None

    def preference(self, key_hash: int, n: int) -> tuple[str, ...]:
        out: list[str] = []
        size = len(self._owners)
        start = bisect_right(self._hashes, key_hash)
        for step in range(size):
            member = self._owners[(start + step) % size]
            if member not in out:
                out.append(member)
                if len(out) == n:
                    break
        return tuple(out)


def _real_ring(members):
    return build_ring({m: 1.0 for m in members})


@pytest.fixture(params=["fake", "real"])
def make_ring(request):
    return FakeRing if request.param == "fake" else _real_ring


def health(members=MEMBERS, now=0.0, **policy) -> HealthTable:
    t = HealthTable(HealthPolicy(**policy), now)
    t.set_members(members, now)
    return t


def firsts(ring, t, now=0.0, inflight=None, policy=NO_BOUND) -> list[str | None]:
    inflight = {} if inflight is None else inflight
    out = []
    for h in KEYS:
        c = candidates(ring, h, t, inflight, now, policy)
        out.append(c[0] if c else None)
    return out


# -- policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("balance_factor", 0.5), ("balance_factor", -1), ("balance_factor", float("inf")),
    ("max_attempts", 0), ("max_attempts", 2.0), ("max_attempts", True),
])
def test_policy_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(PickError, match=field):
        PickPolicy(**{field: value})


# -- healthy fleet -----------------------------------------------------------------------


def test_a_healthy_fleet_gets_the_rings_preference_list(make_ring):
    ring = make_ring(MEMBERS)
    t = health()
    for h in KEYS[:2000]:
        assert candidates(ring, h, t, {}, 0.0, PickPolicy()) == ring.preference(h, 3)


def test_an_empty_ring_or_table_gives_no_candidates_or_the_ring(make_ring):
    t = health(())
    assert candidates(make_ring(()), KEYS[0], t, {}, 0.0, PickPolicy()) == ()
    # A ring ahead of the health table: members it does not know yet are routable.
    ring = make_ring(MEMBERS)
    assert candidates(ring, KEYS[0], t, {}, 0.0, PickPolicy()) == ring.preference(KEYS[0], 3)


# -- unroutable members keep their ring position -----------------------------------------


@pytest.mark.parametrize("how", ["down", "ejected", "drain", "maintenance"])
def test_keys_of_an_unroutable_member_go_to_their_next_member_and_no_other_key_moves(make_ring, how):
    ring = make_ring(MEMBERS)
    t = health(fall=1, consecutive_errors=1)
    before = firsts(ring, t)
    if how == "down":
        t.probe("n3", False, 0.0)
    elif how == "ejected":
        t.outcome("n3", Outcome.CONNECT_ERROR, 0.0)
    else:
        t.set_operator("n3", how, 0.0)
    assert "n3" not in t.routable and not t.panic
    during = firsts(ring, t)
    moved = 0
    for h, old, new in zip(KEYS, before, during):
        if old == "n3":
            moved += 1
            assert new == ring.preference(h, 2)[1]
        else:
            assert new == old
    assert 1000 < moved < 3000  # n3 owned about a fifth of the keys
    for h in KEYS[:500]:
        assert "n3" not in candidates(ring, h, t, {}, 0.0, NO_BOUND)
    # Recovery (without slow start, to compare exactly): every key comes back.
    if how in ("drain", "maintenance"):
        t.set_operator("n3", None, 1.0)
    elif how == "down":
        t.probe("n3", True, 1.0)
        t.probe("n3", True, 1.0)
    else:
        t.tick(10.0)
    t.tick(1000.0)  # any slow start is over
    assert firsts(ring, t, now=1000.0) == before


def test_retries_go_to_distinct_next_members_skipping_the_unroutable(make_ring):
    ring = make_ring(MEMBERS)
    t = health(fall=1)
    t.probe("n2", False, 0.0)
    for h in KEYS[:1000]:
        got = candidates(ring, h, t, {}, 0.0, NO_BOUND)
        want = tuple(m for m in ring.preference(h, 5) if m != "n2")[:3]
        assert got == want


def test_nobody_routable_and_no_panic_gives_no_candidates(make_ring):
    ring = make_ring(MEMBERS)
    t = health(fall=1, panic_threshold=0)
    for m in MEMBERS:
        t.probe(m, False, 0.0)
    assert candidates(ring, KEYS[0], t, {}, 0.0, PickPolicy()) == ()


# -- panic -------------------------------------------------------------------------------


def test_panic_routes_over_every_member_the_operator_has_not_removed(make_ring):
    ring = make_ring(MEMBERS)
    t = health(fall=1, panic_threshold=0.5)
    t.set_operator("n5", "maintenance", 0.0)
    for m in ("n1", "n2", "n3"):
        t.probe(m, False, 0.0)
    assert t.panic and t.routable == {"n4"}
    for h in KEYS[:1000]:
        got = candidates(ring, h, t, {}, 0.0, NO_BOUND)
        assert got == tuple(m for m in ring.preference(h, 5) if m != "n5")[:3]


# -- slow start --------------------------------------------------------------------------


def test_slow_start_brings_back_about_ramp_of_the_keys_and_no_key_flaps(make_ring):
    ring = make_ring(MEMBERS)
    t = health(MEMBERS[:4], slow_start_s=100)
    t.set_members(MEMBERS, 0.0)
    assert t.slow_starting == {"n5"}
    full = [ring.preference(h, 1)[0] for h in KEYS]
    without = [next(m for m in ring.preference(h, 2) if m != "n5") for h in KEYS]  # the next member
    owned = sum(1 for m in full if m == "n5")
    taken_before: set[int] = set()
    for now in (10.0, 25.0, 50.0, 75.0, 99.0):
        got = firsts(ring, t, now=now)
        taken = {i for i, m in enumerate(got) if m == "n5"}
        assert taken_before <= taken  # a key that came back stays
        assert abs(len(taken) / owned - now / 100) < 0.06
        for i, m in enumerate(got):
            assert m == (full[i] if full[i] != "n5" or i in taken else without[i])
        taken_before = taken
    t.tick(100.0)
    assert firsts(ring, t, now=100.0) == full


def test_a_declined_slow_starting_member_stays_in_the_list_after_the_others(make_ring):
    ring = make_ring(("n1", "n2"))
    t = health(("n1",), slow_start_s=100)
    t.set_members(("n1", "n2"), 0.0)
    declined = [h for h in KEYS if ring.preference(h, 1)[0] == "n2"
                and not accepts_during_ramp(h, "n2", t.ramp("n2", 1.0))]
    assert declined
    for h in declined[:200]:
        assert candidates(ring, h, t, {}, 1.0, NO_BOUND) == ("n1", "n2")


def test_a_lone_slow_starting_member_still_takes_every_key(make_ring):
    ring = make_ring(("n1", "n2"))
    t = health(("n1",), slow_start_s=100, fall=1)
    t.set_members(("n1", "n2"), 0.0)
    t.probe("n1", False, 0.0)
    for h in KEYS[:200]:
        assert candidates(ring, h, t, {}, 1.0, NO_BOUND) == ("n2",)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.text(min_size=1, max_size=8), st.floats(0, 1), st.floats(0, 1))
def test_ramp_acceptance_is_monotone(key_hash, member, r1, r2):
    low, high = sorted((r1, r2))
    if accepts_during_ramp(key_hash, member, low):
        assert accepts_during_ramp(key_hash, member, high)
    assert accepts_during_ramp(key_hash, member, 1.0)


# -- bounded load ------------------------------------------------------------------------


def bound(total: int, n: int, factor: float = 1.25) -> int:
    return math.ceil(factor * (total + 1) / n)


@pytest.mark.parametrize("counter", ["dict", "Inflight"])
def test_an_owner_at_its_bound_overflows_to_the_next_member_and_stays_in_the_list(make_ring, counter):
    ring = make_ring(MEMBERS)
    t = health()
    policy = PickPolicy(balance_factor=1.25)
    h = KEYS[7]
    owner, second, third = ring.preference(h, 3)
    loads = {owner: 10, second: 2, third: 1}
    limit = bound(sum(loads.values()), 5)  # ceil(1.25 * 14 / 5) = 4
    if counter == "Inflight":
        inflight = Inflight()
        for m, n in loads.items():
            for _ in range(n):
                inflight.start(m)
    else:
        inflight = loads
    assert loads[owner] >= limit > loads[second]
    assert candidates(ring, h, t, inflight, 0.0, policy) == (second, owner, third)
    # Under the bound, the owner keeps the key.
    loads = {owner: 1, second: 2, third: 1}
    assert loads[owner] < bound(sum(loads.values()), 5)
    assert candidates(ring, h, t, loads, 0.0, policy) == (owner, second, third)


def test_an_owner_exactly_at_its_bound_overflows_and_one_below_it_does_not(make_ring):
    ring = make_ring(MEMBERS)
    t = health()
    policy = PickPolicy(balance_factor=1.25, bound_floor=1)
    h = KEYS[5]
    p = ring.preference(h, 4)
    at = {p[0]: 2, p[1]: 1, p[2]: 1}  # total 4: bound ceil(1.25 * 5 / 5) = 2
    assert at[p[0]] == bound(4, 5)
    assert candidates(ring, h, t, at, 0.0, policy) == (p[1], p[0], p[2])
    # The bound lands on an integer: ceil(1.25 * 8 / 5) = 2 exactly.
    exact = {p[0]: 2, p[1]: 2, p[2]: 2, p[3]: 1}
    assert exact[p[0]] == bound(7, 5) == 1.25 * 8 / 5
    assert candidates(ring, h, t, exact, 0.0, policy) == (p[3], p[0], p[1])
    below = {p[0]: 1, p[1]: 1, p[2]: 1, p[3]: 1}  # total 4, bound 2
    assert candidates(ring, h, t, below, 0.0, policy) == (p[0], p[1], p[2])


def test_overflow_with_members_skipped_widens_the_walk_when_the_window_is_full(make_ring):
    members = tuple(f"m{i}" for i in range(8))
    ring = make_ring(members)
    h = KEYS[13]
    p = ring.preference(h, 8)
    t = health(members, fall=1)
    t.probe(p[7], False, 0.0)  # one member skipped: the first walk looks at 3 + 1 members
    inflight = {p[0]: 9, p[1]: 9, p[2]: 9, p[3]: 9}
    assert inflight[p[3]] >= bound(36, 7)
    got = candidates(ring, h, t, inflight, 0.0, PickPolicy(balance_factor=1.25))
    assert got == (p[4], p[0], p[1])


def test_members_decide_their_slow_start_keys_independently():
    agree = sum(accepts_during_ramp(h, "n1", 0.5) == accepts_during_ramp(h, "n2", 0.5) for h in KEYS)
    assert 0.45 < agree / len(KEYS) < 0.55


def test_overflow_looks_past_the_attempt_window_for_a_member_under_its_bound(make_ring):
    ring = make_ring(MEMBERS)
    t = health()
    h = KEYS[11]
    prefs = ring.preference(h, 5)
    inflight = {prefs[0]: 6, prefs[1]: 6, prefs[2]: 6, prefs[3]: 0, prefs[4]: 0}
    got = candidates(ring, h, t, inflight, 0.0, PickPolicy(balance_factor=1.25, bound_floor=1))
    assert got == (prefs[3], prefs[0], prefs[1])
    # With a member down the slow path does the same.
    t2 = health(fall=1)
    t2.probe(prefs[4], False, 0.0)
    assert candidates(ring, h, t2, inflight, 0.0, PickPolicy(balance_factor=1.25, bound_floor=1)) == (prefs[3], prefs[0], prefs[1])


def test_no_bounded_load_when_the_factor_is_zero(make_ring):
    ring = make_ring(MEMBERS)
    h = KEYS[3]
    inflight = {ring.preference(h, 1)[0]: 1000}
    assert candidates(ring, h, health(), inflight, 0.0, NO_BOUND) == ring.preference(h, 3)


def test_a_slow_member_sheds_its_keys_under_load(make_ring):
    """The ten-times-slower renderer: its in-flight count piles up, so its keys overflow."""
    ring = make_ring(MEMBERS)
    t = health()
    policy = PickPolicy(balance_factor=1.25)
    inflight = Inflight()
    for m in MEMBERS:
        for _ in range(4):
            inflight.start(m)
    for _ in range(36):  # n1 holds 40 of 56 requests
        inflight.start("n1")
    share = Counter(firsts(ring, t, inflight=inflight, policy=policy))
    assert share["n1"] == 0
    assert sum(share.values()) == len(KEYS)
    quiet = Counter(firsts(ring, t, inflight={}, policy=policy))
    assert quiet["n1"] > 1000


def test_inflight_counter_keeps_its_total_and_never_goes_negative():
    c = Inflight()
    c.start("a")
    c.start("a")
    c.start("b")
    assert c.total == 3 and c.counts == {"a": 2, "b": 1}
    c.finish("a")
    c.finish("b")
    c.finish("b")  # unpaired
    assert c.total == 1 and c.counts == {"a": 1}


# -- invariants --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    down=st.sets(st.sampled_from(MEMBERS)),
    removed=st.dictionaries(st.sampled_from(MEMBERS), st.sampled_from(["drain", "maintenance"])),
    cold=st.sets(st.sampled_from(MEMBERS)),
    loads=st.dictionaries(st.sampled_from(MEMBERS), st.integers(0, 50)),
    factor=st.sampled_from([0, 1, 1.25, 2]),
    attempts=st.integers(1, 6),
    key=st.integers(0, 2**64 - 1),
    now=st.floats(0, 40),
)
def test_candidates_are_distinct_eligible_and_as_many_as_allowed(down, removed, cold, loads, factor,
                                                                  attempts, key, now):
    ring = FakeRing(MEMBERS)
    t = health(tuple(m for m in MEMBERS if m not in cold), fall=1, slow_start_s=30)
    t.set_members(MEMBERS, 0.0)
    for m in down:
        t.probe(m, False, 0.0)
    for m, mode in removed.items():
        t.set_operator(m, mode, 0.0)
    got = candidates(ring, key, t, loads, now, PickPolicy(balance_factor=factor, max_attempts=attempts))
    eligible = (t.members - t.removed) if t.panic else t.routable
    assert len(set(got)) == len(got)
    assert set(got) <= eligible
    assert len(got) == min(attempts, len(eligible))
    if factor == 0 and not t.slow_starting:
        assert got == tuple(m for m in ring.preference(key, 5) if m in eligible)[:attempts]


def test_no_member_overflows_below_the_floor_whatever_the_mean(make_ring):
    """At low load chance alone crowds a member; a few in flight must not cost a cache miss."""
    ring = make_ring(MEMBERS)
    t = health()
    h = KEYS[5]
    p = ring.preference(h, 4)
    crowded = {p[0]: 3}  # 3 of 3 in flight on the owner: far over 1.25 x the mean
    assert candidates(ring, h, t, crowded, 0.0, PickPolicy(balance_factor=1.25, bound_floor=4))[0] == p[0]
    assert candidates(ring, h, t, {p[0]: 4}, 0.0, PickPolicy(balance_factor=1.25, bound_floor=4))[0] != p[0]
    assert candidates(ring, h, t, crowded, 0.0, PickPolicy(balance_factor=1.25, bound_floor=1))[0] != p[0]


# Requests in flight per member, in MEMBERS order.
_LOADS = st.lists(st.integers(0, 40), min_size=len(MEMBERS), max_size=len(MEMBERS))


def _in_flight(loads: list[int]) -> Inflight:
    inflight = Inflight()
    for member, load in zip(MEMBERS, loads):
        for _ in range(load):
            inflight.start(member)
    return inflight


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(KEYS[:200]),
    loads=_LOADS,
    factor=st.sampled_from([0, 1, 1.25, 2.0]),
    floor=st.integers(1, 12),
    down=st.sets(st.sampled_from(MEMBERS), max_size=2),
)
def test_first_choice_is_the_head_of_the_candidate_list_whenever_it_answers(key, loads, factor, floor, down):
    from balancer.picker import first_choice

    ring = _real_ring(MEMBERS)
    t = health(fall=1)
    for member in down:
        t.probe(member, False, 1.0)
    inflight = _in_flight(loads)
    policy = PickPolicy(balance_factor=factor, bound_floor=floor)
    first = first_choice(ring.owner(key), t, inflight, policy, len(ring.members))
    full = candidates(ring, key, t, inflight, 0.0, policy)
    if first is not None:
        assert first == full[0]
    if not down:
        # With everyone healthy it steps aside only for a real overflow.
        assert (first is None) == (full[0] != ring.owner(key))


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(KEYS[:200]),
    loads=_LOADS,
    factor=st.sampled_from([0, 1, 1.25, 2.0]),
    attempts=st.integers(1, 5),
    down=st.sets(st.sampled_from(MEMBERS), max_size=2),
    cold=st.booleans(),
)
def test_a_kept_preference_list_gives_the_candidates_the_ring_gives(key, loads, factor, attempts, down, cold):
    """The front keeps ring.preference(key, max_attempts) with a hot key's cached route."""
    ring = _real_ring(MEMBERS)
    t = health(MEMBERS[1:] if cold else MEMBERS, fall=1, slow_start_s=30)  # cold: the first joins late
    t.set_members(MEMBERS, 0.0)
    for member in down:
        t.probe(member, False, 1.0)
    inflight = _in_flight(loads)
    policy = PickPolicy(balance_factor=factor, max_attempts=attempts)
    kept = ring.preference(key, attempts)
    assert candidates(ring, key, t, inflight, 2.0, policy, prefs=kept) == candidates(ring, key, t, inflight, 2.0, policy)


# -- hot-key spread ----------------------------------------------------------------------

CHOICES = [i / 60 for i in range(60)]


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_a_hot_key_goes_to_its_preference_lists_first_r_and_the_rest_keeps_its_order(make_ring, replicas):
    ring = make_ring(MEMBERS)
    t = health()
    for h in KEYS[:200]:
        prefs = ring.preference(h, 5)
        firsts_seen = set()
        for choice in CHOICES:
            got = candidates(ring, h, t, {}, 0.0, PickPolicy(max_attempts=5), replicas=replicas, choice=choice)
            assert got[0] in prefs[:replicas]
            assert got[1:] == tuple(m for m in prefs if m != got[0])  # retries still walk the list
            firsts_seen.add(got[0])
        assert firsts_seen == set(prefs[:replicas])  # an idle fleet spreads over every replica


def test_the_tail_never_moves_whatever_the_draw(make_ring):
    ring = make_ring(MEMBERS)
    t = health()
    loads = {m: i for i, m in enumerate(MEMBERS)}
    for h in KEYS[:500]:
        for choice in (0.0, 0.37, 0.99):
            assert candidates(ring, h, t, loads, 0.0, PickPolicy(), replicas=1, choice=choice) == ring.preference(h, 3)


def test_of_two_replicas_the_less_loaded_goes_first(make_ring):
    ring = make_ring(MEMBERS)
    t = health()
    h = KEYS[21]
    p = ring.preference(h, 5)
    loads = {p[0]: 5, p[1]: 1}
    for choice in CHOICES:
        assert candidates(ring, h, t, loads, 0.0, PickPolicy(), replicas=2, choice=choice)[0] == p[1]
    # Of three replicas, two are compared: the most loaded is first only if drawn twice,
    # which one draw of two distinct replicas never does.
    loads = {p[0]: 1, p[1]: 5, p[2]: 3}
    heads = Counter(candidates(ring, h, t, loads, 0.0, PickPolicy(), replicas=3, choice=c)[0] for c in CHOICES)
    assert heads[p[1]] == 0 and heads[p[0]] == 2 * heads[p[2]] == 40


def test_one_draw_picks_every_ordered_pair_of_replicas_equally_often():
    from balancer.picker import spread

    members = ["a", "b", "c", "d"]
    pairs = Counter()
    for i in range(1200):
        # Equal loads: the first drawn wins, so the head tells the first of the pair.
        pairs[spread(members, 4, {}, i / 1200)[0]] += 1
    assert set(pairs.values()) == {300}


def test_bounded_load_still_catches_a_replica_set_that_is_full(make_ring):
    ring = make_ring(MEMBERS)
    t = health()
    h = KEYS[9]
    p = ring.preference(h, 5)
    loads = {p[0]: 12, p[1]: 12, p[2]: 1}  # total 25: bound max(8, ceil(1.25 * 26 / 5)) = 8
    for choice in CHOICES:
        got = candidates(ring, h, t, loads, 0.0, PickPolicy(), replicas=2, choice=choice)
        assert got[0] == p[2]
        assert set(got[1:]) == {p[0], p[1]}


def test_a_hot_keys_replicas_are_its_first_routable_members(make_ring):
    ring = make_ring(MEMBERS)
    t = health(fall=1)
    for h in KEYS[:100]:
        p = ring.preference(h, 5)
        t2 = health(fall=1)
        t2.probe(p[1], False, 0.0)
        heads = {candidates(ring, h, t2, {}, 0.0, PickPolicy(), replicas=2, choice=c)[0] for c in CHOICES}
        assert heads == {p[0], p[2]}
        # A kept list as short as the attempts is walked further for more replicas.
        heads = {candidates(ring, h, t, {}, 0.0, PickPolicy(max_attempts=2), prefs=p[:2], replicas=4,
                            choice=c)[0] for c in CHOICES}
        assert heads == set(p[:4])


def test_first_choice_steps_aside_for_a_hot_key():
    from balancer.picker import first_choice

    ring = _real_ring(MEMBERS)
    t = health()
    owner = ring.owner(KEYS[0])
    assert first_choice(owner, t, {}, PickPolicy(), 5) == owner
    assert first_choice(owner, t, {}, PickPolicy(), 5, replicas=2) is None
