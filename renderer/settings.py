"""The renderer's settings: one frozen value, validated when it is built.

The CLI fills it from flags; tests build it directly. Each default is named here with
the reason for its number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from renderer.origin import DEFAULT_MAX_SOURCE_BYTES
from renderer.pipeline import DEFAULT_MAX_SOURCE_PIXELS

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_CACHE_CONTROL",
    "DEFAULT_MAX_SOURCE_BYTES",
    "DEFAULT_MAX_SOURCE_PIXELS",
    "RendererSettings",
]

# Enough for a few thousand typical 400px renders (10-60 KB each), small enough to run
# several renderers on one laptop for `make run`.
DEFAULT_CACHE_BYTES = 128 * 1024 * 1024
# A render of a given source version never changes (the ETag names both), so a year.
DEFAULT_CACHE_CONTROL = "public, max-age=31536000"


@dataclass(frozen=True, slots=True)
class RendererSettings:
    origin: Path
    render_workers: int | None = None  # None: one per core
    render_queue: int | None = None  # None: DEFAULT_QUEUE_PER_WORKER per worker
    pool_kind: str = "process"  # or "thread" (tests, platforms without process pools)
    cache_bytes: int = DEFAULT_CACHE_BYTES
    cache_control: str = DEFAULT_CACHE_CONTROL
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    access_log: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.render_workers is not None and self.render_workers < 1:
            problems.append(f"render_workers must be >= 1, not {self.render_workers}")
        if self.render_queue is not None and self.render_queue < 0:
            problems.append(f"render_queue must be >= 0, not {self.render_queue}")
        if self.pool_kind not in ("process", "thread"):
            problems.append(f"pool_kind must be 'process' or 'thread', not {self.pool_kind!r}")
        if self.cache_bytes < 0:
            problems.append(f"cache_bytes must be >= 0, not {self.cache_bytes}")
        if self.max_source_pixels < 1:
            problems.append(f"max_source_pixels must be >= 1, not {self.max_source_pixels}")
        if self.max_source_bytes < 1:
            problems.append(f"max_source_bytes must be >= 1, not {self.max_source_bytes}")
        if any(c in self.cache_control for c in "\r\n"):
            problems.append("cache_control must be a single header line")
        if problems:
            raise ValueError("; ".join(problems))
