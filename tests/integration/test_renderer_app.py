"""The renderer app over real HTTP (pytest-aiohttp), with small generated sources.

Most tests use the thread pool (no process start-up); the ``process`` tests run the real
forkserver pool once. Nothing here waits on a clock: a busy worker is held on a FIFO
until the test releases it.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from renderer.app import RENDERER_KEY, make_app
from renderer.errors import WorkerLost
from renderer.samples import Sample, generate
from renderer.settings import RendererSettings

SECRET = b"the contents of a file outside the origin"

ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    root = tmp_path / "origin"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "photo.jpg").write_bytes(generate(Sample("photo.jpg", 300, 200, seed=21)))
    (root / "photos" / "turned.jpg").write_bytes(generate(Sample("t.jpg", 60, 90, seed=22, orientation=6)))
    (root / "alpha.png").write_bytes(generate(Sample("alpha.png", 120, 80, seed=23, alpha=True)))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    whole = generate(Sample("x.jpg", 64, 64, seed=24))
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (root / "notes.txt").write_bytes(b"plain text")
    (root / "folder").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (root / "escape.jpg").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside)
    (root / "inside-link.jpg").symlink_to(root / "photos" / "photo.jpg")
    return root


@pytest.fixture
def make_client(aiohttp_client: Any, origin: Path) -> ClientFactory:
    async def factory(**overrides: Any) -> TestClient:
        options: dict[str, Any] = {"origin": origin, "pool_kind": "thread", "render_workers": 2, "access_log": False}
        options.update(overrides)
        return await aiohttp_client(make_app(RendererSettings(**options)))

    return factory


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient:
    return await make_client()


async def fetch_image(client: TestClient, target: str) -> tuple[Any, Image.Image]:
    response = await client.get(target)
    assert response.status == 200, await response.text()
    image = Image.open(io.BytesIO(await response.read()))
    image.load()
    return response, image


async def raw_get(client: TestClient, target: str) -> tuple[int, bytes]:
    """A request with the target sent byte-for-byte (no client-side dot-segment removal)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode("latin-1"))
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# ---------------------------------------------------------------- geometry and formats

FIT_CASES = [
    ("w=100&h=100&fit=clip", (100, 67)),
    ("w=100&h=100", (100, 67)),  # clip is the default
    ("w=600&h=600&fit=max", (300, 200)),  # max never upscales
    ("w=100&h=100&fit=crop", (100, 100)),
    ("w=100&h=100&fit=scale", (100, 100)),
    ("w=100&h=100&fit=fill", (100, 100)),
    ("w=100&h=100&fit=clamp", (100, 100)),
    ("w=600&h=600&fit=fillmax", (600, 600)),
    ("w=600&h=600&fit=min", (200, 200)),
    ("w=150", (150, 100)),  # h follows the aspect ratio
    ("h=50", (75, 50)),
    ("w=0.5", (150, 100)),  # a fraction of the source
    ("w=100&dpr=2", (200, 133)),
    ("width=100&H=100&f=crop", (100, 100)),  # aliases and case, via the shared schema
    ("w=120&ar=2:1&fit=crop", (120, 60)),
    ("rect=0,0,100,100&w=50", (50, 50)),
    ("", (300, 200)),
]


@pytest.mark.parametrize("query,size", FIT_CASES, ids=[q or "no-params" for q, _ in FIT_CASES])
async def test_output_size_per_fit_mode(client: TestClient, query: str, size: tuple[int, int]) -> None:
    _, image = await fetch_image(client, f"/photos/photo.jpg?{query}")
    assert image.size == size


