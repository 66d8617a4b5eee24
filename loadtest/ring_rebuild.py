"""How long a membership change stops a balancer worker's event loop.

Run: ``.venv/bin/python -m loadtest.ring_rebuild [--members 1000] [--rounds 5] [--json]``

Rules of this module
--------------------
* A ticker coroutine sleeps 1 ms at a time and records the longest gap between its
  wake-ups while a worker (``balancer.worker.Worker``: its own ``publish``, swap and state
  file, on uvloop as in production) takes a membership of ``--members`` members.
* Two ways of building: ``inline`` builds every table on the loop (how ``publish`` worked
  before ``balancer.ringbuild``), ``off-loop`` is the worker's ring builder. Its first
  large build starts the child process (``cold``), the next ones reuse it (``warm``).
* Each round publishes a different membership (one member left out in turn), so every
  build is a real one; rounds are apart by a quiet pause.
* ``publish->swap`` is from the ``publish`` call to the table being in use; ``swap`` is
  the time the swap itself holds the loop (``set_table``, closing connections of changed
  members, writing the state file). ``idle`` is the ticker's max gap with nothing to do:
  the floor of this measure on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from balancer.accesslog import AccessLog
from balancer.config import load_config
from balancer.front import FrontContext, FrontLimits
from balancer.health import HealthTable
from balancer.normalize import make_normalizer
from balancer.ring import MAX_POINTS
from balancer.ringbuild import INLINE_MAX_POINTS, RingBuilder
from balancer.routing import RoutingTable
from balancer.upstream import UpstreamPool
from balancer.worker import Worker
from discovery.static import StaticSource
from pixring.membership import Member, Membership
from pixring.process import die_with_parent

__all__ = ["Ticker", "fleet", "measure", "worker_without_sockets"]

QUIET_S = 0.1  # between rounds, and after a swap to catch what follows it


class Ticker:
    """Sleeps ``interval`` at a time and keeps the longest gap between wake-ups."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.max_gap = 0.0
        self._last = time.perf_counter()

    def reset(self) -> None:
        self.max_gap = 0.0
        self._last = time.perf_counter()

    async def run(self) -> None:
        self.reset()
        while True:
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - self._last)
            self._last = now


def fleet(size: int, *, leave_out: int | None = None) -> Membership:
    return Membership.of(
        Member(f"render-{i:04d}", f"10.0.{i // 250}.{i % 250 + 1}", 8080)
        for i in range(size) if i != leave_out
    )


def worker_without_sockets(state_dir: Path) -> Worker:
    """A worker whose context is made here, not by ``run()``: no listener, no source task."""
    loop = asyncio.get_running_loop()
    config = load_config(environ={}, flags={})
    worker = Worker(config, StaticSource(fleet(0)), index=0, state_dir=state_dir)
    worker.health = HealthTable(config.health_policy(), time.monotonic())
    worker.ctx = FrontContext(
        loop=loop,
        normalize=make_normalizer(config.profile),
        pool=UpstreamPool(loop, connect_timeout=1.0, read_timeout=1.0, max_idle=8, idle_timeout=30.0),
        stats=worker.stats,
        access_log=AccessLog("off"),
        limits=FrontLimits(max_request_line=8192, max_header_bytes=16384, header_timeout=10.0, idle_timeout=60.0),
        node_header=config.node_header,
        via=config.via,
        health=worker.health,
    )
    return worker


async def measure(members: int, rounds: int, mode: str, state_dir: Path) -> list[dict]:
    """One row per round: the ticker's max gap, publish->swap and the swap's own time."""
    worker = worker_without_sockets(state_dir)
    swapped = asyncio.Event()
    swap_times: list[tuple[float, float]] = []

    def timed_swap(table: RoutingTable) -> None:
        started = time.perf_counter()
        worker._swap_table(table)
        swap_times.append((started, time.perf_counter()))
        swapped.set()

    worker.ring_builder = RingBuilder(timed_swap, initializer=die_with_parent,
                                      inline_max_points=MAX_POINTS if mode == "inline" else INLINE_MAX_POINTS)
    worker.publish(fleet(10))  # the first table, inline in both modes
    ticker = Ticker()
    ticking = asyncio.get_running_loop().create_task(ticker.run())
    rows = []
    try:
        await asyncio.sleep(QUIET_S)
        ticker.reset()
        await asyncio.sleep(QUIET_S)
        idle = ticker.max_gap
        for round_ in range(rounds):
            membership = fleet(members, leave_out=round_)
            await asyncio.sleep(QUIET_S)
            swapped.clear()
            ticker.reset()
            published = time.perf_counter()
            worker.publish(membership)
            await swapped.wait()
            await worker.ring_builder.wait_idle()
            await asyncio.sleep(QUIET_S)
            started, ended = swap_times[-1]
            assert worker.ctx is not None and worker.ctx.table.membership is membership
            label = mode if mode == "inline" else ("off-loop cold" if round_ == 0 else "off-loop warm")
            rows.append({"mode": label, "round": round_, "max_gap_ms": ticker.max_gap * 1e3,
                         "publish_to_swap_ms": (ended - published) * 1e3, "swap_ms": (ended - started) * 1e3,
                         "idle_gap_ms": idle * 1e3})
    finally:
        ticking.cancel()
        worker.ring_builder.close()
    return rows


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for label in dict.fromkeys(r["mode"] for r in rows):
        mine = [r for r in rows if r["mode"] == label]
        out.append({
            "mode": label,
            "rounds": len(mine),
            "max_gap_ms_median": statistics.median(r["max_gap_ms"] for r in mine),
            "max_gap_ms_max": max(r["max_gap_ms"] for r in mine),
            "publish_to_swap_ms_median": statistics.median(r["publish_to_swap_ms"] for r in mine),
            "swap_ms_median": statistics.median(r["swap_ms"] for r in mine),
            "idle_gap_ms": mine[0]["idle_gap_ms"],
        })
    return out


async def run_all(members: int, rounds: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="pixring-ring-rebuild-") as tmp:
        rows = await measure(members, rounds, "inline", Path(tmp))
        rows += await measure(members, rounds + 1, "off-loop", Path(tmp))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    if args.members < 1 or args.rounds < 1:
        parser.error("--members and --rounds must be at least 1")
    import uvloop

    rows = uvloop.run(run_all(args.members, args.rounds))
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary(rows)}, indent=2))
        return 0
    print(f"ring rebuild, {args.members} members, 1 ms ticker (idle max gap {rows[0]['idle_gap_ms']:.1f} ms)")
    print(f"{'mode':<14} {'round':>5} {'max gap ms':>11} {'publish->swap ms':>17} {'swap ms':>8}")
    for r in rows:
        print(f"{r['mode']:<14} {r['round']:>5} {r['max_gap_ms']:>11.1f} {r['publish_to_swap_ms']:>17.1f} {r['swap_ms']:>8.1f}")
    print()
    for s in summary(rows):
        print(f"{s['mode']:<14} median max gap {s['max_gap_ms_median']:.1f} ms (worst {s['max_gap_ms_max']:.1f}),"
              f" publish->swap median {s['publish_to_swap_ms_median']:.1f} ms, swap {s['swap_ms_median']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
