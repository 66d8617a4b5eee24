"""Ring quality: balance, disruption, weights, lookup cost and build cost.

Run: ``.venv/bin/python -m loadtest.ring_quality [--keys 1000000] [--members 10,100,1000]``

For each fleet size it builds the ring of ``render-0000``... members and routes ``--keys``
uniform keys (``/photos/<i>.jpg?w=400&fm=webp`` through ``key_hash``), then reports:

* peak/mean: the busiest member's keys over the mean, from the sample and from the ring's
  exact model (``Ring.max_share``; the sample adds noise of ~sqrt(members/keys));
* remove / add: keys that changed owner when the middle member leaves or ``render-new``
  joins, as a multiple of the ideal 1/N (1/(N+1)); "stray" counts keys that moved anywhere
  else than from the leaver / to the joiner (0 for a consistent ring);
* weights: weights 1..10 (cycled), the largest relative error of a member's share;
* lookup: ns per ``owner`` and per ``preference(h, 3)``, best of ``--repeat`` passes over
  20,000 keys (the least disturbed by the other processes on a shared machine);
* build: ms per ``build_ring``, best of ``--repeat``.

``--fleets F`` then builds F fleets of random IDs at 10 and 100 members and prints the
model peak/mean (mean, 90th percentile, worst): one fleet's figure is a draw from this.
``--compare`` adds the same for ketama (next point clockwise) and for other probe/point
settings, which is how the ring's parameters were chosen.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from itertools import repeat
from operator import rshift
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from balancer.hashing import point_hashes  # noqa: E402
from balancer.ring import POINTS_PER_WEIGHT, PROBES, Ring, build_ring, key_hash  # noqa: E402

LOOKUP_KEYS = 20_000


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def fleet(n: int, weight: Callable[[int], float] = lambda i: 1.0) -> dict[str, float]:
    return {f"render-{i:04d}": weight(i) for i in range(n)}


def route(ring: Ring, hashes: Sequence[int]) -> list[str | None]:
    return list(map(ring.owner, hashes))


def best_of(repeat_count: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat_count):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def peak_to_mean(owners: Sequence[str | None], weights: dict[str, float]) -> tuple[float, float]:
    """(largest, smallest) of keys / expected keys over the members."""
    counts = Counter(owners)
    total = sum(weights.values())
    loads = [counts[m] / (len(owners) * w / total) for m, w in weights.items()]
    return max(loads), min(loads)


def moved(before: Sequence[str | None], after: Sequence[str | None], leaver: str | None,
          joiner: str | None) -> tuple[int, int]:
    """(keys that changed owner, of which strays: not from the leaver / to the joiner)."""
    changed = stray = 0
    for old, new in zip(before, after):
        if old != new:
            changed += 1
            if (leaver is not None and old != leaver) or (joiner is not None and new != joiner):
                stray += 1
    return changed, stray


def measure(n: int, hashes: list[int], repeat_count: int, probes: int, points: int) -> dict[str, object]:
    weights = fleet(n)
    build_s = best_of(repeat_count if n <= 100 else max(1, repeat_count // 2),
                      lambda: build_ring(weights, probes=probes, points_per_weight=points))
    ring = build_ring(weights, probes=probes, points_per_weight=points)
    progress(f"{n} members: {ring.size} points, built in {build_s * 1e3:.1f} ms; routing {len(hashes):,} keys")
    base = route(ring, hashes)
    peak, low = peak_to_mean(base, weights)

    leaver = ring.members[n // 2]
    progress(f"{n} members: without {leaver}")
    smaller = {m: w for m, w in weights.items() if m != leaver}
    gone, gone_stray = moved(base, route(build_ring(smaller, probes=probes, points_per_weight=points), hashes),
                             leaver, None)

    progress(f"{n} members: with render-new")
    larger = {**weights, "render-new": 1.0}
    came, came_stray = moved(base, route(build_ring(larger, probes=probes, points_per_weight=points), hashes),
                             None, "render-new")

    progress(f"{n} members: weights 1..10")
    weighted = fleet(n, lambda i: float(i % 10 + 1))
    wring = build_ring(weighted, probes=probes, points_per_weight=points)
    wpeak, wlow = peak_to_mean(route(wring, hashes), weighted)

    progress(f"{n} members: lookup timings")
    sample = hashes[:LOOKUP_KEYS]
    owner = ring.owner
    preference = ring.preference

    def owners() -> None:
        for h in sample:
            owner(h)

    def lists() -> None:
        for h in sample:
            preference(h, 3)

    owner_ns = best_of(repeat_count, owners) / len(sample) * 1e9
    pref_ns = best_of(repeat_count, lists) / len(sample) * 1e9
    progress(f"{n} members: exact model")
    model_started = time.perf_counter()
    model_peak, model_low = ring.max_share, ring.min_share
    model_s = time.perf_counter() - model_started
    return {
        "members": n, "points": ring.size, "peak": peak, "low": low, "model_peak": model_peak,
        "model_low": model_low, "remove": gone / len(hashes) * n, "remove_stray": gone_stray,
        "remove_model": ring.shares()[leaver] * n, "add": came / len(hashes) * (n + 1), "add_stray": came_stray,
        "weight_err": max(wpeak - 1, 1 - wlow), "weight_err_model": max(wring.max_share - 1, 1 - wring.min_share),
        "owner_ns": owner_ns, "pref_ns": pref_ns, "build_ms": build_s * 1e3, "model_ms": model_s * 1e3,
    }


def ketama_peak(weights: dict[str, float], points: int) -> float:
    """Exact peak/mean of a classic ketama ring (a key goes to the next point clockwise)
    over the same point hashes: a member's share is the arcs ending at its points."""
    pts = sorted((p, m) for m, w in weights.items()
                 for p in map(rshift, point_hashes(m, max(1, round(w * points))), repeat(34)))
    span = 1 << 30
    share = dict.fromkeys(weights, 0.0)
    previous = pts[-1][0] - span
    for p, m in pts:
        share[m] += (p - previous) / span
        previous = p
    total = sum(weights.values())
    return max(share[m] / (w / total) for m, w in weights.items())


