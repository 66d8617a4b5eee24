"""Worst cases of URL normalization: hostile targets at the length limit against a normal URL.

Run: ``.venv/bin/python -m loadtest.normalize_worst [--repeat 9] [--length 8192]``

A target is attacker-controlled and every uncached one is normalized before anything
else happens, so its cost must stay linear in its length with a small constant whatever
it holds (escapes, raw bytes needing escapes, dot segments, thousands of pairs...). For
each hostile shape this prints the best time of ``--repeat`` passes (the least disturbed
on a shared machine), its ratio to the mean normal imgix URL, and the cost per byte next
to the normal URL's; then the worst shape at 1/8, 1/4, 1/2 and all of the length, whose
times should double with the length (linear), not quadruple. Refused targets count too:
finding the fault is part of the cost. No figure is asserted anywhere: this prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from balancer.normalize import NormalizeError, make_normalizer  # noqa: E402
from loadtest.normalize_bench import make_urls  # noqa: E402
from pixring.wire import MAX_TARGET_LENGTH  # noqa: E402


def _fill(prefix: bytes, unit: bytes, length: int) -> bytes:
    return prefix + unit * ((length - len(prefix)) // len(unit))


# name -> (prefix, repeated unit): each fills the target to the length asked.
SHAPES: dict[str, tuple[bytes, bytes]] = {
    "escapes in the path (%41)": (b"/", b"%41"),
    "lower-case escapes in the path (%ff)": (b"/", b"%ff"),
    "raw bytes to escape, path": (b"/", b"\xff"),
    "raw bytes between letters, path": (b"/", b"\xffa"),
    "escapes in the query (%41)": (b"/a.jpg?", b"%41"),
    "escaped known names (%77=%31&)": (b"/a.jpg?", b"%77=%31&"),
    "escaped unknown pairs (x%41=%41&)": (b"/a.jpg?", b"x%41=%41&"),
    "raw bytes to escape, query": (b"/a.jpg?w=", b"\xff"),
    "one huge value (w=...)": (b"/a.jpg?w=", b"1"),
    "huge base64 value (w64=...)": (b"/a.jpg?w64=", b"A"),
    "repeated parameter (w=1&)": (b"/a.jpg?", b"w=1&"),
    "empty pairs (&)": (b"/a.jpg?", b"&"),
    "dot segments (a/../)": (b"/", b"a/../"),
    "single dots (./)": (b"/", b"./"),
    "slashes (/)": (b"/", b"/"),
    "segments (a/)": (b"/", b"a/"),
    "plus signs (+&)": (b"/a.jpg?", b"+&"),
}


def best_us(function: Callable[[bytes], object], target: bytes, repeat: int, inner: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            try:
                function(target)
            except NormalizeError:
                pass
        best = min(best, (time.perf_counter() - start) / inner)
    return best * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="passes; the best is reported (default 9)")
    parser.add_argument("--length", type=int, default=MAX_TARGET_LENGTH,
                        help=f"target length in bytes (default {MAX_TARGET_LENGTH}, the balancer's limit)")
    args = parser.parse_args(argv)
    normalize = make_normalizer("imgix", cache_size=0, max_target_length=args.length)

    urls = make_urls(2000)
    normal = min(
        (time.perf_counter() - start) / len(urls) * 1e6
        for start in (time.perf_counter() for _ in range(args.repeat))
        if [normalize(url) for url in urls]
    )
    normal_bytes = sum(map(len, urls)) / len(urls)
    print(f"normal imgix URL: {normal:.1f} us ({normal_bytes:.0f} bytes, {normal * 1000 / normal_bytes:.0f} ns/byte); "
          f"Python {sys.version.split()[0]}, best of {args.repeat}")
    print(f"{'hostile target':<40} {'bytes':>6} {'us':>9} {'x normal':>9} {'ns/byte':>8}  outcome")
    worst_name, worst_us = "", 0.0
    for name, (prefix, unit) in SHAPES.items():
        target = _fill(prefix, unit, args.length)
        try:
            normalize(target)
            outcome = "routed"
        except NormalizeError as error:
            outcome = f"{error.status}: {error.reason[:40]}"
        us = best_us(normalize, target, args.repeat, 20)
        if us > worst_us:
            worst_name, worst_us = name, us
        print(f"{name:<40} {len(target):>6} {us:>9.1f} {us / normal:>9.1f} {us * 1000 / len(target):>8.1f}  {outcome}")

    prefix, unit = SHAPES[worst_name]
    print(f"\nworst shape, {worst_name}, by length (linear: each doubling about doubles the time):")
    for fraction in (8, 4, 2, 1):
        length = args.length // fraction
        target = _fill(prefix, unit, length)
        print(f"  {len(target):>6} bytes  {best_us(normalize, target, args.repeat, 20):>9.1f} us")


if __name__ == "__main__":
    main()
