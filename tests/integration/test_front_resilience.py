"""Retries, hedging, the retry budget and passive ejection in the front, over real sockets.

Each node is a real aiohttp server whose behaviour the test sets (healthy, 503,
slow, or not listening at all); keys are chosen so that the node under test is the
first choice, by asking the same pure cores the front asks.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from aiohttp import web

from balancer.accesslog import AccessLog
from balancer.front import ClientConnection, FrontContext, FrontLimits, RetrySettings
from balancer.health import HealthPolicy, HealthTable
from balancer.normalize import make_normalizer
from balancer.picker import PickPolicy, candidates
from balancer.retry import RetryBudget, RetryPolicy
from balancer.ring import key_hash
from balancer.routing import RoutingTable
from balancer.stats import WorkerStats
from balancer.upstream import UpstreamPool
from pixring.membership import Member, Membership
from tests.integration.test_front import read_responses


class Node:
    """A render node whose behaviour a test can switch: ok, 503, shed (503 with Retry-After), 500, slow."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mode = "ok"
        self.delay = 0.0
        self.hits = 0

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.hits += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.mode == "503":
                return web.Response(status=503, text="busy")
            if self.mode == "shed":
                return web.Response(status=503, text=f"{self.name} is full", headers={"Retry-After": "7"})
            if self.mode == "500":
                return web.Response(status=500, text="boom")
            return web.json_response({"node": self.name, "path": request.path_qs})

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        return app


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def make_front(members, *, health_policy=None, retry_policy=None, max_attempts=3, hedge_delay=0.0,
                     retry_statuses=(502, 503, 504), request_timeout=10.0, try_timeout=5.0):
    loop = asyncio.get_running_loop()
    retry_policy = retry_policy or RetryPolicy(backoff_base_s=0.001, backoff_max_s=0.002)
    ctx = FrontContext(
        loop=loop,
        normalize=make_normalizer("generic"),
        pool=UpstreamPool(loop, connect_timeout=1.0, read_timeout=5.0, max_idle=8, idle_timeout=30.0),
        stats=WorkerStats(),
        access_log=AccessLog("off"),
        limits=FrontLimits(max_request_line=8192, max_header_bytes=16384, header_timeout=10.0, idle_timeout=60.0),
        node_header="X-Pixring-Node",
        via="pixring",
        health=HealthTable(health_policy or HealthPolicy(slow_start_s=0), time.monotonic()),
        budget=RetryBudget(retry_policy),
        pick_policy=PickPolicy(balance_factor=0, max_attempts=max_attempts),
        retry_policy=retry_policy,
        retry=RetrySettings(try_timeout=try_timeout, request_timeout=request_timeout,
                            retry_statuses=frozenset(retry_statuses), hedge_delay=hedge_delay),
    )
    ctx.set_table(RoutingTable.build(Membership.of(members)))
    ctx.start()
    ctx.pool.start()
    server = await loop.create_server(lambda: ClientConnection(ctx), "127.0.0.1", 0)
    return ctx, server.sockets[0].getsockname()[1]


def key_owned_by(ctx: FrontContext, first: str, second: str | None = None, start: int = 0) -> str:
    """A path whose candidate list starts with ``first`` (then ``second`` when given)."""
    for i in range(start, start + 100_000):
        path = f"/img/{i}.jpg"
        cands = candidates(ctx.table.ring, key_hash(path), ctx.health, {}, 0.0, ctx.pick_policy)
        if cands[0] == first and (second is None or (len(cands) > 1 and cands[1] == second)):
            return path
    raise AssertionError("no such key")


