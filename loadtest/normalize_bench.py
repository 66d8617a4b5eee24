"""Microbenchmark of URL normalization: ns per URL, cached and uncached, per profile.

Run: ``.venv/bin/python loadtest/normalize_bench.py [--urls 5000] [--repeat 7]``

The URL mix imitates imgix traffic: a photo path, three to seven image parameters in
random order and case (some aliases, some defaults, ``auto`` and ``crop`` lists), and
tracking junk on a third of them. "uncached" is a normalizer with ``cache_size=0``;
"cached" replays URLs already in the LRU (the hot-image case). Each figure is the best of
``--repeat`` passes (the least disturbed by the other processes on a shared machine).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from balancer.normalize import make_normalizer  # noqa: E402
from pixring import schema  # noqa: E402

CHOICES: dict[str, list[str]] = {
    "w": ["100", "200", "320", "400", "640", "800.0", "1024", "1280", "0.5"],
    "width": ["400", "800"],
    "h": ["100", "200", "300", "480", "600", "720"],
    "fit": ["crop", "clip", "max", "fill", "CROP"],
    "fm": ["webp", "jpg", "jpeg", "avif", "png"],
    "q": ["40", "60", "75", "80", "90"],
    "dpr": ["1", "1.5", "2", "2.0", "3"],
    "auto": ["format", "compress", "format,compress"],
    "crop": ["faces", "top,left", "entropy", "focalpoint"],
    "fp-x": ["0.25", "0.5", "0.75"],
    "bg": ["fff", "white", "000", "ff000080"],
    "blur": ["0", "20", "200"],
    "sat": ["-100", "0", "50"],
    "rot": ["0", "90", "180"],
}
JUNK = ["utm_source=newsletter", "utm_medium=email", "fbclid=IwAR2x9", "gclid=Cj0KCQ", "s=5f2a9c",
        "ixlib=js-3.8.0"]


def make_urls(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    urls = []
    names = list(CHOICES)
    for index in range(count):
        path = f"/photos/{rng.choice(['cats', 'dogs', 'city', 'food'])}/{index:06d}-{rng.randrange(10**6)}.jpg"
        chosen = rng.sample(names, rng.randint(3, 7))
        pairs = [f"{name}={rng.choice(CHOICES[name])}" for name in chosen]
        if rng.random() < 0.33:
            pairs += rng.sample(JUNK, rng.randint(1, 3))
        rng.shuffle(pairs)
        urls.append(f"{path}?{'&'.join(pairs)}".encode())
    return urls


def best_ns_per_call(function: Callable[[bytes], object], urls: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for url in urls:
            function(url)
        best = min(best, (time.perf_counter_ns() - start) / len(urls))
    return best


def parse_only(url: bytes) -> object:
    # The schema's share of the work: the query split and decoded, nothing else.
    query = url.partition(b"?")[2].decode()
    return schema.parse_query(part.partition("=")[::2] for part in query.split("&"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=5000, help="distinct URLs in the mix (default 5000)")
    parser.add_argument("--repeat", type=int, default=7, help="passes; the best is reported (default 7)")
    args = parser.parse_args(argv)
    urls = make_urls(args.urls)

    rows = []
    for profile in ("imgix", "generic"):
        uncached = make_normalizer(profile, cache_size=0)
        cached = make_normalizer(profile, cache_size=len(urls) + 1)
        for url in urls:
            cached(url)  # warm: every URL is now in the LRU
        rows.append((profile, "uncached", best_ns_per_call(uncached, urls, args.repeat)))
        rows.append((profile, "cached", best_ns_per_call(cached, urls, args.repeat)))
    rows.append(("(schema)", "parse_query only", best_ns_per_call(parse_only, urls, args.repeat)))

    average_length = sum(map(len, urls)) / len(urls)
    print(f"{len(urls)} distinct URLs, mean {average_length:.0f} bytes, best of {args.repeat} passes, "
          f"Python {sys.version.split()[0]}")
    print(f"{'profile':<10} {'path':<18} {'ns/URL':>9} {'URLs/s':>12}")
    for profile, path, ns in rows:
        print(f"{profile:<10} {path:<18} {ns:>9.0f} {1e9 / ns:>12,.0f}")
    print("\nexample:", urls[0].decode(), "\n     ->", make_normalizer()(urls[0]).key)


if __name__ == "__main__":
    main()
