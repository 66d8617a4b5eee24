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

from renderer.app import RENDERER_KEY, make_admin_app, make_app
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
        app = make_app(RendererSettings(**options))
        client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
        client.admin = await aiohttp_client(make_admin_app(app))  # the admin listener: /metrics
        return client

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
    text = await (await client.admin.get("/metrics")).text()
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
    body = await response.json()
    assert body["status"] == 404 and body["error"].startswith("no source image at /")


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
    size = (origin / "alpha.png").stat().st_size
    client = await make_client(max_source_bytes=size - 1)
    response = await client.get("/alpha.png")
    assert response.status == 413
    assert (await response.json())["error"] == f"the source is {size} bytes; the limit is {size - 1} bytes"


@pytest.mark.parametrize(
    "target,message",
    [("/corrupt.jpg", "the source image header cannot be read"), ("/truncated.jpg?w=10", "the source image cannot be decoded"),
     ("/notes.txt", "the source is not an image in a supported format")],
)
async def test_undecodable_source_is_422(client: TestClient, target: str, message: str) -> None:
    response = await client.get(target)
    assert response.status == 422
    assert (await response.json())["error"].startswith(message)


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
        assert (await client.admin.get("/metrics")).status == 200
        busy = await client.get("/photos/photo.jpg?w=34")
        assert busy.status == 503
        assert busy.headers["Retry-After"] == "1"
        assert "busy" in (await busy.json())["error"]
    finally:
        await release(fifo, job)
    assert (await client.get("/photos/photo.jpg?w=34")).status == 200


async def test_metrics_page(client: TestClient) -> None:
    await client.get("/photos/photo.jpg?w=20")
    await client.get("/photos/photo.jpg?w=20")
    await client.get("/missing.jpg")
    text = await (await client.admin.get("/metrics")).text()
    assert 'pixring_renderer_renders_total{format="jpg"} 1.0' in text
    assert 'pixring_renderer_cache_hits_total{tier="memory"} 1.0' in text
    assert 'pixring_renderer_cache_misses_total{tier="memory"} 1.0' in text
    assert 'tier="disk"' not in text  # no disk tier configured, no disk series
    assert "pixring_renderer_bytes_out_total" in text
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


# ---------------------------------------------------------------- auto=format, auto=compress

CHROME_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


async def test_auto_format_negotiates_and_varies(client: TestClient) -> None:
    target = "/photos/photo.jpg?w=80&auto=format"
    cases = [(CHROME_ACCEPT, "image/avif"), ("image/webp,*/*", "image/webp"), ("*/*", "image/jpeg"), (None, "image/jpeg")]
    etags = set()
    for accept, media_type in cases:
        response = await client.get(target, headers={"Accept": accept} if accept else {})
        assert response.status == 200
        assert response.headers["Content-Type"] == media_type
        assert response.headers["Vary"] == "Accept"  # also on the fallback: caches must keep them apart
        etags.add(response.headers["ETag"])
    assert len(etags) == 3  # one key per negotiated format (the two JPEG answers share one)
    plain = await client.get("/photos/photo.jpg?w=80&fm=avif", headers={"Accept": "text/html"})
    assert "Vary" not in plain.headers
    assert plain.headers["X-Render-Cache"] == "hit"  # the negotiated AVIF is the same render


async def test_auto_format_validators_follow_the_negotiated_format(client: TestClient) -> None:
    target = "/photos/photo.jpg?w=81&auto=format"
    avif = await client.get(target, headers={"Accept": CHROME_ACCEPT})
    etag = avif.headers["ETag"]
    same = await client.get(target, headers={"Accept": CHROME_ACCEPT, "If-None-Match": etag})
    assert same.status == 304 and same.headers["Vary"] == "Accept"
    other = await client.get(target, headers={"Accept": "image/webp", "If-None-Match": etag})
    assert other.status == 200 and other.headers["Content-Type"] == "image/webp"


async def test_auto_compress_over_http(client: TestClient) -> None:
    plain = await client.get("/photos/photo.jpg?w=200")
    compressed = await client.get("/photos/photo.jpg?w=200&auto=compress")
    assert compressed.headers["Content-Type"] == "image/jpeg"
    assert len(await compressed.read()) < len(await plain.read())
    both = await client.get("/alpha.png?w=60&auto=compress,format", headers={"Accept": "image/webp"})
    assert both.headers["Content-Type"] == "image/webp"  # negotiation wins over compress's choice
    png = await client.get("/alpha.png?w=60&auto=compress")
    assert png.headers["Content-Type"] == "image/png"  # transparent: PNG


