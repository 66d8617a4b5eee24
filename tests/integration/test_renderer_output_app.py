"""Output parameters, animated sources and X-Render-Ignored through the real app (pytest-aiohttp).

Tests of parameters the shared schema does not parse yet are skipped until it does (the
pure functions behind them are tested in tests/unit/test_renderer_output.py)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image, JpegImagePlugin

from pixring import schema
from renderer.app import make_app
from renderer.samples import Sample, generate
from renderer.settings import RendererSettings


def schema_parses(*names: str) -> bool:
    return all(name in schema.PARAMS for name in names)


def fm_renderable(value: str) -> bool:
    return value in (schema.PARAMS["fm"].renderable or ())


def needs(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not schema_parses(*names), reason=f"the schema does not parse {', '.join(names)} yet")


def gif(frames: list[Image.Image], durations: list[int] | int) -> bytes:
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return out.getvalue()


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    root = tmp_path / "origin"
    root.mkdir()
    (root / "photo.jpg").write_bytes(generate(Sample("photo.jpg", 120, 80, seed=95)))
    (root / "alpha.png").write_bytes(generate(Sample("alpha.png", 60, 40, seed=96, alpha=True)))
    colours = [Image.new("RGB", (40, 30), (40 * i, 90, 200)) for i in range(5)]
    (root / "anim.gif").write_bytes(gif(colours, [30, 40, 50, 60, 70]))
    tiny = []
    for i in range(1000):  # each differs from the last, or Pillow would merge them
        frame = Image.new("P", (16, 16), 0)
        frame.putpalette([0, 0, 0, 255, 255, 255])
        frame.putpixel((i % 16, i // 16 % 16), 1)
        tiny.append(frame)
    (root / "thousand.gif").write_bytes(gif(tiny, 20))
    settings = RendererSettings(origin=root, pool_kind="thread", render_workers=2, access_log=False)
    return await aiohttp_client(make_app(settings))


async def get(client: TestClient, target: str) -> tuple[Any, bytes]:
    response = await client.get(target)
    return response, await response.read()


def frames_of(data: bytes) -> list[tuple[int, int]]:
    """(red of pixel (2, 2), duration) per frame."""
    image = Image.open(io.BytesIO(data))
    out = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        out.append((image.convert("RGB").getpixel((2, 2))[0], int(image.info.get("duration", 0))))
    return out


# ---------------------------------------------------------------- animation (parsed today)

async def test_an_animated_gif_keeps_its_frames_and_durations(client: TestClient) -> None:
    response, body = await get(client, "/anim.gif?fm=gif&w=20")
    assert response.status == 200 and response.headers["Content-Type"] == "image/gif"
    assert Image.open(io.BytesIO(body)).size == (20, 15)
    frames = frames_of(body)
    assert [d for _, d in frames] == [30, 40, 50, 60, 70]
    assert [r for r, _ in frames] == pytest.approx([0, 40, 80, 120, 160], abs=4)
    still_response, still = await get(client, "/anim.gif?fm=png&w=20")
    assert still_response.status == 200 and not getattr(Image.open(io.BytesIO(still)), "is_animated", False)


async def test_a_thousand_frame_gif_is_refused_fast(client: TestClient) -> None:
    started = time.perf_counter()
    for method in ("GET", "HEAD"):
        response = await client.request(method, "/thousand.gif?fm=gif")
        assert response.status == 400
    assert time.perf_counter() - started < 2.0
    body = orjson.loads(await (await client.get("/thousand.gif?fm=gif")).read())
    assert body["param"] == "frame" and "900" in body["error"]
    assert (await client.get("/thousand.gif?fm=png")).status == 200  # a still costs one frame


# ---------------------------------------------------------------- once the schema parses them

@needs("frame")
async def test_frame_picks_one_frame(client: TestClient) -> None:
    response, body = await get(client, "/anim.gif?fm=gif&frame=2")
    assert response.status == 200
    assert frames_of(body) == [(pytest.approx(40, abs=4), frames_of(body)[0][1])]
    assert (await client.get("/anim.gif?frame=9")).status == 400


@pytest.mark.skipif(not fm_renderable("json"), reason="the schema does not render fm=json yet")
async def test_fm_json_describes_the_source(client: TestClient) -> None:
    response, body = await get(client, "/alpha.png?fm=json&w=10")
    assert response.status == 200 and response.headers["Content-Type"].startswith("application/json")
    doc = orjson.loads(body)
    source = Image.open(io.BytesIO(generate(Sample("alpha.png", 60, 40, seed=96, alpha=True))))
    assert (doc["PixelWidth"], doc["PixelHeight"]) == source.size
    assert doc["HasAlpha"] is True and doc["Content-Type"] == "image/png"


@pytest.mark.skipif(not fm_renderable("png8"), reason="the schema does not render fm=png8 yet")
async def test_fm_png8_is_a_palette_png(client: TestClient) -> None:
    response, body = await get(client, "/photo.jpg?fm=png8")
    image = Image.open(io.BytesIO(body))
    assert response.headers["Content-Type"] == "image/png" and image.mode == "P"
    assert len(image.convert("RGB").getcolors(10_000)) <= 256


@needs("palette", "colors", "prefix")
async def test_palette_json_and_css(client: TestClient) -> None:
    response, body = await get(client, "/photo.jpg?palette=json&colors=4")
    assert response.status == 200 and response.headers["Content-Type"].startswith("application/json")
    doc = orjson.loads(body)
    assert len(doc["colors"]) == 4 and all(set(c) == {"red", "green", "blue", "hex"} for c in doc["colors"])
    assert 0 <= doc["average_luminance"] <= 1 and isinstance(doc["dominant_colors"], dict)
    response, body = await get(client, "/photo.jpg?palette=css&prefix=frog")
    assert response.headers["Content-Type"].startswith("text/css")
    assert b".frog-fg-1 { color:#" in body and b".frog-bg-6 " in body


@needs("dpi", "chromasub", "jpg-progressive")
async def test_jpeg_header_fields_read_back(client: TestClient) -> None:
    _, body = await get(client, "/photo.jpg?fm=jpg&dpi=300&chromasub=444")
    image = Image.open(io.BytesIO(body))
    assert image.info["dpi"] == (300, 300) and JpegImagePlugin.get_sampling(image) == 0
    assert image.info.get("progressive")  # imgix's default
    _, baseline = await get(client, "/photo.jpg?fm=jpg&jpg-progressive=false")
    assert not Image.open(io.BytesIO(baseline)).info.get("progressive")
    _, png = await get(client, "/photo.jpg?fm=png&dpi=144")
    assert Image.open(io.BytesIO(png)).info["dpi"] == pytest.approx((144, 144), abs=0.01)


@needs("dl")
async def test_dl_header_is_exact_and_injection_proof(client: TestClient) -> None:
    response = await client.get("/photo.jpg?w=20&dl=caf%C3%A9%20%22x%22.jpg")
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"caf_ _x_.jpg\"; filename*=UTF-8''caf%C3%A9%20%22x%22.jpg"
    )
    refused = await client.get("/photo.jpg?w=20&dl=a.jpg%0D%0ASet-Cookie:%20x=1")  # CR: the schema says 400
    assert refused.status == 400 and orjson.loads(await refused.read())["param"] == "dl"
    hostile = await client.get("/photo.jpg?w=20&dl=a.jpg%0ASet-Cookie:%20x=1%09%22.jpg")  # LF, tab: text
    assert hostile.status == 200
    assert hostile.headers["Content-Disposition"] == (
        "attachment; filename=\"a.jpgSet-Cookie: x=1_.jpg\"; filename*=UTF-8''a.jpgSet-Cookie%3A%20x%3D1%22.jpg"
    )
    assert "Set-Cookie" not in hostile.headers
    plain = await client.get("/photo.jpg?w=20")
    assert hostile.headers["ETag"] == plain.headers["ETag"]  # the same picture, the same key


@needs("upscale", "face-blur")
async def test_ignored_parameters_are_named_and_leave_the_key_alone(client: TestClient) -> None:
    response = await client.get("/photo.jpg?w=20&upscale=true&face-blur=50")
    assert response.status == 200
    assert response.headers["X-Render-Ignored"] == "face-blur, upscale"
    plain = await client.get("/photo.jpg?w=20")
    assert "X-Render-Ignored" not in plain.headers
    assert response.headers["ETag"] == plain.headers["ETag"]
    assert await response.read() == await plain.read()
