"""Coalescing identical requests in the front, over real sockets.

The node is a real aiohttp server that counts the requests it gets and holds its
answers until the test opens a gate, so the test knows every client's request is in
flight before any answer comes: what is measured is how many requests reached the node.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web

from balancer.coalesce import CoalescePolicy
from pixring.membership import Member
from tests.integration.test_front import read_responses
from tests.integration.test_front_resilience import dead_port, key_owned_by, make_front


class GatedNode:
    """Answers every request once ``gate`` opens; what it answers is the test's to set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self.seen: list[dict[str, str]] = []
        self.gate = asyncio.Event()
        self.status = 200
        self.headers: dict[str, str] = {}
        self.body_size = 0  # 0 = a small JSON body naming the node and the request's number
        self.arrived = asyncio.Event()

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.hits += 1
            number = self.hits
            self.seen.append(dict(request.headers))
            self.arrived.set()
            await self.gate.wait()
            if self.body_size:
                body = bytes([number % 251]) * self.body_size
            else:
                body = json.dumps({"node": self.name, "number": number, "path": request.path_qs}).encode()
            return web.Response(status=self.status, body=body, headers=self.headers,
                                content_type="application/octet-stream")

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        return app


@pytest.fixture
async def node(aiohttp_server):
    made = GatedNode("a")
    server = await aiohttp_server(made.app())
    made.member = Member("a", "127.0.0.1", server.port)
    return made


async def coalescing_front(members, policy=CoalescePolicy(), **kwargs):
    ctx, port = await make_front(members, **kwargs)
    ctx.coalesce = policy
    return ctx, port


