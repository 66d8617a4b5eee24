"""balancer.outbox: a turn's writes are held, then leave together, one call per transport.

A fake loop stands in for the event loop so that "the end of the turn" is a step the
test takes (``turn_ends``); the socket test at the end shows the same on uvloop.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable

import pytest
import uvloop

from balancer.outbox import Outbox


class FakeLoop:
    def __init__(self) -> None:
        self.soon: list[Callable[[], None]] = []
        self.errors: list[dict[str, Any]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)

    def turn_ends(self) -> None:
        callbacks, self.soon = self.soon, []
        for callback in callbacks:
            callback()


class Transport:
    """Records each call it gets: ("write", data), ("writelines", [chunks]), ("close",)."""

    def __init__(self, *, closing: bool = False, broken: bool = False) -> None:
        self.calls: list[tuple] = []
        self.closing = closing
        self.broken = broken

    def write(self, data: bytes) -> None:
        if self.broken:
            raise RuntimeError("transport is broken")
        self.calls.append(("write", data))

    def writelines(self, chunks: list[bytes]) -> None:
        if self.broken:
            raise RuntimeError("transport is broken")
        self.calls.append(("writelines", list(chunks)))

    def close(self) -> None:
        self.calls.append(("close",))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


def test_writes_wait_for_the_end_of_the_turn_then_leave_in_one_call_per_transport() -> None:
    loop = FakeLoop()
    outbox = Outbox(loop)  # type: ignore[arg-type]
    client, node = Transport(), Transport()
    outbox.write(client, b"HTTP/1.1 200 OK\r\n\r\n")
    outbox.write(node, b"GET /a HTTP/1.1\r\n\r\n")
    outbox.write(client, b"body")
    assert client.calls == [] and node.calls == []
    assert len(loop.soon) == 1  # one flush per turn, however many writes

    loop.turn_ends()
    assert client.calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"body"])]
    assert node.calls == [("write", b"GET /a HTTP/1.1\r\n\r\n")]


def test_the_next_turn_schedules_its_own_flush() -> None:
    loop = FakeLoop()
    outbox = Outbox(loop)  # type: ignore[arg-type]
    first = Transport()
    outbox.write(first, b"one")
    loop.turn_ends()
    outbox.write(first, b"two")
    assert len(loop.soon) == 1
    loop.turn_ends()
    assert first.calls == [("write", b"one"), ("write", b"two")]


def test_close_writes_what_is_queued_for_that_transport_first_and_leaves_the_rest_to_the_turn() -> None:
    loop = FakeLoop()
    outbox = Outbox(loop)  # type: ignore[arg-type]
    closing, other = Transport(), Transport()
    outbox.write(closing, b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    outbox.write(other, b"still queued")
    outbox.close(closing)
    assert closing.calls == [("write", b"HTTP/1.1 408 Request Timeout\r\n\r\n"), ("close",)]
    assert other.calls == []
    loop.turn_ends()
    assert other.calls == [("write", b"still queued")]
    assert closing.calls[-1] == ("close",)  # nothing written after the close


def test_close_without_queued_writes_just_closes() -> None:
    outbox = Outbox(FakeLoop())  # type: ignore[arg-type]
    transport = Transport()
    outbox.close(transport)
    assert transport.calls == [("close",)]


def test_a_transport_whose_peer_left_gets_nothing_and_the_others_are_written() -> None:
    loop = FakeLoop()
    outbox = Outbox(loop)  # type: ignore[arg-type]
    gone, alive = Transport(), Transport()
    outbox.write(gone, b"lost")
    outbox.write(alive, b"kept")
    gone.closing = True  # connection_lost came later in the same turn
    loop.turn_ends()
    assert gone.calls == []
    assert alive.calls == [("write", b"kept")]
    assert loop.errors == []


def test_a_write_that_raises_is_reported_and_costs_no_other_transport_its_bytes() -> None:
    loop = FakeLoop()
    outbox = Outbox(loop)  # type: ignore[arg-type]
    broken, after = Transport(broken=True), Transport()
    outbox.write(broken, b"x")
    outbox.write(after, b"y")
    loop.turn_ends()
    assert after.calls == [("write", b"y")]
    assert len(loop.errors) == 1
    assert loop.errors[0]["transport"] is broken
    assert isinstance(loop.errors[0]["exception"], RuntimeError)


def test_writes_queued_while_flushing_leave_in_the_next_turn() -> None:
    loop = FakeLoop()
    outbox = Outbox(loop)  # type: ignore[arg-type]
    later = Transport()

    class Reentrant(Transport):
        def write(self, data: bytes) -> None:
            super().write(data)
            outbox.write(later, b"queued during the flush")  # e.g. a callback the write ran

    first = Reentrant()
    outbox.write(first, b"first")
    loop.turn_ends()
    assert first.calls == [("write", b"first")]
    assert later.calls == []
    loop.turn_ends()
    assert later.calls == [("write", b"queued during the flush")]


def test_on_uvloop_a_turns_writes_reach_the_socket_after_its_callbacks_in_one_segment() -> None:
    """Real sockets: two writes made in one callback are not on the wire until the
    callback returns, then arrive together."""

    async def run() -> tuple[bytes | None, bytes]:
        loop = asyncio.get_running_loop()
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
        outbox = Outbox(loop)
        seen_during_turn: list[bytes | None] = []

        def one_turn() -> None:
            outbox.write(transport, b"head;")
            outbox.write(transport, b"body")
            try:
                seen_during_turn.append(peer.recv(100))
            except BlockingIOError:
                seen_during_turn.append(None)

        loop.call_soon(one_turn)
        for _ in range(100):
            await asyncio.sleep(0.001)
            try:
                received = peer.recv(100)
                break
            except BlockingIOError:
                continue
        else:
            pytest.fail("the queued writes never reached the socket")
        transport.close()
        peer.close()
        return seen_during_turn[0], received

    during, after = uvloop.run(run())
    assert during is None
    assert after == b"head;body"
