"""pixring's own keep-alive connection pool to render nodes.

Why not aiohttp's client: on the hot path its per-request Task, stream objects
and header multidicts cost about three times the CPU of the whole proxy (see
docs/performance.md). Here a pooled connection is an ``asyncio.Protocol`` whose
httptools response parser calls straight into a ``ResponseSink`` (the client
connection's exchange), so a response is forwarded from callbacks without any Task.
``ResponseSink`` is a base class rather than a ``typing.Protocol`` so that, compiled,
those calls go straight through the class's method table, where a protocol's were
Python method lookups by name (a response's head and end) and the body a call of a
bound method built per request.

The pool keeps a LIFO stack of idle connections per node: the most recently used
connection is reused first and the oldest ones age out after ``idle_timeout``,
which should be shorter than the nodes' own keep-alive timeout so that pixring,
not the node, closes an idle connection. A node can still close one first (a race
no pool can avoid); a request that finds its reused connection closed before any
response byte arrived is retried once on a fresh connection by the front
(``UpstreamError.stale``), as RFC 9112 section 9.3.1 allows for idempotent methods.

What a node sends is checked as a client of it must (RFC 9112 sections 6.3 and 8):
interim (1xx) answers are passed on and the final one awaited; a 101 to a request that
asked for no upgrade, a status past 599, a transfer coding other than chunked and a
head larger than ``MAX_RESPONSE_HEAD`` are protocol errors (a 502, or a cut connection
once the answer is underway); bytes after the end of a response are never read as the
next one (the connection is closed instead); and a body delimited by the close is
complete only if the node closed cleanly, not on a reset.
"""

from __future__ import annotations

import asyncio
import socket
import time

import httptools

from balancer.headers import (
    CONNECTION,
    CONTENT_LENGTH,
    PASS,
    PLAIN_CONNECTION,
    RESPONSE_KINDS,
    RETRY_AFTER,
    TRANSFER_ENCODING,
    VIA,
    NameKinds,
    connection_tokens,
    without_named,
)
from balancer.outbox import Outbox
from pixring.membership import Member

__all__ = ["MAX_RESPONSE_HEAD", "ResponseSink", "UpstreamConnection", "UpstreamError", "UpstreamPool"]

# The largest response head (status line and fields) read from a node. Renderers send
# a few hundred bytes; Envoy's default limit is 60 KiB, nginx's proxy_buffer_size 4-8 KiB.
MAX_RESPONSE_HEAD = 64 * 1024


class UpstreamError(Exception):
    """A failed exchange with a node. ``kind`` is the metric label."""

    def __init__(self, kind: str, detail: str, *, stale: bool = False) -> None:
        super().__init__(detail)
        self.kind = kind  # "connect", "connect_timeout", "timeout", "reset", "protocol"
        self.stale = stale  # a reused connection died before answering: safe to retry once
        # The connection itself failed, so the node never got the request.
        self.reached_node = kind not in ("connect", "connect_timeout")


