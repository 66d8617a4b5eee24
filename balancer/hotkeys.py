"""Hot keys: which keys take a large share of a worker's recent requests, and how many
replicas each should have.

A pure, bounded-memory counter, one per worker, asked once per request
(``HotKeys.observe``). Its answer, the key's replica count r, goes to the picker
(``balancer.picker.candidates(..., replicas=r)``), which serves a hot key from the first
r members of its preference list.

Rules of this module:

* Counting is Space-Saving (Metwally, Agrawal & El Abbadi, "Efficient computation of
  frequent and top-k elements in data streams", ICDT 2005): at most ``capacity`` keys are
  counted; a key that is not counted takes the place of the least counted one, inheriting
  its count as its possible error. ``count - error`` never exceeds a key's true count, and
  any key whose true share is above ``1 / capacity`` is in the table. The capacity is
  ``ceil(4 / threshold)``, so the error of any share is at most a quarter of the threshold.
* Decay: every ``half_life`` counted requests all counts (and the total) are halved, so a
  share is of the worker's recent requests, a key that cools falls below the threshold
  within a few half-lives and returns to one replica, and entries that reach 0 are dropped.
* Sampling: one request in ``sample`` on average is counted (a random stride, so no
  periodic pattern in the traffic lines up with it). The others cost a countdown and,
  while some key is hot, one dict lookup of the hot keys. Shares are ratios of sampled
  counts, which sampling leaves unbiased.
* A key is hot when its share is at least ``threshold``. The share is taken
  low on purpose: ``(sure - Z * sqrt(sure)) / total`` with ``sure = count - error``, the
  guaranteed count less ``Z`` standard deviations of its sampling noise (a sampled count
  is about Poisson). Without that margin a flat set of a few dozen keys, counted a few
  times each by a fresh or quiet worker, shows one key at twice its true share now and
  then, and that key is spread for nothing (a render on a second node); and the first
  key a fresh worker counts would have a share of 1. No key is hot before ``Z**2``
  counted requests; a key that is really hot clears the margin within a few dozen. Its
  replica count is the smallest r that keeps each replica's part of the key,
  ``share / r``, within ``replica_load`` of a member's fair share ``1 / n``:
  ``r = ceil(share * n / replica_load)``, at least 1, at most ``max_replicas`` and ``n``.
  A hot key with r = 1 is listed (the operator sees it) but not spread.
* Keys are counted by their 64-bit hash (``balancer.ring.key_hash``), so two spellings
  of one image (normalized to one key) count together; the key text is kept for display.

Not thread-safe, like everything in a worker's event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

__all__ = ["HotKeyError", "HotKeyPolicy", "HotKeys", "replica_count"]

_LCG_MASK: Final = 0x7FFFFFFF
# Standard deviations of sampling noise taken off a key's count before its share is judged:
# at 3 a key at half the spreading level looks spreadable about once in 10^8 draws.
Z: Final = 3.0


def _judged_share(sure: int, total: int) -> float:
    """A key's share as the rules judge it: its guaranteed count less Z deviations of noise."""
    return (sure - Z * math.sqrt(sure)) / total


class HotKeyError(ValueError):
    """A hot-key policy that cannot be used."""


