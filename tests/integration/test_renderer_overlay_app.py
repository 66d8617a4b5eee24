"""Watermarks and text through the real renderer app (pytest-aiohttp, thread pool): the
watermark comes from the origin and nowhere else, and its identity is part of the ETag."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from pixring import schema
from renderer.app import make_app, render_key
from renderer.origin import Source
from renderer.params import RenderSpec
from renderer.samples import Sample, generate
from renderer.settings import RendererSettings
from renderer.watermark import MarkSpec

ClientFactory = Callable[..., Awaitable[TestClient]]

needs_schema = pytest.mark.skipif(
    "mark" not in schema.PARAMS or "txt" not in schema.PARAMS, reason="the shared schema does not parse mark/txt yet"
)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (16, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, colour + (255,)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    root = tmp_path / "origin"
    (root / "logos").mkdir(parents=True)
    (root / "photo.jpg").write_bytes(generate(Sample("photo.jpg", 160, 100, seed=31)))
    (root / "logos" / "mark.png").write_bytes(png((255, 0, 0)))
    (root / "logos" / "huge.png").write_bytes(png((0, 0, 0), (2100, 2000)))  # 4.2 MP, small file
    (root / "logos" / "notes.txt").write_bytes(b"not an image")
    outside = tmp_path / "outside.png"
    outside.write_bytes(png((0, 255, 0)))
    (root / "logos" / "escape.png").symlink_to(outside)
    return root


@pytest.fixture
async def client(aiohttp_client: Any, origin: Path) -> TestClient:
    settings = RendererSettings(origin=origin, pool_kind="thread", render_workers=1, access_log=False)
    return await aiohttp_client(make_app(settings))


async def image_of(client: TestClient, target: str) -> tuple[Any, Image.Image]:
    response = await client.get(target)
    assert response.status == 200, await response.text()
    image = Image.open(io.BytesIO(await response.read())).convert("RGB")
    return response, image


def test_the_render_key_names_the_watermark_version() -> None:
    source = Source("photo.jpg", "1:1")
    spec = RenderSpec(mark=MarkSpec("logos/mark.png"))
    one = render_key(source, spec, Source("logos/mark.png", "10:100"))
    assert one == render_key(source, spec, Source("logos/mark.png", "10:100"))
    assert one != render_key(source, spec, Source("logos/mark.png", "10:200"))
    assert render_key(source, RenderSpec()) == render_key(source, RenderSpec(), None)


@needs_schema
async def test_mark_from_the_origin_is_drawn(client: TestClient) -> None:
    _, image = await image_of(client, "/photo.jpg?w=160&fm=png&mark=/logos/mark.png&mark-pad=0")
    assert image.size == (160, 100)
    assert image.getpixel((159, 99)) == (255, 0, 0)
    assert image.getpixel((160 - 16, 100 - 8)) == (255, 0, 0)
    assert image.getpixel((160 - 17, 100 - 9)) != (255, 0, 0)
    head = await client.head("/photo.jpg?w=160&fm=png&mark=/logos/mark.png&mark-pad=1")
    assert head.status == 200


@needs_schema
async def test_relative_and_rooted_mark_paths_are_one_render(client: TestClient) -> None:
    rooted = await client.get("/photo.jpg?w=80&mark=/logos/mark.png")
    relative = await client.get("/photo.jpg?w=80&mark=logos/mark.png")
    assert rooted.status == relative.status == 200
    assert rooted.headers["ETag"] == relative.headers["ETag"]


@needs_schema
@pytest.mark.parametrize(
    "mark",
    ["https://assets.example.com/mark.png", "http://127.0.0.1:1/mark.png", "//evil.example/mark.png",
     "/logos/../../outside.png", "file:///etc/passwd"],
)
async def test_a_mark_outside_the_origin_is_refused(client: TestClient, mark: str) -> None:
    from urllib.parse import quote

    response = await client.get(f"/photo.jpg?w=80&mark={quote(mark, safe='')}")
    assert response.status == 400
    body = await response.json()
    assert body["param"] == "mark"


@needs_schema
@pytest.mark.parametrize("mark", ["/logos/missing.png", "/logos", "/logos/escape.png", "/logos/notes.txt", "/logos/huge.png"])
async def test_a_missing_or_unusable_mark_is_a_400_naming_mark(client: TestClient, mark: str) -> None:
    response = await client.get(f"/photo.jpg?w=80&mark={mark}")
    assert response.status == 400, await response.text()
    assert (await response.json())["param"] == "mark"
    head = await client.head(f"/photo.jpg?w=80&mark={mark}")
    assert head.status == 400


@needs_schema
async def test_a_changed_mark_file_changes_the_etag_and_the_picture(client: TestClient, origin: Path) -> None:
    target = "/photo.jpg?w=160&fm=png&mark=/logos/mark.png&mark-pad=0"
    first, image = await image_of(client, target)
    assert image.getpixel((159, 99)) == (255, 0, 0)
    again = await client.get(target)
    assert again.headers["X-Render-Cache"] == "hit"
    mark = origin / "logos" / "mark.png"
    mark.write_bytes(png((0, 0, 255)))
    stat = mark.stat()
    os.utime(mark, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    second, image = await image_of(client, target)
    assert second.headers["ETag"] != first.headers["ETag"]
    assert second.headers["X-Render-Cache"] == "miss"
    assert image.getpixel((159, 99)) == (0, 0, 255)
    stale = await client.get(target, headers={"If-None-Match": first.headers["ETag"]})
    assert stale.status == 200
    # Last-Modified is the newer file's, so If-Modified-Since does not answer 304 either.
    assert second.headers["Last-Modified"] != first.headers["Last-Modified"]
    since = await client.get(target, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status == 200


@needs_schema
async def test_text_over_http_and_its_length_bound(client: TestClient) -> None:
    _, image = await image_of(client, "/photo.jpg?w=160&fm=png&txt=pixring&txt-size=20&txt-color=ff0000")
    reds = [p for p in image.crop((80, 60, 160, 100)).get_flattened_data() if p[0] > 200 and p[1] < 80 and p[2] < 80]
    assert reds
    # Over this renderer's 500 characters, under the schema's 1024 and aiohttp's line limit.
    response = await client.get("/photo.jpg?w=80&txt=" + "x" * 600)
    assert response.status == 400
    assert (await response.json())["param"] == "txt"


# ---------------------------------------------------------------- an HTTP origin

class Upstream:
    """An origin web server with a photo and a logo whose version the test can change."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.logo = png((255, 0, 0))
        self.version = 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/img/photo.jpg", self.photo)
        app.router.add_get("/img/logo.png", self.mark)
        return app

    async def photo(self, request: web.Request) -> web.Response:
        self.requests.append(request.raw_path)
        return web.Response(body=PHOTO, content_type="image/jpeg", headers={"ETag": '"p1"'})

    async def mark(self, request: web.Request) -> web.Response:
        self.requests.append(request.raw_path)
        return web.Response(body=self.logo, content_type="image/png", headers={"ETag": f'"m{self.version}"'})


