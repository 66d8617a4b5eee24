"""A render-node stand-in whose faults a test switches at run time: ``python -m tests.fault_node``.

End-to-end fault tests need a node that misbehaves on cue, as a real process behind real
sockets (the balancer only ever sees an opaque HTTP backend). This one answers every GET
with a small JSON body naming itself, the path, and the Host and X-Forwarded-Host/-Proto it
received, after ``delay`` seconds, unless a
fault is switched on through its control endpoint:

    PUT /_fault {"mode": "ok"}                    healthy, the start-up delay (``--delay``)
    PUT /_fault {"mode": "slow", "delay": 0.1}    healthy but every answer waits ``delay``
    PUT /_fault {"mode": "503"}                   503 without Retry-After (failing)
    PUT /_fault {"mode": "shed"}                  503 + Retry-After (shedding load: overloaded, not failing)
    PUT /_fault {"mode": "500"}                   500 (broken)
    PUT /_fault {"mode": "hang"}                  never answers (holds the connection)
    PUT /_fault {"mode": "cache", "delay": 0.05}  a caching render node: a URL's first GET
                                                  renders (waits ``delay``, or the URL's
                                                  ``render`` parameter in seconds, one render
                                                  at a time as one render worker), later
                                                  ones are hits; RFC 9211's Cache-Status says
                                                  which (``fwd=miss`` for a render)
    GET /_fault                                   the current fault and per-status counters

``"healthz": "ok"`` in a PUT keeps ``/healthz`` answering 200 whatever the mode, so a test
can show passive outlier detection alone; by default (``"follow"``) ``/healthz`` fails the
way the node fails (503, 500, hang) and answers at once in ``ok`` and ``slow`` modes.

Rules: the control endpoint validates its input and answers 400 naming the problem; the
process prints ``fault node listening on http://HOST:PORT`` once it accepts connections
(``--port 0`` picks a free port), and exits 0 on SIGTERM or SIGINT. HTTP/1.1 keep-alive,
as a real node's, so the balancer's pool is exercised.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

__all__ = ["Fault", "FaultError", "MODES", "parse_fault", "make_app", "main"]

MODES = ("ok", "slow", "503", "shed", "500", "hang", "cache")
HEALTHZ_MODES = ("follow", "ok")
CONTROL_PATH = "/_fault"


class FaultError(ValueError):
    """A control request that cannot be applied."""


@dataclass(frozen=True, slots=True)
class Fault:
    mode: str = "ok"
    delay: float = 0.0
    healthz: str = "follow"


def parse_fault(body: object, base_delay: float) -> Fault:
    """The fault a control request asks for; ``FaultError`` names what is wrong with it."""
    if not isinstance(body, dict):
        raise FaultError("the body must be a JSON object such as {\"mode\": \"503\"}")
    unknown = sorted(set(body) - {"mode", "delay", "healthz"})
    if unknown:
        raise FaultError(f"unknown field(s) {', '.join(unknown)}; expected mode, delay, healthz")
    mode = body.get("mode")
    if mode not in MODES:
        raise FaultError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    delay = body.get("delay", base_delay)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not math.isfinite(delay) or delay < 0:
        raise FaultError(f"delay must be a number of seconds >= 0, got {delay!r}")
    if mode == "slow" and "delay" not in body:
        raise FaultError("mode slow needs a delay, e.g. {\"mode\": \"slow\", \"delay\": 0.1}")
    healthz = body.get("healthz", "follow")
    if healthz not in HEALTHZ_MODES:
        raise FaultError(f"healthz must be one of {', '.join(HEALTHZ_MODES)}, got {healthz!r}")
    return Fault(mode=mode, delay=float(delay), healthz=healthz)


class FaultNode:
    def __init__(self, name: str, base_delay: float) -> None:
        self.name = name
        self.base_delay = base_delay
        self.fault = Fault(delay=base_delay)
        self.answers: Counter[str] = Counter()  # status (or "hung") -> count, image paths only
        # Mode cache: what it has rendered, and its one render worker.
        self.cached: set[str] = set()
        self.renders: Counter[str] = Counter()  # path and query -> renders
        self.rendering = 0  # renders running or waiting for the render worker
        self.render_worker = asyncio.Lock()

    async def _failure(self, fault: Fault) -> web.Response | None:
        """The answer a failing mode gives, or None when the node is healthy."""
        if fault.mode == "hang":
            await asyncio.Event().wait()  # until the balancer gives up and closes
        if fault.mode == "503":
            return web.json_response({"error": "unavailable", "node": self.name}, status=503)
        if fault.mode == "shed":
            return web.json_response({"error": "overloaded", "node": self.name}, status=503,
                                     headers={"Retry-After": "1"})
        if fault.mode == "500":
            return web.json_response({"error": "broken", "node": self.name}, status=500)
        return None

    async def image(self, request: web.Request) -> web.Response:
        fault = self.fault  # one read: a switch mid-request does not mix two modes
        if fault.mode == "hang":
            self.answers["hung"] += 1
        failed = await self._failure(fault)
        if failed is not None:
            self.answers[str(failed.status)] += 1
            return failed
        headers = {"Cache-Control": "public, max-age=60"}
        if fault.mode == "cache":
            headers["Cache-Status"] = await self._cached(request, fault)
        elif fault.delay:
            await asyncio.sleep(fault.delay)
        self.answers["200"] += 1
        # The Host and X-Forwarded-* fields as received: what a multi-tenant backend routes by.
        return web.json_response({"node": self.name, "path": request.path_qs, "host": request.headers.get("Host"),
                                  "forwarded_host": request.headers.get("X-Forwarded-Host"),
                                  "forwarded_proto": request.headers.get("X-Forwarded-Proto")},
                                 headers=headers)

    async def _cached(self, request: web.Request, fault: Fault) -> str:
        """Mode cache: render the URL unless it is cached; its Cache-Status (RFC 9211)."""
        key = request.path_qs
        if key in self.cached:
            return "fault-node; hit"
        self.rendering += 1
        try:
            async with self.render_worker:
                if key in self.cached:  # rendered while this request waited for the worker
                    return "fault-node; hit"
                try:
                    seconds = float(request.query.get("render", fault.delay))
                except ValueError:
                    seconds = fault.delay
                await asyncio.sleep(max(0.0, min(seconds, 30.0)))
                self.cached.add(key)
                self.renders[key] += 1
                return "fault-node; fwd=miss; stored"
        finally:
            self.rendering -= 1

    async def healthz(self, request: web.Request) -> web.Response:
        fault = self.fault
        if fault.healthz == "follow":
            failed = await self._failure(fault)
            if failed is not None:
                return failed
        return web.json_response({"status": "ok", "node": self.name})

    async def get_fault(self, request: web.Request) -> web.Response:
        return web.json_response({"node": self.name, "mode": self.fault.mode, "delay": self.fault.delay,
                                  "healthz": self.fault.healthz, "answers": dict(self.answers),
                                  "rendering": self.rendering, "renders": dict(self.renders)})

    async def put_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not valid JSON"}, status=400)
        try:
            self.fault = parse_fault(body, self.base_delay)
        except FaultError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return await self.get_fault(request)


def make_app(name: str, base_delay: float = 0.0) -> web.Application:
    node = FaultNode(name, base_delay)
    app = web.Application()
    app.router.add_get(CONTROL_PATH, node.get_fault)
    app.router.add_put(CONTROL_PATH, node.put_fault)
    app.router.add_get("/healthz", node.healthz)
    app.router.add_get("/{tail:.*}", node.image)
    return app


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds >= 0")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_node", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks one (default 0)")
    parser.add_argument("--name", default="fault-node", help="name put in every answer (default fault-node)")
    parser.add_argument("--delay", type=_seconds, default=0.0,
                        help="seconds every answer waits in mode ok (default 0)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(args.name, args.delay), access_log=None, handle_signals=False,
                           shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, reuse_address=True)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"fault node listening on http://{args.host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(_serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
