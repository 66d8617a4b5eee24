"""One balancer worker process: the public listener, its membership source and pool.

Workers share nothing. Each listens on a socket of its own bound to the public port
with SO_REUSEPORT (the kernel spreads new connections across them), runs its own
membership source and builds its own ring from it; since the ring is a pure function
of the membership, every worker (and every balancer host) routes a key to the same
node. The supervisor makes the socket and the worker inherits it, so that a reload's
new worker can take over its predecessor's queue instead of the kernel resetting it.

The worker listens once it has its first membership and that membership's first
health probes have answered (or, at start, once ``warmup_timeout`` has passed without a
membership), so it never takes connections only to answer them 503 while a running
generation could serve them, nor routes to a node no probe has heard from.

Once a second the worker writes its state (counters, ring, membership, source
status) to ``<state_dir>/worker-<index>.json`` with an atomic rename; the
supervisor's admin listener merges those files for ``/status`` and ``/metrics``.

SIGHUP re-reads a member file; SIGUSR1 confirms a membership drop that the
Consul source is holding back. SIGTERM or SIGINT: stop accepting, answer in-flight requests with
``Connection: close``, close idle keep-alive connections, wait up to the drain
timeout, flush the access log, exit 0.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from balancer.accesslog import AccessLog
from balancer.config import BalancerConfig
from balancer.front import ClientConnection, FrontContext, FrontLimits, RetrySettings
from balancer.headers import response_kinds
from balancer.health import HealthEvent, HealthTable
from balancer.hotkeys import HotKeys
from balancer.normalize import make_normalizer
from balancer.placement import Placement, region_bytes
from balancer.probe_expect import parse_expect
from balancer.prober import Prober
from balancer.retry import RetryBudget
from balancer.ringbuild import RingBuilder
from balancer.routing import RoutingTable
from balancer.stats import WorkerStats
from balancer.tls import TlsError, reload_certificate, server_context
from balancer.upstream import UpstreamPool
from discovery.source import MembershipSource
from pixring.membership import Membership
from pixring.process import die_with_parent

__all__ = [
    "EXIT_NO_MEMBERSHIP",
    "LISTENER_FD_ENV",
    "WARMUP_ENV",
    "Worker",
    "bind_reuseport",
    "refuse_if_listened_on",
]

STATE_INTERVAL_S = 1.0
HEALTH_TICK_S = 0.1  # how often ejections expire and slow starts advance
OPERATOR_FILE = "operator.json"  # member id -> "drain" | "maintenance", written by the admin API
LISTEN_BACKLOG = 1024
EXIT_NO_MEMBERSHIP = 3  # a reload's worker found no membership within warmup_timeout


def bind_reuseport(host: str, port: int, *, listen: bool = True, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def refuse_if_listened_on(host: str, port: int) -> None:
    """OSError (EADDRINUSE, with a message naming the cause) when a socket already listens on
    ``host:port``. Bound without SO_REUSEPORT, the test socket cannot share the port with a
    listener, whoever made it; with SO_REUSEADDR it can with the TIME_WAIT connections of
    a balancer that just stopped. Port 0 takes a free port: nothing to check."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(errno.EADDRINUSE, "address already in use by another process "
                                                "(another pixring balancer?)") from None
            raise