FORMAT_CASES = [
    ("/photos/photo.jpg?w=50", "JPEG", "image/jpeg"),  # no fm: the source's format
    ("/alpha.png?w=50", "PNG", "image/png"),
    ("/photos/photo.jpg?w=50&fm=png", "PNG", "image/png"),
    ("/photos/photo.jpg?w=50&fm=webp", "WEBP", "image/webp"),
    ("/photos/photo.jpg?w=50&fm=jpeg", "JPEG", "image/jpeg"),  # alias spelling of jpg
    ("/photos/photo.jpg?w=50&fm=pjpg", "JPEG", "image/jpeg"),
    ("/photos/photo.jpg?w=50&fm=gif", "GIF", "image/gif"),
    ("/photos/photo.jpg?w=50&fm=avif", "AVIF", "image/avif"),
    ("/alpha.png?w=50&fm=jpg", "JPEG", "image/jpeg"),
]


@pytest.mark.parametrize("target,pil_format,media_type", FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES])
async def test_format_and_content_type(client: TestClient, target: str, pil_format: str, media_type: str) -> None:
    response, image = await fetch_image(client, target)
    assert image.format == pil_format
    assert response.headers["Content-Type"] == media_type
    assert int(response.headers["Content-Length"]) == len(await response.read())


async def test_transparency_kept_in_png_and_flattened_in_jpeg(client: TestClient) -> None:
    _, png = await fetch_image(client, "/alpha.png?w=60")
    assert png.mode == "RGBA" and png.getpixel((0, 0))[3] == 0  # the sample's corner is transparent
    _, jpg = await fetch_image(client, "/alpha.png?w=60&fm=jpg")
    assert jpg.mode == "RGB" and jpg.getpixel((0, 0)) == pytest.approx((255, 255, 255), abs=10)  # JPEG noise
    _, painted = await fetch_image(client, "/alpha.png?w=60&bg=f00")
    assert painted.getpixel((0, 0)) == (255, 0, 0, 255)


async def test_exif_orientation_is_applied(client: TestClient) -> None:
    _, image = await fetch_image(client, "/photos/turned.jpg")
    assert image.size == (60, 90)  # stored 90x60, displayed upright
    assert image.getexif().get(0x0112) is None  # and the output carries no orientation


async def test_symlink_inside_the_origin_is_served(client: TestClient) -> None:
    _, image = await fetch_image(client, "/inside-link.jpg?w=30")
    assert image.size == (30, 20)


# ---------------------------------------------------------------- HTTP semantics

