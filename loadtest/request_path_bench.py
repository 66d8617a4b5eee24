"""The Python cost of one proxied request, without sockets: ``python -m loadtest.request_path_bench``.

``make bench`` measures the whole proxy, kernel included. This isolates what pixring's
own code costs per request: a real ``ClientConnection`` and real pooled
``UpstreamConnection``s on a real event loop, but with transports that drop what is
written, so each iteration is: parse a request, normalize, pick, build the upstream
head, parse a 2 KB response, forward it, log and count. ``--profile`` prints where the
time goes (cProfile inflates every call, so read it for proportions only).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import uvloop

from balancer.accesslog import AccessLog
from balancer.coalesce import CoalescePolicy
from balancer.compile import describe
from balancer.front import ClientConnection, FrontContext, FrontLimits, RetrySettings
from balancer.health import HealthPolicy, HealthTable
from balancer.hotkeys import HotKeyPolicy, HotKeys
from balancer.normalize import make_normalizer
from balancer.picker import PickPolicy
from balancer.retry import RetryBudget, RetryPolicy
from balancer.routing import RoutingTable
from balancer.stats import WorkerStats
from balancer.upstream import UpstreamConnection, UpstreamPool
from loadtest.transports import NullTransport
from pixring.membership import Member, Membership

BODY = b"x" * 2048
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 09:00:00 GMT\r\n"
    b"Content-Type: image/jpeg\r\nContent-Length: 2048\r\nConnection: keep-alive\r\n\r\n" + BODY
)
URLS = 10_000


async def run(requests: int, access_log: str) -> float:
    loop = asyncio.get_running_loop()
    pool = UpstreamPool(loop, connect_timeout=1.0, read_timeout=30.0, max_idle=64, idle_timeout=30.0)
    ctx = FrontContext(
        loop=loop,
        normalize=make_normalizer("imgix", cache_size=0),
        route_cache_size=16384,
        pool=pool,
        stats=WorkerStats(),
        access_log=AccessLog(access_log, loop),
        limits=FrontLimits(max_request_line=8192, max_header_bytes=16384, header_timeout=10.0, idle_timeout=60.0),
        node_header="X-Pixring-Node",
        via="pixring",
        health=HealthTable(HealthPolicy(), time.monotonic()),
        budget=RetryBudget(RetryPolicy()),
        pick_policy=PickPolicy(),
        retry_policy=RetryPolicy(),
        retry=RetrySettings(try_timeout=15.0, request_timeout=30.0, retry_statuses=frozenset({502, 503, 504}),
                            hedge_delay=0.0),
        coalesce=CoalescePolicy(),  # on, as in production: every GET may lead a flight
        hot_keys=HotKeys(HotKeyPolicy()),  # on, as in production: every request is counted
    )
    members = [Member(f"b{i}", "127.0.0.1", 9000 + i) for i in range(3)]
    ctx.set_table(RoutingTable.build(Membership.of(members)))
    for member in members:
        conn = UpstreamConnection(pool, member)
        conn.connection_made(NullTransport())  # type: ignore[arg-type]
        pool.release(conn)
    client = ClientConnection(ctx)
    client.connection_made(NullTransport())  # type: ignore[arg-type]
    targets = [f"GET /img/{i}.jpg?w=400&h=300 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode() for i in range(URLS)]

    def one(target: bytes) -> None:
        client.data_received(target)
        pool.outbox.flush()  # the end of a turn: the head goes to the node
        client.ex_live[0].conn.data_received(RESPONSE)  # type: ignore[union-attr]
        pool.outbox.flush()  # and the answer to the client

    for target in targets:  # warm the normalization cache, as a running balancer has
        one(target)
    started = time.perf_counter()
    for i in range(requests):
        one(targets[i % URLS])
    return (time.perf_counter() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000, help="requests per measurement (default 100000)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the path")
    args = parser.parse_args()
    print(f"request path: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        log = str(Path(tmp) / "access.log")
        for label, destination in (("access log to a file", log), ("access log off", "off")):
            seconds = uvloop.run(run(args.requests, destination))
            print(f"{label:>22}: {seconds * 1e6:6.2f} µs of Python per request")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(uvloop.run, run(args.requests // 2, log))
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
