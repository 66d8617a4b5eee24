"""The public listener: a protocol-level HTTP/1.1 server on the event loop.

Why not aiohttp's server here: pixring's one job is forwarding, and the costs that
dominate a proxy written on aiohttp (a Task, a request object, multidicts and a
response object per request) are pure overhead for it. Measured on our machines a
raw ``asyncio.Protocol`` with httptools' C parser and a callback-driven upstream
pool reaches 0.82x nginx's throughput per core, against 0.12x for aiohttp's server
with its client (``../shared/bench/README.md``; our own figures are in docs/benchmarks.md).

One ``ClientConnection`` per client socket. Requests are parsed by httptools and
queued; they are answered strictly in order (pipelining, RFC 9112 section 9.3.2),
one forwarded exchange at a time. Every decision is made by the pure cores:
``normalize`` turns the target into a key and the target to forward, the picker
orders the members to try (ring, health, bounded load), the retry budget says
whether another try may go, ``headers`` says what crosses in each direction. This
file only moves bytes, keeps time and counts; what it writes, and the pool's request
heads, go through the worker's ``Outbox`` and leave together at the end of the turn.

Limits: request line (414) and head size (431), a header-read timeout (408) and a
keep-alive idle timeout, checked by one coarse per-worker sweep instead of a timer
per request. A malformed request gets a 400 and the connection is closed. A slow
client pauses reading from the node (``pause_writing``), so a large image is never
buffered whole per connection.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import socket
import struct
import termios
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Final

import httptools
import orjson

from balancer.accesslog import AccessLog, json_text, target_fields
from balancer.headers import (
    CONNECTION,
    EXPECT,
    FORWARDED_FOR,
    HOST,
    PASS,
    PLAIN_CONNECTION,
    REQUEST_ID,
    REQUEST_KINDS,
    TRANSFER_ENCODING,
    VALID_HOST,
    VIA,
    Framing,
    answer_rendered,
    connection_tokens,
    forwarded_node,
    forwarding_fields,
    host_line,
    interim_head,
    is_valid_request_id,
    local_head,
    response_framing,
    response_head,
    without_named,
)
from balancer.coalesce import CoalescePolicy, shareable_head, variant
from balancer.exchange import (
    FAIL,
    FAIL_NONE_HEALTHY,
    LAUNCH,
    NEXT_NOW,
    NO_HEALTHY_NODE,
    RETRY,
    RETRY_AFTER_BACKOFF,
    WIN,
    Exchange,
    RetrySettings,
    Routed,
)
from balancer.health import HealthPolicy, HealthTable, Outcome
from balancer.hotkeys import HotKeys
from balancer.placement import Placement
from balancer.normalize import NormalizeError, Route
from balancer.outbox import Outbox
from balancer.picker import PickPolicy
from balancer.retry import RetryBudget, RetryPolicy, backoff_s
from balancer.ring import key_hash
from balancer.routing import RoutingTable
from balancer.sources import Gate, Lane, Refusal
from balancer.stats import NO_METHOD, MemberStats, WorkerStats, method_index
from balancer.upstream import ResponseSink, UpstreamConnection, UpstreamError, UpstreamPool
from pixring.membership import Member

__all__ = ["ClientConnection", "FrontContext", "FrontLimits", "RetrySettings"]

_MAX_PIPELINED: Final = 32  # parsed requests queued per connection before we stop reading
_MAX_DISCARDED_BODY: Final = 64 * 1024  # a GET/HEAD body pixring never forwards, read and dropped
# Body bytes queued for one client before reading from its node pauses until they are
# written (see _pause_until_flushed): one libuv read, so small answers never pause.
_QUEUED_HIGH_WATER: Final = 256 * 1024
_request_kind: Final = REQUEST_KINDS.exact.get
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
# The front's clock: CLOCK_MONOTONIC read directly. The loop's own (libuv's uv_now) moves
# in whole milliseconds, and an exchange with a warm node takes a fraction of one, so the
# latencies in the access log and the histograms came out as 0 or 1 ms. The worker and
# the prober feed the health table from the same clock, and the pool times its
# connections with it, so every comparison of two times is on one clock.
_clock: Final = time.monotonic


@dataclass(frozen=True, slots=True)
class FrontLimits:
    max_request_line: int
    max_header_bytes: int
    header_timeout: float
    idle_timeout: float
    # The kernel's send buffer per client socket, bytes (0: the kernel's own autotuning, up
    # to net.ipv4.tcp_wmem's maximum, 4 MiB by default): what a client that reads nothing
    # holds in the kernel besides what the front holds for it.
    send_buffer: int = 256 * 1024
    # Client connections per worker; past it the longest idle one is closed for a new one,
    # and with none idle the new one gets a 503 at once.
    max_connections: int = 4096


class _Reject(Exception):
    """Raised inside a parser callback to answer with ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FrontContext:
    """Everything one worker's connections share. The routing table is swapped whole."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        normalize: Callable[[bytes], Route],
        pool: UpstreamPool,
        stats: WorkerStats,
        access_log: AccessLog,
        limits: FrontLimits,
        node_header: str,
        via: str,
        health: HealthTable | None = None,
        budget: RetryBudget | None = None,
        pick_policy: PickPolicy | None = None,
        retry_policy: RetryPolicy | None = None,
        retry: RetrySettings | None = None,
        on_health_events: Callable[[list], None] = lambda events: None,
        rand: Callable[[], float] = random.random,
        route_cache_size: int = 16384,
        hot_keys: HotKeys | None = None,
        placement: Placement | None = None,
        render_header: str = "X-Render-Cache",
        coalesce: CoalescePolicy | None = None,
        gate: Gate | None = None,
        normalizers: dict[str, Callable[[bytes], Route]] | None = None,
        https: bool = False,
    ) -> None:
        self.loop = loop
        self.normalize = normalize
        self.pool = pool
        self.outbox: Outbox = pool.outbox  # one per loop: a turn's answers leave with its requests to nodes
        self.stats = stats
        self.access_log = access_log
        self.limits = limits
        self.node_header = node_header.encode("latin-1")
        self.via = via.encode("latin-1")
        self.health = health or HealthTable(HealthPolicy(), _clock())
        self.retry_policy = retry_policy or RetryPolicy()
        self.budget = budget or RetryBudget(self.retry_policy)
        self.pick_policy = pick_policy or PickPolicy()
        self.retry = retry or RetrySettings(
            try_timeout=pool.read_timeout, request_timeout=pool.read_timeout * 2,
            retry_statuses=frozenset({502, 503, 504}), hedge_delay=0.0,
        )
        self.on_health_events = on_health_events
        self.rand = rand
        self.hot_keys = hot_keys
        self.placement = placement  # render steering (balancer.placement); None when off
        self.render_header = render_header.lower().encode("latin-1")
        self.coalesce = coalesce
        # Key (a source's namespace included) -> the connection whose request for it is
        # upstream with no answer yet: identical requests may wait for it (balancer.coalesce).
        self.flights: dict[str, ClientConnection] = {}
        self.flight_bytes = 0  # answers held for followers, all flights together
        # Sources, signatures and the render limit (balancer.sources): None when none is
        # configured, and a request then pays one attribute check for them.
        self.gate = gate
        self.normalizers = normalizers or {}  # profile -> normalizer, for the sources' profiles
        self.https = https  # the listener speaks TLS: X-Forwarded-Proto says https
        self.table = RoutingTable.empty()
        self.ring_members = 0  # len(table.ring.members), read per request: the ring's is a property
        self.generation = 0
        # Request target -> its route, key hash and (per ring) owner: an image URL
        # repeats, so a hit costs one dict lookup where normalizing and hashing cost
        # microseconds. Least recently used targets go first.
        self.routes: OrderedDict[bytes, Routed] = OrderedDict()
        self.route_cache_size = route_cache_size
        self.member_lines: dict[str, _MemberLines] = {}
        self.connections: set[ClientConnection] = set()
        self.draining = False
        self.requests_started = 0  # numbers this worker's request ids
        self.id_prefix = os.urandom(4).hex().encode()
        self._sweeper: asyncio.TimerHandle | None = None

    def set_table(self, table: RoutingTable) -> None:
        """Swap in a new routing table; the health table follows its membership."""
        self.table = table
        self.ring_members = len(table.ring.members)
        self.generation += 1  # cached owners are of the previous ring now
        self.member_lines = {m.id: _MemberLines(m, self.node_header, self.stats.member(m.id))
                             for m in table.members.values()}
        events = self.health.set_members(table.members, _clock())
        if events:
            self.on_health_events(events)

    def lines_of(self, member: Member) -> "_MemberLines":
        lines = self.member_lines.get(member.id)
        if lines is None or lines.member is not member:  # a member of an older table
            lines = _MemberLines(member, self.node_header, self.stats.member(member.id))
        return lines

    def route(self, target: bytes, lane: Lane | None = None) -> Routed:
        """The route of a request target (NormalizeError for a bad one) in its source's
        ``lane`` (a namespace before its key and its cache entry), with its owner on the
        current ring."""
        routes = self.routes
        cached = target if lane is None else lane.cache_prefix + target
        routed = routes.get(cached)
        if routed is None:
            if lane is None:
                route = self.normalize(target)
                routed = Routed(route.upstream_target, route.key, key_hash(route.key), target_fields(target, route.key))
            else:
                # A source's key has its namespace, and so its hash, its hot-key count and
                # its coalescing flight (by the cache's key, below) are its own.
                route = self.normalizers[lane.profile](target)
                key = lane.key_prefix + route.key
                routed = Routed(route.upstream_target, key, key_hash(key), target_fields(target, key))
                routed.host_line = lane.host_line
            if self.route_cache_size:
                routes[cached] = routed
                if len(routes) > self.route_cache_size:
                    routes.popitem(last=False)
        else:
            routes.move_to_end(cached)
        if routed.generation != self.generation:
            routed.generation = self.generation
            routed.owner = self.table.ring.owner(routed.hash)
            routed.prefs = None
        return routed

    def report(self, member: str, outcome: Outcome) -> None:
        """A real request's result, for passive outlier detection."""
        events = self.health.outcome(member, outcome, _clock())
        if events:
            self.on_health_events(events)

    def start(self) -> None:
        self._schedule_sweep()

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def begin_drain(self) -> None:
        """Stop keeping connections alive; close the idle ones now."""
        self.draining = True
        for conn in list(self.connections):
            if conn.is_idle():
                conn.close()

    def make_room(self, newcomer: "ClientConnection") -> bool:
        """Close the connection idle the longest (between requests) for ``newcomer``, as
        nginx reuses idle keep-alive connections when it runs out; False when none is."""
        idle = [conn for conn in self.connections if conn is not newcomer and conn.is_idle() and not conn.closed]
        if not idle:
            return False
        oldest = min(idle, key=lambda conn: conn.deadline)  # the idle timeout runs from the last answer
        oldest.close()
        self.stats.connections_shed += 1
        return True

    def busy_connections(self) -> int:
        return sum(1 for conn in self.connections if not conn.is_idle())

    def _schedule_sweep(self) -> None:
        tick = min(max(min(self.limits.header_timeout, self.limits.idle_timeout) / 4, 0.05), 1.0)
        self._sweeper = self.loop.call_later(tick, self._sweep)

    def _sweep(self) -> None:
        now = _clock()
        for conn in list(self.connections):
            conn.check_deadline(now)
        self._schedule_sweep()