def fleet_spread(n: int, count: int, peak_of: Callable[[dict[str, float]], float], seed: int = 7) -> str:
    rng = random.Random(seed)
    peaks = sorted(peak_of({f"node-{rng.getrandbits(48):012x}": 1.0 for _ in range(n)}) for _ in range(count))
    p90 = peaks[min(len(peaks) - 1, int(len(peaks) * 0.9))]
    return f"{statistics.mean(peaks):.3f} / {p90:.3f} / {peaks[-1]:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="uniform keys routed per ring (default 1,000,000)")
    parser.add_argument("--members", default="10,100,1000", help="fleet sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="timing passes; the best is reported")
    parser.add_argument("--fleets", type=int, default=100, help="random fleets for the spread table (0 = skip)")
    parser.add_argument("--compare", action="store_true", help="also tabulate ketama and other parameters")
    parser.add_argument("--probes", type=int, default=PROBES)
    parser.add_argument("--points", type=int, default=POINTS_PER_WEIGHT, help="points per unit of weight")
    args = parser.parse_args(argv)
    if args.keys < 1000:
        parser.error("--keys must be at least 1000")
    sizes = [int(s) for s in args.members.split(",") if s.strip()]

    print(f"pixring ring quality: multiprobe, {args.probes} probes, {args.points} points per unit weight, "
          f"{args.keys:,} keys, Python {sys.version.split()[0]}")
    progress(f"hashing {args.keys:,} keys")
    hashes = [key_hash(f"/photos/{i}.jpg?w=400&fm=webp") for i in range(args.keys)]

    rows = []
    for n in sizes:
        rows.append(measure(n, hashes, args.repeat, args.probes, args.points))

    print()
    print("| members | points | peak/mean (model) | min/mean (model) | remove x ideal (stray) | add x ideal (stray) "
          "| weight error (model) | owner ns | preference(3) ns | build ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['members']} | {r['points']:,} | {r['peak']:.3f} ({r['model_peak']:.3f}) "
              f"| {r['low']:.3f} ({r['model_low']:.3f}) | {r['remove']:.3f} ({r['remove_stray']}) "
              f"| {r['add']:.3f} ({r['add_stray']}) | {r['weight_err'] * 100:.1f}% ({r['weight_err_model'] * 100:.1f}%) "
              f"| {r['owner_ns']:.0f} | {r['pref_ns']:.0f} | {r['build_ms']:.1f} |")
    print()
    print("Sampled figures first, the exact model in brackets. 'remove' is the middle member; the worst member")
    print("to remove moves peak/mean x ideal. Model computed lazily on first read: "
          + ", ".join(f"{r['model_ms']:.0f} ms at {r['members']}" for r in rows) + ".")

    if args.fleets:
        settings: list[tuple[str, Callable[[dict[str, float]], float]]] = [
            (f"multiprobe {args.probes} probes x {args.points} points (this ring)",
             lambda w: build_ring(w, probes=args.probes, points_per_weight=args.points).max_share)]
        if args.compare:
            for points in (160, 1000, 2000):
                settings.append((f"ketama (next point) x {points} points", lambda w, p=points: ketama_peak(w, p)))
            for probes, points in ((1, 1000), (1, 2000), (2, 500), (4, 250), (8, 128), (16, 64)):
                settings.append((f"multiprobe {probes} probes x {points} points",
                                 lambda w, k=probes, p=points: build_ring(w, probes=k, points_per_weight=p).max_share))
        print()
        print(f"Model peak/mean over random fleets (mean / 90th percentile / worst; {args.fleets} fleets of 10, "
              f"{max(1, args.fleets // 10)} of 100):")
        print()
        print("| setting | 10 members | 100 members |")
        print("|---|---|---|")
        for label, peak_of in settings:
            progress(f"fleets: {label}")
            print(f"| {label} | {fleet_spread(10, args.fleets, peak_of)} "
                  f"| {fleet_spread(100, max(1, args.fleets // 10), peak_of)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
