"""The picker: which members a request tries, in which order.

A pure function of the ring, the key's hash, the health table and the in-flight counts. It
wraps the ring's preference list instead of living inside the ring (Envoy's load balancers
take the same shape: bounded load wraps any hashing policy), and it never moves a key whose
owner is fine, so every cache stays warm.

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
* Bounded load (consistent hashing with bounded loads, Mirrokni, Thorup, Zadimoghaddam,
  SODA 2018, arXiv:1608.01350; HAProxy's ``hash-balance-factor``): the first choice is the
  first candidate whose in-flight count is below
  ``ceil(balance_factor * (total_inflight + 1) / n_routable)``. Members over the bound are
  moved after it, still tried as retries, never dropped. By the pigeonhole principle some
  routable member is always under the bound, so the walk, like HAProxy's, ends.
* The fast path (``first_choice``), taken when nothing is skipped, nobody ramps and the
  owner is under its bound, costs the owner lookup and a few comparisons.

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

from balancer.health import HealthTable

__all__ = ["PickPolicy", "PickError", "Inflight", "Loads", "candidates", "accepts_during_ramp"]

_MASK64: Final = (1 << 64) - 1
_SALT_SEED: Final = 0x70697872696E67  # "pixring"; any fixed value, the same in every process


class PickError(ValueError):
    """A picker policy that cannot be used."""


class _RingLike(Protocol):
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


@lru_cache(maxsize=4096)
def _member_salt(member: str) -> int:
    return xxhash.xxh3_64_intdigest(member.encode(), seed=_SALT_SEED)


def _fraction(key_hash: int, member: str) -> float:
    """A uniform [0, 1) number from the key and the member (the splitmix64 finaliser),
    independent of where the key falls on the ring, different for every member."""
    z = (key_hash ^ _member_salt(member)) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return z / 18446744073709551616.0


def accepts_during_ramp(key_hash: int, member: str, ramp: float) -> bool:
    """Whether a member at ``ramp`` of its share takes this key. Monotone in ``ramp``."""
    return ramp >= 1.0 or _fraction(key_hash, member) < ramp


def _total(inflight: Loads) -> int:
    total = getattr(inflight, "total", None)
    return sum(inflight.values()) if total is None else total


def _bound(policy: PickPolicy, inflight: Loads, n_routable: int) -> int:
    return max(policy.bound_floor, math.ceil(policy.balance_factor * (_total(inflight) + 1) / max(1, n_routable)))


def first_choice(owner: str | None, health: HealthTable, inflight: Loads,
                 policy: PickPolicy, n_members: int) -> str | None:
    """The first candidate, when the key's ring ``owner`` alone decides it, else None.

    That is the common case: every member healthy, nobody in slow start, and the owner
    under its bound (``n_members`` is the ring's size). It equals ``candidates(...)[0]``
    then, without the walk for the key's preference list, which is only needed for a
    retry or an overflow, so the caller asks ``candidates`` for it when (if ever) it
    needs it. The owner is the caller's to look up (``ring.owner``), so it can keep it
    with the key until the ring changes.
    """
    if owner is None or health.unroutable or health.slow_starting:
        return None
    factor = policy.balance_factor
    if not factor:
        return owner
    load = inflight.get(owner, 0)
    if load < policy.bound_floor:
        return owner
    # load < ceil(f * (total + 1) / n)  <=>  load * n < f * (total + 1) for an integer
    # load: _bound's test, without a division, a ceil or a call.
    if load * (len(health.routable) or n_members) < factor * (_total(inflight) + 1):
        return owner
    return None


def candidates(ring: _RingLike, key_hash: int, health: HealthTable, inflight: Loads,
               now: float, policy: PickPolicy, *, prefs: tuple[str, ...] | None = None,
               replicas: int = 1) -> tuple[str, ...]:
    """Up to ``policy.max_attempts`` distinct members to try, in order (see the module rules).
    An empty tuple means nobody may take the request.

    ``prefs`` is ``ring.preference(key_hash, policy.max_attempts)`` when the caller keeps
    it (the ring is immutable, so it holds for as long as the ring does)."""
    panic = health.panic
    skip = health.removed if panic else health.unroutable
    cold = health.slow_starting

    if not skip and not cold:
        if prefs is None:
            prefs = ring.preference(key_hash, policy.max_attempts)
        if not prefs or not policy.balance_factor:
            return prefs
        load = inflight.get(prefs[0], 0)
        if not load:
            return prefs  # the bound is at least 1
        n_routable = len(health.routable) or len(ring.members)  # ring ahead of the table: count the ring
        total = getattr(inflight, "total", None)
        if total is None:
            total = sum(inflight.values())
        # load < ceil(f * (total + 1) / n)  <=>  load * n < f * (total + 1) for an integer
        # load: the same test as _bound's, without a division, a ceil or a call.
        if load * n_routable < policy.balance_factor * (total + 1):
            return prefs
        return _overflow(ring, key_hash, prefs, inflight, policy, n_routable)

    attempts = policy.max_attempts
    n_ring = len(ring.members)
    want = min(n_ring, attempts + len(skip) + len(cold))
    ordered = _filtered(ring.preference(key_hash, want), key_hash, skip, cold, health, now)
    if not ordered:
        return ()
    if policy.balance_factor:
        n_routable = len(health.members - health.removed) if panic else len(health.routable)
        bound = _bound(policy, inflight, n_routable or len(ordered))
        if inflight.get(ordered[0], 0) >= bound:
            first = _first_under(ordered, inflight, bound)
            if first is None and want < n_ring:
                ordered = _filtered(ring.preference(key_hash, n_ring), key_hash, skip, cold, health, now)
                first = _first_under(ordered, inflight, bound)
            if first is not None:
                ordered.remove(first)
                ordered.insert(0, first)
    return tuple(ordered[:attempts])


def _filtered(prefs: Sequence[str], key_hash: int, skip: frozenset[str], cold: frozenset[str],
              health: HealthTable, now: float) -> list[str]:
    taken: list[str] = []
    declined: list[str] = []
    for member in prefs:
        if member in skip:
            continue
        if member in cold and not accepts_during_ramp(key_hash, member, health.ramp(member, now)):
            declined.append(member)
        else:
            taken.append(member)
    return taken + declined


def _first_under(ordered: Sequence[str], inflight: Loads, bound: int) -> str | None:
    for member in ordered:
        if inflight.get(member, 0) < bound:
            return member
    return None


def _overflow(ring: _RingLike, key_hash: int, prefs: tuple[str, ...], inflight: Loads,
              policy: PickPolicy, n_routable: int) -> tuple[str, ...]:
    bound = _bound(policy, inflight, n_routable)
    first = _first_under(prefs, inflight, bound)
    if first is None:
        wider = ring.preference(key_hash, len(ring.members))
        first = _first_under(wider, inflight, bound)
        if first is None:
            return prefs  # everyone is at the bound: keep the key's own order
    rest = [m for m in prefs if m != first]
    return (first, *rest)[:policy.max_attempts]
