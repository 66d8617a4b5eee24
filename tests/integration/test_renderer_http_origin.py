"""The HTTP origin against a real (local) web server, alone and behind the renderer app.

The origin server is an aiohttp app with one route per behaviour: redirects (same host,
another host, a loop), errors, a server that never answers, bodies over the limit, an
origin without HEAD, and an object that changes between HEAD and GET.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from renderer.app import make_app
from renderer.errors import OriginTimeout, OriginUnavailable, SourceNotFound, SourceTooLarge
from renderer.http_origin import HttpOrigin
from renderer.samples import Sample, generate
from renderer.settings import RendererSettings

PHOTO = generate(Sample("photo.jpg", 300, 200, seed=51))
LIMIT = 100_000


def answer(make: Callable[[web.Request], web.Response]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        response = make(request)
        if isinstance(response, web.HTTPException):
            raise response  # aiohttp wants redirects raised
        return response

    return handler


class Upstream:
    """The origin web server's state: what it was asked, and a gate that never opens."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.never = asyncio.Event()
        self.version = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.middlewares.append(self.record)
        r = app.router
        r.add_get("/img/{name:.*}", self.image)
        r.add_get("/moved/{name:.*}", answer(lambda req: web.HTTPFound("/img/" + req.match_info["name"])))
        r.add_get("/loop/{name:.*}", answer(lambda req: web.HTTPFound(str(req.rel_url))))
        r.add_get("/offsite/{name:.*}", answer(lambda req: web.HTTPFound("http://other.example/img/x.jpg")))
        r.add_get("/status/{code:\\d+}/{name:.*}", answer(lambda req: web.Response(status=int(req.match_info["code"]))))
        r.add_get("/slow/{name:.*}", self.slow)
        r.add_get("/huge/{name:.*}", answer(lambda req: web.Response(body=b"x" * (LIMIT + 1))))
        r.add_get("/trickle/{name:.*}", self.endless)
        r.add_get("/nohead/{name:.*}", self.image, allow_head=False)
        r.add_get("/changing/{name:.*}", self.changing)
        r.add_get("/text/{name:.*}", answer(lambda req: web.Response(text="not an image")))
        return app

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.raw_path))
        return await handler(request)

    async def image(self, request: web.Request) -> web.Response:
        return web.Response(
            body=PHOTO, content_type="image/jpeg",
            headers={"ETag": '"v1"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"},
        )

    async def slow(self, request: web.Request) -> web.Response:
        await self.never.wait()
        return web.Response()

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked, no Content-Length
        await response.prepare(request)
        if request.method == "GET":
            for _ in range(LIMIT // 1000 + 10):
                await response.write(b"y" * 1000)
        return response

    async def changing(self, request: web.Request) -> web.Response:
        self.version += 1
        return web.Response(body=PHOTO, headers={"ETag": f'"v{self.version}"'})


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> tuple[Upstream, str]:
    state = Upstream()
    server = await aiohttp_server(state.app())
    yield state, f"http://127.0.0.1:{server.port}"
    state.never.set()


@pytest.fixture
async def origin_for(upstream: tuple[Upstream, str]):  # type: ignore[no-untyped-def]
    made: list[HttpOrigin] = []

    async def factory(prefix: str, **options: Any) -> HttpOrigin:
        options.setdefault("max_bytes", LIMIT)
        origin = HttpOrigin(upstream[1] + prefix, **options)
        await origin.start()
        made.append(origin)
        return origin

    yield factory
    for origin in made:
        await origin.close()


async def test_source_and_fetch(origin_for: Any, upstream: tuple[Upstream, str]) -> None:
    origin = await origin_for("/img/")
    source = await origin.source("photos/a b.jpg")
    assert source.version == 'etag:"v1"' and source.size == len(PHOTO)
    assert source.modified == 1445412480.0
    assert await origin.fetch(source) == PHOTO
    assert upstream[0].requests == [("HEAD", "/img/photos/a%20b.jpg"), ("GET", "/img/photos/a%20b.jpg")]


async def test_the_path_is_encoded_and_only_under_the_base(origin_for: Any, upstream: tuple[Upstream, str]) -> None:
    origin = await origin_for("/img")
    await origin.source("caf\u00e9 #1?.jpg")
    assert upstream[0].requests[-1] == ("HEAD", "/img/caf%C3%A9%20%231%3F.jpg")


async def test_same_host_redirects_are_followed(origin_for: Any) -> None:
    origin = await origin_for("/moved/")
    source = await origin.source("x.jpg")
    assert await origin.fetch(source) == PHOTO


@pytest.mark.parametrize("prefix,message", [("/offsite/", "another host"), ("/loop/", "more than 3 times")])
async def test_bad_redirects_are_refused(origin_for: Any, prefix: str, message: str) -> None:
    origin = await origin_for(prefix)
    with pytest.raises(OriginUnavailable, match=message):
        await origin.source("x.jpg")


@pytest.mark.parametrize("code,error", [(404, SourceNotFound), (410, SourceNotFound), (403, SourceNotFound),
                                        (418, SourceNotFound), (500, OriginUnavailable), (503, OriginUnavailable)])
async def test_origin_statuses(origin_for: Any, code: int, error: type) -> None:
    origin = await origin_for(f"/status/{code}/")
    with pytest.raises(error, match=str(code)):
        await origin.source("x.jpg")


async def test_a_silent_origin_times_out(origin_for: Any) -> None:
    origin = await origin_for("/slow/", read_timeout=0.2)
    with pytest.raises(OriginTimeout):
        await origin.source("x.jpg")


async def test_an_unreachable_origin_is_unavailable() -> None:
    origin = HttpOrigin("http://127.0.0.1:9/", connect_timeout=1.0)  # the discard port: refused
    await origin.start()
    try:
        with pytest.raises(OriginUnavailable, match="cannot be reached"):
            await origin.source("x.jpg")
    finally:
        await origin.close()


async def test_size_limits(origin_for: Any) -> None:
    declared = await origin_for("/huge/")
    with pytest.raises(SourceTooLarge, match=str(LIMIT + 1)):
        await declared.source("x.jpg")  # Content-Length says so: refused before any body
    trickle = await origin_for("/trickle/")
    source = await trickle.source("x.jpg")  # no length announced
    with pytest.raises(SourceTooLarge, match="larger than the limit"):
        await trickle.fetch(source)


async def test_an_origin_without_head_is_asked_with_get(origin_for: Any, upstream: tuple[Upstream, str]) -> None:
    origin = await origin_for("/nohead/", metadata_ttl=0)
    source = await origin.source("x.jpg")
    assert source.version == 'etag:"v1"'
    await origin.source("x.jpg")
    assert [m for m, _ in upstream[0].requests] == ["HEAD", "GET", "GET"]  # HEAD tried once only
    assert await origin.fetch(source) == PHOTO


async def test_versions_are_remembered_for_the_ttl(origin_for: Any, upstream: tuple[Upstream, str]) -> None:
    cached = await origin_for("/img/", metadata_ttl=3600)
    for _ in range(3):
        await cached.source("x.jpg")
    assert len(upstream[0].requests) == 1
    uncached = await origin_for("/img/", metadata_ttl=0)
    for _ in range(3):
        await uncached.source("x.jpg")
    assert len(upstream[0].requests) == 4


async def test_a_source_that_changed_between_head_and_get_is_not_rendered(origin_for: Any) -> None:
    origin = await origin_for("/changing/")
    source = await origin.source("x.jpg")
    with pytest.raises(OriginUnavailable, match="changed"):
        await origin.fetch(source)


def test_bad_base_urls() -> None:
    for url in ("ftp://host/", "http:///path", "http://host/?q=1"):
        with pytest.raises(ValueError):
            HttpOrigin(url)


# ---------------------------------------------------------------- behind the renderer app

@pytest.fixture
async def renderer_for(aiohttp_client: Any, upstream: tuple[Upstream, str]):  # type: ignore[no-untyped-def]
    async def factory(prefix: str, **overrides: Any) -> TestClient:
        options: dict[str, Any] = {
            "origin": upstream[1] + prefix, "pool_kind": "thread", "render_workers": 1, "access_log": False,
            "max_source_bytes": LIMIT, "origin_read_timeout": 0.3,
        }
        options.update(overrides)
        return await aiohttp_client(make_app(RendererSettings(**options)))

    return factory


async def test_renders_from_an_http_origin(renderer_for: Any, upstream: tuple[Upstream, str]) -> None:
    client = await renderer_for("/img/")
    response = await client.get("/photos/cat.jpg?w=100&fm=png&utm_source=x")
    assert response.status == 200
    assert Image.open(io.BytesIO(await response.read())).size == (100, 67)
    assert response.headers["Last-Modified"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert all("utm_source" not in path and "w=" not in path for _, path in upstream[0].requests)
    again = await client.get("/photos/cat.jpg?w=100&fm=png")
    assert again.headers["X-Render-Cache"] == "hit"
    assert [m for m, _ in upstream[0].requests] == ["HEAD", "GET"]  # the hit cost no origin fetch


@pytest.mark.parametrize(
    "prefix,status,words",
    [
        ("/status/404/", 404, "no source image"),
        ("/status/500/", 502, "origin failed"),
        ("/offsite/", 502, "another host"),
        ("/slow/", 504, "in time"),
        ("/huge/", 413, "limit"),
        ("/trickle/", 413, "limit"),
        ("/text/", 422, "not an image"),
    ],
)
async def test_origin_failures_become_statuses(renderer_for: Any, prefix: str, status: int, words: str) -> None:
    client = await renderer_for(prefix)
    response = await client.get("/x.jpg?w=10")
    assert response.status == status
    body = await response.json()
    assert body["status"] == status and words in body["error"]


def test_settings_refuse_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http"):
        RendererSettings(origin="ftp://example.com/")
