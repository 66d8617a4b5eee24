"""loadtest.skeleton, the benchmark's measuring stick: it must really proxy, or its row means nothing."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import aiohttp
from aiohttp import web


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_the_skeleton_forwards_over_kept_alive_connections_and_drops_hop_by_hop_fields():
    seen = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path_qs, request.headers.get("X-Forwarded-For"), request.headers.get("TE")))
        return web.Response(body=b"x" * 2048, headers={"X-Node": "a", "Keep-Alive": "timeout=5"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    backend_port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", backend_port).start()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "loadtest.skeleton", str(port), str(backend_port)])
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            for _ in range(50):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/ready") as response:
                        await response.read()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            for i in range(3):
                async with session.get(f"http://127.0.0.1:{port}/img/{i}.jpg?w=400", headers={"TE": "trailers"}) as r:
                    assert r.status == 200 and await r.read() == b"x" * 2048
                    assert r.headers["X-Node"] == "a" and "Keep-Alive" not in r.headers
        assert [path for path, _, _ in seen[-3:]] == [f"/img/{i}.jpg?w=400" for i in range(3)]
        assert all(xff == "127.0.0.1" and te is None for _, xff, te in seen[-3:])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        await runner.cleanup()
