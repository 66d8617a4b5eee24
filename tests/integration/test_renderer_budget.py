"""The renderer's cost budget over real sockets: output pixels, source memory, encoded size,
HEAD without encoding, refusals that never wait for a worker, metrics off the image port,
equal renders sharing one entry, large renders kept on disk."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from renderer.app import RENDERER_KEY, make_admin_app, make_app
from renderer.samples import Sample, generate
from renderer.settings import RendererSettings

ClientFactory = Callable[..., Awaitable[TestClient]]
ATTACK = "/photo.jpg?w=8192&h=8192&fit=scale&fm=png"


def _png(mode: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 40)[: len(mode)] if mode != "L" else 10).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    root = tmp_path / "origin"
    root.mkdir()
    (root / "photo.jpg").write_bytes(generate(Sample("photo.jpg", 300, 200, seed=31)))
    (root / "noise.png").write_bytes(generate(Sample("noise.png", 400, 400, seed=32)))
    (root / "rgba.png").write_bytes(_png("RGBA", (2000, 2000)))
    (root / "rgb.png").write_bytes(_png("RGB", (2000, 2000)))
    return root


@pytest.fixture
def make_client(aiohttp_client: Any, origin: Path) -> ClientFactory:
    async def factory(**overrides: Any) -> TestClient:
        options: dict[str, Any] = {"origin": origin, "pool_kind": "thread", "render_workers": 1, "access_log": False}
        options.update(overrides)
        app = make_app(RendererSettings(**options))
        client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
        client.admin = await aiohttp_client(make_admin_app(app))
        return client

    return factory


async def renders(client: TestClient) -> float:
    text = await (await client.admin.get("/metrics")).text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("pixring_renderer_renders_total{"))


async def test_the_8192_png_attack_is_refused_naming_the_limit_for_get_and_head(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get(ATTACK)
    assert response.status == 400
    body = await response.json()
    assert "max_output_pixels" in body["error"] and "8192x8192" in body["error"]
    head = await client.head(ATTACK)
    assert head.status == 400
    assert await renders(client) == 0


async def test_refusals_do_not_wait_for_a_busy_pool(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(render_workers=1, render_queue=4)
    pool = client.app[RENDERER_KEY].pool
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    held = asyncio.ensure_future(pool.run(fifo.read_bytes))
    while pool.pending == 0:
        await asyncio.sleep(0)
    try:
        # The only worker is held: a refusal that queued for it would never come back.
        for method in ("GET", "HEAD"):
            response = await asyncio.wait_for(client.request(method, ATTACK), 30)
            assert response.status == 400
    finally:
        await asyncio.to_thread(fifo.write_bytes, b"go")
        await held


async def test_an_operator_can_raise_the_budget(make_client: ClientFactory) -> None:
    client = await make_client(max_output_pixels=1000 * 1000)
    assert (await client.get("/photo.jpg?w=1000&h=1000&fit=scale&fm=jpg")).status == 200
    assert (await client.get("/photo.jpg?w=1001&h=1000&fit=scale&fm=jpg")).status == 400


async def test_head_never_encodes_and_says_what_a_get_would_get(make_client: ClientFactory) -> None:
    client = await make_client()
    head = await client.head("/photo.jpg?w=120&fm=webp")
    assert head.status == 200
    assert head.headers["X-Render-Cache"] == "miss" and head.headers["Content-Type"] == "image/webp"
    assert "Content-Length" not in head.headers  # no image was made to measure
    assert await renders(client) == 0
    get = await client.get("/photo.jpg?w=120&fm=webp")
    body = await get.read()
    assert get.headers["ETag"] == head.headers["ETag"]
    again = await client.head("/photo.jpg?w=120&fm=webp")
    assert again.headers["X-Render-Cache"] == "hit" and int(again.headers["Content-Length"]) == len(body)
    assert await renders(client) == 1


async def test_a_source_counts_its_bytes_per_pixel(make_client: ClientFactory) -> None:
    # 2000 x 2000 = 4 MP: as RGB it fits a 5 MP budget, as RGBA it weighs 5.3 MP of RGB.
    client = await make_client(max_source_pixels=5_000_000)
    assert (await client.get("/rgb.png?w=50")).status == 200
    refused = await client.get("/rgba.png?w=50")
    assert refused.status == 413
    assert "max_source_pixels" in (await refused.json())["error"]
    assert (await client.head("/rgba.png?w=50")).status == 413


async def test_the_encoded_size_is_bounded_as_it_is_written(make_client: ClientFactory) -> None:
    client = await make_client(max_output_bytes=20_000)
    assert (await client.get("/noise.png?w=40")).status == 200
    refused = await client.get("/noise.png?fm=png")
    assert refused.status == 400
    assert "max_output_bytes" in (await refused.json())["error"]


async def test_metrics_are_on_the_admin_listener_only(make_client: ClientFactory) -> None:
    client = await make_client()
    assert (await client.get("/metrics")).status == 404  # a source named metrics, which is missing
    assert (await client.get("/healthz")).status == 200
    admin = await client.admin.get("/metrics")
    assert admin.status == 200 and "pixring_renderer_renders_total" in await admin.text()
    assert (await client.admin.get("/healthz")).status == 200


async def test_clamped_values_share_one_render(make_client: ClientFactory) -> None:
    client = await make_client()
    first = await client.get("/photo.jpg?w=333&q=100")
    assert first.headers["X-Render-Cache"] == "miss"
    for same in ("/photo.jpg?w=333&q=1000", "/photo.jpg?w=333&q=100.0&rot=720", "/photo.jpg?w=333&q=2000&blur=0"):
        again = await client.get(same)
        assert again.headers["X-Render-Cache"] == "hit", same
        assert again.headers["ETag"] == first.headers["ETag"]


async def test_a_render_too_large_for_memory_goes_to_disk(make_client: ClientFactory, tmp_path: Path) -> None:
    # A memory tier of 64 KiB keeps nothing over 8 KiB; the 300x200 PNG is larger.
    client = await make_client(cache_bytes=64 * 1024, disk_cache=tmp_path / "disk")
    first = await client.get("/photo.jpg?fm=png")
    body = await first.read()
    assert first.headers["X-Render-Cache"] == "miss" and len(body) > 8 * 1024
    second = await client.get("/photo.jpg?fm=png")
    assert second.headers["X-Render-Cache"] == "hit-disk" and await second.read() == body
    head = await client.head("/photo.jpg?fm=png")
    assert head.headers["X-Render-Cache"] == "hit-disk" and int(head.headers["Content-Length"]) == len(body)