async def get(port: int, path: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    (response,) = await read_responses(reader, 1, timeout=10)
    writer.close()
    return response


@pytest.fixture
async def nodes(aiohttp_server):
    made = {}
    for name in ("a", "b", "c"):
        node = Node(name)
        server = await aiohttp_server(node.app())
        made[name] = (node, Member(name, "127.0.0.1", server.port))
    return made


async def test_connect_failure_retries_on_the_next_member_of_the_key(nodes):
    _, b = nodes["b"]
    ctx, port = await make_front([Member("dead", "127.0.0.1", dead_port()), b])
    path = key_owned_by(ctx, "dead", "b")
    response = await get(port, path)
    assert response.status == 200
    assert json.loads(response.body)["node"] == "b"
    assert response.headers["x-pixring-node"] == "b"
    assert ctx.stats.retries == 1
    assert ctx.stats.upstream_errors[("dead", "connect")] == 1


async def test_a_503_moves_the_request_on_and_keeps_cache_locality(nodes):
    (node_a, a), (_, b), (_, c) = nodes["a"], nodes["b"], nodes["c"]
    ctx, port = await make_front([a, b, c])
    node_a.mode = "503"
    path = key_owned_by(ctx, "a")
    second = candidates(ctx.table.ring, key_hash(path), ctx.health, {}, 0.0, ctx.pick_policy)[1]
    response = await get(port, path)
    assert response.status == 200
    assert json.loads(response.body)["node"] == second  # the key's own next member, every time
    assert node_a.hits == 1


async def test_500_and_404_are_not_retried_unless_configured(nodes):
    (node_a, a), (node_b, b) = nodes["a"], nodes["b"]
    node_a.mode = "500"
    ctx, port = await make_front([a, b])
    path = key_owned_by(ctx, "a")
    assert (await get(port, path)).status == 500
    assert node_b.hits == 0

    ctx2, port2 = await make_front([a, b], retry_statuses=(500, 502, 503, 504))
    path2 = key_owned_by(ctx2, "a")
    assert (await get(port2, path2)).status == 200


async def test_every_member_failing_is_a_fast_502_within_the_attempt_limit(nodes):
    members = [Member(f"d{i}", "127.0.0.1", dead_port()) for i in range(5)]
    ctx, port = await make_front(members, max_attempts=3)
    response = await get(port, "/img/1.jpg")
    assert response.status == 502
    assert sum(m.attempts for m in ctx.stats.members.values()) == 3  # max_attempts, not every member


async def test_a_spent_retry_budget_makes_the_retry_wait_for_a_slot_not_fail(nodes):
    (node_a, a), (_, b) = nodes["a"], nodes["b"]
    node_a.mode = "503"  # failing after the request reached it: a retry is a second execution
    ctx, port = await make_front(
        [a, b],
        retry_policy=RetryPolicy(budget_ratio=0.0, min_concurrent=1, backoff_base_s=0.001, backoff_max_s=0.01),
        request_timeout=3.0,
    )
    path = key_owned_by(ctx, "a", "b")
    assert ctx.budget.try_retry()  # another request holds the only retry slot
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, ctx.budget.retry_finished)  # ... and releases it a little later
    started = loop.time()
    response = await get(port, path)
    waited = loop.time() - started
    print(f"retry waited {waited:.2f}s for a budget slot")
    assert response.status == 200 and json.loads(response.body)["node"] == "b"
    assert ctx.stats.retries_refused == 1 and ctx.stats.retries == 1
    assert waited >= 0.25  # it really waited for the slot


