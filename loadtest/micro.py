"""Microbenchmarks of the pure cores on the request path: normalization, the ring, the
picker and the hot-key counter.

Run: ``.venv/bin/python -m loadtest.micro [--json]`` (``make bench`` runs it pinned to the
proxy CPU before any server starts).

Rules of this module
--------------------
* Each figure is the best of ``repeat`` passes over the whole URL list: on a shared
  machine the least disturbed pass is the closest to the code's own cost.
* Normalization is measured on the benchmark's own targets (``loadtest.targets``) with the
  production normalizer (``make_normalizer()``, default LRU) and without its cache, and on
  the realistic imgix mix of ``loadtest.normalize_bench`` when that module is present.
  With 10,000 targets replayed in a cycle, a 4,096-entry LRU never hits: the "production
  LRU, cycling" figure is the cost the load test pays per request.
* Ring lookup is ``key_hash(key)`` then ``ring.owner(hash)`` (what a request does) and
  ``ring.preference(hash, 3)``; rebuild is ``build_ring`` of N equal members, best of a few.
* The picker and the hot-key counter are measured per call from a Python loop (the loop
  and the call are in the figure): ``first_choice`` for an owner under its bound,
  ``candidates`` for a hot key with 4 replicas (its preference list kept, as the front
  keeps it with the route), and ``HotKeys.observe`` over a Zipf(1.1)
  stream of 100,000 keys (the simulator's trace) at the default sample, counting every
  request and counting none (the lookup every request pays), called straight from a loop. With ``balancer.compile``'s modules built, they are the compiled code.
* A core that does not import yet (another engineer is writing it) gives an ``error``
  entry instead of stopping the benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, Sequence

from loadtest.targets import image_targets

__all__ = ["best_ns_per_item", "normalization", "picker", "ring", "run_all"]

RING_SIZES = (10, 100, 1000)


def best_ns_per_item(function: Callable[[object], object], items: Sequence[object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter_ns()
        for item in items:
            function(item)
        best = min(best, (time.perf_counter_ns() - started) / len(items))
    return best


def normalization(repeat: int = 5) -> dict:
    from balancer.normalize import make_normalizer

    targets = [t.encode() for t in image_targets()]
    production = make_normalizer()
    hot = make_normalizer(cache_size=len(targets) + 1)
    for target in targets:
        hot(target)
    results = {
        "bench targets, no cache": best_ns_per_item(make_normalizer(cache_size=0), targets, repeat),
        "bench targets, production LRU, cycling (all misses)": best_ns_per_item(production, targets, repeat),
        "bench targets, all cached (hot images)": best_ns_per_item(hot, targets, repeat),
    }
    try:
        from loadtest.normalize_bench import make_urls
    except ImportError as exc:
        results["imgix mix"] = f"error: {exc}"
    else:
        mix = make_urls(5000)
        results["imgix mix (normalize_bench), no cache"] = best_ns_per_item(make_normalizer(cache_size=0), mix, repeat)
    return {"ns_per_url": results, "targets": len(targets)}


def ring(repeat: int = 5, rebuild_repeat: int = 3) -> dict:
    from balancer.normalize import make_normalizer
    from balancer.ring import build_ring, key_hash

    normalize = make_normalizer(cache_size=0)
    keys = [normalize(t.encode()).key for t in image_targets()]
    lookup = {}
    for members in (3, *RING_SIZES):
        ring_ = build_ring({f"render-{i:04d}": 1.0 for i in range(members)})
        owner, preference = ring_.owner, ring_.preference
        lookup[f"{members} members: key_hash + owner"] = best_ns_per_item(lambda k: owner(key_hash(k)), keys, repeat)
        lookup[f"{members} members: key_hash + preference(3)"] = best_ns_per_item(
            lambda k: preference(key_hash(k), 3), keys, repeat)
    lookup["key_hash alone"] = best_ns_per_item(key_hash, keys, repeat)
    rebuild = {}
    for members in RING_SIZES:
        weights = {f"render-{i:04d}": 1.0 for i in range(members)}
        best = float("inf")
        for _ in range(rebuild_repeat):
            started = time.perf_counter_ns()
            built = build_ring(weights)
            best = min(best, (time.perf_counter_ns() - started) / 1e6)
        rebuild[f"{members} members"] = best
    return {"lookup_ns_per_url": lookup, "rebuild_ms": rebuild, "algorithm": getattr(built, "algorithm", None),
            "points_at_1000": getattr(built, "size", None)}


def picker(repeat: int = 5, stream: int = 200_000) -> dict:
    import random
    from dataclasses import replace

    from balancer.health import HealthPolicy, HealthTable
    from balancer.hotkeys import HotKeyPolicy
    from balancer.picker import Inflight, PickPolicy, candidates, first_choice
    from balancer.ring import build_ring, key_hash
    from loadtest.simulate import zipf_cumulative

    members = [f"render-{i:02d}" for i in range(10)]
    ring_ = build_ring({m: 1.0 for m in members})
    health = HealthTable(HealthPolicy(await_first_probe=False), 0.0)
    health.set_members(members, 0.0)
    inflight = Inflight()
    for m in members:
        inflight.start(m)
    policy = PickPolicy()
    rng = random.Random(1)
    cumulative = zipf_cumulative(100_000, 1.1)
    names = [f"/images/{k}.jpg?w=400" for k in range(100_000)]
    ranks = rng.choices(range(100_000), cum_weights=cumulative, k=stream)
    requests = [(key_hash(names[k]), names[k]) for k in ranks]
    hashes = [h for h, _ in requests[:20_000]]
    owners = [(ring_.owner(h), h) for h in hashes]
    kept = [(h, ring_.preference(h, 4)) for h in hashes]
    out: dict[str, float] = {
        "the loop and a call alone (subtract from the others)": best_ns_per_item(lambda item: None, owners, repeat),
        "first_choice, owner under its bound": best_ns_per_item(
            lambda item: first_choice(item[0], health, inflight, policy, 10), owners, repeat),  # type: ignore[index]
        "candidates, hot key with 4 replicas, preference list kept": best_ns_per_item(
            lambda item: candidates(ring_, item[0], health, inflight, 0.0, policy, prefs=item[1], replicas=4,  # type: ignore[index]
                                    choice=0.4), kept, repeat),
    }
    default = HotKeyPolicy()
    out["the loop alone, unpacking (hash, key)"] = _best_observe(None, requests, repeat)
    for label, hot_policy in ((f"HotKeys.observe, 1 in {default.sample} counted (default)", default),
                              ("HotKeys.observe, every request counted", replace(default, sample=1)),
                              ("HotKeys.observe, none counted (a lookup)", replace(default, sample=10**9))):
        out[label] = _best_observe(hot_policy, requests, repeat)
    return {"ns_per_call": out}


def _best_observe(policy: object, requests: list[tuple[int, str]], repeat: int) -> float:
    """ns per ``observe`` called straight from the loop (no lambda), a fresh counter per pass;
    with no policy, the loop alone."""
    from balancer.hotkeys import HotKeyPolicy, HotKeys

    best = float("inf")
    for _ in range(repeat):
        if isinstance(policy, HotKeyPolicy):
            observe = HotKeys(policy).observe
            started = time.perf_counter_ns()
            for key_hash, key in requests:
                observe(key_hash, key, 10)
        else:
            started = time.perf_counter_ns()
            for key_hash, key in requests:
                pass
        best = min(best, (time.perf_counter_ns() - started) / len(requests))
    return best


def detection(trials: int = 9) -> dict:
    """Requests a new key taking 30% of a worker's traffic makes to that worker before the
    worker spreads it, over 3 and 10 members, after 40,000 requests of Zipf (s = 1.1)
    background over 5,000 keys; the median over ``trials`` seeds, with the default policy."""
    import random
    import statistics

    from balancer.hotkeys import HotKeyPolicy, HotKeys
    from balancer.ring import key_hash
    from loadtest.simulate import zipf_cumulative

    names = [f"/images/{k}.jpg?w=400" for k in range(5_000)]
    keys = [(key_hash(name), name) for name in names]
    cumulative = zipf_cumulative(len(keys), 1.1)
    burst = (key_hash("/images/new.jpg?w=400"), "/images/new.jpg?w=400")
    out: dict[str, float] = {}
    for members in (3, 10):
        own_requests = []
        for seed in range(trials):
            rng = random.Random(seed)
            counter = HotKeys(HotKeyPolicy(), seed=seed)
            for key in rng.choices(keys, cum_weights=cumulative, k=40_000):
                counter.observe(*key, members)
            background = iter(rng.choices(keys, cum_weights=cumulative, k=100_000))
            own = 0
            while True:
                if rng.random() < 0.3:
                    own += 1
                    if counter.observe(*burst, members) > 1:
                        break
                else:
                    counter.observe(*next(background), members)
            own_requests.append(own)
        out[f"over {members} members"] = statistics.median(own_requests)
    return {"own_requests_before_spread": out}


def run_all(repeat: int = 5) -> dict:
    results: dict[str, object] = {"python": sys.version.split()[0]}
    for name, bench in (("normalize", normalization), ("ring", ring), ("picker", picker),
                        ("detection", lambda _repeat: detection())):
        try:
            results[name] = bench(repeat)
        except Exception as exc:  # a core still being written must not stop the load test
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def format_results(results: dict) -> str:
    lines = []
    normalize = results.get("normalize", {})
    lines.append("normalization, ns per URL (best of passes):")
    if "error" in normalize:
        lines.append(f"  unavailable: {normalize['error']}")
    for name, value in normalize.get("ns_per_url", {}).items():
        lines.append(f"  {name:<55} {value:>9,.0f}" if isinstance(value, float) else f"  {name:<55} {value}")
    ring_ = results.get("ring", {})
    algorithm = ring_.get("algorithm")
    lines.append("ring lookup, ns per URL" + (f" ({algorithm})" if algorithm else "") + ":")
    if "error" in ring_:
        lines.append(f"  unavailable: {ring_['error']}")
    for name, value in ring_.get("lookup_ns_per_url", {}).items():
        lines.append(f"  {name:<55} {value:>9,.0f}")
    if ring_.get("rebuild_ms"):
        lines.append("ring rebuild, ms (best of 3):")
        for name, value in ring_["rebuild_ms"].items():
            lines.append(f"  {name:<55} {value:>9,.2f}")
    lines += _section("picker and hot-key counter, ns per call from a Python loop (best of passes):",
                      results.get("picker", {}), "ns_per_call")
    lines += _section("hot-key detection: a new key's own requests before it is spread (30% of the traffic, median):",
                      results.get("detection", {}), "own_requests_before_spread")
    return "\n".join(lines)


def _section(title: str, result: dict, figures: str) -> list[str]:
    lines = [title]
    if "error" in result:
        lines.append(f"  unavailable: {result['error']}")
    for name, value in result.get(figures, {}).items():
        lines.append(f"  {name:<55} {value:>9,.0f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Microbenchmarks of normalization, the ring, the picker and the hot-key counter.")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--repeat", type=int, default=5, help="passes per figure; the best is kept (default 5)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    results = run_all(args.repeat)
    print(json.dumps(results) if args.json else format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
