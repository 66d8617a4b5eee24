"""The picker: which members a request tries, in which order.

A pure function of the ring, the key's hash, the health table and the in-flight counts. It
wraps the ring's preference list instead of living inside the ring (Envoy's load balancers
take the same shape: bounded load wraps any hashing policy), and it never moves a key whose
owner is fine, so every cache stays warm.

The shape: one small interface behind, composable steps in front
----------------------------------------------------------------
Behind the picker is a ``Preferences``: the members, a key's owner and a key's preference
list (``balancer.ring.Ring`` is one; the tests use a small ketama ring). In front of it, in
this order, each step a function of its own that takes an ordered list and returns one:

1. ``eligible``: the health and slow-start filter.
2. ``spread``: the hot-key spread (``balancer.hotkeys`` says how many replicas a key has).
3. ``bounded``: bounded load, the safety net for what the spread did not catch.

``candidates`` runs the three and cuts the list to ``max_attempts``; ``first_choice`` is the
owner fast path, which answers only when every step would leave the owner first. Each rule
lives in one place: the bound test is ``_fits``, the slow-start draw ``accepts_during_ramp``.

Rules of this module:

* The candidates are the key's preference list in order, minus the members the health
  table says may not take traffic. In panic mode only operator-removed members are left
  out. A member that is skipped keeps its ring position, so its keys go to the next member
  of their own lists, no other key moves, and they come back when it recovers.
* Slow start is decided per key, deterministically: a slow-starting member accepts a key
  when a hash fraction of (key, member) is below its ramp. As the ramp grows, the set of
  accepted keys only grows, so a key that moved back never flaps; about ``ramp`` of the
  member's keys are back. Keys it does not take yet go to the next member; the member
  stays in the list after them, so it is still tried rather than dropped.
* Hot-key spread: a key with ``replicas`` r > 1 is served by the first r members of its
  filtered list (its replica set: the preference list's, so every worker of every balancer
  agrees on it without talking). Of two of them, drawn with ``choice``, the less loaded
  goes first (the power of two choices, Mitzenmacher, IEEE TPDS 2001); the rest keeps the
  list's order, so retries walk it as before. A key with r = 1, the long tail, never moves.
* Bounded load (consistent hashing with bounded loads, Mirrokni, Thorup, Zadimoghaddam,
  SODA 2018, arXiv:1608.01350; HAProxy's ``hash-balance-factor``): the first choice is the
  first candidate whose in-flight count is below
  ``max(bound_floor, ceil(balance_factor * (total_inflight + 1) / n_routable))``. Members
  over the bound are moved after it, still tried as retries, never dropped. By the
  pigeonhole principle some routable member is always under the bound, so the walk, like
  HAProxy's, ends. It runs after the spread, so it catches a replica set that is full.
* The fast path (``first_choice``), taken when nothing is skipped, nobody ramps, the key is
  not hot and the owner is under its bound, costs the owner lookup and a few comparisons.

Documents relied on:
  https://docs.haproxy.org/2.6/configuration.html#4.2-hash-balance-factor
  https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/cluster.proto
  (``hash_balance_factor`` of the ring hash and Maglev load balancers)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, ItemsView, Mapping, Protocol, Sequence, Union, ValuesView

import xxhash
from mypy_extensions import mypyc_attr

from balancer.hashing import KEY_SEED, mix64
from balancer.health import HealthTable

__all__ = [
    "PickPolicy", "PickError", "Preferences", "Inflight", "Loads", "accepts_during_ramp", "bounded",
    "candidates", "eligible", "first_choice", "spread",
]

_TWO_64: Final = 18446744073709551616.0


class PickError(ValueError):
    """A picker policy that cannot be used."""


class Preferences(Protocol):
    """What the picker needs of a ring: its members, a key's owner, a key's preference list."""

    members: Sequence[str]

    def owner(self, key_hash: int) -> str | None: ...

    def preference(self, key_hash: int, n: int) -> tuple[str, ...]: ...


# Checked by __post_init__, not by compiled field types: mypyc (balancer/compile.py)
# would raise a bare TypeError, or take True for 1, before the check could name the field.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class PickPolicy:
    # HAProxy's manual suggests starting hash-balance-factor at 125 (a factor of 1.25),
    # the value Vimeo ran in production with bounded loads.
    balance_factor: float = 1.25  # 0 = no bounded load
    max_attempts: int = 3
    # No member overflows below this many requests in flight. The bound is a mean over
    # few requests at low load, where chance alone puts 2 of 3 in-flight requests on one
    # member; overflowing then trades a queue of a few milliseconds on the owner for a
    # cache miss (a render) on another node. A render node serves several requests at
    # once (one per core), so a handful in flight is not an overload.
    bound_floor: int = 8

    def __post_init__(self) -> None:
        # Read untyped: compiled code would check the declared types on a plain read.
        bf, n, floor = [getattr(self, name) for name in ("balance_factor", "max_attempts", "bound_floor")]
        if not (isinstance(bf, (int, float)) and not isinstance(bf, bool) and math.isfinite(bf)
                and (bf == 0 or bf >= 1)):
            # Below 1 the bound is under the mean load: every member would overflow.
            raise PickError(f"balance_factor must be 0 (off) or a finite number >= 1, got {bf!r}")
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise PickError(f"max_attempts must be an integer >= 1, got {n!r}")
        if not (isinstance(floor, int) and not isinstance(floor, bool) and floor >= 1):
            raise PickError(f"bound_floor must be an integer >= 1, got {floor!r}")


class Inflight:
    """In-flight requests per member, keeping the total so the picker need not sum.

    The picker reads it like a ``Mapping[str, int]`` (``get``; a plain dict works there
    too). Its own class, not a dict subclass: compiled, the request path then calls
    ``start`` and ``finish`` as C functions, where a dict subclass's methods are found
    through Python's method lookup on every call. Not thread-safe, like everything in a
    worker's event loop.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.total = 0

    def get(self, member: str, default: int = 0) -> int:
        return self.counts.get(member, default)

    def items(self) -> ItemsView[str, int]:
        return self.counts.items()

    def values(self) -> ValuesView[int]:
        return self.counts.values()

    def start(self, member: str) -> None:
        counts = self.counts
        counts[member] = counts.get(member, 0) + 1
        self.total += 1

    def finish(self, member: str) -> None:
        counts = self.counts
        count = counts.get(member, 0)
        if count <= 0:
            return  # a finish without a start is a caller's bug; never go negative
        if count == 1:
            del counts[member]
        else:
            counts[member] = count - 1
        self.total -= 1