class ResponseSink:
    """Where a connection delivers the response it reads.

    ``on_response_head`` is called with the connection, whose ``status`` and ``fields``
    (what the head says, as the proxy forwards it) are set; the sink sets the
    connection's ``forward_body`` if it wants the body in ``on_response_body`` (else the
    body is read to the end and dropped, so the connection stays reusable).
    """

    __slots__ = ()

    def on_response_head(self, conn: "UpstreamConnection") -> None:
        raise NotImplementedError

    def on_response_interim(self, conn: "UpstreamConnection") -> None:
        """A 1xx answer (not 101) before the final one: ``status`` and ``fields`` are its."""
        raise NotImplementedError

    def on_response_body(self, data: bytes) -> None:
        raise NotImplementedError

    def on_response_complete(self) -> None:
        raise NotImplementedError

    def on_upstream_error(self, error: UpstreamError) -> None:
        raise NotImplementedError


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to a node, carrying one exchange at a time."""

    __slots__ = (
        "pool", "member", "transport", "parser", "sink", "forward_body", "head_request", "kinds", "kind_of",
        "received_any", "reads", "reads_seen", "reused", "closed", "last_read", "read_timeout", "first_byte_timeout", "idle_since",
        "keep_alive", "until_close", "paused", "feeding", "ended", "trailing",
        # the response head being read: see ``on_header``
        "in_head", "head_bytes", "head_read", "status", "fields", "content_length", "delimited", "chunked_only", "prior_via",
        "named", "interim", "retry_after",
    )

    def __init__(self, pool: "UpstreamPool", member: Member) -> None:
        self.pool = pool
        self.member = member
        self.kinds = pool.response_kinds
        self.kind_of = pool.response_kinds.exact.get
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: ResponseSink | None = None
        self.forward_body = False
        self.status = 0
        self.fields: list[bytes] = []
        self.content_length: bytes | None = None
        self.delimited = False
        self.prior_via = b""
        self.named: frozenset[bytes] = frozenset()
        self.retry_after = False  # the head being read has a Retry-After field
        self.head_request = False
        self.received_any = False
        self.reused = False
        self.closed = False
        self.last_read = 0.0  # when the sweep last saw progress (see check_timeout)
        self.reads = 0
        self.reads_seen = 0
        self.read_timeout = pool.read_timeout
        self.first_byte_timeout = pool.read_timeout
        self.idle_since = 0.0
        self.keep_alive = True
        self.until_close = False
        self.paused = False  # reading paused for a slow client: the node is not late
        self.feeding = False  # inside parser.feed_data
        self.ended = False  # the response ended inside the current feed; reuse waits for its end
        self.trailing = False  # bytes followed the end of the response (RFC 9112 section 6.3)
        self.in_head = False
        self.head_bytes = 0  # the fields of the head being read, as on_header sees them
        self.head_read = 0  # bytes read while inside a head: bounds a field that never ends
        self.chunked_only = True
        self.interim = False

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        if self.sink is None:
            # Bytes on an idle connection: the node broke the protocol; never reuse it.
            self.close()
            return
        self.received_any = True
        self.reads += 1  # the sweep notices progress; no clock read per read
        if self.in_head:
            # httptools joins a field's pieces until its line ends: count as they come.
            self.head_read += len(data)
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # After a 101 llhttp reads nothing more; the 101 itself failed the exchange.
            self._fail(UpstreamError("protocol", f"{self.member.id} switched protocols unasked"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("protocol", f"bad response from {self.member.id}: {exc}"))
        self.feeding = False
        if self.ended:
            self._reuse_or_close()
        elif self.in_head and self.head_read > MAX_RESPONSE_HEAD:
            self._head_too_large()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        if self.sink is not None:
            if self.until_close and exc is None:
                # A body delimited by the close itself (RFC 9112 section 6.3, rule 8) is
                # complete now; cut by a reset, it is not (section 8).
                self._finish()
                return
            stale = self.reused and not self.received_any
            reset = "reset" if exc is not None else "closed"
            self._fail(UpstreamError("reset", f"{self.member.id} {reset} the connection", stale=stale))

    def pause_writing(self) -> None:  # we only write small request heads
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ----------------------------------------------
    def on_message_begin(self) -> None:
        if self.sink is None:
            self.trailing = True  # a second response where one was asked for: see _reuse_or_close
        self.in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        # Each field is classified once, here: end-to-end fields are laid out as the
        # client will get them (``fields``), the rest noted (balancer.headers' rules).
        self.head_bytes += len(name) + len(value) + 4
        kind = self.kind_of(name)
        if kind is None:
            kind = self.kinds(name)
        if kind == PASS:
            self.fields += (name, b": ", value, b"\r\n")
        elif kind == CONTENT_LENGTH:
            self.content_length = value
            self.delimited = True
        elif kind == TRANSFER_ENCODING:
            self.delimited = True
            if value != b"chunked" and value.strip().lower() != b"chunked":
                # The body would reach the client still encoded (gzip, say) with nothing
                # saying so: pixring decodes chunked only (RFC 9112 section 6.1).
                self.chunked_only = False
        elif kind == RETRY_AFTER:
            self.fields += (name, b": ", value, b"\r\n")
            self.retry_after = True
        elif kind == VIA:
            self.prior_via = self.prior_via + b", " + value if self.prior_via else value
        elif kind == CONNECTION and value not in PLAIN_CONNECTION:
            self.named |= connection_tokens(value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        head_bytes, self.head_bytes, self.head_read = self.head_bytes, 0, 0
        sink = self.sink
        if sink is None:
            return
        parser = self.parser
        self.keep_alive = parser.should_keep_alive()
        status = self.status = parser.get_status_code()
        if head_bytes > MAX_RESPONSE_HEAD:
            self._head_too_large()
            return
        if status < 200 or status > 599 or not self.chunked_only:
            self._unusual_head(sink, status)
            return
        if self.named:
            self.fields = without_named(self.fields, self.named)
            if b"via" in self.named:
                self.prior_via = b""
        if not self.head_request and status >= 200 and status != 204 and status != 304:
            self.until_close = not self.delimited
        sink.on_response_head(self)
        if self.head_request and self.sink is not None:
            # A response to HEAD has no body whatever its headers say (RFC 9110
            # section 9.3.2); the parser cannot be told so, so finish here and
            # give the connection a fresh parser for its next exchange.
            self.parser = httptools.HttpResponseParser(self)
            self._finish()

    def _head_too_large(self) -> None:
        self._fail(UpstreamError("protocol", f"{self.member.id} sent a response head over {MAX_RESPONSE_HEAD} bytes"))

    def _unusual_head(self, sink: ResponseSink, status: int) -> None:
        """A head that is not an ordinary final answer: an interim one, or an error."""
        member = self.member.id
        if status == 101:
            self._fail(UpstreamError("protocol", f"{member} answered 101 to a request that asked for no upgrade"))
        elif status < 200:
            # RFC 9110 section 15.2: a 1xx is interim; the final answer follows on the
            # same exchange, and a proxy passes the 1xx on.
            self.interim = True
            if self.named:
                self.fields = without_named(self.fields, self.named)
            sink.on_response_interim(self)
        elif status > 599:
            self._fail(UpstreamError("protocol", f"{member} answered an invalid status {status}"))
        else:
            self._fail(UpstreamError("protocol", f"{member} used a transfer coding other than chunked"))

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is None:
            self.trailing = True  # a body after a response that has none (HEAD, say)
        elif self.forward_body:
            sink.on_response_body(body)

    def on_message_complete(self) -> None:
        if self.interim:
            # The final answer is next: its head starts afresh.
            self.interim = False
            self.fields = []
            self.content_length = None
            self.delimited = False
            self.chunked_only = True
            self.prior_via = b""
            self.named = frozenset()
            self.retry_after = False
        elif self.sink is not None and not self.head_request:
            self._finish()

    # -- used by the front --------------------------------------------------
    def send(self, head: bytes, sink: ResponseSink, head_request: bool, first_byte_timeout: float,
             now: float) -> None:
        """Send a request; ``first_byte_timeout`` bounds the wait for the response to start
        (a per-try timeout), after which ``read_timeout`` bounds every gap between reads."""
        self.first_byte_timeout = first_byte_timeout
        self.sink = sink
        self.forward_body = False
        self.head_request = head_request
        self.received_any = False
        self.until_close = False
        self.ended = False
        self.head_bytes = self.head_read = 0
        self.fields = []
        self.content_length = None
        self.delimited = False
        self.chunked_only = True
        self.interim = False
        self.prior_via = b""
        self.named = frozenset()
        self.retry_after = False
        self.last_read = now
        self.reads_seen = self.reads
        self.pool.outbox.write(self.transport, head)  # type: ignore[arg-type]
        self.pool._busy.add(self)  # the pool's sweep enforces the timeouts

    def pause_reading(self) -> None:
        self.paused = True
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def abort(self) -> None:
        """The client went away mid-response: this connection's state is unknown, drop it."""
        self.sink = None
        self.forward_body = False
        self._not_busy()
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.pool.outbox.close(self.transport)
        self.pool._forget(self)

    # -- internals ----------------------------------------------------------
    def check_timeout(self, now: float) -> None:
        """Called by the pool's sweep: fail the exchange if the node has gone quiet too long."""
        if self.sink is None:
            self.pool._busy.discard(self)
            return
        if self.paused:
            # pixring stopped reading (a slow client): the node's silence is ours. The
            # front bounds how long a client may stall (its send timeout).
            self.last_read = now
            return
        if self.reads != self.reads_seen:
            # Data arrived since the last sweep: the gap restarts now (up to a tick after
            # the read), so a timeout fires up to two ticks late, never early.
            self.reads_seen = self.reads
            self.last_read = now
            return
        limit = self.read_timeout if self.received_any else self.first_byte_timeout
        if now - self.last_read >= limit:
            what = "response body" if self.received_any else "response"
            self._fail(UpstreamError("timeout", f"{self.member.id}: no {what} within {limit:g}s"))
            self.close()

    def _not_busy(self) -> None:
        self.pool._busy.discard(self)

    def _finish(self) -> None:
        sink, self.sink = self.sink, None
        self.forward_body = False
        self._not_busy()
        if self.feeding:
            # The response ended inside this read: whatever else the read holds is
            # not a response to anything, so the connection goes back to the pool only
            # once the read is parsed (data_received), or closes.
            self.ended = True
        else:
            self.close()  # outside a read, only the node's close ends a response
        sink.on_response_complete()  # type: ignore[union-attr]

    def _reuse_or_close(self) -> None:
        self.ended = False
        if self.trailing or self.in_head or not self.keep_alive or self.closed:
            # RFC 9112 section 6.3: bytes after a response are not a next response.
            self.trailing = False
            if not self.closed:
                self.close()
        else:
            self._release()

    def _release(self) -> None:
        if self.paused:  # paused for the last client, which is done with it
            self.resume_reading()
        self.pool.release(self)

    def _fail(self, error: UpstreamError) -> None:
        sink, self.sink = self.sink, None
        self.forward_body = False
        self._not_busy()
        if not self.closed:
            self.close()
        if sink is not None:
            sink.on_upstream_error(error)


