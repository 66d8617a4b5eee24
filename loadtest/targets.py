"""The request targets the throughput benchmark replays: distinct imgix-style image URLs.

Rules of this module
--------------------
* Every target is a valid imgix request (``w`` and ``h`` are documented size parameters,
  https://docs.imgix.com/apis/rendering/size/width), so pixring's ``imgix`` profile forwards
  it canonicalized instead of answering 400: the benchmark measures the proxy path, not the
  error path.
* Targets are distinct (one image each), so a consistent hash spreads them over all backends,
  and their order is a fixed shuffle (seeded), so every configuration and every run sees the
  same sequence and no backend gets a long streak of neighbours.
* Pure: no I/O. ``write_targets`` is the one helper that touches a file, for wrk's script.
"""

from __future__ import annotations

import random
from pathlib import Path

__all__ = ["DEFAULT_COUNT", "image_targets", "write_targets"]

# The issue asks for "~10,000 image URLs": enough that no proxy can serve them from one
# small cache line, few enough that wrk's Lua script holds them all pre-formatted.
DEFAULT_COUNT = 10_000
DEFAULT_SEED = 20_240_611


def image_targets(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[str]:
    """``count`` distinct ``/img/<n>.jpg?w=400&h=300`` targets in a seeded shuffled order."""
    if count < 1:
        raise ValueError(f"target count must be at least 1, got {count}")
    numbers = list(range(1, count + 1))
    random.Random(seed).shuffle(numbers)
    return [f"/img/{n}.jpg?w=400&h=300" for n in numbers]


def write_targets(path: Path, targets: list[str]) -> Path:
    """One target per line, for ``templates/replay.lua``."""
    if any("\n" in t or not t.startswith("/") for t in targets):
        raise ValueError("targets must be origin-form paths without newlines")
    path.write_text("\n".join(targets) + "\n")
    return path
