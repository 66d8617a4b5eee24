"""The renderer's settings: one frozen value, validated when it is built.

The CLI fills it from flags; tests build it directly. Each default is named here with
the reason for its number. ``origin`` is a directory (``Path``) or an ``http://`` /
``https://`` base URL (``str``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from renderer.http_origin import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_METADATA_TTL,
    DEFAULT_READ_TIMEOUT,
)
from renderer.origin import DEFAULT_MAX_SOURCE_BYTES
from renderer.pipeline import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_SOURCE_PIXELS

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_CACHE_CONTROL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DISK_CACHE_BYTES",
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_MAX_SOURCE_BYTES",
    "DEFAULT_MAX_SOURCE_PIXELS",
    "DEFAULT_METADATA_TTL",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RENDER_TIMEOUT",
    "RendererSettings",
]

# Enough for a few thousand typical 400px renders (10-60 KB each), small enough to run
# several renderers on one laptop for `make run`.
DEFAULT_CACHE_BYTES = 128 * 1024 * 1024
# Disk is cheap next to a re-render: a few hundred thousand typical renders.
DEFAULT_DISK_CACHE_BYTES = 4 * 1024**3
# A render of a given source version never changes (the ETag names both), so a year.
DEFAULT_CACHE_CONTROL = "public, max-age=31536000"
# The slowest legitimate render within the output budget (a 16.8 MP PNG of a noisy image)
# takes about 5 s of one core; twice that is a render that went wrong or a node too busy.
# It counts from the moment the pool admits the render, so time spent queueing for a worker
# counts too, and it must stay below the balancer's try_timeout (15 s): then the renderer
# answers 503 + Retry-After (overload, never a reason to eject the node) before the
# balancer gives up on the try (docs/security.md says how the two interact).
DEFAULT_RENDER_TIMEOUT = 10.0
# A client has this long from connecting (or from the first byte of a later request on the
# connection) to send a whole request head; slower is a slowloris, and the connection is
# closed. Balancers send a head in one write.
DEFAULT_HEAD_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RendererSettings:
    origin: Path | str
    render_workers: int | None = None  # None: one per core
    render_queue: int | None = None  # None: DEFAULT_QUEUE_PER_WORKER per worker
    pool_kind: str = "process"  # or "thread" (tests, platforms without process pools)
    cache_bytes: int = DEFAULT_CACHE_BYTES
    disk_cache: Path | None = None  # None: memory only
    disk_cache_bytes: int = DEFAULT_DISK_CACHE_BYTES
    cache_control: str = DEFAULT_CACHE_CONTROL
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    render_timeout: float | None = DEFAULT_RENDER_TIMEOUT  # None: no limit
    origin_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    origin_read_timeout: float = DEFAULT_READ_TIMEOUT
    origin_redirects: int = DEFAULT_MAX_REDIRECTS
    origin_ttl: float = DEFAULT_METADATA_TTL
    access_log: bool = True
    log_probes: bool = False  # access-log GET /healthz too (renderer.logs)

    @property
    def origin_url(self) -> str | None:
        """The HTTP origin's base URL, or None for a directory origin."""
        return self.origin if isinstance(self.origin, str) else None

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.origin, str) and not self.origin.startswith(("http://", "https://")):
            problems.append(f"origin must be a directory or an http(s):// URL, not {self.origin!r}")
        if self.render_workers is not None and self.render_workers < 1:
            problems.append(f"render_workers must be >= 1, not {self.render_workers}")
        if self.render_queue is not None and self.render_queue < 0:
            problems.append(f"render_queue must be >= 0, not {self.render_queue}")
        if self.pool_kind not in ("process", "thread"):
            problems.append(f"pool_kind must be 'process' or 'thread', not {self.pool_kind!r}")
        for name in ("cache_bytes", "disk_cache_bytes", "origin_redirects"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, not {getattr(self, name)}")
        for name in ("max_source_pixels", "max_source_bytes", "max_output_pixels", "max_output_bytes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("origin_connect_timeout", "origin_read_timeout", "render_timeout", "head_timeout"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                problems.append(f"{name} must be a positive number of seconds, not {value}")
        if not (self.origin_ttl >= 0 and math.isfinite(self.origin_ttl)):
            problems.append(f"origin_ttl must be >= 0 seconds, not {self.origin_ttl}")
        if any(c in self.cache_control for c in "\r\n"):
            problems.append("cache_control must be a single header line")
        if problems:
            raise ValueError("; ".join(problems))
