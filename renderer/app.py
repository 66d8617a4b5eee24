"""The renderer's HTTP app: ``GET|HEAD /<path>?<imgix params>`` and ``/healthz`` on the image
port; ``/metrics`` (and ``/healthz``) on the admin listener's app (``make_admin_app``).

Rules of a request, in order:

1. The raw path is decoded and fenced (``renderer.origin``); the query goes through the
   shared schema (``renderer.params``). Either failing is a 400 whose JSON body names the
   problem (``{"error": ..., "param": "w", "expected": ...}`` for a parameter).
2. ``auto=format`` is resolved against ``Accept`` (``renderer.negotiate``); such responses
   carry ``Vary: Accept`` whatever was chosen, so shared caches keep one copy per format.
   Parameters given but not drawn are named in ``X-Render-Ignored`` and ``dl`` sets
   ``Content-Disposition``; neither enters the render key (they change no byte of the body).
3. The source is located at the origin (404 missing, 413 too large, 502/504 for an HTTP
   origin that fails or is slow). Its identity (name and version) plus the canonical spec
   (negotiated format included) plus ``PIPELINE_VERSION`` is the render key: the strong
   ETag, the result-cache key and the single-flight key. It is a digest, so every
   renderer process and every restart agrees on it without rendering anything. With
   ``mark``, the watermark is located at the same origin too and its identity joins the
   key, so a changed watermark file is never served from an old render; ``Last-Modified``
   is the newer of the two files' times. A watermark that
   is missing, too large or not an image is a 400 naming ``mark`` (not a 404: the image the
   path names exists; the parameter's value is what is wrong, and a 404 would tell caches
   the image is gone). Its bytes (at most ``MAX_MARK_BYTES``) are fetched here, for a
   render or a plan only, and handed to the worker.
4. ``If-None-Match`` (weak comparison, RFC 9110 §13.1.2) or, without it,
   ``If-Modified-Since`` answers 304 before any work.
5. The memory tier answers at once (``X-Render-Cache: hit``); then the disk tier
   (``hit-disk``, and the render is promoted to memory); otherwise the render budget is
   checked from the source's header in a thread (output pixels, source pixels weighed by
   bytes per pixel: a 400 or 413 naming the limit, without waiting for a worker), and the
   render runs in the worker pool (``miss``), its encoded size bounded as it is written.
   Disk look-up and render happen once for all concurrent identical requests; when every
   request waiting for a render has gone (the balancer gave up and closed), the render is
   cancelled in its worker. A full pool and a render past its time budget are both a 503
   with ``Retry-After``: overload, which a balancer answers by going elsewhere or passing
   the 503 on, never by ejecting the node (``renderer.errors``). A directory origin's file
   is read by the worker (``renderer.jobs``); an HTTP origin's bytes are fetched here and
   passed on. A render too large for the memory tier still goes to the disk tier.
6. HEAD never encodes: a render in a cache tier answers with its length; any other is
   planned from the source's header (every limit checked, so a HEAD is refused exactly when
   a GET would be) and answered without ``Content-Length``.

Everything that blocks (filesystem, Pillow) runs off the event loop, so ``/healthz`` and
cache hits are answered while every worker is busy. A source file named ``healthz`` at the
origin root is shadowed by that endpoint.
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

from renderer import jobs, pipeline
from renderer.cache import ResultCache
from renderer.diskcache import DiskCache
from renderer.disposition import content_disposition
from renderer.errors import BadParam, Overloaded, RenderError, SourceNotFound, SourceTooLarge
from renderer.http_origin import HttpOrigin
from renderer.logs import log_event
from renderer.metrics import RendererMetrics
from renderer.origin import LocalOrigin, Origin, Source, decode_path
from renderer.params import RenderSpec, spec_from_query
from renderer.pipeline import Rendered
from renderer.settings import RendererSettings
from renderer.singleflight import SingleFlight
from renderer.watermark import MAX_MARK_BYTES
from renderer.workers import RenderPool

__all__ = ["PIPELINE_VERSION", "RENDERER_KEY", "Renderer", "make_admin_app", "make_app", "make_origin", "render_key"]

# Part of every render key: bump it when the same source and parameters would now give
# different bytes (a new resampling filter, encoder settings, an adjustment curve...),
# so ETags change and old disk-cache entries stop matching.
PIPELINE_VERSION = "2"
# An overloaded renderer asks clients to come back after this many seconds.
RETRY_AFTER_SECONDS = 1


def render_key(source: Source, spec: RenderSpec, mark: Source | None = None) -> str:
    """The digest naming one render: stable across processes and restarts. ``mark``: the
    watermark's source, whose identity (name and version) is part of the render."""
    text = f"{PIPELINE_VERSION}\x00{source.identity}\x00{spec.canonical()}"
    if mark is not None:
        text += f"\x00mark\x00{mark.identity}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def make_origin(settings: RendererSettings) -> LocalOrigin | HttpOrigin:
    if settings.origin_url is not None:
        return HttpOrigin(
            settings.origin_url,
            max_bytes=settings.max_source_bytes,
            connect_timeout=settings.origin_connect_timeout,
            read_timeout=settings.origin_read_timeout,
            max_redirects=settings.origin_redirects,
            metadata_ttl=settings.origin_ttl,
        )
    return LocalOrigin(settings.origin, settings.max_source_bytes)  # type: ignore[arg-type]


