"""The load-balancing policy simulator: a trace replayed through pixring's real policy code.

Run: ``.venv/bin/python -m loadtest.simulate`` (the target run: about a minute per trace and
policy on our shared machine; ``--requests 200000`` for a quick look). Deterministic: the
same arguments and ``--seed`` print the same table.

The model
---------
* **Traffic.** ``--requests`` requests arrive as a Poisson process. Trace ``zipf``: each
  request's key is drawn from a Zipf distribution with exponent ``--zipf`` (s) over
  ``--keys`` keys (K), key k with probability proportional to 1 / k**s. Trace ``burst``:
  the same, except that from 30% to 60% of the requests a new key, never seen before,
  takes ``--burst-share`` (30%) of them. Keys are URLs hashed with the production
  ``balancer.hashing.key_hash``.
* **Balancers.** ``--balancers`` (H) balancers of ``--workers`` (W) workers each; a request
  reaches one of the H x W workers uniformly at random (the clients' DNS and the kernel's
  SO_REUSEPORT). Workers share nothing: each has its own in-flight counts
  (``balancer.picker.Inflight``), its own hot-key counter (``balancer.hotkeys.HotKeys``)
  and its own coalescing table. All of them read one ring (``balancer.ring.build_ring``)
  and one all-healthy ``balancer.health.HealthTable``. A worker picks exactly as the front
  does: ``first_choice`` on the key's owner, ``candidates`` when it steps aside.
* **Nodes.** ``--nodes`` (N) render nodes, each with ``--slots`` requests served at once (one
  per core) and a FIFO queue in front of them, and an LRU result cache of ``--cache`` x K
  keys. A request whose key is in the node's cache when a slot takes it is a hit (service
  time exponential, mean ``--hit-ms``); otherwise it is a render (mean ``--render-ms``) and
  the result enters the cache when it is done. Nodes do not coalesce: two concurrent misses
  for one key are two renders (thumbor's behaviour). A request counts in its worker's
  in-flight counts from when it is sent until its node answers; no network delay.
* **Capacity.** ``--load`` is the offered load as a fraction of the cluster's capacity,
  taken as N x slots / (h* x hit + (1 - h*) x render), where h* is the hit ratio of the
  nodes' LRU caches when every key goes to one node and the nodes share the keys evenly
  (``partitioned_hit_ratio``, by Che's approximation). A policy that spreads keys over more
  caches hits less and has less capacity than it is offered: round robin, whose caches all
  hold the same keys, cannot carry 70%.
* **Coalescing** (the ``pixring + coalescing`` row): within a worker, a request for a key
  that worker already has in flight waits for that request's answer and does not reach a
  node (every answer is shareable in this model). The other rows do not coalesce, like
  HAProxy and Envoy.

The policies
------------
``round robin`` (per worker), ``consistent hashing`` (the ring's owner, no bound: pixring
with ``balance_factor`` 0), ``CH + bounded load`` (pixring's picker with its default
``balance_factor`` and ``bound_floor``, no hot keys: what HAProxy and Envoy do),
``pixring`` (bounded load and hot-key spread, the defaults of ``balancer.config``) and
``pixring + coalescing``.

What is printed
---------------
The first ``--warmup`` of the requests only fill the caches and the hot-key counters: each
is routed by the policy and served at once, with no queue and nothing measured (from
empty caches every request would be a render, and the queue built then would take most
of the run to drain). The rest is simulated as above and measured:

* **peak/mean**: the time is cut into windows of ``--window`` simulated seconds; in each,
  the requests that reached the busiest node divided by the mean over nodes (requests per
  node per window, not in-flight counts). The mean of that ratio over the windows, and
  the worst window.
* **hit ratio**: the requests answered without a render of their own, 1 - renders /
  requests: a node's cache hit, or a coalesced request (it shares its leader's answer).
  Without coalescing, the node cache hits / the requests that reached a node.
  **renders**: the node cache misses.
* **p99 queue**: the 99th percentile of the time a request waited in a node's queue for
  a slot (coalesced requests, which reach no node, are not counted).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import accumulate
from typing import Callable, Sequence

from balancer.hashing import key_hash
from balancer.health import HealthPolicy, HealthTable
from balancer.hotkeys import HotKeyPolicy, HotKeys
from balancer.picker import Inflight, PickPolicy, candidates, first_choice
from balancer.ring import Ring, build_ring

__all__ = ["Model", "POLICIES", "Result", "format_table", "make_trace", "simulate", "main"]

POLICIES = ("rr", "ch", "bounded", "pixring", "pixring+coalesce")
NAMES = {
    "rr": "round robin",
    "ch": "consistent hashing",
    "bounded": "CH + bounded load",
    "pixring": "pixring",
    "pixring+coalesce": "pixring + coalescing",
}


@dataclass(frozen=True)
class Model:
    requests: int = 1_000_000
    keys: int = 100_000
    zipf: float = 1.1
    nodes: int = 10
    cache: float = 0.02  # of the keys, per node
    load: float = 0.7
    balancers: int = 3
    workers: int = 4
    slots: int = 8
    hit_ms: float = 5.0
    render_ms: float = 50.0
    burst_share: float = 0.3
    window: float = 10.0  # seconds
    warmup: float = 0.1  # of the requests
    seed: int = 1


@dataclass
class Result:
    policy: str
    peak_to_mean: float
    worst_window: float
    hit_ratio: float
    renders: int
    upstream: int
    coalesced: int
    p99_queue_ms: float
    spread: int  # requests whose first choice was not the key's owner because the key was hot


def zipf_cumulative(keys: int, s: float) -> list[float]:
    return list(accumulate(1.0 / (k ** s) for k in range(1, keys + 1)))


def partitioned_hit_ratio(model: Model) -> float:
    """The hit ratio of LRU caches holding N x cache x K keys between them when every key
    goes to one node (consistent hashing on a perfect ring), by Che's approximation
    (Che, Tung & Wang, IEEE JSAC 20(7), 2002): an LRU of C keys keeps key i about as
    often as ``1 - exp(-p_i T)``, with T the time at which those sum to C. Perfect
    partitioning makes the N caches one LRU of N x C keys."""
    weights = [1.0 / (k ** model.zipf) for k in range(1, model.keys + 1)]
    total = sum(weights)
    p = [w / total for w in weights]
    size = min(model.keys, model.nodes * model.cache * model.keys)
    if size >= model.keys:
        return 1.0
    low, high = 0.0, 1.0
    while sum(1 - math.exp(-q * high) for q in p) < size:
        high *= 2
    for _ in range(40):
        mid = (low + high) / 2
        if sum(1 - math.exp(-q * mid) for q in p) < size:
            low = mid
        else:
            high = mid
    return sum(q * (1 - math.exp(-q * high)) for q in p)


def make_trace(model: Model, trace: str) -> tuple[array, list[float]]:
    """Key indexes (K is the burst's new key) and arrival times, from the seed alone."""
    rng = random.Random(f"{model.seed}/trace/{trace}")
    cumulative = zipf_cumulative(model.keys, model.zipf)
    total = cumulative[-1]
    n = model.requests
    keys = array("l", (bisect_left(cumulative, rng.random() * total) for _ in range(n)))
    if trace == "burst":
        for i in range(int(0.3 * n), int(0.6 * n)):
            if rng.random() < model.burst_share:
                keys[i] = model.keys
    elif trace != "zipf":
        raise ValueError(f"unknown trace {trace!r} (zipf or burst)")
    hit = partitioned_hit_ratio(model)
    capacity = model.nodes * model.slots / ((hit * model.hit_ms + (1 - hit) * model.render_ms) / 1000)
    rate = model.load * capacity
    arrivals = list(accumulate(rng.expovariate(rate) for _ in range(n)))
    return keys, arrivals


class _Node:
    __slots__ = ("free", "queue", "cache", "capacity")

    def __init__(self, slots: int, capacity: int) -> None:
        self.free = slots
        self.queue: deque = deque()
        self.cache: OrderedDict[int, None] = OrderedDict()
        self.capacity = capacity


def simulate(model: Model, policy: str, keys: array, arrivals: list[float],
             hot_policy: HotKeyPolicy | None = None, pick: PickPolicy | None = None,
             progress: Callable[[int], None] | None = None) -> Result:
    """Replay one trace through one policy; see the module docstring for the model."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} (one of {', '.join(POLICIES)})")
    rng = random.Random(f"{model.seed}/run/{policy}")
    members = [f"node-{i:02d}" for i in range(model.nodes)]
    index = {m: i for i, m in enumerate(members)}
    ring: Ring = build_ring({m: 1.0 for m in members})
    health = HealthTable(HealthPolicy(await_first_probe=False), 0.0)
    health.set_members(members, 0.0)
    n_members = len(members)
    if pick is None:
        pick = PickPolicy(balance_factor=0) if policy == "ch" else PickPolicy()
    hot_on = policy.startswith("pixring")
    coalesce = policy == "pixring+coalesce"
    hot_policy = hot_policy or HotKeyPolicy()
    n_workers = model.balancers * model.workers
    inflight = [Inflight() for _ in range(n_workers)]
    hot = [HotKeys(hot_policy, seed=w + 1) for w in range(n_workers)] if hot_on else []
    flights: list[dict[int, int]] = [{} for _ in range(n_workers)]  # key -> followers waiting
    rr = list(range(n_workers))
    cache_keys = max(1, int(model.cache * model.keys))
    nodes = [_Node(model.slots, cache_keys) for _ in members]
    # Per key, as the front's route cache keeps them: the hash, the owner, the preference list.
    names = [f"/images/{k}.jpg?w=400" for k in range(model.keys + 1)]
    hashes = [key_hash(name) for name in names]
    owners: dict[int, str] = {}
    prefs: dict[int, tuple[str, ...]] = {}

    n = len(keys)
    warm_from = int(model.warmup * n)
    t_warm = arrivals[warm_from] if n else 0.0
    window = model.window
    windows: dict[int, list[int]] = {}
    delays: list[float] = []
    requests = hits = renders = upstream = coalesced = spread = 0
    hit_s = model.hit_ms / 1000
    render_s = model.render_ms / 1000
    expo = rng.expovariate
    # Completion events: (time, sequence, node, worker, key, measured)
    events: list[tuple[float, int, int, int, int, bool]] = []
    seq = 0

    def start(node_i: int, worker: int, key: int, arrived: float, now: float, measured: bool) -> None:
        nonlocal seq, hits, renders
        node = nodes[node_i]
        node.free -= 1
        cache = node.cache
        if key in cache:
            cache.move_to_end(key)
            service = expo(1 / hit_s)
            if measured:
                hits += 1
        else:
            service = expo(1 / render_s)
            if measured:
                renders += 1
        if measured:
            delays.append(now - arrived)
        seq += 1
        heapq.heappush(events, (now + service, seq, node_i, worker, key, measured))

    def complete(now: float) -> None:
        _, _, node_i, worker, key, _ = heapq.heappop(events)
        node = nodes[node_i]
        cache = node.cache
        if key not in cache:
            cache[key] = None
            if len(cache) > node.capacity:
                cache.popitem(last=False)
        inflight[worker].finish(members[node_i])
        if coalesce:
            flights[worker].pop(key, None)
        node.free += 1
        if node.queue:
            q_worker, q_key, q_arrived, q_measured = node.queue.popleft()
            start(node_i, q_worker, q_key, q_arrived, now, q_measured)

    def warm_pick(worker: int, key: int) -> str:
        if policy == "rr":
            rr[worker] += 1
            return members[rr[worker] % n_members]
        h = hashes[key]
        replicas = hot[worker].observe(h, names[key], n_members) if hot_on else 1
        if replicas < 2:
            return ring.owner(h)  # type: ignore[return-value]
        return candidates(ring, h, health, inflight[worker], 0.0, pick, replicas=replicas, choice=rng.random())[0]

    tick = max(1, n // 10)
    for i in range(n):
        now = arrivals[i]
        while events and events[0][0] <= now:
            complete(events[0][0])
        if progress is not None and i % tick == 0:
            progress(i)
        key = keys[i]
        worker = rng.randrange(n_workers)
        measured = i >= warm_from
        if not measured:
            # The warming pass: routed by the policy, served at once, nothing measured.
            member = warm_pick(worker, key)
            cache = nodes[index[member]].cache
            if key in cache:
                cache.move_to_end(key)
            else:
                cache[key] = None
                if len(cache) > cache_keys:
                    cache.popitem(last=False)
            continue
        if measured:
            requests += 1
        # Every request is counted, a coalesced one too: the front observes before it coalesces.
        replicas = hot[worker].observe(hashes[key], names[key], n_members) if hot_on else 1
        if coalesce:
            waiting = flights[worker]
            if key in waiting:
                waiting[key] += 1
                if measured:
                    coalesced += 1
                continue
        if policy == "rr":
            member = members[rr[worker] % n_members]
            rr[worker] += 1
        else:
            h = hashes[key]
            owner = owners.get(key)
            if owner is None:
                owner = owners[key] = ring.owner(h)  # type: ignore[assignment]
            loads = inflight[worker]
            first = first_choice(owner, health, loads, pick, n_members, replicas=replicas)
            if first is None:
                kept = prefs.get(key)
                if kept is None:
                    kept = prefs[key] = ring.preference(h, pick.max_attempts)
                cands = candidates(ring, h, health, loads, 0.0, pick, prefs=kept, replicas=replicas,
                                   choice=rng.random())
                member = cands[0]
                if replicas > 1 and member != owner and measured:
                    spread += 1
            else:
                member = first
        if coalesce:
            flights[worker][key] = 0
        inflight[worker].start(member)
        node_i = index[member]
        if measured:
            upstream += 1
            counts = windows.get(int((now - t_warm) // window))
            if counts is None:
                counts = windows[int((now - t_warm) // window)] = [0] * n_members
            counts[node_i] += 1
        if nodes[node_i].free > 0:
            start(node_i, worker, key, now, now, measured)
        else:
            nodes[node_i].queue.append((worker, key, now, measured))
    while events:
        complete(events[0][0])

    # The last window is cut short by the end of the trace: leave it out unless it is the only one.
    full = [windows[w] for w in sorted(windows)][:-1] or list(windows.values())
    ratios = [max(c) / (sum(c) / len(c)) for c in full if sum(c)]
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))] if delays else 0.0
    return Result(
        policy=policy,
        peak_to_mean=sum(ratios) / len(ratios) if ratios else 0.0,
        worst_window=max(ratios, default=0.0),
        hit_ratio=1 - renders / requests if requests else 0.0,
        renders=renders,
        upstream=upstream,
        coalesced=coalesced,
        p99_queue_ms=p99 * 1000,
        spread=spread,
    )


def format_table(results: Sequence[Result]) -> str:
    head = ("policy", "peak/mean", "worst window", "hit ratio", "renders", "to nodes", "coalesced", "spread",
            "p99 queue ms")
    rows = [head]
    for r in results:
        rows.append((NAMES[r.policy], f"{r.peak_to_mean:.3f}", f"{r.worst_window:.3f}", f"{r.hit_ratio:.4f}",
                     f"{r.renders:,}", f"{r.upstream:,}", f"{r.coalesced:,}", f"{r.spread:,}", f"{r.p99_queue_ms:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                              for i, cell in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def verdict(results: Sequence[Result]) -> list[str]:
    """The issue's targets for pixring's rows, as lines of text."""
    by = {r.policy: r for r in results}
    out = []
    ch, bounded = by.get("ch"), by.get("bounded")
    for name in ("pixring", "pixring+coalesce"):
        r = by.get(name)
        if r is None:
            continue
        checks = [f"peak/mean {r.peak_to_mean:.3f} <= 1.25: {'yes' if r.peak_to_mean <= 1.25 else 'NO'}"]
        if ch is not None and ch.hit_ratio:
            ratio = r.hit_ratio / ch.hit_ratio
            checks.append(f"hit ratio {ratio:.3f} of consistent hashing's >= 0.97: {'yes' if ratio >= 0.97 else 'NO'}")
        if bounded is not None:
            checks.append(f"renders {r.renders:,} < bounded load's {bounded.renders:,}: "
                          f"{'yes' if r.renders < bounded.renders else 'NO'}")
        out.append(f"{NAMES[name]}: " + "; ".join(checks))
    return out


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number in (0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.simulate",
        description="Replay a Zipf or burst trace through pixring's policy code against simulated render nodes "
                    "and compare round robin, consistent hashing, bounded load and pixring (see the module "
                    "docstring for the model).")
    d = Model()
    parser.add_argument("--trace", choices=("zipf", "burst", "both"), default="both")
    parser.add_argument("--policies", default=",".join(POLICIES), help=f"comma-separated: {', '.join(POLICIES)}")
    parser.add_argument("--requests", type=_positive_int, default=d.requests)
    parser.add_argument("--keys", type=_positive_int, default=d.keys)
    parser.add_argument("--zipf", type=_positive_float, default=d.zipf, help="the Zipf exponent s")
    parser.add_argument("--nodes", type=_positive_int, default=d.nodes)
    parser.add_argument("--cache", type=_fraction, default=d.cache, help="each node's cache, a fraction of the keys")
    parser.add_argument("--load", type=_positive_float, default=d.load, help="offered load / capacity")
    parser.add_argument("--balancers", type=_positive_int, default=d.balancers)
    parser.add_argument("--workers", type=_positive_int, default=d.workers, help="workers per balancer")
    parser.add_argument("--slots", type=_positive_int, default=d.slots, help="requests a node serves at once")
    parser.add_argument("--hit-ms", type=_positive_float, default=d.hit_ms)
    parser.add_argument("--render-ms", type=_positive_float, default=d.render_ms)
    parser.add_argument("--burst-share", type=_fraction, default=d.burst_share)
    parser.add_argument("--window", type=_positive_float, default=d.window, help="seconds per peak/mean window")
    parser.add_argument("--warmup", type=float, default=d.warmup, help="fraction of the requests not measured")
    parser.add_argument("--seed", type=int, default=d.seed)
    hot = HotKeyPolicy()
    parser.add_argument("--hot-key-share", type=_fraction, default=hot.threshold)
    parser.add_argument("--hot-key-replica-load", type=_fraction, default=hot.replica_load)
    parser.add_argument("--hot-key-max-replicas", type=_positive_int, default=hot.max_replicas)
    parser.add_argument("--hot-key-sample", type=_positive_int, default=hot.sample)
    parser.add_argument("--hot-key-half-life", type=_positive_int, default=hot.half_life)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        print(f"simulate: unknown policy {', '.join(unknown)} (one of {', '.join(POLICIES)})", file=sys.stderr)
        return 2
    if not 0 <= args.warmup < 1:
        print(f"simulate: --warmup {args.warmup} must be in [0, 1)", file=sys.stderr)
        return 2
    model = Model(requests=args.requests, keys=args.keys, zipf=args.zipf, nodes=args.nodes, cache=args.cache,
                  load=args.load, balancers=args.balancers, workers=args.workers, slots=args.slots,
                  hit_ms=args.hit_ms, render_ms=args.render_ms, burst_share=args.burst_share,
                  window=args.window, warmup=args.warmup, seed=args.seed)
    hot_policy = HotKeyPolicy(threshold=args.hot_key_share, replica_load=args.hot_key_replica_load,
                              max_replicas=args.hot_key_max_replicas, sample=args.hot_key_sample,
                              half_life=args.hot_key_half_life)
    traces = ("zipf", "burst") if args.trace == "both" else (args.trace,)
    print(f"model: {model}\nhot keys: {hot_policy}", flush=True)
    for trace in traces:
        started = time.monotonic()
        keys, arrivals = make_trace(model, trace)
        print(f"\n{trace} trace: {len(keys):,} requests over {arrivals[-1]:.0f} simulated seconds "
              f"({time.monotonic() - started:.1f}s to make)", flush=True)
        results = []
        for policy in policies:
            began = time.monotonic()

            def progress(i: int, policy: str = policy, began: float = began) -> None:
                print(f"\r  {NAMES[policy]}: {100 * i / len(keys):3.0f}% ({time.monotonic() - began:.0f}s)",
                      end="", file=sys.stderr, flush=True)

            results.append(simulate(model, policy, keys, arrivals, hot_policy=hot_policy, progress=progress))
            print(f"\r  {NAMES[policy]}: done in {time.monotonic() - began:.0f}s", file=sys.stderr, flush=True)
        print(format_table(results))
        for line in verdict(results):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
