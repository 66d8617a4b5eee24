"""Active health probes: a GET on every member, on a jittered interval, per worker.

Independent of Consul's own checks (a member must pass both to route): Consul
tells whether a node is registered and its agent can reach it; the probe tells
whether *this* balancer can. Each probe opens a fresh connection (as HAProxy's
checks do), so a node that stopped accepting is noticed even while pooled
connections to it linger. Results go to the health table (rise/fall thresholds
live there), each with what the probe got in words, for the log and ``/status``.

What counts as alive: by default any HTTP answer below 500. The probe asks whether the
node answers HTTP on its serving port, and pixring's backends are opaque: thumbor
answers ``/healthz`` with a 400, a plain file server with a 404, and both are serving.
A 5xx, a refused or reset connection and no answer within the timeout are failures.
``expect`` narrows "alive" to listed statuses, for backends with a real health path
(HAProxy's ``http-check expect status``; Envoy's ``expected_statuses``).

New members are probed as soon as they appear (``wake``), not at the next round: until
its first probe answers a member is pending (``balancer.health``), and the worker does
not listen before the first membership's probes have answered.

Jitter (each round sleeps the interval times 0.9-1.1, and starts at a random
offset) keeps the workers of one balancer, and many balancers, from probing
every node in lock-step.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Callable

import aiohttp

from balancer.health import HealthEvent, HealthTable
from balancer.probe_expect import describe_statuses, is_alive
from balancer.routing import RoutingTable

__all__ = ["Prober"]


def _error_words(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        return f"cannot connect: {os.strerror(code) if code else exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed without an answer"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Prober:
    def __init__(
        self,
        health: HealthTable,
        table: Callable[[], RoutingTable],
        *,
        path: str,
        interval: float,
        timeout: float,
        on_events: Callable[[list[HealthEvent]], None],
        expect: frozenset[int] = frozenset(),
        rand: random.Random | None = None,
    ) -> None:
        self.health = health
        self.table = table
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.on_events = on_events
        self.expect = expect
        self.rand = rand or random.Random()
        self.rounds = 0
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Probe the pending members now (a membership brought new ones)."""
        self._woken.set()

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers={"User-Agent": "pixring-probe"}) as session:
            await self._pause(self.rand.uniform(0, min(self.interval, 1.0)))
            while True:
                if self._woken.is_set():
                    self._woken.clear()
                    await self._round(session, self.health.pending)
                else:
                    await self._round(session, self.health.probing())
                    self.rounds += 1
                await self._pause(self.interval * self.rand.uniform(0.9, 1.1))

    async def _pause(self, seconds: float) -> None:
        """Sleep, or less when woken."""
        if self._woken.is_set():
            return
        try:
            await asyncio.wait_for(self._woken.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _round(self, session: aiohttp.ClientSession, members: frozenset[str]) -> None:
        table = self.table()
        targets = [table.members[m] for m in sorted(members) if m in table.members]
        results = await asyncio.gather(*(self._probe(session, m.address) for m in targets))
        now = time.monotonic()
        # Good news first: a round that finds some members up and some down would
        # otherwise pass through a moment of too few known up (a panic_on, then off).
        answered = sorted(zip(targets, results), key=lambda pair: not pair[1][0])
        for member, (ok, detail) in answered:
            events = self.health.probe(member.id, ok, now, detail)
            if events:
                self.on_events(events)

    async def _probe(self, session: aiohttp.ClientSession, address: str) -> tuple[bool, str]:
        request = f"GET {self.path}"
        try:
            # The status is the verdict; the body is left unread (the connection is not
            # reused), so a probe path that serves an image costs nothing.
            async with session.get(f"http://{address}{self.path}", allow_redirects=False) as response:
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return False, f"{request}: {_error_words(exc, self.timeout)}"
        alive = is_alive(status, self.expect)
        wanted = "" if alive or not self.expect else " (expected " + describe_statuses(self.expect) + ")"
        return alive, f"{request} answered {status}{wanted}"

