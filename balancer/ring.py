"""The consistent-hash ring: which members a key prefers, in order.

Rules of this module:

* Pure: no I/O, no clock, no asyncio. ``build_ring(weights)`` returns a new immutable
  ``Ring``; the edge builds it off the request path and swaps the reference (Envoy's
  thread-aware load balancers do the same). A ``Ring`` has no mutation methods. It pickles
  as its built arrays, so another process can build it and hand it over; unpickling
  builds nothing (``balancer.ringbuild`` relies on this).
* Members are keyed by a stable string ID (a Consul service ID), never an address or a
  list position. What a member contributes is derived from its ID and weight alone, so
  every process and host that sees the same members builds the same ring, and a member's
  arrival, departure or weight change moves only keys to or from that member.
* Weight 1.0 is ``POINTS_PER_WEIGHT`` points; a member gets ``round(weight * that)``, at
  least one (so weights are honoured to about 1/POINTS_PER_WEIGHT). Weight 0 leaves a
  member out. A weight that is not a finite number >= 0 is a ``ValueError`` naming the
  member; so is a fleet of more than ``MAX_POINTS`` points, naming the heaviest member.
* A member's score for a key is computed from the key and that member's points alone; the
  preference list is the members sorted by score. Hence a removed member's keys go to the
  next member of their own lists, every list minus the removed member is unchanged, and
  when it comes back its keys come back. Ties (equal distance) go to the lower position,
  then to the lower ID: orders that no third member can change.

The algorithm: multi-probe consistent hashing, nearest point
------------------------------------------------------------
Each member owns ``round(weight * POINTS_PER_WEIGHT)`` points on a circle of 2**30
positions, hashed from its ID with XXH3 (``balancer.hashing``). A key is looked at from
``PROBES`` positions derived from its hash; a member's score is the smallest distance, in
either direction, from any probe to any of its points. The owner has the smallest score.
The preference list walks outwards from every probe at once (a heap of 2 x PROBES
cursors) and collects members in the order it meets them; each cursor meets every member
within one lap, and a bound on the steps guards the walk.

Why, by measurement (``python -m loadtest.ring_quality --compare``, 1M keys; the exact
model below over 100 random fleets of 10 members, mean / 90th percentile of peak/mean):

* Ketama (the next point clockwise) spreads load with a relative deviation of about
  1/sqrt(points per member): 160 points give 1.12 / 1.17, 1000 give 1.05 / 1.07, 2000 give
  1.03 / 1.05. Meeting peak/mean <= 1.05 at 10 members takes ~2000 points per member: 2M
  points and seconds of build at 1000 members, and a cache-missing binary search.
* The nearest point in either direction rather than the next one clockwise makes a point's
  share the mean of two independent half-gaps: half the variance for the same lookup (one
  probe x 1000 points: 1.035 / 1.052).
* Several probes per key (Appleton & O'Reilly, "Multi-probe consistent hashing", 2015,
  arXiv:1505.00062) cap what a point with a long gap can win, so the spread falls much
  faster with probes than with points: quality follows probes x points, ~1000 of them for
  1.025-1.03 / 1.035-1.04 whether 2 x 500, 4 x 250, 8 x 128 or 16 x 64. Build time and
  memory follow the points, lookup time the probes. 8 x 100 (1.029 / 1.042; 100 members
  1.04) builds 1000 members in ~60 ms (10 MB) and answers ``owner`` in ~2.4 us and
  ``preference(h, 3)`` in ~5 us (~5 and ~9 us at 1000 members) on our shared 2-core
  machine. A direct-mapped slot index replaces the binary search of each probe.
* Maglev (Eisenbud et al., NSDI 2016) balances to ~1% but its table fill lets members
  compete for slots: colleagues measured removals moving 1.57x the ideal at 100 members,
  and a key's preference list is not stable. Rendezvous hashing (Thaler & Ravishankar,
  1998) is exact but costs O(members) per lookup. Jump hash (Lamping & Veach, 2014,
  arXiv:1406.2294) needs members numbered 0..n-1, so removing a middle member renumbers the
  rest. A bounded-load rule (Mirrokni et al., arXiv:1608.01350) belongs to the picker,
  which wraps this ring's preference list.

Quality figures (``shares``, ``min_share``, ``max_share``) are exact for independent uniform
probes, not estimates from sampled keys (the tests check them against 200,000 keys). With
``S(t)`` the chance that one probe is farther than ``t`` from every point, the half-cell
of length ``h`` on one side of a point (half the gap to its neighbour) wins
``k * integral_0^h S(t)^(k-1) dt`` of the keyspace; ``S`` is piecewise linear in ``t``, so
the integral is a sum over the sorted half-cells, O(points log points).

Multiply-shift hashing: Dietzfelbinger, Hagerup, Katajainen & Penttonen, J. Algorithms 25
(1997). SplitMix64: Steele, Lea & Flood, OOPSLA 2014.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from bisect import bisect_left
from heapq import heapify, heapreplace
from itertools import compress, islice, repeat
from operator import eq, rshift
from types import MappingProxyType
from typing import Mapping

from balancer.hashing import GOLDEN_GAMMA, KEY_SEED, POINT_SEED, POINT_TAG, key_hash, mix64, point_hashes

__all__ = [
    "ALGORITHM",
    "MAX_POINTS",
    "POINTS_PER_WEIGHT",
    "PROBES",
    "Ring",
    "build_ring",
    "key_hash",
]

ALGORITHM = "multiprobe"
# Probes per key and points per unit of weight: chosen together by measurement (module
# docstring). Both are part of the version fingerprint: two processes with different
# values route differently and must say so.
PROBES = 8
POINTS_PER_WEIGHT = 100
# Points grow with weight, and build time and memory with points (about 0.65 us and 100
# bytes a point). Weights are relative, 1.0 being one standard node: no fleet needs
# millions of points, and a weight typed in the wrong unit should not stall every worker.
MAX_POINTS = 2_000_000

_POS_BITS = 30  # positions below 2**30 are one-digit ints, the fastest CPython compares
_SPAN = 1 << _POS_BITS
_PROBE_SHIFT = 64 - _POS_BITS
_MASK64 = (1 << 64) - 1
_RESTORE_SLICE = 8192  # points per step of unpickling: well under a millisecond each


def _probe_multipliers(count: int) -> tuple[int, ...]:
    """Odd 64-bit constants, the same in every process: probe i of key hash h is the top
    30 bits of ``h * c_i mod 2**64`` (multiply-shift). The constants are SplitMix64 outputs
    seeded with the key seed; measured, these probes balance as well as independent ones."""
    return tuple(mix64(KEY_SEED + i * GOLDEN_GAMMA) | 1 for i in range(1, count + 1))


def _check_weight(member: object, weight: object) -> float:
    if not isinstance(member, str) or not member:
        raise ValueError(f"ring member ID {member!r} must be a non-empty string")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ValueError(f"member {member!r}: weight {weight!r} is not a number")
    w = float(weight)
    if not math.isfinite(w) or w < 0:
        raise ValueError(f"member {member!r}: weight {weight!r} must be a finite number >= 0")
    return w


def build_ring(weights: Mapping[str, float], *, probes: int = PROBES,
               points_per_weight: int = POINTS_PER_WEIGHT) -> "Ring":
    """A new ring for ``weights`` (member ID -> weight). Weight-0 members are left out; an
    empty mapping (or all weights 0) gives an empty ring. The keyword arguments exist for
    the benchmark; every process of a fleet must use the same values."""
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise ValueError(f"probes must be an integer >= 1, got {probes!r}")
    if isinstance(points_per_weight, bool) or not isinstance(points_per_weight, int) or points_per_weight < 1:
        raise ValueError(f"points_per_weight must be an integer >= 1, got {points_per_weight!r}")
    checked = sorted((member, _check_weight(member, weight)) for member, weight in weights.items())
    included = [(member, w) for member, w in checked if w > 0]
    points = sum(_point_count(w, points_per_weight) for _, w in included)
    if points > MAX_POINTS:
        heaviest, most = max(included, key=lambda item: item[1])
        raise ValueError(f"{len(included)} members need {points:,} ring points, more than {MAX_POINTS:,}; the"
                         f" heaviest is {heaviest!r} with weight {most:g} (weights are relative: 1.0 is one"
                         " standard node)")
    return Ring(included, probes, points_per_weight)


def _point_count(weight: float, points_per_weight: int) -> int:
    return max(1, round(weight * points_per_weight))


class Ring:
    """An immutable ring. Build it with ``build_ring``; read it from any thread."""

    __slots__ = ("_members", "_weights", "_probes", "_points_per_weight", "_mult", "_pos",
                 "_start", "_slot_shift", "_owner_at", "_shared", "_last", "_version", "_shares")

    def __init__(self, included: list[tuple[str, float]], probes: int, points_per_weight: int) -> None:
        self._members = tuple(member for member, _ in included)
        self._weights = MappingProxyType(dict(included))
        self._probes = probes
        self._points_per_weight = points_per_weight
        self._mult = _probe_multipliers(probes)
        self._version = _fingerprint(included, probes, points_per_weight)
        self._shares: Mapping[str, float] | None = None
        points: list[int] = []
        owner_at: dict[int, str] = {}
        by_member: list[tuple[str, list[int]]] = []
        # Highest ID first: where two members hash to the same position, the lower ID is
        # written last and owns it in owner_at (see _shared_positions for the other one).
        for member, weight in reversed(included):
            count = _point_count(weight, points_per_weight)
            member_points = list(map(rshift, point_hashes(member, count), repeat(_PROBE_SHIFT)))
            owner_at.update(zip(member_points, repeat(member)))
            points.extend(member_points)
            by_member.append((member, member_points))
        # Positions below 2**30 are one-digit ints: list.sort compares them on its fast path.
        points.sort()
        self._last = last = len(points)
        self._shared = _shared_positions(points, by_member) if len(owner_at) < last else {}
        if points:
            # Sentinels at both ends, the last point one lap back and the first one lap on,
            # so a probe always has a point on each side without a modulo.
            points.insert(0, points[-1] - _SPAN)
            points.append(points[1] + _SPAN)
            owner_at[points[0]] = owner_at[points[-2]]
            owner_at[points[-1]] = owner_at[points[1]]
        self._pos = points
        self._owner_at = owner_at
        # A direct-mapped index instead of a binary search: slot s (the top bits of a
        # position) holds the index of the first point at or after the slot's start. With
        # between half a slot and one slot per point, a probe reads one entry and steps over
        # a point or so.
        bits = min(_POS_BITS, max(1, last.bit_length() - 1))
        self._slot_shift = _POS_BITS - bits
        self._start = array("I", map(bisect_left, repeat(points), range(0, _SPAN, 1 << self._slot_shift)))

    # -- what the ring is -------------------------------------------------------------

    @property
    def members(self) -> tuple[str, ...]:
        """Member IDs in sorted order (weight-0 members excluded)."""
        return self._members

    @property
    def weights(self) -> Mapping[str, float]:
        """Member ID -> weight, read-only."""
        return self._weights

    @property
    def algorithm(self) -> str:
        return ALGORITHM

    @property
    def probes(self) -> int:
        return self._probes

    @property
    def points_per_weight(self) -> int:
        return self._points_per_weight

    @property
    def size(self) -> int:
        """Points on the ring."""
        return self._last

    @property
    def version(self) -> str:
        """A fingerprint of the algorithm, its parameters and the sorted (ID, weight) pairs:
        equal in every process that built a ring from the same members."""
        return self._version

    def __len__(self) -> int:
        return len(self._members)

    def __reduce__(self) -> tuple:
        """Pickled as the arrays it was built into, so a ring built in another process (the
        worker's ring builder) arrives without being built again: unpickling hashes, sorts
        and searches nothing. For processes running the same code, not for storage: the
        arrays are this version's internals. See ``_restored_ring`` for the form."""
        index = {member: i for i, member in enumerate(self._members)}
        owner_at = self._owner_at
        # In the dict's own order: read in sequence, the dict is quick to walk.
        points = array("l", owner_at)
        owners = array("L", map(index.__getitem__, owner_at.values()))
        return (_restored_ring, (self._members, dict(self._weights), self._probes, self._points_per_weight,
                                 self._mult, self._version, array("l", self._pos), points, owners, self._start,
                                 self._slot_shift, self._shared, self._last))

    def __repr__(self) -> str:
        return (f"Ring({ALGORITHM}, members={len(self._members)}, points={self._last},"
                f" probes={self._probes}, version={self._version})")

    # -- lookups ----------------------------------------------------------------------

    def owner(self, key_hash: int) -> str | None:
        """The member that owns the key with this hash (see ``key_hash``); None when empty."""
        pos = self._pos
        if not pos:
            return None
        start = self._start
        shift = self._slot_shift
        best = _SPAN
        at = 0
        for c in self._mult:
            q = ((key_hash * c) & _MASK64) >> _PROBE_SHIFT
            i = start[q >> shift]
            while pos[i] < q:
                i += 1
            p = pos[i]
            d = p - q
            if d <= best and (d < best or p % _SPAN < at % _SPAN):
                best = d
                at = p
            p = pos[i - 1]
            d = q - p
            if d <= best and (d < best or p % _SPAN < at % _SPAN):
                best = d
                at = p
        return self._owner_at[at]

    def preference(self, key_hash: int, n: int) -> tuple[str, ...]:
        """Up to ``n`` distinct members for the key, best first: the owner, then where
        retries and replicas go. ``min(n, len(members))`` long. The walk is short for a
        few members; the whole list of a 1000-member ring meets a few thousand points
        (milliseconds), so callers ask for what they will try."""
        pos = self._pos
        if n < 1 or not pos:
            return ()
        if n == 1:
            return (self.owner(key_hash),)  # type: ignore[return-value]
        n = min(n, len(self._members))
        last = self._last
        # Two cursors per probe, walking away from it clockwise (+1) and counter-clockwise
        # (-1): (distance, position, index, step, origin). Ties in distance go to the lower
        # position, the same rule as owner(). ``origin`` is the probe moved by a lap when
        # the cursor wraps, so a distance stays a plain subtraction.
        start = self._start
        shift = self._slot_shift
        cursors = []
        for c in self._mult:
            q = ((key_hash * c) & _MASK64) >> _PROBE_SHIFT
            i = start[q >> shift]
            while pos[i] < q:
                i += 1
            if i > last:
                cursors.append((pos[1] + _SPAN - q, pos[1], 1, 1, q - _SPAN))
            else:
                cursors.append((pos[i] - q, pos[i], i, 1, q))
            i -= 1
            if i < 1:
                cursors.append((q + _SPAN - pos[last], pos[last], last, -1, q + _SPAN))
            else:
                cursors.append((q - pos[i], pos[i], i, -1, q))
        heapify(cursors)
        owner_at = self._owner_at
        shared = self._shared
        found: list[str] = []
        seen: set[str] | list[str] = found if n <= 8 else set()
        # Each cursor meets every member within one lap, so the walk ends long before this
        # bound; it is a guard against a bug becoming an endless loop on the request path.
        for _ in range(2 * len(self._mult) * last):
            _, p, i, step, origin = cursors[0]
            for member in (shared.get(p) or (owner_at[p],)) if shared else (owner_at[p],):
                if member not in seen:
                    found.append(member)
                    if len(found) >= n:
                        return tuple(found)
                    if seen is not found:
                        seen.add(member)  # type: ignore[union-attr]
            i += step
            if i > last:
                i = 1
                origin -= _SPAN
            elif i < 1:
                i = last
                origin += _SPAN
            p = pos[i]
            heapreplace(cursors, (p - origin if step > 0 else origin - p, p, i, step, origin))
        raise RuntimeError("ring walk did not find enough members")  # pragma: no cover

    # -- quality ----------------------------------------------------------------------

    def shares(self) -> Mapping[str, float]:
        """Member ID -> share of the keyspace it owns (summing to 1), exact for independent
        uniform probes (module docstring). Computed on first call, O(points log points)."""
        if self._shares is None:
            points = self._pos[1:-1]
            owners = list(map(self._owner_at.__getitem__, points))
            self._shares = MappingProxyType(_model_shares(points, owners, self._members, self._probes))
        return self._shares

    @property
    def min_share(self) -> float:
        """The smallest member share relative to its fair share (weight / total weight);
        1.0 is perfect, 0.0 for an empty ring."""
        return min(self._relative_shares(), default=0.0)

    @property
    def max_share(self) -> float:
        """The largest member share relative to its fair share: the peak-to-mean load."""
        return max(self._relative_shares(), default=0.0)

    def _relative_shares(self) -> list[float]:
        total = sum(self._weights.values())
        shares = self.shares()
        return [shares[m] * total / w for m, w in self._weights.items()]


def _restored_ring(members: tuple[str, ...], weights: dict[str, float], probes: int, points_per_weight: int,
                   mult: tuple[int, ...], version: str, pos: array, points: array, owners: array, start: array,
                   slot_shift: int, shared: dict[int, tuple[str, ...]], last: int) -> Ring:
    """The other half of ``Ring.__reduce__``. The sorted positions, and each point with
    its owner (an index into ``members``), travel as flat arrays: far less to unpickle
    than a list and a dict of every point, and the list and the dict the lookups read are
    made here, in slices. A thread unpickling a ring (a process pool's result thread)
    holds the GIL for one slice at a time, so the thread running the event loop gets it
    back within a switch interval (5 ms) instead of waiting out the whole ring."""
    positions: list[int] = []
    for i in range(0, len(pos), _RESTORE_SLICE):
        positions.extend(pos[i:i + _RESTORE_SLICE].tolist())
    owner_at: dict[int, str] = {}
    member = members.__getitem__
    for i in range(0, len(points), _RESTORE_SLICE):
        owner_at.update(zip(points[i:i + _RESTORE_SLICE].tolist(), map(member, owners[i:i + _RESTORE_SLICE])))
    ring = Ring.__new__(Ring)
    ring._members = members
    ring._weights = MappingProxyType(weights)
    ring._probes = probes
    ring._points_per_weight = points_per_weight
    ring._mult = mult
    ring._version = version
    ring._shares = None
    ring._pos = positions
    ring._start = start
    ring._slot_shift = slot_shift
    ring._owner_at = owner_at
    ring._shared = shared
    ring._last = last
    return ring


def _shared_positions(points: list[int], by_member: list[tuple[str, list[int]]]) -> dict[int, tuple[str, ...]]:
    """Positions held by more than one member, with the holders in ID order.

    With 2**30 positions a thousand-member ring has a few. Every holder keeps its point and
    the lower ID ranks first there; if it leaves, the others are still in place, so no
    third member's rank depends on who else shares a position, and preference lists stay
    stable. ``points`` is sorted, so a repeated position is a run of equal neighbours.
    """
    repeated = set(compress(points, map(eq, points, islice(points, 1, None))))
    holders: dict[int, list[str]] = {}
    for member, member_points in reversed(by_member):  # ascending ID
        for p in repeated.intersection(member_points):
            holders.setdefault(p, []).append(member)
    return {p: tuple(ids) for p, ids in holders.items() if len(ids) > 1}


def _fingerprint(included: list[tuple[str, float]], probes: int, points_per_weight: int) -> str:
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{ALGORITHM}/{probes}/{points_per_weight}/{KEY_SEED}/{POINT_SEED}/{POINT_TAG!r}/{_POS_BITS}\n".encode())
    for member, weight in included:
        digest.update(member.encode("utf-8", "surrogatepass"))
        digest.update(f"\0{weight!r}\n".encode())
    return digest.hexdigest()


def _model_shares(pos: list[int], own: list[str], members: tuple[str, ...], k: int) -> dict[str, float]:
    """Each member's share of the keyspace for ``k`` independent uniform probes, each key
    going to the point nearest any probe (see the module docstring for the formula)."""
    shares = dict.fromkeys(members, 0.0)
    count = len(pos)
    if count == 0:
        return shares
    if count == 1:
        shares[own[0]] = 1.0
        return shares
    # Half-cells: half the gap to the previous point and half the gap to the next, as
    # fractions of the circle. Point j owns half-cells 2j (left) and 2j+1 (right). The first
    # gap crosses the wrap: it is a whole lap when every point sits at one position.
    gaps = [(pos[0] - pos[-1] + _SPAN) / _SPAN]
    gaps.extend((pos[j] - pos[j - 1]) / _SPAN for j in range(1, count))
    half = []
    for j in range(count):
        half.append(gaps[j] / 2)
        half.append(gaps[(j + 1) % count] / 2)
    order = sorted(range(len(half)), key=half.__getitem__)
    # S(t) = sum of max(0, h - t) over half-cells: linear between sorted half-cell lengths.
    remaining = 1.0  # sum of the half-cells longer than the current breakpoint
    t_prev = 0.0
    s_prev = 1.0
    won = 0.0  # k * integral_0^t S(t)^(k-1) dt at the current breakpoint
    longer = len(half)
    won_at = [0.0] * len(half)
    for c in order:
        t = half[c]
        if t > t_prev:
            s = remaining - longer * t
            s = max(s, 0.0)
            won += (s_prev ** k - s ** k) / longer
            s_prev = s
            t_prev = t
        won_at[c] = won
        remaining -= t
        longer -= 1
    for j in range(count):
        shares[own[j]] += won_at[2 * j] + won_at[2 * j + 1]
    return shares