@dataclass(eq=False)
class Renderer:
    """The state one app serves from; built by ``make_app``, its pool set at start-up."""

    settings: RendererSettings
    origin: Origin
    cache: ResultCache[Rendered]
    disk: DiskCache | None = None
    metrics: RendererMetrics = field(default_factory=RendererMetrics)
    flights: SingleFlight[tuple[Rendered, str]] = field(default_factory=SingleFlight)
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
        m.cache_bytes.labels("memory").set(self.cache.bytes)
        m.cache_entries.labels("memory").set(len(self.cache))
        if self.disk is not None:
            m.cache_bytes.labels("disk").set(self.disk.bytes)
            m.cache_entries.labels("disk").set(len(self.disk))
        if self.pool is not None:
            m.pool_pending.set(self.pool.pending)
            m.pool_capacity.set(self.pool.capacity)
        return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _image(self, request: web.Request) -> web.StreamResponse:
        name = decode_path(request.raw_path.partition("?")[0])
        spec = spec_from_query(request.query.items())
        negotiated = spec.auto_format
        if negotiated:
            spec = spec.for_accept(request.headers.get("Accept"), pipeline.AVAILABLE_FORMATS)
        source = await self.origin.source(name)
        mark = await self._mark_source(spec)
        key = render_key(source, spec, mark)
        headers = {"ETag": f'"{key}"', "Cache-Control": self.settings.cache_control}
        modified = source.modified
        if mark is not None and modified is not None:
            # The render is as new as the newer of its two files: a changed watermark must
            # not be answered 304 to If-Modified-Since.
            modified = None if mark.modified is None else max(modified, mark.modified)
        if modified is not None:
            headers["Last-Modified"] = formatdate(modified, usegmt=True)
        if negotiated:
            headers["Vary"] = "Accept"
        headers.update(_spec_headers(spec))
        if _not_modified(request, key, modified):
            self.metrics.not_modified.inc()
            return web.Response(status=304, headers=headers)
        rendered = self.cache.get(key)
        if rendered is not None:
            self.metrics.cache_hits.labels("memory").inc()
            headers["X-Render-Cache"] = "hit"
        elif request.method == "HEAD":
            return await self._head(source, spec, key, headers, mark)
        else:
            self.metrics.cache_misses.labels("memory").inc()
            (rendered, outcome), led = await self.flights.run(key, lambda: self._produce(source, spec, key, mark))
            if not led:
                self.metrics.coalesced.inc()
            headers["X-Render-Cache"] = outcome
        headers["Content-Type"] = rendered.media_type
        if request.method == "GET":
            self.metrics.bytes_out.inc(len(rendered.body))
        return web.Response(body=rendered.body, headers=headers)

    async def _head(self, source: Source, spec: RenderSpec, key: str, headers: dict[str, str],
                    mark: Source | None = None) -> web.StreamResponse:
        """HEAD of a render not in memory: never encodes. From the disk tier when it is there
        (its length known); else from the plan (the source's header, every limit checked),
        answered without Content-Length, which RFC 9110 section 9.3.2 lets a HEAD omit."""
        self.metrics.cache_misses.labels("memory").inc()
        stored = await asyncio.to_thread(self.disk.get, key) if self.disk is not None else None
        if stored is not None:
            self.metrics.cache_hits.labels("disk").inc()
            headers.update({"X-Render-Cache": "hit-disk", "Content-Type": stored.media_type})
            return web.Response(body=stored.body, headers=headers)
        planned, _ = await self._plan(source, spec, await self._mark_bytes(mark))
        headers["X-Render-Cache"] = "miss"
        if planned.media_type is not None:
            headers["Content-Type"] = planned.media_type
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()  # no length is promised: the image was not made
        return response

    async def _plan(self, source: Source, spec: RenderSpec, mark: bytes | None = None) -> tuple[pipeline.Planned, bytes | None]:
        """What the render would be, every limit checked from the source's header: in a
        thread, not the render pool, so a refusal never waits behind busy workers. An HTTP
        origin's bytes are fetched for it and handed back for the render."""
        settings = self.settings
        limits = (settings.max_source_pixels, settings.max_output_pixels)
        if isinstance(self.origin, LocalOrigin):
            return await asyncio.to_thread(jobs.plan_local, self.origin, source, spec, *limits, mark), None
        data = await self.origin.fetch(source)
        return await asyncio.to_thread(pipeline.plan, data, spec, *limits, mark), data

    async def _mark_source(self, spec: RenderSpec) -> Source | None:
        """The watermark's source at the origin (its name already fenced by the params)."""
        if spec.mark is None:
            return None
        expected = "the path of an image at this renderer's origin"
        try:
            mark = await self.origin.source(spec.mark.path)
        except SourceNotFound:
            raise BadParam(f"mark: no watermark image at /{spec.mark.path}", "mark", expected) from None
        except SourceTooLarge as exc:
            raise BadParam(f"mark: {exc}", "mark", f"at most {MAX_MARK_BYTES} bytes") from None
        if mark.size is not None and mark.size > MAX_MARK_BYTES:
            raise BadParam(f"mark: the watermark is {mark.size} bytes; the limit is {MAX_MARK_BYTES}", "mark",
                           f"at most {MAX_MARK_BYTES} bytes")
        return mark

    async def _mark_bytes(self, mark: Source | None) -> bytes | None:
        if mark is None:
            return None
        try:
            data = await self.origin.fetch(mark)
        except (SourceNotFound, SourceTooLarge) as exc:
            raise BadParam(f"mark: {exc}", "mark", "the path of an image at this renderer's origin") from None
        if len(data) > MAX_MARK_BYTES:
            raise BadParam(f"mark: the watermark is larger than {MAX_MARK_BYTES} bytes", "mark",
                           f"at most {MAX_MARK_BYTES} bytes")
        return data

    async def _produce(self, source: Source, spec: RenderSpec, key: str,
                       mark: Source | None = None) -> tuple[Rendered, str]:
        """The render for ``key``: from the disk tier, else from the pool; kept in both
        tiers (a render too large for the memory tier still goes to disk)."""
        try:
            if self.disk is not None:
                stored = await asyncio.to_thread(self.disk.get, key)
                if stored is not None:
                    self.metrics.cache_hits.labels("disk").inc()
                    self.cache.put(key, stored)
                    return stored, "hit-disk"
                self.metrics.cache_misses.labels("disk").inc()
            rendered = await self._render(source, spec, mark)
        except asyncio.CancelledError:
            self.metrics.abandoned.inc()  # every client waiting for it went away
            raise
        self.cache.put(key, rendered)
        if self.disk is not None:
            await asyncio.to_thread(self.disk.put, key, rendered)
        return rendered, "miss"

    async def _render(self, source: Source, spec: RenderSpec, mark_source: Source | None = None) -> Rendered:
        pool = self.pool
        if pool is None:
            raise Overloaded("the renderer is not started")
        if pool.pending >= pool.capacity:  # refuse before fetching megabytes for nothing
            raise Overloaded(f"all {pool.workers} render workers are busy and the queue is full")
        # The budget first, from the header alone: a render over it is refused at once,
        # never after queueing for a worker.
        mark = await self._mark_bytes(mark_source)
        _, data = await self._plan(source, spec, mark)
        settings = self.settings
        limits = (settings.max_source_pixels, settings.max_output_pixels, settings.max_output_bytes)
        started = time.perf_counter()
        if data is None and isinstance(self.origin, LocalOrigin):  # the worker reads the file
            rendered = await pool.run(jobs.render_local, self.origin, source, spec, *limits, mark,
                                      timeout=settings.render_timeout)
        else:
            rendered = await pool.run(jobs.render_bytes, data, spec, *limits, mark, timeout=settings.render_timeout)
        self.metrics.render_seconds.observe(time.perf_counter() - started)
        self.metrics.renders.labels(rendered.fm).inc()
        return rendered

    def _error(self, exc: RenderError) -> web.Response:
        self.metrics.errors.labels(str(exc.status)).inc()
        body: dict[str, object] = {"error": exc.message, "status": exc.status}
        if exc.param is not None:
            body["param"] = exc.param
        if exc.expected is not None:
            body["expected"] = exc.expected
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.retryable else None
        return _json(body, exc.status, headers)