class _MemberLines:
    """A member's parts of every head, rendered once per routing table, and its counters."""

    __slots__ = ("member", "host_line", "node_line", "log_node", "stats")

    def __init__(self, member: Member, node_header: bytes, stats: MemberStats) -> None:
        self.member = member
        self.stats = stats
        self.host_line = host_line(member.address.encode())
        self.node_line = node_header + b": " + member.id.encode() + b"\r\n" if node_header else b""
        self.log_node = json_text(member.id.encode())


class _Flight:
    """The clients waiting for a leader's answer (``balancer.coalesce``), and that answer
    once it may be shared: held whole, then written to each of them, so no follower's
    reading pace holds up the others or the leader's node."""

    __slots__ = ("followers", "sharing", "status", "fields", "prior_via", "parts", "size")

    def __init__(self) -> None:
        self.followers: list[tuple[ClientConnection, _Request]] = []
        self.sharing = False
        self.status = 0
        self.fields: list[bytes] = []
        self.prior_via = b""
        self.parts: list[bytes] = []
        self.size = 0


class _Attempt(ResponseSink):
    """One try of an exchange on one member: the upstream connection's ResponseSink.

    An exchange has one attempt at a time, or two while hedging; the first to
    deliver a response head that pixring forwards is the winner, and only the
    winner's bytes reach the client.
    """

    __slots__ = ("client", "member", "lines", "conn", "started", "done", "fresh_retry", "renders")

    def __init__(self, client: "ClientConnection", member: Member, lines: _MemberLines, started: float) -> None:
        self.client = client
        self.member = member
        self.lines = lines
        self.conn: UpstreamConnection | None = None
        self.started = started
        self.done = False
        self.fresh_retry = False  # already retried once on a fresh connection after a stale one
        self.renders = False  # counted in the member's renders in flight (balancer.placement)

    def on_response_head(self, conn: UpstreamConnection) -> None:
        self.client._attempt_head(self, conn)

    def on_response_interim(self, conn: UpstreamConnection) -> None:
        self.client._attempt_interim(self, conn)

    def on_response_body(self, data: bytes) -> None:
        self.client._attempt_body(data)

    def on_response_complete(self) -> None:
        self.client._attempt_complete(self)

    def on_upstream_error(self, error: UpstreamError) -> None:
        self.client._attempt_error(self, error)


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "ctx", "transport", "parser", "client_ip", "client_node", "queue", "closed", "reading_paused",
        "writing_paused", "paused_since", "paused_unsent", "deadline", "deadline_status", "input_ended", "refusal", "continue_owed",
        "unparsed_bytes",
        # the request being parsed: its fields as forwarded (balancer.headers' rules)
        "p_begun", "p_in_body", "p_url", "p_head_bytes", "p_body_bytes", "p_fields", "p_hosts", "p_host", "p_host_ok",
        "p_forwarded_for", "p_via", "p_request_id", "p_named", "p_connection", "p_transfer_encoding",
        "p_expect_continue",
        # the exchange being answered
        "ex", "ex_x", "ex_table", "ex_routed", "ex_live", "ex_winner", "ex_lines",
        "ex_hedge_timer", "ex_framing", "ex_keep_alive",
        "ex_status", "ex_bytes", "ex_t0", "ex_t_upstream", "ex_request_id", "ex_sent_head", "ex_head",
        "ex_forwarding", "ex_flight", "ex_registered", "ex_detached", "ex_leader",
        "queued_bytes", "queue_paused", "ex_charge", "ex_renders",
    )

    def __init__(self, ctx: FrontContext) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client_ip = b"-"
        self.client_node = b"unknown"  # the peer as Forwarded's for= names it (RFC 7239)
        self.queue: deque[_Request] = deque()
        self.closed = False
        self.reading_paused = False
        self.writing_paused = False
        self.paused_since = 0.0
        self.paused_unsent = 0  # bytes on their way to the client when it last made progress
        self.deadline = 0.0
        self.deadline_status = 0
        self.input_ended = False  # no request will follow those parsed (an upgrade stops the parser)
        self.refusal: tuple[int, str] | None = None  # a malformed request's answer, owed after those ahead of it
        self.continue_owed = False  # a parsed head expects 100-continue and its body has not come
        self.unparsed_bytes = 0  # received since the parser last finished a head or a request
        self._reset_parsed()
        self.ex: _Request | None = None
        self.ex_live: list[_Attempt] = []
        self.ex_winner: _Attempt | None = None
        self.ex_hedge_timer: asyncio.TimerHandle | None = None
        self.ex_x: Exchange | None = None  # the decisions of the exchange, once it goes upstream
        self.ex_routed: Routed | None = None
        self.ex_lines: _MemberLines | None = None  # of the member the exchange is with
        self.ex_head = b""  # the answer's head as queued (see _attempt_error)
        self.ex_flight: _Flight | None = None  # followers waiting for this exchange's answer
        self.ex_registered = False  # in ctx.flights: identical requests may follow it
        self.ex_detached = False  # the client left; the exchange goes on for its followers
        self.ex_leader: ClientConnection | None = None  # whose answer this request waits for
        self.queued_bytes = 0  # body bytes queued for this client since reading last paused
        self.queue_paused = False  # reading from the node paused until the outbox flushes
        self.ex_charge: bytes | None = None  # the client a render is counted against (a render limit is set)
        self.ex_renders = False  # its key is new to the placement table: it is expected to render

    # -- asyncio.Protocol ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0]).encode()
            self.client_node = forwarded_node(self.client_ip)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.ctx.limits.send_buffer:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.ctx.limits.send_buffer)
            except OSError:
                pass
        ctx = self.ctx
        ctx.connections.add(self)
        ctx.stats.connections_open += 1
        ctx.stats.connections_total += 1
        self._arm(ctx.limits.header_timeout, 408)
        if len(ctx.connections) > ctx.limits.max_connections and not ctx.make_room(self):
            self._refuse(503, f"too many connections (more than {ctx.limits.max_connections} per worker)",
                         extra=[(b"Retry-After", b"1")])

    def data_received(self, data: bytes) -> None:
        if self.closed or self.input_ended:
            return
        if not self.deadline_status and self.ex is None and not self.queue:
            # The first bytes of a request on an idle connection: the whole head must
            # follow within the header timeout (a slow client cannot hold it open).
            self._arm(self.ctx.limits.header_timeout, 408)
        # httptools hands a field over only once it ends, joining the pieces of its value
        # until then; so the bytes of a head are also counted here, as they come, or one
        # field that never ends would grow without bound.
        self.unparsed_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except _Reject as rejected:
            self._reject(rejected.status, rejected.message)
        except httptools.HttpParserCallbackError as callback_error:
            cause = callback_error.__context__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.message)
            else:  # pragma: no cover - a bug in a callback
                self._reject(400, f"malformed request: {callback_error}")
        except httptools.HttpParserUpgrade:
            # llhttp parses nothing after a request that asks to switch protocols (or a
            # CONNECT); pixring switches to nothing, so that request is answered as a
            # plain one, with Connection: close (RFC 9110 section 7.8 lets it ignore
            # Upgrade), and it is the connection's last.
            self._end_input()
        except httptools.HttpParserError as parse_error:
            self._reject(400, f"malformed request: {parse_error}")
        else:
            if self.p_begun:
                self._read_ended_inside_a_request()

    def _read_ended_inside_a_request(self) -> None:
        limits = self.ctx.limits
        if not self.p_in_body:
            if self.unparsed_bytes > limits.max_request_line + limits.max_header_bytes:
                self._reject(431, _head_too_large(limits))
                return
        elif self.unparsed_bytes - self.p_body_bytes > limits.max_header_bytes:
            # Past the head, every byte that is not body data (chunk-size lines, chunk
            # extensions, trailer fields, one that never ends included) counts too.
            self._reject(431, f"chunk-size lines and trailer fields larger than {limits.max_header_bytes} bytes")
            return
        if self.ex is None and not self.queue:
            if not self.deadline_status:
                # A request answered in this read (pixring's own answers are immediate)
                # left the idle timer running: the next head has the header timeout.
                self._arm(limits.header_timeout, 408)
            if self.continue_owed:
                self._send_continue()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.ctx.connections.discard(self)
        self.ctx.stats.connections_open -= 1
        if self.ex is not None:
            flight = self.ex_flight
            if flight is not None and flight.followers and (self.ex_winner is None or flight.sharing):
                # Others wait for this answer: the exchange goes on without its client.
                self.ex_detached = True
            else:
                # The client left mid-exchange (nginx logs this as 499).
                self._abort_attempts()
                self._finish_exchange(self.ex_status if self.ex_sent_head else 499, aborted=True)
        self.queue.clear()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.paused_since = _clock()
        self.paused_unsent = _unsent_bytes(self.transport)  # type: ignore[arg-type]
        winner = self.ex_winner
        if winner is not None and winner.conn is not None and (self.ex_flight is None or not self.ex_flight.sharing):
            # Not while followers wait for the answer: a held answer is bounded, and
            # one slow reader must not hold up the others.
            winner.conn.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        winner = self.ex_winner
        if winner is not None and winner.conn is not None and not self.queue_paused:
            winner.conn.resume_reading()

    # -- httptools callbacks (request parsing) ------------------------------
    def _reset_parsed(self) -> None:
        self.p_begun = False  # the parser is inside a request (its first byte has come)
        self.p_in_body = False  # past its head: the fields httptools reports now are trailers
        self.p_url = b""
        self.p_head_bytes = 0
        self.p_body_bytes = 0
        self.p_fields: list[bytes] = []
        self.p_hosts = 0
        self.p_host = b""
        self.p_host_ok = True
        self.p_forwarded_for = b""
        self.p_via = b""
        self.p_request_id: bytes | None = None
        self.p_named: frozenset[bytes] = frozenset()
        self.p_connection = False  # a Connection field was present
        self.p_transfer_encoding = False
        self.p_expect_continue = False

    def on_message_begin(self) -> None:
        self.p_begun = True

    def on_url(self, url: bytes) -> None:
        self.p_url += url
        if len(self.p_url) > self.ctx.limits.max_request_line:
            raise _Reject(414, f"request target longer than {self.ctx.limits.max_request_line} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.p_head_bytes += len(name) + len(value) + 4
        if self.p_head_bytes > self.ctx.limits.max_header_bytes:
            raise _Reject(431, _head_too_large(self.ctx.limits))
        if self.p_in_body:
            # A trailer field of a chunked body. It is never merged into the head (RFC
            # 9110 section 6.5.1): it could otherwise set the Host, Connection or
            # X-Forwarded-For after the head was checked. The body is not forwarded, so
            # neither is its trailer.
            return
        # Each field is classified once, here, and laid out as the node will get it.
        kind = _request_kind(name)
        if kind is None:
            kind = REQUEST_KINDS(name)
        if kind == PASS:
            self.p_fields += (name, b": ", value, b"\r\n")
        elif kind == HOST:
            self.p_hosts += 1
            self.p_host = value
            if not VALID_HOST(value):
                self.p_host_ok = False
        elif kind == REQUEST_ID:
            if self.p_request_id is None:
                self.p_request_id = value if is_valid_request_id(value) else b""
        elif kind == FORWARDED_FOR:
            self.p_forwarded_for = self.p_forwarded_for + b", " + value if self.p_forwarded_for else value
        elif kind == VIA:
            self.p_via = self.p_via + b", " + value if self.p_via else value
        elif kind == CONNECTION:
            self.p_connection = True
            if value not in PLAIN_CONNECTION:
                self.p_named |= connection_tokens(value)
        elif kind == TRANSFER_ENCODING:
            self.p_transfer_encoding = True
        elif kind == EXPECT:
            if value.lower() == b"100-continue":
                self.p_expect_continue = True

    def on_headers_complete(self) -> None:
        self.p_in_body = True
        self.unparsed_bytes = 0
        # RFC 9110 section 10.1.1: a client that expects 100-continue may wait for it
        # before sending the body, which pixring must read (and drop) before it answers.
        # An HTTP/1.0 request's expectation is ignored, as the RFC says.
        if self.p_expect_continue and self.parser.get_http_version() == "1.1":
            self.continue_owed = True

    def on_body(self, body: bytes) -> None:
        self.p_body_bytes += len(body)
        if self.p_body_bytes > _MAX_DISCARDED_BODY:
            raise _Reject(413, "request body too large (pixring serves GET and HEAD)")

    def on_message_complete(self) -> None:
        parser = self.parser
        fields, forwarded_for, via = self.p_fields, self.p_forwarded_for, self.p_via
        named = self.p_named
        if named:
            # Connection named further fields, maybe fields that came before it.
            fields = without_named(fields, named)
            forwarded_for = b"" if b"x-forwarded-for" in named else forwarded_for
            via = b"" if b"via" in named else via
        keep_alive = parser.should_keep_alive()
        if self.p_connection or self.p_transfer_encoding:
            http11 = parser.get_http_version() == "1.1"
            if self.p_connection and parser.should_upgrade():
                keep_alive = False  # the parser stops after it (see data_received)
            if self.p_transfer_encoding and not http11:
                # RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 means the framing
                # may be faulty, so nothing after this request can be trusted.
                keep_alive = False
        else:
            # Of the versions llhttp accepts (0.9, 1.0, 1.1, 2.0), it keeps alive by
            # default only HTTP/1.1, and only a Connection field changes that: so without
            # one the version string, which httptools builds with str.format per call,
            # is not needed.
            http11 = keep_alive
        if self.p_hosts == 1 and self.p_host_ok:
            host_problem = None
        else:
            host_problem = self._host_problem(http11)
        request = _Request(
            parser.get_method(),
            self.p_url,
            http11,
            keep_alive,
            fields,
            host_problem,
            forwarded_for,
            via,
            self.p_request_id,
            self.p_host,
        )
        self.continue_owed = False  # the body came, or there was none
        self.unparsed_bytes = 0  # what follows is the next request's
        self._reset_parsed()
        if self.ex is None and not self.queue and not self.closed:
            self._start(request)  # the usual case: nothing ahead of it, no trip through the queue
            return
        self.queue.append(request)
        if len(self.queue) > _MAX_PIPELINED and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        if self.ex is None:
            self._next()

    def _host_problem(self, http11: bool) -> str | None:
        """RFC 9112 section 3.2: a server answers 400 to an HTTP/1.1 request without a
        Host, and to any request with two Host lines or an invalid one. The Host never
        chooses the node (nodes come from discovery only); the rule is the RFC's."""
        if self.p_hosts > 1:
            return "a request may have only one Host header"
        if self.p_hosts == 1:
            return "the Host header is not a valid host[:port]"
        return "an HTTP/1.1 request needs a Host header" if http11 else None

    # -- request handling ----------------------------------------------------
    def _next(self, now: float | None = None) -> None:
        while self.queue and self.ex is None and not self.closed:
            if self.reading_paused and not self.input_ended and len(self.queue) <= _MAX_PIPELINED // 2:
                self.reading_paused = False
                self.transport.resume_reading()  # type: ignore[union-attr]
            self._start(self.queue.popleft())
            now = None
        if self.ex is None and not self.queue and not self.closed:
            if self.refusal is not None:
                # The requests ahead of a malformed one are answered; now its 400.
                status, message = self.refusal
                self.refusal = None
                self._refuse(status, message)
            elif self.input_ended or self.ctx.draining:
                self.close()
            elif self.p_begun:
                # Part of the next request came while this one was answered: its head
                # (and any body) has the header timeout from now, as on an idle connection.
                self._arm(self.ctx.limits.header_timeout, 408)
                if self.continue_owed:
                    self._send_continue()
            else:
                self.deadline = (_clock() if now is None else now) + self.ctx.limits.idle_timeout
                self.deadline_status = 0

    def _send_continue(self) -> None:
        self.continue_owed = False
        self.ctx.outbox.write(self.transport, _CONTINUE)  # type: ignore[arg-type]

    def _end_input(self) -> None:
        """No request follows those already parsed: they are answered, then it closes."""
        self.input_ended = True
        transport = self.transport
        assert transport is not None  # set before any request is parsed
        if not self.reading_paused and not transport.is_closing():
            self.reading_paused = True
            transport.pause_reading()
        if self.ex is None and not self.queue and self.refusal is None:
            self.close()

    def _start(self, req: _Request) -> None:
        ctx = self.ctx
        now = _clock()
        self.ex = req
        self.ex_t0 = now
        self.ex_t_upstream = 0.0
        self.ex_lines = None
        self.ex_routed = None
        self.ex_renders = False
        self.ex_winner = None
        self.ex_x = None
        self.ex_flight = None
        self.ex_leader = None
        self.ex_status = 0
        self.ex_bytes = 0
        self.ex_sent_head = False
        self.ex_keep_alive = req.keep_alive and not ctx.draining
        # A random per-worker prefix and a counter: unique without a syscall per request.
        if req.request_id:
            self.ex_request_id = req.request_id
        else:
            ctx.requests_started += 1
            # A literal with %s and %d only: compiled, one allocation (see accesslog.py).
            self.ex_request_id = b"%s-%d" % (ctx.id_prefix, ctx.requests_started)

        method = req.method
        if method != b"GET" and method != b"HEAD":
            if method == b"CONNECT":
                self.ex_keep_alive = False  # the parser reads nothing after a CONNECT
            self._respond_local(405, "only GET and HEAD are served", extra=[(b"Allow", b"GET, HEAD")])
            return
        if req.host_problem is not None:
            self._respond_local(400, req.host_problem)
            return
        if req.target == b"/healthz":
            if ctx.draining:
                self._respond_local(503, "draining", extra=[(b"Retry-After", b"1")])
            else:
                self._respond_json(200, {"status": "ok"})
            return
        try:
            if ctx.gate is None:
                routed = ctx.route(req.target)
            else:
                admitted = ctx.gate.admit(req.target, req.host, time.time(), self.client_ip, req.forwarded_for)
                if isinstance(admitted, Refusal):
                    ctx.stats.sources[(admitted.source, admitted.result)] += 1
                    self._respond_local(admitted.status, admitted.reason, extra=[
                        (b"Retry-After", str(admitted.retry_after).encode())] if admitted.retry_after else None)
                    return
                ctx.stats.sources[(admitted[0].name, "admitted")] += 1
                self.ex_charge = admitted[2]
                routed = ctx.route(admitted[1], admitted[0])
        except NormalizeError as exc:
            self._respond_local(exc.status, exc.reason)
            return
        self.ex_routed = routed
        # Every request counts toward its key's share, those that will wait for another's too.
        hot = ctx.hot_keys
        replicas = hot.observe(routed.hash, routed.key, len(ctx.health.routable) or ctx.ring_members) \
            if hot is not None else 1
        may_lead = False
        if ctx.coalesce is not None and method == b"GET":
            leader = ctx.flights.get(routed.key)
            if leader is None:
                may_lead = True
            elif leader._takes_follower(req):
                self._follow(leader, req)
                return
        self._go_upstream(req, routed, now, may_lead, replicas)

    def _go_upstream(self, req: _Request, routed: Routed, now: float, may_lead: bool, replicas: int) -> None:
        ctx = self.ctx
        table = self.ex_table = ctx.table
        x = Exchange(table.ring, ctx.health, ctx.stats.inflight, ctx.pick_policy, ctx.budget, ctx.retry_policy,
                     ctx.retry, ctx.stats, routed)
        refusal = x.begin(now, ctx.ring_members, replicas, ctx.rand)
        if refusal is not None:
            self._respond_local(503, refusal, extra=[(b"Retry-After", b"1")])
            return
        self.ex_x = x
        placement = ctx.placement
        if placement is not None:
            self._place(placement, x, routed, replicas, now)
        self.ex_forwarding = forwarding_fields(
            req.fields, req.forwarded_for, req.via, self.client_ip, self.ex_request_id, ctx.via, req.host, ctx.https,
            self.client_node)
        self.ex_t_upstream = now
        if may_lead:  # a coalescible GET whose key had no flight (nothing ran since the look-up)
            ctx.flights[routed.key] = self
            self.ex_registered = True
        self._launch(now)
        if ctx.retry.hedge_delay and self.ex is req:
            self.ex_hedge_timer = ctx.loop.call_later(ctx.retry.hedge_delay, self._hedge)

    # -- coalescing (balancer.coalesce) -------------------------------------------
    def _takes_follower(self, req: _Request) -> bool:
        """Whether ``req`` may wait for this connection's answer: it has none yet, and the
        two requests are identical and may coalesce."""
        mine = self.ex
        if mine is None or self.ex_winner is not None:
            return False
        own = variant(mine.method, mine.fields)
        return own is not None and own == variant(req.method, req.fields)

    def _follow(self, leader: "ClientConnection", req: _Request) -> None:
        flight = leader.ex_flight
        if flight is None:
            flight = leader.ex_flight = _Flight()
        flight.followers.append((self, req))
        self.ex_leader = leader

    def _unregister(self) -> None:
        """No request may join this exchange from now on."""
        if self.ex_registered:
            self.ex_registered = False
            routed = self.ex_routed
            flights = self.ctx.flights
            if routed is not None and flights.get(routed.key) is self:
                del flights[routed.key]

    def _share_from(self, status: int, conn: UpstreamConnection) -> None:
        """The leader's answer came: hold it for the followers when it may be shared,
        else send each of them upstream on its own."""
        flight = self.ex_flight
        assert flight is not None
        policy = self.ctx.coalesce
        assert policy is not None  # flights exist only when coalescing is on
        length = conn.content_length
        if (shareable_head(status, conn.fields) and (length is None or int(length) <= policy.max_body)):
            flight.sharing = True
            flight.status = status
            flight.fields = conn.fields
            flight.prior_via = conn.prior_via
        else:
            self._release_followers()

    def _hold(self, flight: _Flight, data: bytes) -> None:
        ctx = self.ctx
        policy = ctx.coalesce
        assert policy is not None
        flight.parts.append(data)
        flight.size += len(data)
        ctx.flight_bytes += len(data)
        if flight.size > policy.max_body or ctx.flight_bytes > policy.max_worker_bytes:
            self._release_followers()  # too large to hold: the followers fetch their own

    def _release_followers(self) -> None:
        flight = self.ex_flight
        if flight is None:
            return
        self.ex_flight = None
        self.ctx.flight_bytes -= flight.size
        for follower, req in flight.followers:
            follower._go_alone(req)

    def _settle_flight(self, flight: _Flight, complete: bool) -> None:
        """The leader's exchange is over: its followers get the answer, or go alone."""
        ctx = self.ctx
        ctx.flight_bytes -= flight.size
        if not (complete and flight.sharing):
            for follower, req in flight.followers:
                follower._go_alone(req)
            return
        ctx.stats.coalesce_leaders += 1
        for follower, req in flight.followers:
            follower._take_shared(req, flight, self.ex_lines)

    def _go_alone(self, req: _Request) -> None:
        """The leader's answer cannot be shared: this request goes upstream itself."""
        if self.ex is not req or self.closed:
            return
        self.ex_leader = None
        routed = self.ex_routed
        assert routed is not None  # a follower is routed before it follows
        ctx = self.ctx
        ctx.stats.coalesce_alone += 1
        hot = ctx.hot_keys  # counted when it came: asked, not counted again
        replicas = hot.replicas(routed.hash, len(ctx.health.routable) or ctx.ring_members) if hot is not None else 1
        self._go_upstream(req, routed, _clock(), False, replicas)

    def _take_shared(self, req: _Request, flight: _Flight, lines: "_MemberLines | None") -> None:
        if self.ex is not req or self.closed:
            return
        ctx = self.ctx
        self.ex_leader = None
        self.ex_lines = lines
        status = flight.status
        framing = response_framing(status, False, True, req.http11)
        extra = b"X-Request-Id: " + self.ex_request_id + b"\r\n" + (lines.node_line if lines is not None else b"")
        head = response_head(status, flight.fields, flight.prior_via, framing, str(flight.size).encode(),
                             self.ex_keep_alive, req.http11, extra, ctx.via)
        self.ex_status = status
        self.ex_sent_head = True
        self.ex_bytes = flight.size
        out, transport = ctx.outbox, self.transport
        assert transport is not None  # set before any request is parsed
        out.write(transport, head)
        for part in flight.parts:  # the very pieces the node sent: every follower shares them
            out.write(transport, part)
        ctx.stats.coalesced += 1
        self._finish_exchange(status)

    def _place(self, placement: Placement, x: Exchange, routed: Routed, replicas: int, now: float) -> None:
        """Render steering (``balancer.placement``): a key the table sent elsewhere goes
        there; a key new to it is expected to render, and may go to its second member."""
        h = routed.hash
        rank = placement.rank(h)
        if rank == 0:
            return  # the ring's member, as for every key never steered
        if replicas > 1:  # a hot key is spread; it is only marked as seen
            if rank < 0:
                placement.place(h, 0)
            return
        prefs = routed.prefs
        if prefs is None or len(prefs) < 2:
            want = min(max(self.ctx.pick_policy.max_attempts, 2), self.ctx.ring_members)
            prefs = routed.prefs = x.ring.preference(h, want)
        if rank > 0:
            if rank < len(prefs):
                x.put_first(prefs[rank], now)
            return
        self.ex_renders = True
        steered = (len(prefs) >= 2 and x.cands[0] == routed.owner and placement.steers(prefs[0], prefs[1])
                   and x.put_first(prefs[1], now))
        placement.place(h, 1 if steered else 0)
        if steered:
            self.ctx.stats.steered += 1

    def _launch(self, now: float | None = None) -> None:
        """Start a try on the next member of the candidate list."""
        ctx = self.ctx
        x = self.ex_x
        assert x is not None  # tries run inside an exchange that went upstream
        if now is None:
            now = _clock()
        member_id = x.next_member(now)
        if member_id is None:
            self._respond_local(504, x.deadline_message(), upstream_failed=True)
            return
        member = self.ex_table.members[member_id]
        attempt = _Attempt(self, member, ctx.lines_of(member), now)
        self.ex_lines = attempt.lines
        self.ex_live.append(attempt)
        ctx.stats.inflight.start(member.id)
        if self.ex_renders and ctx.placement is not None:
            ctx.placement.render_started(member.id)
            attempt.renders = True
        attempt.lines.stats.attempts += 1
        conn = ctx.pool.take_idle(member)
        if conn is not None:
            self._send(attempt, conn, now)
        else:
            ctx.loop.create_task(self._connect_and_send(attempt))

    async def _connect_and_send(self, attempt: _Attempt) -> None:
        try:
            conn = await self.ctx.pool.connect(attempt.member)
        except UpstreamError as exc:
            if not attempt.done:
                self._attempt_error(attempt, exc)
            return
        if attempt.done or (self.closed and not self.ex_detached):
            self.ctx.pool.release(conn)  # the exchange ended while we connected
            return
        self._send(attempt, conn, _clock())

    def _send(self, attempt: _Attempt, conn: UpstreamConnection, now: float) -> None:
        req, routed, x = self.ex, self.ex_routed, self.ex_x
        # Attempts run inside an exchange. Narrowed here, not ignored: compiled, a field
        # of an Optional is read through Python's getattr, of a _Request from its struct.
        assert req is not None and routed is not None and x is not None
        attempt.conn = conn
        host_line = routed.host_line
        if host_line is None:
            host_line = attempt.lines.host_line
        # A %-literal of %s: compiled, one allocation (a join builds a tuple first, ~400
        # instructions more).
        head = b"%s %s%s%s" % (req.method, routed.upstream_target, host_line, self.ex_forwarding)
        conn.send(head, attempt, req.method == b"HEAD", x.first_byte_timeout(now), now)
        if self.writing_paused:
            conn.pause_reading()

    def _hedge(self) -> None:
        self.ex_hedge_timer = None
        x = self.ex_x
        if self.ex is None or self.ex_winner is not None or x is None:
            return
        if x.hedge(_clock()):
            self._launch()

    def _retry_or_fail(self, status: int, message: str, reached: bool = True) -> None:
        """Move on to the next member after a backoff, wait for the retry budget, or
        answer ``status`` when no try is left (``Exchange.after_failure``; ``reached`` is
        False when the failed try never got to its node)."""
        x = self.ex_x
        assert x is not None  # a try failed, so the exchange went upstream
        verdict = x.after_failure(_clock(), reached)
        if verdict == FAIL:
            self._respond_local(status, message, upstream_failed=True)
        elif verdict == RETRY_AFTER_BACKOFF:
            self._cancel_hedge()
            delay = backoff_s(x.backoff_attempt, self.ctx.retry_policy, self.ctx.rand)
            self.ctx.loop.call_later(delay, self._launch_if_current, self.ex)
        else:
            self._cancel_hedge()  # the wait launches the next try, not a hedge meanwhile
            self.ctx.loop.call_later(x.budget_wait, self._await_budget, self.ex, status, message)

    def _await_budget(self, req: _Request | None, status: int, message: str) -> None:
        x = self.ex_x
        if self.ex is not req or req is None or (self.closed and not self.ex_detached) or self.ex_winner is not None \
                or x is None:
            return
        verdict = x.budget_freed(_clock())
        if verdict == FAIL_NONE_HEALTHY:
            self._respond_local(503, NO_HEALTHY_NODE, extra=[(b"Retry-After", b"1")])
        elif verdict == FAIL:
            self._respond_local(status, message, upstream_failed=True)
        elif verdict == LAUNCH:
            self._launch()
        else:
            self.ctx.loop.call_later(x.budget_wait, self._await_budget, req, status, message)

    def _cancel_hedge(self) -> None:
        if self.ex_hedge_timer is not None:
            self.ex_hedge_timer.cancel()
            self.ex_hedge_timer = None

    def _launch_if_current(self, req: _Request | None) -> None:
        if self.ex is req and req is not None and (not self.closed or self.ex_detached) and self.ex_winner is None:
            self._launch()

    # -- attempt callbacks ------------------------------------------------------
    def _attempt_head(self, attempt: _Attempt, conn: UpstreamConnection) -> None:
        ctx = self.ctx
        if attempt.done:
            return
        if self.ex_winner is not None:
            # A hedged twin already answered: drop this one without reading its body.
            self._end_attempt(attempt)
            conn.abort()
            return
        status = conn.status
        member_id = attempt.member.id
        shed = status == 503 and conn.retry_after
        if shed:
            # The node is shedding load: healthy, only full. Not reported as a failure:
            # ejecting it would move its keys onto nodes as busy, and cascade.
            attempt.lines.stats.shed += 1
        elif status >= 500:
            ctx.report(member_id, Outcome.SERVER_ERROR)
        elif member_id in ctx.health.watched:  # else an OK changes nothing: skip the call
            ctx.report(member_id, Outcome.OK)
        if not shed and status in ctx.retry.retry_statuses:
            ctx.stats.upstream_errors[(member_id, f"http_{status}")] += 1
        x = self.ex_x
        assert x is not None  # a head arrives for a try, and tries run inside an exchange
        twin = len(self.ex_live) > 1
        if shed or status in ctx.retry.retry_statuses:
            now = _clock()
            verdict = x.on_head(status, shed, twin, now, now - attempt.started)
        else:
            verdict = WIN
        if verdict == WIN:
            self._win(attempt, conn)
            return
        # Leave the body to the connection, which reads it to the end and drops it (so
        # it stays reusable); a twin or the next member answers instead.
        self._end_attempt(attempt)
        if verdict == NEXT_NOW:
            # Another node at once, no backoff: this one answered, and only it is full.
            self._cancel_hedge()
            self.ctx.loop.call_soon(self._launch_if_current, self.ex)
        elif verdict == RETRY:
            self._retry_or_fail(status, f"{member_id} answered {status}")

    def _attempt_interim(self, attempt: _Attempt, conn: UpstreamConnection) -> None:
        """A 1xx from the node (103 Early Hints, say): passed on to an HTTP/1.1 client
        (RFC 9110 section 15.2; never to HTTP/1.0 ones) while no final answer is out."""
        req = self.ex
        if attempt.done or self.ex_winner is not None or req is None or not req.http11 or self.closed:
            return
        self.ctx.outbox.write(self.transport, interim_head(conn.status, conn.fields))  # type: ignore[arg-type]

    def _win(self, attempt: _Attempt, conn: UpstreamConnection) -> None:
        req = self.ex
        assert req is not None  # a response head arrives inside an exchange (see _send)
        self.ex_winner = attempt
        if self.ex_registered:
            self._unregister()
        if self.ex_flight is not None:
            self._share_from(conn.status, conn)
        self.ex_lines = attempt.lines
        if len(self.ex_live) > 1:  # a hedged twin is still out: it loses
            for other in list(self.ex_live):
                if other is not attempt:
                    self._end_attempt(other)
                    if other.conn is not None:
                        other.conn.abort()
        self._cancel_hedge()
        status = conn.status
        content_length = conn.content_length
        framing = response_framing(status, req.method == b"HEAD", content_length is not None, req.http11)
        if framing is Framing.CLOSE:
            self.ex_keep_alive = False
        self.ex_framing = framing
        self.ex_status = status
        self.ex_sent_head = True
        if self.ex_charge is not None and self.ctx.gate is not None:
            self.ctx.gate.answered(self.ex_charge, status, conn.fields, time.time())
        if self.ex_renders and self.ctx.placement is not None:
            self.ctx.placement.checked(answer_rendered(conn.fields, self.ctx.render_header))
        extra = b"X-Request-Id: " + self.ex_request_id + b"\r\n" + attempt.lines.node_line
        head = response_head(status, conn.fields, conn.prior_via, framing, content_length, self.ex_keep_alive,
                             req.http11, extra, self.ctx.via)
        self.ex_head = head  # the very object queued, so an error this turn can take it back
        if not self.closed:
            # Queued: the body, usually parsed from the same read, joins it in one writev.
            self.ctx.outbox.write(self.transport, head)  # type: ignore[arg-type]
        conn.forward_body = True

    def _attempt_body(self, data: bytes) -> None:
        flight = self.ex_flight
        if flight is not None and flight.sharing:
            self._hold(flight, data)
        if self.closed:
            return
        self.ex_bytes += len(data)
        out, transport = self.ctx.outbox, self.transport
        assert transport is not None  # set before any request is parsed
        if self.ex_framing is Framing.CHUNKED:
            out.write(transport, b"%x\r\n" % len(data))
            out.write(transport, data)
            out.write(transport, b"\r\n")
        elif self.ex_framing is not Framing.NONE:
            out.write(transport, data)
        self.queued_bytes += len(data)
        if self.queued_bytes >= _QUEUED_HIGH_WATER and not self.queue_paused:
            self._pause_until_flushed()

    def _pause_until_flushed(self) -> None:
        """Stop reading from the node until this turn's writes are flushed.

        libuv reads a socket up to 32 times in one loop iteration, and the transport only
        reports a full buffer once the outbox hands it the turn's writes: without this, one
        turn could read a whole large image from a fast node into memory for a client that
        reads none of it. Reading resumes after the flush unless the transport is full by
        then (``pause_writing``), in which case ``resume_writing`` resumes it."""
        winner = self.ex_winner
        flight = self.ex_flight
        if winner is None or winner.conn is None or (flight is not None and flight.sharing):
            return  # a held answer for followers is bounded by the flight's own limit
        self.queue_paused = True
        winner.conn.pause_reading()
        self.ctx.loop.call_soon(self._resume_after_flush)

    def _resume_after_flush(self) -> None:
        self.queued_bytes = 0
        self.queue_paused = False
        winner = self.ex_winner
        if not self.writing_paused and winner is not None and winner.conn is not None:
            winner.conn.resume_reading()

    def _attempt_complete(self, attempt: _Attempt) -> None:
        now = _clock()
        self._end_attempt(attempt, now)
        if attempt is not self.ex_winner:
            return  # a discarded answer, fully read
        if self.ex_framing is Framing.CHUNKED and not self.closed:
            self.ctx.outbox.write(self.transport, b"0\r\n\r\n")  # type: ignore[arg-type]
        self._finish_exchange(self.ex_status, now=now)

    def _attempt_error(self, attempt: _Attempt, error: UpstreamError) -> None:
        ctx = self.ctx
        member = attempt.member
        ctx.stats.upstream_errors[(member.id, error.kind)] += 1
        if attempt.done:
            return  # a discarded or abandoned try: nobody waits for it
        if attempt is self.ex_winner:
            self._end_attempt(attempt)
            timeout = error.kind == "timeout"
            ctx.report(member.id, Outcome.TIMEOUT if timeout else Outcome.CONNECT_ERROR)
            if not self.closed and ctx.outbox.withdraw(self.transport, self.ex_head):  # type: ignore[arg-type]
                # The answer failed in the turn it started (a bad chunk in the same read
                # as the head): none of it has left, so it is as if the node had never
                # answered, and the request moves on like any other failed try.
                self.ex_winner = None
                self.ex_sent_head = False
                self.ex_status = 0
                self.ex_bytes = 0
                flight = self.ex_flight
                if flight is not None and flight.sharing:  # what was held is of no answer now
                    ctx.flight_bytes -= flight.size
                    flight.sharing, flight.parts, flight.size = False, [], 0
                self._retry_or_fail(504 if timeout else 502, str(error))
                return
            # Part of the response is already out: the only honest signal left is to
            # cut the connection, so the client sees a truncated body, not a short one.
            self.ex_keep_alive = False
            self._finish_exchange(self.ex_status, aborted=True)
            if self.transport is not None:
                # A reset, not a close: a body delimited by the close (an HTTP/1.0
                # client's) would otherwise look complete (RFC 9112 section 8).
                ctx.outbox.abort(self.transport)
            return
        if error.stale and not attempt.fresh_retry:
            # A pooled connection the node had already closed: one fresh try on the
            # same member (idempotent methods only; not a node failure, not budgeted).
            attempt.fresh_retry = True
            attempt.conn = None
            self.ex_x.stale_retry()  # type: ignore[union-attr]
            attempt.lines.stats.attempts += 1
            ctx.loop.create_task(self._connect_and_send(attempt))
            return
        self._end_attempt(attempt)
        timeout = error.kind in ("timeout", "connect_timeout")
        ctx.report(member.id, Outcome.TIMEOUT if timeout else Outcome.CONNECT_ERROR)
        if self.ex is None or self.ex_winner is not None:
            return
        if self.ex_live:
            return  # a hedged twin is still trying
        self._retry_or_fail(504 if timeout else 502, str(error), error.reached_node)

    def _end_attempt(self, attempt: _Attempt, now: float | None = None) -> None:
        if attempt.done:
            return
        attempt.done = True
        self.ctx.stats.inflight.finish(attempt.member.id)
        if attempt.renders and self.ctx.placement is not None:
            self.ctx.placement.render_finished(attempt.member.id)
        if now is None:
            now = _clock()
        attempt.lines.stats.latency.observe(now - attempt.started)
        if attempt in self.ex_live:
            self.ex_live.remove(attempt)

    def _abort_attempts(self) -> None:
        for attempt in list(self.ex_live):
            self._end_attempt(attempt)
            if attempt.conn is not None:
                attempt.conn.abort()
        self._cancel_hedge()

    # -- responses pixring writes itself -------------------------------------
    def _respond_local(
        self,
        status: int,
        message: str,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
        upstream_failed: bool = False,
    ) -> None:
        if self.ex is not None and self.ex_live:
            self._abort_attempts()
        body = {"error": message, "status": status}
        if self.ex is not None:
            body["request_id"] = self.ex_request_id.decode()
        self._respond_json(status, body, extra=extra, upstream_failed=upstream_failed)

    def _respond_json(
        self,
        status: int,
        body_obj: dict,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
        upstream_failed: bool = False,
    ) -> None:
        req = self.ex
        body = orjson.dumps(body_obj) + b"\n"
        http11 = req.http11 if req is not None else True
        keep_alive = self.ex_keep_alive if req is not None else False
        node_line = self.ex_lines.node_line if upstream_failed and self.ex_lines is not None else b""
        head = local_head(status, len(body), http11, keep_alive, self.ex_request_id if req is not None else None,
                          extra or [], node_line)
        out = head + body if req is None or req.method != b"HEAD" else head
        self.ex_status = status
        self.ex_sent_head = True
        if not self.closed:
            self.ctx.outbox.write(self.transport, out)  # type: ignore[arg-type]
        if req is not None:
            self.ex_bytes = len(body)
            self._finish_exchange(status)

    def _reject(self, status: int, message: str) -> None:
        """A request we cannot parse or accept: answered once, and the connection closes
        (RFC 9112 section 2.2); the parser's place in the stream is lost. Requests parsed
        before it are answered first, in order."""
        if self.closed or self.refusal is not None:
            return
        self.refusal = (status, message)
        self._end_input()
        if self.ex is None and not self.queue:
            self.refusal = None
            self._refuse(status, message)

    def _refuse(self, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        self.ex_keep_alive = False
        self._respond_json(status, {"error": message, "status": status}, extra=extra)
        self.ctx.stats.member("-").count_request(NO_METHOD, status)
        self.close()

    # -- bookkeeping -------------------------------------------------------------
    def _finish_exchange(self, status: int, *, aborted: bool = False, now: float | None = None) -> None:
        ctx = self.ctx
        req = self.ex
        if req is None:
            return
        if now is None:
            now = _clock()
        if self.ex_registered:
            self._unregister()
        leader = self.ex_leader
        if leader is not None:  # a follower that leaves before the answer came
            self.ex_leader = None
            waiting = leader.ex_flight
            if waiting is not None and (self, req) in waiting.followers:
                waiting.followers.remove((self, req))
        flight = self.ex_flight
        self.ex_flight = None
        complete = not aborted
        if self.ex_detached:
            status, aborted = 499, True  # its client left; the answer went to the followers
        lines = self.ex_lines
        member_stats = lines.stats if lines is not None else ctx.stats.member("-")
        member_stats.count_request(method_index(req.method), status)
        total = now - self.ex_t0
        ctx.stats.request_latency.observe(total)
        x = self.ex_x
        if x is not None:
            x.finish()
            if lines is not None:
                member_stats.bytes_out += self.ex_bytes
        self._cancel_hedge()
        ctx.access_log.request(
            time.time(), self.ex_request_id, self.client_ip, req.method,
            self.ex_routed.log_fields if self.ex_routed is not None else target_fields(req.target, None),
            lines.log_node if lines is not None else b"null", status, self.ex_bytes,
            x.attempts if x is not None else 0, total * 1000, (now - self.ex_t_upstream) * 1000 if self.ex_t_upstream else None,
            aborted,
        )
        self.ex = None
        self.ex_winner = None
        self.ex_live = []
        if flight is not None:
            self._settle_flight(flight, complete)
        if aborted or self.closed:
            return
        if not self.ex_keep_alive:
            self.close()
            return
        self._next(now)

    def _arm(self, seconds: float, status: int) -> None:
        self.deadline = _clock() + seconds
        self.deadline_status = status

    def check_deadline(self, now: float) -> None:
        if self.writing_paused and now - self.paused_since >= self.ctx.limits.idle_timeout and not self.closed:
            unsent = _unsent_bytes(self.transport)  # type: ignore[arg-type]
            if unsent < self.paused_unsent:
                # A slow reader, not a stalled one: the kernel only reports the socket
                # writable once a good part of its (megabytes of) buffer has drained.
                self.paused_since, self.paused_unsent = now, unsent
            else:
                # The client has read nothing of its answer for the idle timeout (nginx's
                # send_timeout): cut it, and with it the node's connection held for it.
                self.ctx.outbox.abort(self.transport)  # type: ignore[arg-type]
                return
        if self.deadline and now >= self.deadline and self.ex is None and not self.closed:
            if self.deadline_status and self.p_begun:
                self.ex_keep_alive = False
                self._respond_json(408, {"error": "request not received in time", "status": 408})
            self.close()

    def is_idle(self) -> bool:
        """Between two requests of a kept-alive connection, the only time a drain may close
        it (a client retries a request on a reused connection that closes, RFC 9112
        section 9.3.1). A connection waiting for a request head (just accepted, or part
        of a head in) is owed an answer; its header timeout bounds the wait."""
        return self.ex is None and not self.queue and not self.deadline_status

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.ctx.outbox.close(self.transport)


def _head_too_large(limits: FrontLimits) -> str:
    return f"request header fields larger than {limits.max_header_bytes} bytes"


def _unsent_bytes(transport: asyncio.Transport) -> int:
    """Bytes written to ``transport`` that the client has not acknowledged yet: the
    transport's own buffer plus the socket's send queue (SIOCOUTQ, the same request as
    TIOCOUTQ: tcp(7)), which shrinks as the client reads."""
    unsent = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            unsent += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except (OSError, ValueError):
            pass  # closed meanwhile: no progress to see
    return unsent


class _Request:
    """A parsed request, queued until its turn (pipelining answers in order)."""

    __slots__ = ("method", "target", "http11", "keep_alive", "fields", "host_problem", "forwarded_for", "via",
                 "request_id", "host")

    def __init__(
        self, method: bytes, target: bytes, http11: bool, keep_alive: bool, fields: list[bytes],
        host_problem: str | None, forwarded_for: bytes, via: bytes, request_id: bytes | None, host: bytes,
    ) -> None:
        self.method = method
        self.target = target
        self.http11 = http11
        self.keep_alive = keep_alive
        self.fields = fields  # end-to-end fields, laid out for the node
        self.host_problem = host_problem  # why its Host fields earn a 400, or None
        self.forwarded_for = forwarded_for
        self.via = via
        self.request_id = request_id  # b"" when the client's was not fit to keep
        self.host = host  # the client's Host (b"" without one): X-Forwarded-Host, and it picks the source