@pytest.mark.parametrize(
    "query,size",
    [("w=100&rot=30", (100, 67)), ("w=100&flip=hv", (100, 67)), ("w=100&or=90", (100, 150)),
     ("w=100&bri=20&con=10&exp=-10&gam=5&sat=-30&sharp=10&blur=15&mono=80ff0000", (100, 67))],
)
async def test_adjustments_over_http(client: TestClient, query: str, size: tuple[int, int]) -> None:
    _, image = await fetch_image(client, f"/photos/photo.jpg?{query}")
    assert image.size == size


# ---------------------------------------------------------------- the disk tier

async def test_disk_tier_survives_a_restart(make_client: ClientFactory, tmp_path: Path) -> None:
    disk = tmp_path / "renders"
    first = await make_client(disk_cache=disk)
    miss = await first.get("/photos/photo.jpg?w=90&fm=webp")
    assert miss.headers["X-Render-Cache"] == "miss"
    body = await miss.read()
    restarted = await make_client(disk_cache=disk)  # a new process: empty memory, same directory
    from_disk = await restarted.get("/photos/photo.jpg?w=90&fm=webp")
    assert from_disk.headers["X-Render-Cache"] == "hit-disk"
    assert await from_disk.read() == body
    assert from_disk.headers["ETag"] == miss.headers["ETag"]
    from_memory = await restarted.get("/photos/photo.jpg?w=90&fm=webp")
    assert from_memory.headers["X-Render-Cache"] == "hit"  # promoted
    text = await (await restarted.admin.get("/metrics")).text()
    assert 'pixring_renderer_cache_hits_total{tier="disk"} 1.0' in text
    assert 'pixring_renderer_cache_hits_total{tier="memory"} 1.0' in text
    assert 'pixring_renderer_cache_misses_total{tier="memory"} 1.0' in text
    assert 'pixring_renderer_cache_entries{tier="disk"} 1.0' in text
    assert "pixring_renderer_renders_total{" not in text  # nothing was rendered by this process


# ---------------------------------------------------------------- limits

async def test_output_over_the_pixel_limit_is_a_400(make_client: ClientFactory) -> None:
    client = await make_client(max_output_pixels=100 * 100)
    response = await client.get("/photos/photo.jpg?w=101&h=100&fit=scale")
    assert response.status == 400
    assert "MP" in (await response.json())["error"]
    assert (await client.get("/photos/photo.jpg?w=100&h=100&fit=scale")).status == 200


async def test_a_render_past_its_budget_is_a_503_without_retry_after(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from renderer import pipeline

    release = threading.Event()
    real_render = pipeline.render

    def stuck(*args: Any) -> Any:
        release.wait(60)
        return real_render(*args)

    monkeypatch.setattr(pipeline, "render", stuck)
    client = await make_client(render_timeout=0.1)
    try:
        response = await client.get("/photos/photo.jpg?w=30")
        assert response.status == 503
        # Overload, not failure: a balancer goes elsewhere or passes it on, and never ejects for it.
        assert response.headers["Retry-After"] == "1"
        assert "render_timeout of 0.1 s" in (await response.json())["error"]
        assert (await client.get("/healthz")).status == 200
    finally:
        release.set()


async def test_head_sends_no_bytes_and_counts_none(client: TestClient) -> None:
    await client.head("/photos/photo.jpg?w=25")
    text = await (await client.admin.get("/metrics")).text()
    assert "pixring_renderer_bytes_out_total 0.0" in text
    body = await (await client.get("/photos/photo.jpg?w=25")).read()
    text = await (await client.admin.get("/metrics")).text()
    assert f"pixring_renderer_bytes_out_total {float(len(body))}" in text


async def test_a_bug_is_a_500_with_no_details(make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from renderer import pipeline

    def broken(*args: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(pipeline, "render", broken)
    client = await make_client()
    response = await client.get("/photos/photo.jpg?w=31")
    assert response.status == 500
    body = await response.json()
    assert body == {"error": "internal error while rendering", "status": 500}
    text = await (await client.admin.get("/metrics")).text()
    assert 'pixring_renderer_errors_total{status="500"} 1.0' in text