class UpstreamPool:
    """Idle keep-alive connections per node, for one worker's event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_idle: int,
        idle_timeout: float,
        response_kinds: NameKinds = RESPONSE_KINDS,
    ) -> None:
        self.loop = loop
        # Request heads leave with the rest of the turn's writes (balancer.outbox); the
        # front of the same loop writes through this one too.
        self.outbox = Outbox(loop)
        self.response_kinds = response_kinds  # which fields of an answer cross to the client
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self._busy: set[UpstreamConnection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._busy_sweeper: asyncio.TimerHandle | None = None
        # Timeouts are checked by one sweep rather than a timer per request (a timer
        # costs an allocation and a heap insert and cancel on every request); the tick
        # bounds how late a timeout fires.
        self.timeout_tick = min(0.1, max(0.01, read_timeout / 10))
        self.connects = 0

    def start(self) -> None:
        self._schedule_sweep()
        self._busy_sweeper = self.loop.call_later(self.timeout_tick, self._sweep_busy)

    def _sweep_busy(self) -> None:
        # The front's clock, not the loop's: ``send`` stamps ``last_read`` with the front's
        # time, and uvloop's ``loop.time()`` lags it (whole milliseconds, read once a turn).
        now = time.monotonic()
        for conn in list(self._busy):
            conn.check_timeout(now)
        self._busy_sweeper = self.loop.call_later(self.timeout_tick, self._sweep_busy)

    def take_idle(self, member: Member) -> UpstreamConnection | None:
        stack = self._idle.get((member.host, member.port))
        while stack:
            conn = stack.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def connect(self, member: Member) -> UpstreamConnection:
        self.connects += 1
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: UpstreamConnection(self, member), member.host, member.port),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamError("connect_timeout", f"connect to {member.id} ({member.address}) timed out after {self.connect_timeout:g}s") from None
        except OSError as exc:
            raise UpstreamError("connect", f"connect to {member.id} ({member.address}) failed: {exc.strerror or exc}") from None
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        stack = self._idle.setdefault((conn.member.host, conn.member.port), [])
        if len(stack) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        stack.append(conn)

    def close_member(self, member: Member) -> None:
        """A member left the membership (or moved): close its idle connections."""
        for conn in self._idle.pop((member.host, member.port), []):
            conn.close()

    def close_all(self) -> None:
        for handle in (self._sweeper, self._busy_sweeper):
            if handle is not None:
                handle.cancel()
        self._sweeper = self._busy_sweeper = None
        for stack in list(self._idle.values()):
            for conn in list(stack):
                conn.close()
        self._idle.clear()

    def idle_count(self) -> int:
        return sum(len(stack) for stack in self._idle.values())

    def _forget(self, conn: UpstreamConnection) -> None:
        stack = self._idle.get((conn.member.host, conn.member.port))
        if stack and conn in stack:
            stack.remove(conn)

    def _schedule_sweep(self) -> None:
        self._sweeper = self.loop.call_later(min(self.idle_timeout, 5.0), self._sweep)

    def _sweep(self) -> None:
        deadline = time.monotonic() - self.idle_timeout
        for stack in self._idle.values():
            # Oldest first: the bottom of each LIFO stack ages out first.
            while stack and stack[0].idle_since <= deadline:
                stack.pop(0).close()
        self._schedule_sweep()
