"""Active health probes: a GET on every member, on a jittered interval, per worker.

Independent of Consul's own checks (a member must pass both to route): Consul
tells whether a node is registered and its agent can reach it; the probe tells
whether *this* balancer can. Each probe opens a fresh connection (as HAProxy's
checks do), so a node that stopped accepting is noticed even while pooled
connections to it linger. Results go to the health table (rise/fall thresholds
live there); 2xx and 3xx answers are healthy, anything else or no answer within
the timeout is not.

Jitter (each round sleeps the interval times 0.9-1.1, and starts at a random
offset) keeps the workers of one balancer, and many balancers, from probing
every node in lock-step.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Callable

import aiohttp

from balancer.health import HealthEvent, HealthTable
from balancer.routing import RoutingTable

__all__ = ["Prober"]


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
        rand: random.Random | None = None,
    ) -> None:
        self.health = health
        self.table = table
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.on_events = on_events
        self.rand = rand or random.Random()
        self.rounds = 0

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers={"User-Agent": "pixring-probe"}) as session:
            await asyncio.sleep(self.rand.uniform(0, min(self.interval, 1.0)))
            while True:
                table = self.table()
                targets = [table.members[m] for m in sorted(self.health.probing()) if m in table.members]
                results = await asyncio.gather(*(self._probe(session, m.address) for m in targets))
                now = time.monotonic()
                for member, ok in zip(targets, results):
                    events = self.health.probe(member.id, ok, now)
                    if events:
                        self.on_events(events)
                self.rounds += 1
                await asyncio.sleep(self.interval * self.rand.uniform(0.9, 1.1))

    async def _probe(self, session: aiohttp.ClientSession, address: str) -> bool:
        try:
            async with session.get(f"http://{address}{self.path}", allow_redirects=False) as response:
                await response.read()
                return 200 <= response.status < 400
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False
