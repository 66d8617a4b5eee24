"""What a SIGHUP changes in a running renderer: the fields its table marks ``reload``.

Those are the ones a renderer can change while it serves without dropping or spoiling
anything: the two caches' sizes (shrinking evicts the least recently used renders), the
render queue's length (renders already admitted keep their places), and the per-request
limits and headers, which every request reads from ``Renderer.settings``. A field read at
start only (``renderer.config`` says which) keeps its running value; the caller logs
those that changed as needing a restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from renderer.app import Renderer
from renderer.config import FIELDS
from renderer.settings import RendererSettings

__all__ = ["RELOADED", "apply"]

RELOADED = tuple(field.name for field in FIELDS if field.reload)


async def apply(renderer: Renderer, fresh: RendererSettings) -> tuple[str, ...]:
    """Apply what ``fresh`` changes among the reloadable fields; their names."""
    running = renderer.settings
    applied = tuple(name for name in RELOADED if getattr(fresh, name) != getattr(running, name))
    if "cache_bytes" in applied:
        renderer.cache.resize(fresh.cache_bytes)
    if "disk_cache_bytes" in applied and renderer.disk is not None:
        await asyncio.to_thread(renderer.disk.resize, fresh.disk_cache_bytes)
    if "render_queue" in applied and renderer.pool is not None:
        renderer.pool.set_queue_limit(fresh.render_queue)
    if "max_source_bytes" in applied:
        renderer.origin.max_bytes = fresh.max_source_bytes
    # Every request reads the limits and the header from here.
    renderer.settings = replace(running, **{name: getattr(fresh, name) for name in applied})
    return applied