# What the picker reads loads from: the worker's Inflight, or any mapping (tests, tools).
Loads = Union[Inflight, Mapping[str, int]]


# -- the rules, once each -----------------------------------------------------------------


def _fits(load: int, n_routable: int, inflight: Loads, policy: PickPolicy) -> bool:
    """Whether a member with ``load`` in flight is under its bound (bounded load's one test).

    ``load < max(floor, ceil(f * (total + 1) / n))`` is, for an integer load,
    ``load < floor or load * n < f * (total + 1)``: no division, no ceil, and the total is
    read only past the floor (most requests stop there). Factor 0 is no bound.
    """
    # The floor first: most requests stop there, after one read of the (uncompiled) policy.
    if load < policy.bound_floor:
        return True
    factor = policy.balance_factor
    return not factor or load * n_routable < factor * (_total(inflight) + 1)


def _total(inflight: Loads) -> int:
    # An isinstance test and a native attribute read, compiled: far cheaper than getattr.
    if isinstance(inflight, Inflight):
        return inflight.total
    return sum(inflight.values())


@lru_cache(maxsize=4096)
def _member_salt(member: str) -> int:
    return xxhash.xxh3_64_intdigest(member.encode(), seed=KEY_SEED)


def _fraction(key_hash: int, member: str) -> float:
    """A uniform [0, 1) number from the key and the member, independent of where the key
    falls on the ring, different for every member."""
    return mix64(key_hash ^ _member_salt(member)) / _TWO_64


def accepts_during_ramp(key_hash: int, member: str, ramp: float) -> bool:
    """Whether a member at ``ramp`` of its share takes this key. Monotone in ``ramp``."""
    return ramp >= 1.0 or _fraction(key_hash, member) < ramp


# -- the steps ----------------------------------------------------------------------------


def eligible(prefs: Sequence[str], key_hash: int, health: HealthTable, now: float) -> list[str]:
    """Step 1, the health and slow-start filter: ``prefs`` minus the members that may not
    take traffic, with the slow-starting members that decline this key moved last."""
    skip = health.removed if health.panic else health.unroutable
    cold = health.slow_starting
    taken: list[str] = []
    declined: list[str] = []
    for member in prefs:
        if member in skip:
            continue
        if member in cold and not accepts_during_ramp(key_hash, member, health.ramp(member, now)):
            declined.append(member)
        else:
            taken.append(member)
    return taken + declined if declined else taken


def spread(ordered: list[str], replicas: int, inflight: Loads, choice: float) -> list[str]:
    """Step 2, the hot-key spread: of two of the first ``replicas`` members, drawn with
    ``choice`` (uniform in [0, 1)), the less loaded goes first; the rest keeps its order.

    One draw gives both members: ``choice * r * (r - 1)`` indexes the ordered pairs of
    distinct replicas. On a tie the first drawn wins, so an idle fleet still spreads."""
    r = min(replicas, len(ordered))
    if r < 2:
        return ordered
    pair = min(int(choice * r * (r - 1)), r * (r - 1) - 1)
    i = pair // (r - 1)
    j = (i + 1 + pair % (r - 1)) % r
    best = j if inflight.get(ordered[j], 0) < inflight.get(ordered[i], 0) else i
    if best == 0:
        return ordered
    return [ordered[best], *ordered[:best], *ordered[best + 1:]]


