"""What one client can make the front hold: bytes that are not body data, connections.

Real sockets against the front of ``test_front`` and its aiohttp node.
"""

from __future__ import annotations

import asyncio
import json

from balancer.front import FrontLimits
from pixring.membership import Member
from tests.integration.test_front import backend, read_responses, start_front  # noqa: F401 (a fixture)


async def send_until_answered(writer, reader, pieces, piece_delay: float = 0.001) -> tuple[int, int, dict]:
    """Write ``pieces`` until the front answers; its answer and the bytes it took by then.

    The answer is read as the pieces go: a client that keeps writing to a connection the
    front has closed gets a reset, which may cost it the unread answer."""
    answer = asyncio.ensure_future(read_responses(reader, 1, timeout=10))
    sent = 0
    for piece in pieces:
        if answer.done():
            break
        try:
            writer.write(piece)
            await writer.drain()
        except (ConnectionError, OSError):
            break
        sent += len(piece)
        await asyncio.sleep(piece_delay)
    (response,) = await answer
    return sent, response.status, json.loads(response.body)


async def refusal(reader) -> tuple[int, dict]:
    (response,) = await read_responses(reader, 1, timeout=5)
    return response.status, json.loads(response.body)


async def test_a_trailer_field_that_never_ends_is_refused_at_the_head_limit(backend):
    front = await start_front([Member("n1", "127.0.0.1", backend.port)], max_header_bytes=4096)
    reader, writer = await front.connect()
    head = b"GET /t.jpg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Long: "
    pieces = [head] + [b"a" * 1024] * 200  # 200 KiB of one trailer field
    sent, status, body = await send_until_answered(writer, reader, pieces)
    print(f"trailer: refused {status} after {sent} bytes sent: {body['error']}")
    assert status == 431
    assert "trailer" in body["error"] and "4096" in body["error"]
    assert sent < 64 * 1024  # refused near the limit, not after the whole field
    writer.close()


async def test_chunk_extensions_count_toward_the_limit_too(backend):
    front = await start_front([Member("n1", "127.0.0.1", backend.port)], max_header_bytes=4096)
    reader, writer = await front.connect()
    head = b"GET /t.jpg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    # Tiny chunks, each with a long extension: little body data, many bytes that are not.
    chunks = [b"1;ext=" + b"e" * 500 + b"\r\nx\r\n"] * 100
    sent, status, _ = await send_until_answered(writer, reader, [head, *chunks])
    assert status == 431
    assert sent < 32 * 1024
    writer.close()


async def test_a_request_after_a_large_body_is_not_taken_for_a_large_head(backend):
    front = await start_front([Member("n1", "127.0.0.1", backend.port)], max_header_bytes=4096,
                              max_request_line=1024)
    reader, writer = await front.connect()
    body = b"b" * 60_000  # within the 64 KiB a GET's dropped body may have
    writer.write(b"GET /a.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n" + body
                 + b"GET /b.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    first, second = await read_responses(reader, 2, timeout=5)
    assert (first.status, second.status) == (200, 200)
    assert json.loads(second.body)["path"] == "/b.jpg"
    writer.close()


async def test_past_max_connections_the_longest_idle_connection_makes_room(backend):
    front = await start_front([Member("n1", "127.0.0.1", backend.port)])
    front.ctx.limits = FrontLimits(max_request_line=8192, max_header_bytes=16384, header_timeout=10.0,
                                   idle_timeout=60.0, max_connections=3)
    idle = []
    for i in range(3):  # three kept-alive connections, each idle after one answer
        reader, writer = await front.connect()
        writer.write(f"GET /{i}.jpg HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await read_responses(reader, 1, timeout=5)
        idle.append((reader, writer))
        await asyncio.sleep(0.01)  # distinct idle deadlines: the first is the oldest
    reader, writer = await front.connect()
    writer.write(b"GET /new.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
    (response,) = await read_responses(reader, 1, timeout=5)
    assert response.status == 200
    assert await asyncio.wait_for(idle[0][0].read(), 5) == b""  # the oldest idle one was closed
    idle[1][1].write(b"GET /still.jpg HTTP/1.1\r\nHost: x\r\n\r\n")  # the others still serve
    (still,) = await read_responses(idle[1][0], 1, timeout=5)
    assert still.status == 200
    assert front.ctx.stats.connections_shed == 1


async def test_past_max_connections_with_none_idle_a_new_one_gets_a_503_at_once(backend):
    front = await start_front([Member("n1", "127.0.0.1", backend.port)])
    front.ctx.limits = FrontLimits(max_request_line=8192, max_header_bytes=16384, header_timeout=10.0,
                                   idle_timeout=60.0, max_connections=2)
    busy = []
    for i in range(2):  # each waits for a slow answer: not idle
        reader, writer = await front.connect()
        writer.write(b"GET /slow.jpg?s=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        busy.append((reader, writer))
    await asyncio.sleep(0.1)
    reader, writer = await front.connect()
    status, body = await refusal(reader)
    assert status == 503
    assert "too many connections" in body["error"]
    for reader, _ in busy:  # the existing ones are still served
        (response,) = await read_responses(reader, 1, timeout=5)
        assert response.status == 200