async def test_validators_and_304(client: TestClient) -> None:
    first = await client.get("/photos/photo.jpg?w=80")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert first.headers["Cache-Control"] == "public, max-age=31536000"
    assert first.headers["Last-Modified"].endswith("GMT")
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        again = await client.get("/photos/photo.jpg?w=80", headers={"If-None-Match": header})
        assert again.status == 304, header
        assert again.headers["ETag"] == etag
        assert await again.read() == b""
    other = await client.get("/photos/photo.jpg?w=80", headers={"If-None-Match": '"nope"'})
    assert other.status == 200
    since = await client.get("/photos/photo.jpg?w=80", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status == 304


async def test_etag_names_source_version_and_canonical_params(make_client: ClientFactory, origin: Path) -> None:
    one, two = await make_client(), await make_client(cache_control="no-store")
    etag = (await one.get("/photos/photo.jpg?w=80&fm=webp")).headers["ETag"]
    # Another renderer (process, restart) agrees; so does an equivalent spelling.
    assert (await two.get("/photos/photo.jpg?w=80&fm=webp")).headers["ETag"] == etag
    assert (await one.get("/photos/photo.jpg?width=80.0&fm=webp&utm_source=x")).headers["ETag"] == etag
    assert (await two.get("/photos/photo.jpg?w=80&fm=webp")).headers["Cache-Control"] == "no-store"
    # A different parameter, or a new version of the source, is a different ETag.
    assert (await one.get("/photos/photo.jpg?w=81&fm=webp")).headers["ETag"] != etag
    source = origin / "photos" / "photo.jpg"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert (await one.get("/photos/photo.jpg?w=80&fm=webp")).headers["ETag"] != etag


async def test_head_has_headers_but_no_body(client: TestClient) -> None:
    get = await client.get("/photos/photo.jpg?w=90&fm=png")
    body = await get.read()
    head = await client.head("/photos/photo.jpg?w=90&fm=png")
    assert head.status == 200
    assert await head.read() == b""
    assert head.headers["Content-Length"] == str(len(body))
    assert head.headers["Content-Type"] == "image/png"
    assert head.headers["ETag"] == get.headers["ETag"]


async def test_second_identical_request_is_a_cache_hit(client: TestClient) -> None:
    first = await client.get("/photos/photo.jpg?w=70&h=70&fit=crop")
    second = await client.get("/photos/photo.jpg?w=70&h=70&fit=crop")
    assert first.headers["X-Render-Cache"] == "miss"
    assert second.headers["X-Render-Cache"] == "hit"
    assert await first.read() == await second.read()
    equivalent = await client.get("/photos/photo.jpg?fit=crop&height=70&width=70")
    assert equivalent.headers["X-Render-Cache"] == "hit"


async def test_concurrent_identical_requests_render_once(client: TestClient) -> None:
    responses = await asyncio.gather(*(client.get("/photos/photo.jpg?w=65&fm=webp") for _ in range(6)))
    bodies = {await r.read() for r in responses}
    assert [r.status for r in responses] == [200] * 6
    assert len(bodies) == 1
    text = await (await client.get("/metrics")).text()
    assert 'pixring_renderer_renders_total{format="webp"} 1.0' in text


async def test_cache_disabled(make_client: ClientFactory) -> None:
    client = await make_client(cache_bytes=0)
    await client.get("/photos/photo.jpg?w=40")
    again = await client.get("/photos/photo.jpg?w=40")
    assert again.headers["X-Render-Cache"] == "miss"


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize(
    "query,param",
    [("w=abc", "w"), ("fit=sideways", "fit"), ("fm=jp2", "fm"), ("fit=facearea", "fit"), ("ar=0:1&fit=crop", "ar"),
     ("rect=0,0,10", "rect"), ("q=high", "q")],
)
async def test_bad_parameter_is_a_400_naming_it(client: TestClient, query: str, param: str) -> None:
    response = await client.get(f"/photos/photo.jpg?{query}")
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json"
    body = await response.json()
    assert body["param"] == param
    assert param in body["error"] and body["expected"]


async def test_rect_outside_the_source_is_a_400(client: TestClient) -> None:
    response = await client.get("/photos/photo.jpg?rect=1000,1000,10,10")
    assert response.status == 400
    assert (await response.json())["param"] == "rect"


@pytest.mark.parametrize("target", ["/missing.jpg", "/photos/nope/photo.jpg", "/folder", "/photos", "/photos/"])
async def test_missing_file_or_directory_is_404(client: TestClient, target: str) -> None:
    response = await client.get(target)
    assert response.status == 404
    assert "error" in await response.json()


TRAVERSALS = [
    "/../outside/secret.txt",
    "/%2e%2e/outside/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/photos/../../outside/secret.txt",
    "/photos/%2e%2e/%2e%2e/outside/secret.txt",
    "/photos%2f..%2f..%2foutside%2fsecret.txt",
    "/escape.jpg",
    "/escape-dir/secret.txt",
    "//etc/passwd",
    "/%00.jpg",
    "/photos/photo.jpg%00.png",
    "/..%5c..%5coutside%5csecret.txt",
    "/%c0%ae%c0%ae/outside/secret.txt",  # overlong UTF-8 dots
]


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_never_reaches_outside_the_origin(client: TestClient, target: str) -> None:
    status, body = await raw_get(client, target)
    assert status in (400, 404), (target, status)
    assert SECRET not in body
    assert b"root:" not in body


async def test_source_over_the_pixel_limit_is_413(make_client: ClientFactory) -> None:
    client = await make_client(max_source_pixels=300 * 200 - 1)
    response = await client.get("/photos/photo.jpg?w=10")
    assert response.status == 413
    assert "MP" in (await response.json())["error"]
    ok = await client.get("/alpha.png?w=10")  # 120x80 is under the limit
    assert ok.status == 200


async def test_source_over_the_byte_limit_is_413(make_client: ClientFactory, origin: Path) -> None:
    client = await make_client(max_source_bytes=(origin / "alpha.png").stat().st_size - 1)
    assert (await client.get("/alpha.png")).status == 413


@pytest.mark.parametrize("target", ["/corrupt.jpg", "/truncated.jpg?w=10", "/notes.txt"])
async def test_undecodable_source_is_422(client: TestClient, target: str) -> None:
    response = await client.get(target)
    assert response.status == 422
    assert "error" in await response.json()


# ---------------------------------------------------------------- pool, health, metrics

async def hold_worker(client: TestClient, fifo: Path) -> asyncio.Future[Any]:
    """Occupy one render worker until ``release`` writes to the FIFO."""
    pool = client.app[RENDERER_KEY].pool
    before = pool.pending
    job = asyncio.ensure_future(pool.run(fifo.read_bytes))
    while pool.pending == before:
        await asyncio.sleep(0)
    return job


async def release(fifo: Path, *jobs: asyncio.Future[Any]) -> None:
    for _ in jobs:
        await asyncio.to_thread(fifo.write_bytes, b"go")
    await asyncio.gather(*jobs)


async def test_healthz_and_cache_hits_answer_while_every_worker_is_busy(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(render_workers=1, render_queue=0)
    await client.get("/photos/photo.jpg?w=33")  # cached before the pool fills
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    job = await hold_worker(client, fifo)
    try:
        health = await client.get("/healthz")
        assert health.status == 200 and await health.json() == {"status": "ok"}
        hit = await client.get("/photos/photo.jpg?w=33")
        assert hit.status == 200 and hit.headers["X-Render-Cache"] == "hit"
        busy = await client.get("/photos/photo.jpg?w=34")
        assert busy.status == 503
        assert busy.headers["Retry-After"] == "1"
    finally:
        await release(fifo, job)
    assert (await client.get("/photos/photo.jpg?w=34")).status == 200


async def test_metrics_page(client: TestClient) -> None:
    await client.get("/photos/photo.jpg?w=20")
    await client.get("/photos/photo.jpg?w=20")
    await client.get("/missing.jpg")
    text = await (await client.get("/metrics")).text()
    assert 'pixring_renderer_renders_total{format="jpg"} 1.0' in text
    assert "pixring_renderer_cache_hits_total 1.0" in text
    assert "pixring_renderer_cache_misses_total 1.0" in text
    assert 'pixring_renderer_errors_total{status="404"} 1.0' in text
    assert "pixring_renderer_render_seconds_count 1.0" in text


async def test_real_process_pool(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(pool_kind="process", render_workers=1, render_queue=1)
    _, image = await fetch_image(client, "/photos/photo.jpg?w=100&h=100&fit=crop&fm=webp")
    assert image.size == (100, 100) and image.format == "WEBP"
    bad = await client.get("/corrupt.jpg")  # an error raised in the worker crosses back intact
    assert bad.status == 422
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    job = await hold_worker(client, fifo)
    try:
        assert (await client.get("/healthz")).status == 200
        waiting = asyncio.ensure_future(client.get("/photos/photo.jpg?w=44"))  # queued behind the held job
        pool = client.app[RENDERER_KEY].pool
        while pool.pending < 2:
            await asyncio.sleep(0.01)
        refused = await client.get("/photos/photo.jpg?w=45")
        assert refused.status == 503
    finally:
        await release(fifo, job)
    assert (await waiting).status == 200


async def test_a_killed_worker_is_a_503_and_the_pool_recovers(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(pool_kind="process", render_workers=1)
    assert (await client.get("/photos/photo.jpg?w=10")).status == 200
    pool = client.app[RENDERER_KEY].pool
    worker_pid = await pool.run(os.getpid)  # the only worker
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    job = await hold_worker(client, fifo)
    os.kill(worker_pid, signal.SIGKILL)  # the OOM killer, played by the test
    with pytest.raises(WorkerLost):
        await job
    assert pool.rebuilds == 1
    _, image = await fetch_image(client, "/photos/photo.jpg?w=11")
    assert image.size == (11, 7)