def bounded(ordered: list[str], ring: Preferences, key_hash: int, health: HealthTable, inflight: Loads,
            now: float, policy: PickPolicy) -> list[str]:
    """Step 3, bounded load: when the first member is at its bound, the first one under it
    goes first (from further down the key's whole list if need be); the rest keeps its order.
    Everyone at the bound (the bound is per worker and counts are not atomic across the
    list) keeps the order."""
    if not ordered or not policy.balance_factor:
        return ordered
    n_routable = _n_routable(health, len(ring.members))
    if _fits(inflight.get(ordered[0], 0), n_routable, inflight, policy):
        return ordered
    first = _first_fitting(ordered, inflight, n_routable, policy)
    if first is None and len(ordered) < len(ring.members):
        wider = eligible(ring.preference(key_hash, len(ring.members)), key_hash, health, now)
        first = _first_fitting(wider, inflight, n_routable, policy)
    if first is None:
        return ordered
    return [first, *(m for m in ordered if m != first)]


def _n_routable(health: HealthTable, n_ring: int) -> int:
    """Members the bound's mean is taken over; a ring ahead of the health table counts
    the ring."""
    n = len(health.members - health.removed) if health.panic else len(health.routable)
    return n or n_ring


def _first_fitting(ordered: Sequence[str], inflight: Loads, n_routable: int, policy: PickPolicy) -> str | None:
    for member in ordered:
        if _fits(inflight.get(member, 0), n_routable, inflight, policy):
            return member
    return None


# -- the picker ---------------------------------------------------------------------------


def first_choice(owner: str | None, health: HealthTable, inflight: Loads,
                 policy: PickPolicy, n_members: int, replicas: int = 1) -> str | None:
    """The first candidate, when the key's ring ``owner`` alone decides it, else None.

    That is the common case: every member healthy, nobody in slow start, the key not hot
    (``replicas`` 1) and the owner under its bound (``n_members`` is the ring's size). It
    equals ``candidates(...)[0]`` then, without the walk for the key's preference list,
    which is only needed for a retry, a spread or an overflow, so the caller asks
    ``candidates`` for it when (if ever) it needs it. The owner is the caller's to look up
    (``ring.owner``), so it can keep it with the key until the ring changes.

    ``replicas`` may be passed by position or keyword: a keyword-only parameter would send
    every call through mypyc's slower argument parsing (measured: about 80 instructions of
    the ~2,200 a call from an interpreted loop costs, callgrind).
    """
    if owner is None or replicas > 1 or health.unroutable or health.slow_starting:
        return None
    if _fits(inflight.get(owner, 0), len(health.routable) or n_members, inflight, policy):
        return owner
    return None


def candidates(ring: Preferences, key_hash: int, health: HealthTable, inflight: Loads,
               now: float, policy: PickPolicy, *, prefs: tuple[str, ...] | None = None,
               replicas: int = 1, choice: float = 0.0) -> tuple[str, ...]:
    """Up to ``policy.max_attempts`` distinct members to try, in order (see the module rules).
    An empty tuple means nobody may take the request.

    ``prefs`` is ``ring.preference(key_hash, policy.max_attempts)`` when the caller keeps
    it (the ring is immutable, so it holds for as long as the ring does). ``replicas`` is
    the key's replica count (``balancer.hotkeys``; 1 for a key that is not hot) and
    ``choice`` a uniform number in [0, 1) that draws the two replicas compared."""
    attempts = policy.max_attempts
    want = max(attempts, replicas)
    skip = health.removed if health.panic else health.unroutable
    cold = health.slow_starting
    if skip or cold:
        # Members left out or moved last: ask for enough that ``want`` remain.
        ordered = eligible(ring.preference(key_hash, min(len(ring.members), want + len(skip) + len(cold))),
                           key_hash, health, now)
    else:
        if prefs is None or (len(prefs) < want and len(prefs) < len(ring.members)):
            prefs = ring.preference(key_hash, want)
        if replicas < 2 and (not prefs or _fits(inflight.get(prefs[0], 0), _n_routable(health, len(ring.members)),
                                                 inflight, policy)):
            return prefs[:attempts]  # the common case: nothing to filter, spread or bound
        ordered = list(prefs)
    if replicas > 1:
        ordered = spread(ordered, replicas, inflight, choice)
    return tuple(bounded(ordered, ring, key_hash, health, inflight, now, policy)[:attempts])