async def send(port: int, path: str, extra: str = "", method: str = "GET"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    await writer.drain()
    return reader, writer


async def answer(reader, writer, head_only: bool = False):
    (response,) = await read_responses(reader, 1, head=head_only, timeout=10)
    writer.close()
    return response


async def until(condition, timeout: float = 5.0) -> None:
    """Wait for ``condition()`` (the front's own bookkeeping) to hold, bounded."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def waiting(ctx) -> int:
    """Requests parked behind a leader, all flights together."""
    return sum(len(conn.ex_flight.followers) for conn in ctx.connections if conn.ex_flight is not None)


async def test_identical_requests_in_flight_reach_the_node_once_and_all_get_its_answer(node):
    ctx, port = await coalescing_front([node.member])
    clients = [await send(port, "/img/fresh.jpg?w=400") for _ in range(20)]
    await until(lambda: waiting(ctx) == 19)
    node.gate.set()
    responses = [await answer(*client) for client in clients]
    assert node.hits == 1
    assert {r.status for r in responses} == {200}
    assert {r.body for r in responses} == {responses[0].body}
    assert json.loads(responses[0].body)["number"] == 1
    assert len({r.headers["x-request-id"] for r in responses}) == 20  # each its own id
    assert {r.headers["x-pixring-node"] for r in responses} == {"a"}
    assert ctx.stats.coalesced == 19 and ctx.stats.coalesce_leaders == 1
    assert not ctx.flights and ctx.flight_bytes == 0


async def test_a_different_accept_or_accept_encoding_is_another_request(node):
    ctx, port = await coalescing_front([node.member])
    path = "/img/fresh.jpg?w=400"
    clients = [
        await send(port, path, "Accept: image/webp\r\n"),
        await send(port, path, "Accept: image/webp\r\n"),
        await send(port, path, "Accept: image/avif\r\n"),
        await send(port, path, "Accept: image/webp\r\nAccept-Encoding: gzip\r\n"),
    ]
    await until(lambda: node.hits == 3 and waiting(ctx) == 1)
    node.gate.set()
    responses = [await answer(*client) for client in clients]
    assert [r.status for r in responses] == [200] * 4
    assert node.hits == 3
    assert responses[0].body == responses[1].body != responses[2].body


@pytest.mark.parametrize("extra, method", [
    ("", "HEAD"),
    ("Range: bytes=0-10\r\n", "GET"),
    ("Cookie: session=1\r\n", "GET"),
    ("Authorization: Bearer x\r\n", "GET"),
    ("If-None-Match: \"abc\"\r\n", "GET"),
    ("If-Modified-Since: Mon, 07 Dec 2026 08:00:00 GMT\r\n", "GET"),
])
async def test_requests_whose_answer_may_be_their_own_never_coalesce(node, extra, method):
    ctx, port = await coalescing_front([node.member])
    clients = [await send(port, "/img/fresh.jpg", extra, method) for _ in range(3)]
    await until(lambda: node.hits == 3)
    assert waiting(ctx) == 0
    node.gate.set()
    for client in clients:
        assert (await answer(*client, head_only=method == "HEAD")).status == 200


@pytest.mark.parametrize("status, headers", [
    (200, {"Set-Cookie": "id=1"}),
    (200, {"Cache-Control": "private, max-age=60"}),
    (200, {"Cache-Control": "no-store"}),
    (200, {"Vary": "User-Agent"}),
    (500, {}),
    (503, {"Retry-After": "1"}),
])
async def test_an_answer_that_may_not_be_shared_sends_each_follower_to_the_node(node, status, headers):
    ctx, port = await coalescing_front([node.member], max_attempts=1)
    node.status, node.headers = status, headers
    clients = [await send(port, "/img/private.jpg") for _ in range(4)]
    await until(lambda: waiting(ctx) == 3)
    node.gate.set()
    responses = [await answer(*client) for client in clients]
    assert node.hits == 4  # the leader's, then one of each follower's own
    assert {r.status for r in responses} == {status}
    assert len({json.loads(r.body)["number"] for r in responses}) == 4  # nobody got another's answer
    assert ctx.stats.coalesced == 0 and ctx.stats.coalesce_alone == 3


async def test_a_404_is_shared(node):
    ctx, port = await coalescing_front([node.member])
    node.status = 404
    clients = [await send(port, "/img/missing.jpg") for _ in range(5)]
    await until(lambda: waiting(ctx) == 4)
    node.gate.set()
    assert {(await answer(*client)).status for client in clients} == {404}
    assert node.hits == 1


async def test_an_answer_larger_than_the_limit_is_the_leaders_alone(node):
    ctx, port = await coalescing_front([node.member], policy=CoalescePolicy(max_body=64 * 1024))
    node.body_size = 200 * 1024
    clients = [await send(port, "/img/big.jpg") for _ in range(3)]
    await until(lambda: waiting(ctx) == 2)
    node.gate.set()
    responses = [await answer(*client) for client in clients]
    assert [len(r.body) for r in responses] == [200 * 1024] * 3
    assert node.hits == 3
    assert ctx.flight_bytes == 0


async def test_a_leader_that_leaves_does_not_cancel_the_answer_for_the_others(node):
    ctx, port = await coalescing_front([node.member])
    leader = await send(port, "/img/fresh.jpg")
    await until(lambda: node.hits == 1)
    followers = [await send(port, "/img/fresh.jpg") for _ in range(3)]
    await until(lambda: waiting(ctx) == 3)
    leader[1].transport.abort()  # the leader's client goes away before the answer
    await until(lambda: ctx.stats.connections_open == 3)
    node.gate.set()
    responses = [await answer(*client) for client in followers]
    assert {r.status for r in responses} == {200}
    assert node.hits == 1
    assert ctx.stats.coalesced == 3
    assert ctx.stats.inflight.total == 0 and not ctx.flights


async def test_a_follower_that_leaves_does_not_disturb_the_others(node):
    ctx, port = await coalescing_front([node.member])
    clients = [await send(port, "/img/fresh.jpg") for _ in range(4)]
    await until(lambda: waiting(ctx) == 3)
    clients[2][1].transport.abort()
    await until(lambda: waiting(ctx) == 2)
    node.gate.set()
    responses = [await answer(*client) for i, client in enumerate(clients) if i != 2]
    assert {r.status for r in responses} == {200}
    assert node.hits == 1 and ctx.stats.coalesced == 2


async def test_a_failed_leader_is_retried_once_for_the_whole_group(node):
    node.gate.set()
    dead = Member("dead", "127.0.0.1", dead_port())
    ctx, port = await coalescing_front([dead, node.member])
    path = key_owned_by(ctx, "dead", "a")
    node.gate.clear()
    clients = [await send(port, path) for _ in range(6)]
    await until(lambda: node.hits == 1 and waiting(ctx) == 5)
    node.gate.set()
    responses = [await answer(*client) for client in clients]
    assert {r.status for r in responses} == {200}
    assert {r.headers["x-pixring-node"] for r in responses} == {"a"}
    assert node.hits == 1
    assert ctx.stats.upstream_errors[("dead", "connect")] == 1  # one failed try for six clients
    assert ctx.stats.retries == 1


async def test_a_follower_that_never_reads_does_not_hold_up_the_others(node):
    ctx, port = await coalescing_front([node.member])
    node.body_size = 4 * 1024 * 1024
    stalled_reader, stalled_writer = await send(port, "/img/large.jpg")
    await until(lambda: node.hits == 1)
    stalled_writer.transport.pause_reading()  # the first client, the leader, reads nothing
    sock = stalled_writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    others = [await send(port, "/img/large.jpg") for _ in range(3)]
    await until(lambda: waiting(ctx) == 3)
    node.gate.set()
    responses = await asyncio.wait_for(asyncio.gather(*(answer(*client) for client in others)), 10)
    assert [len(r.body) for r in responses] == [4 * 1024 * 1024] * 3
    assert node.hits == 1
    stalled_writer.close()


async def test_coalescing_off_sends_every_request(node):
    ctx, port = await coalescing_front([node.member], policy=None)
    clients = [await send(port, "/img/fresh.jpg") for _ in range(5)]
    await until(lambda: node.hits == 5)
    node.gate.set()
    assert {(await answer(*client)).status for client in clients} == {200}
    assert node.hits == 5