PHOTO = generate(Sample("photo.jpg", 160, 100, seed=32))


@pytest.fixture
async def http_client(aiohttp_server: Any, aiohttp_client: Any) -> tuple[Upstream, TestClient]:
    upstream = Upstream()
    server = await aiohttp_server(upstream.app())
    settings = RendererSettings(origin=f"http://127.0.0.1:{server.port}/img/", origin_ttl=0, pool_kind="thread",
                                render_workers=1, access_log=False)
    return upstream, await aiohttp_client(make_app(settings))


@needs_schema
async def test_an_http_origins_mark_is_fetched_from_under_its_base(http_client: tuple[Upstream, TestClient]) -> None:
    upstream, client = http_client
    target = "/photo.jpg?w=160&fm=png&mark=logo.png&mark-pad=0"
    first, image = await image_of(client, target)
    assert image.getpixel((159, 99)) == (255, 0, 0)
    assert "/img/logo.png" in upstream.requests
    upstream.logo, upstream.version = png((0, 0, 255)), 2
    second, image = await image_of(client, target)
    assert second.headers["ETag"] != first.headers["ETag"]
    assert image.getpixel((159, 99)) == (0, 0, 255)
    upstream.requests.clear()
    refused = await client.get("/photo.jpg?w=80&mark=http%3A%2F%2F127.0.0.1%2Fimg%2Flogo.png")
    assert refused.status == 400 and (await refused.json())["param"] == "mark"
    assert upstream.requests == []  # refused before anything was fetched
    missing = await client.get("/photo.jpg?w=80&mark=nothing.png")
    assert missing.status == 400 and (await missing.json())["param"] == "mark"