# Checked by __post_init__ (see balancer.picker.PickPolicy for why not by compiled types).
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class HotKeyPolicy:
    # The defaults are the simulator's (python -m loadtest.simulate; docs/routing.md#hot-keys).
    threshold: float = 0.01  # share of the worker's recent requests that makes a key hot
    replica_load: float = 0.1  # most a replica takes of a key, as a fraction of a member's fair share
    max_replicas: int = 16
    sample: int = 8  # one request in this many is counted, on average
    half_life: int = 2048  # counted requests between two halvings of every count

    def __post_init__(self) -> None:
        threshold, load, most, sample, half = [getattr(self, name) for name in (
            "threshold", "replica_load", "max_replicas", "sample", "half_life")]
        for name, value in (("threshold", threshold), ("replica_load", load)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1):
                raise HotKeyError(f"{name} must be a number in (0, 1], got {value!r}")
        for name, value, least in (("max_replicas", most, 1), ("sample", sample, 1), ("half_life", half, 16)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
                raise HotKeyError(f"{name} must be an integer >= {least}, got {value!r}")

    @property
    def capacity(self) -> int:
        """Keys counted at once: a quarter of the threshold is then the largest error."""
        return math.ceil(4 / self.threshold)

    def replicas(self, share: float, n_routable: int) -> int:
        """Replicas for a key with this share of the requests, over ``n_routable`` members."""
        return replica_count(share, n_routable, self.threshold, self.replica_load, self.max_replicas)


def replica_count(share: float, n_routable: int, threshold: float, replica_load: float, max_replicas: int) -> int:
    """The smallest r with ``share / r <= replica_load / n_routable``, within [1, max_replicas]
    and at most ``n_routable``; 1 below the threshold (the module rules)."""
    if share < threshold or n_routable < 2:
        return 1
    # A hair under ceil's step, so a share of exactly k replica loads is k replicas.
    r = math.ceil(share * n_routable / replica_load - 1e-9)
    return max(1, min(r, max_replicas, n_routable))


class _Entry:
    __slots__ = ("count", "error", "key")

    def __init__(self, count: int, error: int, key: str) -> None:
        self.count = count
        self.error = error
        self.key = key


class HotKeys:
    """The per-worker hot-key counter (module docstring)."""

    def __init__(self, policy: HotKeyPolicy, *, seed: int = 0x5EED) -> None:
        self.policy = policy
        self.capacity = policy.capacity
        # The policy's fields, read here once: the policy is a plain Python class.
        self._threshold = policy.threshold
        self._replica_load = policy.replica_load
        self._max_replicas = policy.max_replicas
        self._sample = policy.sample
        self._half_life = policy.half_life
        self.counted: dict[int, _Entry] = {}
        self.hot: dict[int, float] = {}  # key hash -> share, for the keys at or above the threshold
        self.total = 0  # decayed count of the counted requests
        self.observed = 0  # requests seen, counted or not (for /status)
        self.n_routable = 1  # the last member count given, for the snapshot
        self._since_decay = 0
        self._skip = 1
        self._rng = seed & _LCG_MASK
        self._min = 0  # the count of the entries in _victims when they were collected
        self._victims: list[int] = []

    def observe(self, key_hash: int, key: str, n_routable: int) -> int:
        """Count one request for the key (when sampled) and return its replica count r."""
        self.observed += 1
        self.n_routable = n_routable
        self._skip -= 1
        if self._skip <= 0:
            self._skip = self._stride()
            self._count(key_hash, key)
        hot = self.hot
        if not hot:  # most of the time on most workers: no lookup (the hash is a boxed int)
            return 1
        share = hot.get(key_hash)
        if share is None:
            return 1
        return replica_count(share, n_routable, self._threshold, self._replica_load, self._max_replicas)

    def replicas(self, key_hash: int, n_routable: int) -> int:
        """The key's replica count without counting a request."""
        share = self.hot.get(key_hash)
        if share is None:
            return 1
        return replica_count(share, n_routable, self._threshold, self._replica_load, self._max_replicas)

    def hot_count(self) -> int:
        """How many keys are hot now (for metrics)."""
        return len(self.hot)

    def snapshot(self) -> list[tuple[str, float, int]]:
        """(key, share, replicas) of every hot key, the largest share first (for /status).
        The share shown is the estimate (guaranteed count over total), not the judged one."""
        n = self.n_routable
        counted = self.counted
        total = max(self.total, 1)
        out = [(counted[h].key, (counted[h].count - counted[h].error) / total, self.replicas(h, n))
               for h in self.hot if h in counted]
        out.sort(key=lambda item: -item[1])
        return out

    # -- counting -------------------------------------------------------------------------

    def _stride(self) -> int:
        sample = self._sample
        if sample <= 1:
            return 1
        # A 31-bit LCG (the constants of C's rand): cheap, and random enough to break any
        # periodic pattern in the traffic; a stride averages ``sample``.
        self._rng = (self._rng * 1103515245 + 12345) & _LCG_MASK
        return 1 + (self._rng >> 8) % (2 * sample - 1)

    def _count(self, key_hash: int, key: str) -> None:
        counted = self.counted
        self.total += 1
        entry = counted.get(key_hash)
        if entry is not None:
            entry.count += 1
        elif len(counted) < self.capacity:
            entry = counted[key_hash] = _Entry(1, 0, key)
        else:
            # The least counted entry takes the new key over (Space-Saving), its object
            # reused: no allocation, and ``del`` is a native dict operation, ``pop`` a call.
            victim = self._victim()
            entry = counted[victim]
            del counted[victim]
            floor = entry.count
            entry.count = floor + 1
            entry.error = floor
            entry.key = key
            counted[key_hash] = entry
        sure = entry.count - entry.error
        total = self.total
        hot = self.hot
        # The judged share is below the plain one: only a key whose plain share reaches
        # the threshold needs the square root (the tail, nearly every count, does not).
        threshold = self._threshold
        share = _judged_share(sure, total) if sure >= threshold * total else 0.0
        if share >= threshold:
            hot[key_hash] = share
        elif hot and key_hash in hot:
            del hot[key_hash]
        self._since_decay += 1
        if self._since_decay >= self._half_life:
            self._decay()

    def _victim(self) -> int:
        """The hash of a least counted entry. Entries at the minimum are collected in one
        scan and handed out one by one (one that was counted since is passed over), so the
        scan is paid once per many replacements: a stream-summary's minimum bucket,
        without its lists."""
        counted = self.counted
        victims = self._victims
        while victims:
            h = victims.pop()
            entry = counted.get(h)
            if entry is not None and entry.count == self._min:
                return h
        # One plain loop, min and members together: compiled, a native iteration (min() of
        # a generator and extend() of another ran every entry through generator objects).
        low = -1
        for h, entry in counted.items():
            count = entry.count
            if count == low:
                victims.append(h)
            elif low < 0 or count < low:
                low = count
                victims.clear()
                victims.append(h)
        self._min = low
        return victims.pop()

    def _decay(self) -> None:
        self._since_decay = 0
        self.total //= 2
        self._victims.clear()
        counted = self.counted
        for h in list(counted):
            entry = counted[h]
            entry.count //= 2
            entry.error //= 2
            if entry.count == 0:
                del counted[h]
        total = self.total
        threshold = self._threshold
        hot: dict[int, float] = {}
        if total:
            for h, entry in counted.items():
                sure = entry.count - entry.error
                share = _judged_share(sure, total)
                if share >= threshold:
                    hot[h] = share
        self.hot = hot