class Worker:
    def __init__(
        self,
        config: BalancerConfig,
        source: MembershipSource,
        *,
        index: int,
        state_dir: Path,
        listener: socket.socket | None = None,
        listen_without_membership: bool = True,
        placement_region: mmap.mmap | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.index = index
        self.state_dir = state_dir
        self.listener = listener
        # The balancer's shared render-steering memory (balancer.placement), mapped by the
        # supervisor's command; a worker on its own (tests) gets a private one.
        self.placement_region = placement_region
        self.started = time.time()
        self.stats = WorkerStats()
        self.ctx: FrontContext | None = None
        self.membership_updates = 0
        self.health: HealthTable | None = None
        self.listen_without_membership = listen_without_membership
        self.tls: ssl.SSLContext | None = None
        self.listening = False
        self.warming = "membership"  # what the worker waits for before it listens, for readiness
        self.prober: Prober | None = None
        self._operator_signature: tuple[int, int, int] | None = None
        self._first_table = asyncio.Event()
        # Large rings are built in a child process that dies with this worker.
        self.ring_builder = RingBuilder(self._swap_table, initializer=die_with_parent)

    def _placement(self) -> Placement | None:
        config = self.config
        if not config.steer_renders:
            return None
        region = self.placement_region
        if region is None:
            region = self.placement_region = mmap.mmap(-1, region_bytes(config.placement_slots))
        return Placement(region, config.placement_slots, self.index)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        config = self.config
        access_log = AccessLog(config.access_log, loop)
        pool = UpstreamPool(
            loop,
            connect_timeout=config.connect_timeout,
            read_timeout=config.upstream_timeout,
            max_idle=config.pool_max_idle,
            idle_timeout=config.pool_idle_timeout,
            response_kinds=response_kinds(config.node_header.encode("latin-1")),
        )
        health = self.health = HealthTable(config.health_policy(), time.monotonic())
        retry_policy = config.retry_policy()
        retry_statuses = {502, 503, 504} | ({500} if config.retry_on_500 else set())
        gate = config.gate()
        profiles = {config.profile} | {source.profile for source in config.sources}
        normalizers = {
            profile: make_normalizer(
                profile,
                denylist=config.denylist,
                cache_size=0,  # the front keeps routes, hashes and owners together
                max_target_length=config.max_request_line,
            )
            for profile in sorted(profiles)
        }
        ctx = self.ctx = FrontContext(
            loop=loop,
            normalize=normalizers[config.profile],
            gate=gate,
            normalizers=normalizers,
            https=bool(config.tls_cert),
            route_cache_size=config.normalize_cache,
            pool=pool,
            stats=self.stats,
            access_log=access_log,
            limits=FrontLimits(
                max_request_line=config.max_request_line,
                max_header_bytes=config.max_header_bytes,
                header_timeout=config.client_header_timeout,
                idle_timeout=config.client_idle_timeout,
                send_buffer=config.client_send_buffer,
                max_connections=config.max_connections,
            ),
            node_header=config.node_header,
            via=config.via,
            health=health,
            budget=RetryBudget(retry_policy),
            pick_policy=config.pick_policy(),
            # One counter per worker: workers share nothing (docs/routing.md#hot-keys).
            hot_keys=HotKeys(config.hot_key_policy()) if config.hot_keys else None,
            placement=self._placement(),
            render_header=config.render_limit_header,
            retry_policy=retry_policy,
            retry=RetrySettings(
                try_timeout=config.try_timeout,
                request_timeout=config.request_timeout,
                retry_statuses=frozenset(retry_statuses),
                hedge_delay=config.hedge_delay,
                shed_retry_within=config.shed_retry_within,
            ),
            on_health_events=self.health_events,
            coalesce=config.coalesce_policy(),
        )
        self.apply_operator_modes()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # The supervisor forwards SIGHUP (re-read the member file and the certificate) and
        # sends SIGUSR1 when an operator confirms a membership drop the Consul guard is holding.
        self.tls = server_context(config.tls_cert, config.tls_key) if config.tls_cert else None
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        # A source with nothing to confirm ignores it (SIGUSR1's default would kill us).
        loop.add_signal_handler(signal.SIGUSR1, getattr(self.source, "confirm", lambda: None))
        loop.add_signal_handler(signal.SIGUSR2, self.apply_operator_modes)

        pool.start()
        ctx.start()
        tasks = [
            loop.create_task(self.source.run(self.publish), name="membership-source"),
            loop.create_task(self._write_state_forever(), name="state-writer"),
            loop.create_task(self._tick_health_forever(), name="health-tick"),
        ]
        if config.probe_path:
            self.prober = Prober(
                health,
                lambda: ctx.table,
                path=config.probe_path,
                interval=config.probe_interval,
                timeout=config.probe_timeout,
                on_events=self.health_events,
                expect=parse_expect(config.probe_expect),
            )
            tasks.append(loop.create_task(self.prober.run(), name="prober"))
        server: asyncio.AbstractServer | None = None
        sock: socket.socket | None = None
        exit_code = 0
        try:
            if await self._warm_up(stop):
                assert self.listener is not None, "a worker that serves needs its listening socket"
                sock = self.listener
                sock.setblocking(False)
                # listen() again on a socket a predecessor handed over is harmless; the
                # backlog is given here because create_server calls listen() with its own (100).
                server = await loop.create_server(lambda: ClientConnection(ctx), sock=sock, backlog=LISTEN_BACKLOG,
                                                  ssl=self.tls)
                self.listening = True
                self.warming = ""
                self._write_state()
                await stop.wait()
            elif not stop.is_set():
                exit_code = EXIT_NO_MEMBERSHIP
        finally:
            if server is not None and sock is not None:
                await self._drain(server, ctx, sock)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.ring_builder.close()
            pool.close_all()
            ctx.stop()
            access_log.close()
            self._write_state(draining=True)
        return exit_code

    async def _warm_up(self, stop: asyncio.Event) -> bool:
        """Wait for the first membership before listening; True when the worker should listen.

        A worker that listened with an empty ring would take its share of the port's
        connections (SO_REUSEPORT) and answer them 503, which during a reload means
        errors while the old generation could have served them (Envoy warms a listener
        the same way before it takes traffic). At start, or replacing a dead worker,
        it listens anyway after ``warmup_timeout`` so the balancer answers and says
        why; a reload's new generation gives up instead (``EXIT_NO_MEMBERSHIP``), and
        the supervisor keeps the running one.
        """
        first_table = asyncio.ensure_future(self._first_table.wait())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                (first_table, stopped), timeout=self.config.warmup_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            first_table.cancel()
            stopped.cancel()
        if stop.is_set():
            return False
        if self._first_table.is_set():
            await self._first_probes(stop)
            return not stop.is_set()
        detail = self.source.status().detail or "no answer yet"
        then = "listening anyway, answering 503 until one comes" if self.listen_without_membership else "giving up"
        print(f"pixring worker {self.index}: no membership after {self.config.warmup_timeout:g}s ({detail}); {then}",
              file=sys.stderr, flush=True)
        return self.listen_without_membership

    async def _first_probes(self, stop: asyncio.Event) -> None:
        """Wait until the first membership's probes have answered (each member is up or
        down, none pending), bounded by the probe timeout: a worker that listened first
        would route to nodes no probe has heard from, or to none at all."""
        self.warming = "health probes"
        self._write_state()
        health = self.health
        assert health is not None
        deadline = time.monotonic() + self.config.probe_timeout + 0.5
        while health.pending and not stop.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def reload(self) -> None:
        """SIGHUP: the member file again (a source that has one), and the certificate: new
        connections get the new one. One that does not load is logged, and the old kept."""
        reload_source = getattr(self.source, "reload", None)
        if reload_source is not None:
            reload_source()
        if self.tls is not None:
            try:
                reload_certificate(self.tls, self.config.tls_cert, self.config.tls_key)
            except TlsError as exc:
                print(f"pixring worker {self.index}: {exc}; keeping the certificate in use", file=sys.stderr, flush=True)

    def publish(self, membership: Membership) -> None:
        """Called by the source with each new membership: build, then swap in whole. A small
        table is built and swapped in before this returns; a large one is built in a child
        process and swapped in later, on the loop (``balancer.ringbuild``), and memberships
        that arrive meanwhile are coalesced to the newest."""
        assert self.ctx is not None
        self.ring_builder.submit(membership)

    def _swap_table(self, table: RoutingTable) -> None:
        """Put a built table in use, then close what it leaves behind and write the state,
        which therefore always shows the table in use."""
        ctx = self.ctx
        assert ctx is not None
        old = ctx.table.members
        ctx.set_table(table)
        if self.prober is not None and ctx.health.pending:
            self.prober.wake()
        self.membership_updates += 1
        self._first_table.set()
        current = table.members
        for member_id, member in old.items():
            if current.get(member_id) != member:
                ctx.pool.close_member(member)
        self._write_state()

    def health_events(self, events: list[HealthEvent]) -> None:
        """Count and log every change of a member's health, as operators need to see it."""
        if not events:
            return
        for event in events:
            self.stats.health_events[(event.member or "-", event.kind)] += 1
            line = {"time": time.time(), "event": f"health.{event.kind}", "member": event.member,
                    "detail": event.detail, "worker": self.index}
            sys.stderr.write(orjson.dumps(line).decode() + "\n")

    def apply_operator_modes(self) -> None:
        """Drain / maintenance set from the admin API (SIGUSR2, at start, and whenever
        the state writer sees the file changed: the supervisor does not signal a worker
        before its first report, so a change made while it starts reaches it that way)."""
        self._operator_signature = self._operator_file_signature()
        try:
            modes = orjson.loads((self.state_dir / OPERATOR_FILE).read_bytes())
        except (OSError, ValueError):
            modes = {}
        assert self.health is not None and self.ctx is not None
        now = time.monotonic()
        for member in set(self.ctx.table.members) | set(modes):
            self.health_events(self.health.set_operator(member, modes.get(member), now))

    def _operator_file_signature(self) -> tuple[int, int, int] | None:
        try:
            stat = (self.state_dir / OPERATOR_FILE).stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    async def _tick_health_forever(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_TICK_S)
            self.health_events(self.health.tick(time.monotonic()))  # type: ignore[union-attr]

    async def _drain(self, server: asyncio.AbstractServer, ctx: FrontContext, sock: socket.socket) -> None:
        # Readiness is already false (the supervisor flips it before signalling us);
        # keep accepting for drain_delay so an upstream balancer can notice.
        self._write_state(draining=True)
        if self.config.drain_delay:
            ctx.draining = True
            await asyncio.sleep(self.config.drain_delay)
        # Keep a second handle on the listening socket so that closing the server does
        # not reset the connections still waiting in its accept queue: take them all,
        # then close. Only a connection arriving in the last microseconds can be reset.
        backlog = sock.dup()
        server.close()
        ctx.begin_drain()
        loop = asyncio.get_running_loop()
        accepted = 0
        while True:
            try:
                conn, _ = backlog.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            accepted += 1
            conn.setblocking(False)
            await loop.connect_accepted_socket(lambda: ClientConnection(ctx), conn, ssl=self.tls)
        backlog.close()
        if accepted:
            print(f"pixring worker {self.index}: served {accepted} connections from the accept queue while draining",
                  file=sys.stderr)
        deadline = time.monotonic() + self.config.drain_timeout
        while ctx.busy_connections() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(ctx.connections):
            conn.close()
        await asyncio.sleep(0)  # let the transports flush and close

    async def _write_state_forever(self) -> None:
        while True:
            self._write_state()
            if self._operator_file_signature() != self._operator_signature:
                self.apply_operator_modes()
            await asyncio.sleep(STATE_INTERVAL_S)

    def state(self, *, draining: bool = False) -> dict[str, Any]:
        ctx = self.ctx
        assert ctx is not None
        table = ctx.table
        ring = table.ring
        source = self.source.status()
        return {
            "pid": os.getpid(),
            "index": self.index,
            "time": time.time(),
            "started": self.started,
            "listening": self.listening,
            "warming": self.warming,
            "draining": draining or ctx.draining,
            "stats": self.stats.snapshot(),
            "pool_idle": ctx.pool.idle_count(),
            "hot_keys": ctx.hot_keys.snapshot() if ctx.hot_keys is not None else [],
            "steering": ctx.placement.snapshot() if ctx.placement is not None else None,
            "panic": self.health.panic if self.health else False,
            "health": self.health.snapshot(time.monotonic()) if self.health else {},
            "ring": {
                "algorithm": ring.algorithm,
                "version": ring.version,
                "size": ring.size,
                "members": len(ring.members),
                # Computed once per ring (cached on it): the status page's "ring share".
                "shares": {member: round(share, 5) for member, share in ring.shares().items()},
            },
            "membership": {
                "source": table.membership.source,
                "updates": self.membership_updates,
                "members": [
                    {"id": m.id, "address": m.address, "weight": m.weight, "meta": dict(m.meta)}
                    for m in table.membership.members
                ],
            },
            "discovery": {
                "kind": source.kind,
                "ready": source.ready,
                "stale": source.stale,
                "detail": source.detail,
                "last_success_age_s": source.last_success_age_s,
            },
        }

    def _write_state(self, *, draining: bool = False) -> None:
        path = self.state_dir / f"worker-{self.index}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_bytes(orjson.dumps(self.state(draining=draining)))
            os.replace(tmp, path)
        except OSError as exc:  # the supervisor may have removed the directory on exit
            print(f"pixring worker {self.index}: cannot write state: {exc}", file=sys.stderr)


CONFIG_ENV = "PIXRING_WORKER_CONFIG"
LISTENER_FD_ENV = "PIXRING_WORKER_LISTENER_FD"  # the listening socket the supervisor made for this worker
WARMUP_ENV = "PIXRING_WORKER_WARMUP"  # "strict": never listen without a membership (a reload's generation)
# The process itself is started by the composition root (``python -m pixring.cli.worker``),
# which opens the membership source the config names.