async def test_a_retry_budget_that_never_frees_ends_at_the_deadline(nodes):
    (node_a, a), (_, b) = nodes["a"], nodes["b"]
    node_a.mode = "500"
    ctx, port = await make_front(
        [a, b],
        retry_policy=RetryPolicy(budget_ratio=0.0, min_concurrent=0, backoff_base_s=0.001, backoff_max_s=0.01),
        retry_statuses=(500, 502, 503, 504),
        request_timeout=0.5,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await get(port, key_owned_by(ctx, "a", "b"))
    elapsed = loop.time() - started
    print(f"answered after {elapsed:.2f}s")
    assert response.status == 500
    assert ctx.stats.retries == 0 and ctx.stats.member("b").attempts == 0  # the budget held: no retry reached b
    assert 0.4 <= elapsed < 3.0


async def test_a_refused_connection_moves_on_without_the_retry_budget(nodes):
    """The dead node never saw the request: its next member gets it even with the budget
    spent, as in the seconds after a renderer dies, when its refusals would otherwise take
    every slot and the live nodes' shed answers would reach clients as 503s."""
    _, b = nodes["b"]
    ctx, port = await make_front(
        [Member("dead", "127.0.0.1", dead_port()), b],
        retry_policy=RetryPolicy(budget_ratio=0.0, min_concurrent=0, backoff_base_s=0.001, backoff_max_s=0.01),
    )
    response = await get(port, key_owned_by(ctx, "dead", "b"))
    assert response.status == 200 and json.loads(response.body)["node"] == "b"
    assert ctx.stats.retries == 1 and ctx.stats.retries_refused == 0 and ctx.budget.active_retries == 0


async def test_the_request_deadline_bounds_slow_members(nodes):
    (node_a, a), (node_b, b) = nodes["a"], nodes["b"]
    node_a.delay = node_b.delay = 2.0
    ctx, port = await make_front([a, b], try_timeout=0.3, request_timeout=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await get(port, "/img/7.jpg")
    elapsed = loop.time() - started
    print(f"deadline answer after {elapsed:.2f}s")
    assert response.status == 504
    assert elapsed < 1.5  # the 0.5 s deadline, generously


async def test_hedging_takes_the_first_answer(nodes):
    (node_a, a), (_, b) = nodes["a"], nodes["b"]
    node_a.delay = 1.5
    ctx, port = await make_front([a, b], hedge_delay=0.1)
    path = key_owned_by(ctx, "a", "b")
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await get(port, path)
    elapsed = loop.time() - started
    print(f"hedged answer after {elapsed:.2f}s")
    assert response.status == 200 and json.loads(response.body)["node"] == "b"
    assert ctx.stats.hedges == 1
    assert elapsed < 1.0


async def test_consecutive_failures_eject_a_member_and_its_keys_move_without_trying_it(nodes):
    (_, b) = nodes["b"]
    dead = Member("dead", "127.0.0.1", dead_port())
    policy = HealthPolicy(consecutive_errors=3, base_ejection_s=60, slow_start_s=0, max_ejected_fraction=0.5)
    ctx, port = await make_front([dead, b, nodes["c"][1]], health_policy=policy)
    path = key_owned_by(ctx, "dead")
    for _ in range(3):
        assert (await get(port, path)).status == 200  # retried on the next member each time
    assert "dead" not in ctx.health.routable
    attempts_before = ctx.stats.member("dead").attempts
    assert (await get(port, path)).status == 200
    assert ctx.stats.member("dead").attempts == attempts_before  # ejected: not even tried


# -- overload is not failure: a 503 with Retry-After -------------------------------------


async def test_a_shedding_node_is_never_ejected_and_its_keys_stay(nodes):
    (node_a, a), (_, b), (_, c) = nodes["a"], nodes["b"], nodes["c"]
    policy = HealthPolicy(consecutive_errors=2, base_ejection_s=60, slow_start_s=0)
    ctx, port = await make_front([a, b, c], health_policy=policy)
    node_a.mode = "shed"
    path = key_owned_by(ctx, "a")
    second = candidates(ctx.table.ring, key_hash(path), ctx.health, {}, 0.0, ctx.pick_policy)[1]
    for _ in range(6):  # three times the run of errors that would eject it
        response = await get(port, path)
        assert response.status == 200 and json.loads(response.body)["node"] == second
    assert "a" in ctx.health.routable and ctx.health.state_of("a") == "up"
    assert ctx.stats.member("a").shed == 6 and node_a.hits == 6, "still the key's first choice every time"
    assert not any(kind == "http_503" for (_, kind) in ctx.stats.upstream_errors), "a shed is not an error"
    node_a.mode = "ok"
    assert json.loads((await get(port, path)).body)["node"] == "a", "its keys never moved"


async def test_a_503_without_retry_after_is_still_a_failure_that_ejects(nodes):
    (node_a, a), (_, b), (_, c) = nodes["a"], nodes["b"], nodes["c"]
    policy = HealthPolicy(consecutive_errors=2, base_ejection_s=60, slow_start_s=0)
    ctx, port = await make_front([a, b, c], health_policy=policy)
    node_a.mode = "503"
    path = key_owned_by(ctx, "a")
    for _ in range(2):
        assert (await get(port, path)).status == 200
    assert ctx.health.state_of("a") == "ejected"


async def test_when_every_candidate_sheds_the_client_gets_the_503_and_retry_after_at_once(nodes):
    made = [nodes[name] for name in ("a", "b", "c")]
    for node, _ in made:
        node.mode = "shed"
    ctx, port = await make_front([member for _, member in made], max_attempts=3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await get(port, "/img/1.jpg")
    elapsed = loop.time() - started
    print(f"three shedding nodes answered in {elapsed * 1000:.1f} ms")
    assert response.status == 503 and response.headers["retry-after"] == "7"
    assert response.body.endswith(b"is full"), "the node's own answer, passed on"
    assert sum(node.hits for node, _ in made) == 3 and ctx.stats.retries == 2
    assert all(ctx.health.state_of(name) == "up" for name in ("a", "b", "c"))
    assert elapsed < 1.0, "no backoff and no wait for the budget before answering a shed"


async def test_shed_retries_take_the_budget_and_never_wait_for_it(nodes):
    (node_a, a), (node_b, b) = nodes["a"], nodes["b"]
    node_a.mode = "shed"
    ctx, port = await make_front(
        [a, b], retry_policy=RetryPolicy(budget_ratio=0.0, min_concurrent=0, backoff_base_s=0.001, backoff_max_s=0.01))
    path = key_owned_by(ctx, "a", "b")
    response = await get(port, path)
    assert response.status == 503 and response.headers["retry-after"] == "7"
    assert node_b.hits == 0 and ctx.stats.retries_refused == 1, "the budget said no: the shed answer went out"


async def test_a_late_shed_answer_is_not_sent_to_another_node(nodes):
    """A render that hit the node's time limit answers 503 + Retry-After late: the next node
    would spend as long on it, so the client gets it (an early one moves on: see above)."""
    (a_node, a), (b_node, b) = nodes["a"], nodes["b"]
    ctx, port = await make_front([a, b])
    ctx.retry = RetrySettings(try_timeout=5.0, request_timeout=10.0, retry_statuses=frozenset({502, 503, 504}),
                              hedge_delay=0.0, shed_retry_within=0.1)
    a_node.mode, a_node.delay = "shed", 0.3
    path = key_owned_by(ctx, "a", "b")
    response = await get(port, path)
    assert response.status == 503 and response.headers["retry-after"] == "7"
    assert b_node.hits == 0 and ctx.stats.retries == 0