RENDERER_KEY = web.AppKey("renderer", Renderer)


def make_app(settings: RendererSettings, *, pool: RenderPool | None = None) -> web.Application:
    """The renderer as an aiohttp app. Without ``pool``, one is built from ``settings`` at
    start-up (and shut down at cleanup); a given pool is used as is and left running."""
    origin = make_origin(settings)
    renderer = Renderer(
        settings=settings,
        origin=origin,
        cache=ResultCache(settings.cache_bytes),
        disk=DiskCache(settings.disk_cache, settings.disk_cache_bytes) if settings.disk_cache is not None else None,
        pool=pool,
    )
    app = web.Application()
    app[RENDERER_KEY] = renderer

    async def origin_lifecycle(app: web.Application) -> AsyncIterator[None]:
        if isinstance(origin, HttpOrigin):
            await origin.start()
        yield
        await origin.close()

    async def disk_lifecycle(app: web.Application) -> AsyncIterator[None]:
        if renderer.disk is not None:
            await asyncio.to_thread(renderer.disk.open)
        yield

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

    # Unwound in reverse: the pool stops (renders finish) before the origin closes.
    app.cleanup_ctx.extend([origin_lifecycle, disk_lifecycle, pool_lifecycle])
    app.router.add_get("/healthz", renderer.healthz)
    app.router.add_get("/{path:.*}", renderer.image)
    return app


def make_admin_app(image_app: web.Application) -> web.Application:
    """The admin listener's app, for the renderer ``image_app`` serves: ``/metrics`` (the
    renderer's internals, never on the image port, where a balancer forwards strangers'
    requests) and ``/healthz``."""
    renderer = image_app[RENDERER_KEY]
    admin = web.Application()
    admin.router.add_get("/metrics", renderer.metrics_page)
    admin.router.add_get("/healthz", renderer.healthz)
    return admin


def _spec_headers(spec: RenderSpec) -> dict[str, str]:
    """Headers named by the request alone (not part of the render key, see RenderSpec):
    the parameters it gave that the renderer does not draw (``renderer.drawn``), and ``dl``'s
    download name."""
    headers = {}
    if spec.ignored:
        headers["X-Render-Ignored"] = ", ".join(spec.ignored)
    if spec.dl is not None:
        headers["Content-Disposition"] = content_disposition(spec.dl)
    return headers


def _not_modified(request: web.Request, key: str, modified: float | None) -> bool:
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
    if since is None or modified is None:
        return False
    return datetime.fromtimestamp(int(modified), tz=timezone.utc) <= since


def _json(body: dict[str, object], status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )
