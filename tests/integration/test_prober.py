"""Active probes against plain HTTP servers that know nothing of pixring (balancer/prober.py).

Each server is a real aiohttp server on a real socket: one answers every path 404 (a
static file server), one answers the probe path 400 (thumbor's answer to /healthz), one
answers 503, one never answers, and one port is closed.
"""

import asyncio
import random
import socket
import time

from aiohttp import web

from balancer.health import HealthEvent, HealthPolicy, HealthTable
from pixring.membership import Member, Membership
from balancer.prober import Prober
from balancer.probe_expect import parse_expect
from balancer.routing import RoutingTable


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _server(handler) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)  # the hung handler is cut
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def _status(status: int):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text="nothing here")
    return handler


async def _hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


async def _fleet():
    runners, members = [], []
    for name, handler in (("files", await _status(404)), ("thumbor", await _status(400)),
                          ("ok", await _status(200)), ("busy", await _status(503)), ("hung", _hang)):
        runner, port = await _server(handler)
        runners.append(runner)
        members.append(Member(id=name, host="127.0.0.1", port=port))
    members.append(Member(id="closed", host="127.0.0.1", port=_closed_port()))
    return runners, RoutingTable.build(Membership.of(members))


async def _probe_once(expect: str = ""):
    runners, table = await _fleet()
    health = HealthTable(HealthPolicy(await_first_probe=True, rise=1, fall=1), time.monotonic())
    health.set_members(table.members, time.monotonic())
    events: list[HealthEvent] = []
    prober = Prober(health, lambda: table, path="/healthz", interval=30.0, timeout=0.3,
                    on_events=events.extend, expect=parse_expect(expect), rand=random.Random(1))
    task = asyncio.ensure_future(prober.run())
    try:
        prober.wake()  # as the worker does when a membership brings pending members
        deadline = time.monotonic() + 5
        while health.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return health, events
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for runner in runners:
            await runner.cleanup()


async def test_any_http_answer_below_500_is_alive_and_every_failure_says_why():
    started = time.monotonic()
    health, events = await _probe_once()
    took = time.monotonic() - started
    print(f"first probes of six members decided in {took:.2f}s: {[(e.kind, e.member) for e in events]}")
    assert health.pending == frozenset(), "woken, the prober decides every pending member at once"
    assert health.routable == {"files", "thumbor", "ok"}
    assert "panic_on" not in [e.kind for e in events], "a round applies its good news first: no passing panic"
    details = {e.member: (e.kind, e.detail) for e in events}
    assert details["thumbor"] == ("up", "first probe: GET /healthz answered 400")
    assert details["files"] == ("up", "first probe: GET /healthz answered 404")
    assert details["busy"] == ("down", "first probe failed: GET /healthz answered 503")
    assert details["hung"] == ("down", "first probe failed: GET /healthz: no answer within 0.3s")
    kind, detail = details["closed"]
    assert (kind, detail) == ("down", "first probe failed: GET /healthz: cannot connect: Connection refused")
    snapshot = health.snapshot(time.monotonic())
    assert snapshot["thumbor"]["last_probe"]["result"] == "GET /healthz answered 400"
    assert snapshot["closed"]["last_probe"]["ok"] is False


async def test_probe_expect_narrows_alive_and_the_log_names_what_was_expected():
    health, events = await _probe_once(expect="200")
    assert health.routable == {"ok"}
    details = {e.member: e.detail for e in events}
    assert details["thumbor"] == "first probe failed: GET /healthz answered 400 (expected 200)"
