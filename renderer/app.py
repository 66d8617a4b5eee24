"""The renderer's HTTP app: ``GET|HEAD /<path>?<imgix params>``, ``/healthz``, ``/metrics``.

Rules of a request, in order:

1. The raw path is decoded and fenced (``renderer.origin``); the query goes through the
   shared schema (``renderer.params``). Either failing is a 400 whose JSON body names the
   problem (``{"error": ..., "param": "w", "expected": ...}`` for a parameter).
2. The source is located (404 missing, 413 too large). Its identity (path, size, mtime)
   plus the canonical spec plus ``PIPELINE_VERSION`` is the render key: the strong ETag,
   the result-cache key and the single-flight key. It is a digest, so every renderer
   process and every restart agrees on it without rendering anything.
3. ``If-None-Match`` (weak comparison, RFC 9110 §13.1.2) or, without it,
   ``If-Modified-Since`` answers 304 before any work.
4. A cached render is answered at once (``X-Render-Cache: hit``). Otherwise the render
   runs in the worker pool, once for all concurrent identical requests
   (``X-Render-Cache: miss``); a full pool is a 503 with ``Retry-After``.

Everything that blocks (filesystem, Pillow) runs off the event loop, so ``/healthz`` and
cache hits are answered while every worker is busy. HEAD is GET without the body (aiohttp
drops it and keeps ``Content-Length``). Source files named ``healthz`` or ``metrics`` at
the origin root are shadowed by those endpoints.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from typing import AsyncIterator

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from renderer import pipeline
from renderer.cache import ResultCache
from renderer.errors import Overloaded, RenderError
from renderer.logs import log_event
from renderer.metrics import RendererMetrics
from renderer.origin import LocalOrigin, Source, decode_path
from renderer.params import RenderSpec, spec_from_query
from renderer.pipeline import Rendered
from renderer.settings import RendererSettings
from renderer.singleflight import SingleFlight
from renderer.workers import RenderPool

__all__ = ["PIPELINE_VERSION", "RENDERER_KEY", "Renderer", "make_app", "render_key"]

# Part of every render key: bump it when the same source and parameters would now give
# different bytes (a new resampling filter, encoder settings...), so ETags change too.
PIPELINE_VERSION = "1"
# An overloaded renderer asks clients to come back after this many seconds.
RETRY_AFTER_SECONDS = 1


def render_key(source: Source, spec: RenderSpec) -> str:
    """The digest naming one render: stable across processes and restarts."""
    text = f"{PIPELINE_VERSION}\x00{source.identity}\x00{spec.canonical()}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(eq=False)
class Renderer:
    """The state one app serves from; built by ``make_app``, its pool set at start-up."""

    settings: RendererSettings
    origin: LocalOrigin
    cache: ResultCache[Rendered]
    metrics: RendererMetrics = field(default_factory=RendererMetrics)
    flights: SingleFlight[Rendered] = field(default_factory=SingleFlight)
    pool: RenderPool | None = None

    async def image(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._image(request)
        except RenderError as exc:
            return self._error(exc)
        except Exception as exc:  # a bug, not a client mistake: details go to the log only
            log_event("error", target=request.raw_path[:512], error=repr(exc), traceback=traceback.format_exc())
            self.metrics.errors.labels("500").inc()
            return _json({"error": "internal error while rendering", "status": 500}, 500)

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"}, 200)

    async def metrics_page(self, request: web.Request) -> web.Response:
        m = self.metrics
        m.cache_bytes.set(self.cache.bytes)
        m.cache_entries.set(len(self.cache))
        if self.pool is not None:
            m.pool_pending.set(self.pool.pending)
            m.pool_capacity.set(self.pool.capacity)
        return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _image(self, request: web.Request) -> web.StreamResponse:
        name = decode_path(request.raw_path.partition("?")[0])
        spec = spec_from_query(request.query.items())
        source = await asyncio.to_thread(self.origin.locate, name)
        key = render_key(source, spec)
        headers = {
            "ETag": f'"{key}"',
            "Last-Modified": formatdate(source.mtime_ns / 1e9, usegmt=True),
            "Cache-Control": self.settings.cache_control,
        }
        if _not_modified(request, key, source.mtime_ns):
            self.metrics.not_modified.inc()
            return web.Response(status=304, headers=headers)
        rendered = self.cache.get(key)
        if rendered is not None:
            self.metrics.cache_hits.inc()
            headers["X-Render-Cache"] = "hit"
        else:
            self.metrics.cache_misses.inc()
            rendered, led = await self.flights.run(key, lambda: self._render(source, spec, key))
            if not led:
                self.metrics.coalesced.inc()
            headers["X-Render-Cache"] = "miss"
        headers["Content-Type"] = rendered.media_type
        return web.Response(body=rendered.body, headers=headers)

    async def _render(self, source: Source, spec: RenderSpec, key: str) -> Rendered:
        pool = self.pool
        if pool is None:
            raise Overloaded("the renderer is not started")
        if pool.pending >= pool.capacity:  # refuse before reading megabytes for nothing
            raise Overloaded(f"all {pool.workers} render workers are busy and the queue is full")
        started = time.perf_counter()
        data = await asyncio.to_thread(self.origin.read, source)
        rendered = await pool.run(pipeline.render, data, spec, self.settings.max_source_pixels)
        self.metrics.render_seconds.observe(time.perf_counter() - started)
        self.metrics.renders.labels(rendered.fm).inc()
        self.cache.put(key, rendered)
        return rendered

    def _error(self, exc: RenderError) -> web.Response:
        self.metrics.errors.labels(str(exc.status)).inc()
        body: dict[str, object] = {"error": exc.message, "status": exc.status}
        if exc.param is not None:
            body["param"] = exc.param
        if exc.expected is not None:
            body["expected"] = exc.expected
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
        return _json(body, exc.status, headers)


RENDERER_KEY = web.AppKey("renderer", Renderer)


def make_app(settings: RendererSettings, *, pool: RenderPool | None = None) -> web.Application:
    """The renderer as an aiohttp app. Without ``pool``, one is built from ``settings`` at
    start-up (and shut down at cleanup); a given pool is used as is and left running."""
    renderer = Renderer(
        settings=settings,
        origin=LocalOrigin(settings.origin, settings.max_source_bytes),
        cache=ResultCache(settings.cache_bytes),
        pool=pool,
    )
    app = web.Application()
    app[RENDERER_KEY] = renderer

    async def pool_lifecycle(app: web.Application) -> AsyncIterator[None]:
        own = renderer.pool is None
        if own:
            renderer.pool = RenderPool(
                settings.render_workers,
                settings.render_queue,
                kind=settings.pool_kind,
                initializer=pipeline.configure_worker,
                initargs=(settings.max_source_pixels,),
            )
            await renderer.pool.warm_up()
        yield
        if own and renderer.pool is not None:
            # Waits for renders still running: the graceful half of shutdown.
            await asyncio.to_thread(renderer.pool.shutdown, True)

    app.cleanup_ctx.append(pool_lifecycle)
    app.router.add_get("/healthz", renderer.healthz)
    app.router.add_get("/metrics", renderer.metrics_page)
    app.router.add_get("/{path:.*}", renderer.image)
    return app


def _not_modified(request: web.Request, key: str, mtime_ns: int) -> bool:
    header = request.headers.get("If-None-Match")
    if header is not None:
        if header.strip() == "*":
            return True
        for tag in header.split(","):
            tag = tag.strip()
            if tag.startswith("W/"):
                tag = tag[2:]
            if tag == f'"{key}"':
                return True
        return False
    since = request.if_modified_since
    if since is None:
        return False
    modified = datetime.fromtimestamp(mtime_ns // 1_000_000_000, tz=timezone.utc)
    return modified <= since


def _json(body: dict[str, object], status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )
