"""Large routing tables are built in a child process while the worker's loop keeps running.

Real child processes (spawned, as in production) and a real ``Worker``, whose context is
made here instead of by ``run()`` (no listener, no source task). No duration is
asserted (CI failed once on a 107 ms stall of the shared machine): the tests check the
order of events, and ``loadtest.ring_rebuild`` measures how long the loop may stop.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from balancer.accesslog import AccessLog
from balancer.config import load_config
from balancer.front import FrontContext, FrontLimits
from balancer.health import HealthTable
from balancer.ring import build_ring
from balancer.ringbuild import RingBuilder
from balancer.routing import RoutingTable
from balancer.upstream import UpstreamPool
from balancer.worker import Worker
from discovery.static import StaticSource
from pixring.membership import Member, Membership


def fleet(size: int, *, prefix: str = "render", leave_out: int | None = None) -> Membership:
    return Membership.of(
        Member(f"{prefix}-{i:04d}", f"10.0.{i // 250}.{i % 250 + 1}", 8080)
        for i in range(size) if i != leave_out
    )


def worker_without_sockets(state_dir: Path) -> Worker:
    loop = asyncio.get_running_loop()
    config = load_config(environ={}, flags={})
    worker = Worker(config, StaticSource(fleet(0)), index=0, state_dir=state_dir)
    worker.health = HealthTable(config.health_policy(), time.monotonic())
    worker.ctx = FrontContext(
        loop=loop,
        normalize=lambda target: None,  # type: ignore[arg-type,return-value]  # no request is served
        pool=UpstreamPool(loop, connect_timeout=1.0, read_timeout=1.0, max_idle=8, idle_timeout=30.0),
        stats=worker.stats,
        access_log=AccessLog("off"),
        limits=FrontLimits(max_request_line=8192, max_header_bytes=16384, header_timeout=10.0, idle_timeout=60.0),
        node_header="X-Pixring-Node",
        via="pixring",
        health=worker.health,
    )
    return worker


class Ticker:
    """Wakes every millisecond; counts its wake-ups and keeps the longest gap between them."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self.ticks = 0
        self._last = time.perf_counter()

    def reset(self) -> None:
        self.max_gap = 0.0
        self.ticks = 0
        self._last = time.perf_counter()

    async def run(self) -> None:
        self.reset()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.ticks += 1
            self.max_gap = max(self.max_gap, now - self._last)
            self._last = now


class Applied(list):
    def __call__(self, table: RoutingTable) -> None:
        self.append(table)


def state_of(worker: Worker) -> dict:
    return json.loads((worker.state_dir / f"worker-{worker.index}.json").read_bytes())


async def test_a_large_publish_keeps_the_loop_ticking_and_the_state_shows_the_table_in_use(tmp_path):
    worker = worker_without_sockets(tmp_path)
    worker.publish(fleet(10))  # the first table is built inline
    assert len(worker.ctx.table.members) == 10 and state_of(worker)["ring"]["members"] == 10
    ticker = Ticker()
    ticking = asyncio.create_task(ticker.run())
    try:
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        build_ring(fleet(1000).weights())  # what publish used to do on the loop
        inline = time.perf_counter() - started

        large = fleet(1000, leave_out=7)
        await asyncio.sleep(0.02)
        ticker.reset()
        worker.publish(large)
        # publish returned before the table exists: neither the context nor the state show it
        assert len(worker.ctx.table.members) == 10 and state_of(worker)["ring"]["members"] == 10
        await worker.ring_builder.wait_idle()
        ticks_during_build = ticker.ticks
        await asyncio.sleep(0.02)
        gap = ticker.max_gap
    finally:
        ticking.cancel()
        worker.ring_builder.close()
    # How long the loop may stop is the benchmark's to measure (loadtest.ring_rebuild);
    # here, that it ran while the table was being built: an inline build gives it no turn.
    print(f"\ninline build of 1,000 members: {inline * 1e3:.1f} ms; while publishing 1,000 members off"
          f" the loop, it woke {ticks_during_build} times, its longest gap {gap * 1e3:.1f} ms")
    table = worker.ctx.table
    assert table.membership is large and table.ring.version == build_ring(large.weights()).version
    assert worker.ring_builder.built_off_loop == 1 and worker.ring_builder.fell_back == 0
    state = state_of(worker)
    assert state["ring"]["version"] == table.ring.version and state["ring"]["members"] == 999
    assert len(state["membership"]["members"]) == 999 and state["membership"]["updates"] == 2
    assert ticks_during_build >= 5, f"the loop woke {ticks_during_build} times during the build"


async def test_memberships_arriving_during_a_build_are_coalesced_and_never_go_back():
    applied = Applied()
    builder = RingBuilder(applied, inline_max_points=40 * 100)  # above 40 members: a child builds
    try:
        first = fleet(5, prefix="first")
        builder.submit(first)
        l1, l2, l3, l4 = (fleet(50 + i, prefix=f"l{i + 1}") for i in range(4))
        builder.submit(l1)
        while builder.building is not l1:
            await asyncio.sleep(0)
        builder.submit(l2)
        builder.submit(l3)
        builder.submit(l4)
        await builder.wait_idle()
        assert [t.membership for t in applied] == [first, l1, l4]
        assert [t.ring.version for t in applied[1:]] == [build_ring(m.weights()).version for m in (l1, l4)]
        assert (builder.built_off_loop, builder.coalesced, builder.dropped) == (2, 2, 0)

        # A small membership arriving during a large build is newer: it is swapped in at
        # once, and the large table that ends after it is dropped.
        large, small = fleet(60, prefix="large"), fleet(7, prefix="small")
        builder.submit(large)
        while builder.building is not large:
            await asyncio.sleep(0)
        builder.submit(small)
        assert applied[-1].membership is small
        await builder.wait_idle()
        assert applied[-1].membership is small and builder.dropped == 1 and builder.built_off_loop == 3
        assert all(t.membership is not large for t in applied)
    finally:
        builder.close()


def refuse_to_start() -> None:
    raise RuntimeError("this child refuses to start (on purpose, in a test)")


async def test_a_child_that_cannot_build_leaves_the_build_to_the_loop():
    applied = Applied()
    builder = RingBuilder(applied, inline_max_points=0, initializer=refuse_to_start)
    try:
        builder.submit(fleet(3))
        wanted = fleet(20, prefix="wanted")
        builder.submit(wanted)
        await builder.wait_idle()
        assert [len(t.membership) for t in applied] == [3, 20] and applied[-1].membership is wanted
        assert applied[-1].ring.version == build_ring(wanted.weights()).version
        assert builder.fell_back == 1 and builder.built_off_loop == 0
    finally:
        builder.close()
