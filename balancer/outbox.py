"""The writes of one event-loop turn, sent together once the turn's input is handled.

Why: uvloop writes to the socket at once when it can (``_initiate_write`` in its
``handles/stream.pyx``), so a worker answering a turn's worth of reads wrote to a
render node or a client between every two callbacks, a few microseconds apart. Each
of those peers had just gone back to sleep, so each write woke it again, and on
loopback the writer pays for the wake-up (the receiving socket's ``sock_def_readable``
runs in the sender's system call; on a virtual machine the wake-up is an
inter-processor interrupt). Measured with ``perf record -g`` under ``make bench``'s
load: 11.7% of a worker's CPU was spent there, 2.9 µs a request, against 1.6 µs for
nginx. Holding a turn's writes and sending them back to back, the peers wake once and
find several requests ready; the figures are in docs/performance.md, "The outbox".

What stays as it was: the bytes and their order on each connection (a transport's
chunks go out in one ``writelines``, in the order they were queued), backpressure
(``pause_writing`` still comes from the transport, one turn later at most), and a
close, which first writes what is queued for that transport. A turn's writes wait
for the rest of that turn's callbacks only: the flush is a ``call_soon``, which runs
before the loop polls for more input.
"""

from __future__ import annotations

import asyncio
import socket
import struct

__all__ = ["Outbox"]

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # struct linger {l_onoff = 1, l_linger = 0}


class Outbox:
    """One per event loop: the front's answers and the pool's requests share it, so a
    turn's writes to clients and to nodes leave together."""

    __slots__ = ("_loop", "_pending", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Transport -> its chunks, in the order they were queued (dicts keep insertion order).
        self._pending: dict[asyncio.WriteTransport, list[bytes]] = {}
        self._scheduled = False

    def write(self, transport: asyncio.WriteTransport, data: bytes) -> None:
        """Queue ``data`` for ``transport``; it is written when the turn's callbacks are done."""
        chunks = self._pending.get(transport)
        if chunks is not None:
            chunks.append(data)
            return
        self._pending[transport] = [data]
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._end_of_turn)

    def close(self, transport: asyncio.WriteTransport) -> None:
        """Write what is queued for ``transport``, then close it (its buffer drains first)."""
        chunks = self._pending.pop(transport, None)
        if chunks is not None:
            self._send(transport, chunks)
        transport.close()

    def withdraw(self, transport: asyncio.WriteTransport, first: bytes) -> bool:
        """Take back ``first`` (the very object queued) and everything queued after it for
        ``transport``, if it has not been written yet. True if it was still queued: then
        none of those bytes ever reach the peer."""
        chunks = self._pending.get(transport)
        if chunks is not None:
            for index, chunk in enumerate(chunks):
                if chunk is first:
                    del chunks[index:]
                    if not chunks:
                        del self._pending[transport]
                    return True
        return False

    def abort(self, transport: asyncio.WriteTransport) -> None:
        """Cut ``transport`` with a reset, dropping what is queued: a reset tells the peer
        that what it got is incomplete, where a close could pass for the end of the data.
        ``abort`` alone sends a FIN when nothing is left unread; a zero linger time makes
        the close a reset (socket(7), SO_LINGER)."""
        self._pending.pop(transport, None)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            except OSError:
                pass  # already closed: nothing more reaches the peer either way
        transport.abort()

    def flush(self) -> None:
        """Hand every queued chunk to its transport: one write (or writev) per transport."""
        pending = self._pending
        if not pending:
            return
        self._pending = {}  # before any write: a transport's callbacks may queue more
        for transport, chunks in pending.items():
            self._send(transport, chunks)

    def _end_of_turn(self) -> None:
        self._scheduled = False
        self.flush()

    def _send(self, transport: asyncio.WriteTransport, chunks: list[bytes]) -> None:
        if transport.is_closing():
            return  # the peer is gone (or the connection was cut): nothing can reach it now
        try:
            if len(chunks) == 1:
                transport.write(chunks[0])
            else:
                transport.writelines(chunks)
        except Exception as exc:  # one broken transport must not cost the others their writes
            self._loop.call_exception_handler(
                {"message": "pixring: a queued write failed", "exception": exc, "transport": transport})
