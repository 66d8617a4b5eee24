"""Overload is not failure: reference renderers with a small queue under a burst that overflows it.

Each renderer has one render worker and room for one waiting render, so a burst of
distinct renders overflows every queue at once and the renderers shed load with 503 +
``Retry-After``. What must hold: no member is ejected and no key moves (shedding is the
node working as designed), what reaches clients is that 503 with its ``Retry-After`` and
fewer of them than the nodes shed (some requests find room on the next node), and the
retries stay within the budget instead of storming a fleet that is already full.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from loadtest.fleet import SAMPLE, Fleet, RenderNode, placement

pytestmark = pytest.mark.e2e

WAVES = 3
WAVE_SIZE = 45  # concurrent requests, all distinct renders


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    from renderer.samples import SAMPLES, ensure_samples

    origin = tmp_path_factory.mktemp("samples")
    ensure_samples(origin, [s for s in SAMPLES if s.name.startswith("photos/small")])
    return origin


class SmallQueueRenderer(RenderNode):
    def __init__(self, name: str, origin: Path, log_dir: Path) -> None:
        super().__init__(name, origin, log_dir)
        self._argv_for_port = lambda p, base=self._argv_for_port: [*base(p), "--render-queue", "1"]
        self.argv = self._argv_for_port(0)


async def _burst(base: str) -> list[tuple[int, str | None]]:
    answers = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(url: str) -> tuple[int, str | None]:
            async with session.get(base + url) as response:
                await response.read()
                return response.status, response.headers.get("Retry-After")

        for wave in range(WAVES):
            urls = [f"/{SAMPLE}?w={200 + wave * WAVE_SIZE + i}&q={50 + wave}" for i in range(WAVE_SIZE)]
            answers += await asyncio.gather(*(one(url) for url in urls))
    return answers


def test_a_burst_past_every_queue_is_shed_not_ejected_and_retries_stay_in_budget(tmp_path, samples):
    with Fleet(tmp_path / "logs") as fleet:
        nodes = fleet.start_nodes({name: SmallQueueRenderer(name, samples, fleet.log_dir) for name in ("r1", "r2", "r3")})
        balancer = fleet.balancer(nodes, workers=1)
        keys = [f"/{SAMPLE}?w={w}" for w in range(40, 70)]
        before = placement(balancer.base, keys)
        time.sleep(1.2)  # the worker writes its state once a second: counters include the placement
        start = balancer.metrics()

        started = time.monotonic()
        answers = asyncio.run(_burst(balancer.base))
        took = time.monotonic() - started
        time.sleep(1.2)  # the worker writes its state once a second
        end = balancer.metrics()
        after = placement(balancer.base, keys)

        requests = len(answers)
        ok = sum(1 for status, _ in answers if status == 200)
        shed_to_clients = [(s, ra) for s, ra in answers if s != 200]
        attempts = end.value("pixring_upstream_attempts_total") - start.value("pixring_upstream_attempts_total")
        shed = end.value("pixring_upstream_shed_total") - start.value("pixring_upstream_shed_total")
        retries = end.value("pixring_retries_total") - start.value("pixring_retries_total")
        refused = end.value("pixring_retries_refused_total") - start.value("pixring_retries_refused_total")
        events = {kind: end.value("pixring_health_events_total", kind=kind)
                  for kind in ("ejected", "ejection_suppressed", "down")}
        print(f"{requests} requests in {WAVES} bursts of {WAVE_SIZE} in {took:.2f}s: {ok} rendered, "
              f"{len(shed_to_clients)} answered 503 to the client; the nodes shed {shed:g} answers; "
              f"{attempts:g} attempts ({attempts / requests:.2f} a request), {retries:g} retries, "
              f"{refused:g} refused by the budget; health events {events}")

        assert shed > 0, "the burst never overflowed a queue: the test shows nothing"
        assert all(status == 503 and retry_after for status, retry_after in shed_to_clients), shed_to_clients[:5]
        assert len(shed_to_clients) < shed, "some shed requests should have found room on the next node"
        assert events == {"ejected": 0, "ejection_suppressed": 0, "down": 0}
        assert end.value("pixring_upstream_errors_total") == start.value("pixring_upstream_errors_total")
        # No retry storm: the budget (20% of requests in flight, at least 3) held the
        # retries well under what max_attempts alone would allow (3 tries a request).
        assert attempts == requests + retries
        assert attempts <= 2 * requests
        assert before == after, "a key moved: a shedding node was treated as a failed one"
        assert all(balancer.routable_everywhere(name) for name in nodes)
