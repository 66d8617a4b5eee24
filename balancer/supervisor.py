"""The balancer's parent process: starts the workers, keeps them running, serves admin.

The supervisor never touches client traffic. It checks that the public port can be
bound (and reserves it, so ``--listen HOST:0`` gives every worker the same port),
makes one SO_REUSEPORT socket per worker and starts ``--workers`` worker processes,
each inheriting its socket, restarts one that dies (with backoff), and serves the
admin listener from the state files the workers write. One admin
listener for the whole balancer means ``/status`` and ``/metrics`` describe every
worker, not whichever one the kernel picked.

SIGHUP re-reads the config file: a valid new config replaces the workers one
generation at a time (each new worker takes over its predecessor's socket and
listens once it has its membership, then the old drain), an invalid one is refused
with the error logged; the workers also re-read a member file. Shutdown
(SIGTERM/SIGINT): ``/readyz`` turns 503 first, then the workers drain (each stops
accepting and finishes its in-flight requests, up to the drain timeout), then the
admin listener closes and the process exits 0. A shutdown that comes while workers
are still starting (at start, or a reload's new generation) stops them without waiting
for their warm-up; an abandoned reload is no failure, and is not logged as one.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import orjson
from aiohttp import web

from balancer import compile as hot_path
from balancer.admin import AdminState, make_admin_app, worker_report
from balancer.config import BalancerConfig
from balancer.placement import PLACEMENT_FD_ENV, clear_row, shared_region
from balancer.tls import TlsError, server_context
from balancer.worker import (
    CONFIG_ENV,
    EXIT_NO_MEMBERSHIP,
    LISTENER_FD_ENV,
    WARMUP_ENV,
    bind_reuseport,
    refuse_if_listened_on,
)
from pixring.process import die_with_parent
from pixring.sdnotify import NOTIFY_SOCKET_ENV, Notifier

__all__ = ["Supervisor", "run_balancer"]

_RESTART_BACKOFF_MAX_S = 30.0
_START_TIMEOUT_S = 30.0  # for a worker process to start, on top of its warm-up


class StartupError(RuntimeError):
    pass


class ShutdownBegun(Exception):
    """A generation was still starting when SIGTERM or SIGINT came: it is abandoned
    (the shutdown stops whatever of it started), which is no failure to report."""


class Supervisor:
    def __init__(
        self,
        config: BalancerConfig,
        *,
        log=print,
        reload_config: Callable[[], BalancerConfig] | None = None,
        worker_command: Sequence[str],
    ) -> None:
        self.config = config
        self.worker_command = tuple(worker_command)  # argv of a worker process (the composition root's)
        self.log = log
        self.reload_config = reload_config
        self._next_index = 0
        self._keepers: dict[int, asyncio.Task] = {}
        self._serving: set[int] = set()  # the indices of the generation taking traffic
        self._reload_task: asyncio.Task | None = None
        self._generation_starting = False  # a reload's new workers are being started
        self._shutdown_asked = asyncio.Event()  # set by SIGTERM/SIGINT, even mid start-up
        self.state_dir = Path(tempfile.mkdtemp(prefix="pixring-"))
        self.notify = Notifier()
        self.stopping = False
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        # Worker index -> its listening socket, created here and inherited by the worker;
        # a reload's new worker is handed its predecessor's, so no socket closes under load.
        self._listeners: dict[int, socket.socket] = {}
        # Table slots -> the render-steering memory shared by the workers (its fd, our mapping).
        self._placements: dict[int, tuple[int, mmap.mmap]] = {}
        self.listen_port = config.listen.port
        self.admin_state = AdminState(
            config,
            self.state_dir,
            live_pids=self.live_pids,
            serving_pids=self.serving_pids,
            signal_workers=self.signal_workers,
        )

    def live_pids(self) -> set[int]:
        return {p.pid for p in self.procs.values() if p.returncode is None}

    def serving_pids(self) -> set[int]:
        return {p.pid for i, p in self.procs.items() if i in self._serving and p.returncode is None}

    def signal_workers(self, sig: int) -> int:
        """Signal every worker that has reported: one still starting has no handler yet,
        and the signal's default action would kill it (libuv resets a spawned child's
        dispositions, so it cannot inherit SIG_IGN). A starting worker reads the member
        and operator files itself, so it misses nothing."""
        sent = 0
        for index, proc in self.procs.items():
            if proc.returncode is None and worker_report(self.state_dir, index, proc.pid) is not None:
                try:
                    proc.send_signal(sig)
                    sent += 1
                except ProcessLookupError:
                    pass
        return sent

    def _new_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _listener(self, successor_of: int | None = None) -> socket.socket:
        """The predecessor's listening socket, or a new one: bound, not yet listening
        (the worker listens once it has its membership)."""
        if successor_of is not None and successor_of in self._listeners:
            return self._listeners[successor_of]
        return bind_reuseport(self.config.listen.host, self.listen_port, listen=False)

    def _release_listener(self, index: int) -> None:
        """Drop a worker's claim on its socket; close our handle once no worker of ours has it.

        Closing a listening socket resets the connections in its accept queue, so it is
        closed only when no successor takes it over: then the exiting worker, which
        still has its own handle, accepts what is queued before it closes it.
        """
        sock = self._listeners.pop(index, None)
        if sock is not None and all(other is not sock for other in self._listeners.values()):
            sock.close()

    async def _spawn(
        self, index: int, *, successor_of: int | None = None, strict_warmup: bool = False
    ) -> asyncio.subprocess.Process:
        listener = self._listeners[index] = self._listener(successor_of)
        env = dict(os.environ)
        env.pop(WARMUP_ENV, None)
        env.pop(NOTIFY_SOCKET_ENV, None)  # the supervisor speaks for the balancer
        if strict_warmup:
            env[WARMUP_ENV] = "strict"
        env[CONFIG_ENV] = orjson.dumps(self.config.as_flags()).decode()
        env["PIXRING_WORKER_INDEX"] = str(index)
        env["PIXRING_STATE_DIR"] = str(self.state_dir)
        env[LISTENER_FD_ENV] = str(listener.fileno())
        fds = [listener.fileno()]
        env.pop(PLACEMENT_FD_ENV, None)
        if self.config.steer_renders:
            fd = self._placement_fd(self.config.placement_slots)
            env[PLACEMENT_FD_ENV] = str(fd)
            fds.append(fd)
        proc = await asyncio.create_subprocess_exec(
            *self.worker_command, env=env, preexec_fn=_start_as_worker,
            pass_fds=tuple(fds)
        )
        self.procs[index] = proc
        return proc

    def _placement_fd(self, slots: int) -> int:
        """The workers' shared render-steering memory (``balancer.placement``): one per
        table size, so a reload that keeps the size keeps what the table learnt."""
        region = self._placements.get(slots)
        if region is None:
            region = self._placements[slots] = shared_region(slots)
        return region[0]

    async def _wait_listening(self, index: int, proc: asyncio.subprocess.Process) -> None:
        """Until the worker's state says it listens (it has its membership, or at start
        gave up waiting for one); StartupError if it exits or hangs first."""
        limit = _START_TIMEOUT_S + self.config.warmup_timeout
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if proc.returncode is not None and self._shutdown_asked.is_set():
                raise ShutdownBegun()  # Ctrl-C signals the whole group: it may have died of it
            if proc.returncode == EXIT_NO_MEMBERSHIP:
                raise StartupError(f"worker {index} found no membership within {self.config.warmup_timeout:g}s")
            if proc.returncode is not None:
                raise StartupError(f"worker {index} exited with code {proc.returncode} during start-up")
            report = worker_report(self.state_dir, index, proc.pid)
            if report is not None and report["listening"]:
                return
            # Only after the report: once every worker listens, /readyz has said 200,
            # and the start-up is finished however soon a SIGTERM follows.
            if self._shutdown_asked.is_set():
                raise ShutdownBegun()
            await asyncio.sleep(0.02)
        raise StartupError(f"worker {index} did not start listening within {limit:g}s")

    async def _keep_running(self, index: int) -> None:
        backoff = 0.5
        while not self.stopping and index in self._keepers:
            proc = self.procs[index]
            started = time.monotonic()
            code = await proc.wait()
            if self.stopping or index not in self._keepers:
                return
            self.log(f"pixring: worker {index} (pid {proc.pid}) exited with code {code}; restarting")
            self.admin_state.worker_exited(index, proc.pid)
            for slots, (_, region) in self._placements.items():
                clear_row(region, slots, index)  # its renders in flight ended with it
            # Nobody accepts from its socket until the restart: close it, so that new
            # connections go to the other workers instead of waiting in its queue.
            self._release_listener(index)
            if time.monotonic() - started > 10:
                backoff = 0.5
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _RESTART_BACKOFF_MAX_S)
            if not self.stopping and index in self._keepers:
                await self._spawn(index)

    def _keep(self, indices) -> None:
        loop = asyncio.get_running_loop()
        for index in indices:
            self._keepers[index] = loop.create_task(self._keep_running(index), name=f"keep-worker-{index}")

    def _serving_status(self) -> str:
        workers = len(self._serving)
        return f"serving on port {self.listen_port} with {workers} worker{'s' if workers != 1 else ''}"

    def _start_reload(self) -> None:
        """One reload at a time: a SIGHUP during one only has the workers re-read a
        member file (as every SIGHUP does), and the shutdown knows which task to wait for."""
        if self._reload_task is not None and not self._reload_task.done():
            self.signal_workers(signal.SIGHUP)
            return
        self._reload_task = asyncio.get_running_loop().create_task(self.reload(), name="reload")

    async def reload(self) -> None:
        """SIGHUP: re-read the config; if it is valid, replace the workers without a gap.

        The new generation starts beside the old one; each new worker listens
        (SO_REUSEPORT) once it has its membership, and only once every one does do
        the old ones drain and exit, so no connection is refused or dropped. A new
        generation without a membership within ``warmup_timeout`` is stopped and the
        old one kept, as is the running config when the new one is invalid. Until
        the new generation takes over, the admin listener reports on the old one.
        """
        self.signal_workers(signal.SIGHUP)  # a member file is re-read either way
        if self.reload_config is None or self._shutdown_asked.is_set():
            return
        try:
            new = self.reload_config()
            if new.tls_cert:
                server_context(new.tls_cert, new.tls_key)  # TlsError is a ValueError
        except ValueError as exc:
            self.log(f"pixring: reload refused, keeping the running config: {exc}")
            return
        if (new.listen, new.admin) != (self.config.listen, self.config.admin):
            self.log("pixring: reload refused: --listen and --admin changes need a restart")
            return
        if new == self.config:
            self.log("pixring: reload: config unchanged")
            return
        self.notify.reloading("reloading the config: starting a new generation of workers")
        switched = False
        try:
            old_config, old = self.config, dict(self.procs)
            self.config = new  # what the new generation is started with
            warning = new.sharing_warning()
            if warning:
                self.log(warning)
            fresh = [self._new_index() for _ in range(new.worker_count())]
            predecessors: list[int | None] = [*sorted(old), *[None] * len(fresh)]
            self._generation_starting = True
            try:
                for index, predecessor in zip(fresh, predecessors):
                    if self._shutdown_asked.is_set():
                        raise ShutdownBegun()
                    await self._spawn(index, successor_of=predecessor, strict_warmup=True)
                await asyncio.gather(*(self._wait_listening(i, self.procs[i]) for i in fresh))
            except ShutdownBegun:
                # Every worker it started is in self.procs, which the shutdown stops.
                self.log("pixring: reload abandoned: shutting down")
                return
            except (StartupError, OSError) as exc:  # OSError: no socket or process could be made
                self.log(f"pixring: reload failed, keeping the running workers: {exc}")
                # Drained, not killed: a new worker that did start listening may have
                # taken connections from the queue it shares with its predecessor.
                started = [index for index in fresh if index in self.procs]
                for index in fresh:
                    self._release_listener(index)
                await self._terminate([self.procs[index] for index in started])
                for index in started:
                    self.admin_state.worker_exited(index, self.procs.pop(index).pid)
                self.config = old_config
                return
            finally:
                self._generation_starting = False
            # The new generation takes over: admin reports on it and its config from now on.
            self._serving = set(fresh)
            self.admin_state.config = new
            self._keep(fresh)
            switched = True
            self.notify.ready(self._serving_status())  # the new config serves; the old drain
            for index in old:
                self._keepers.pop(index).cancel()
            # The old generation drains; its counters stay in the totals until it exits.
            for index in old:
                self._release_listener(index)
            await self._terminate([self.procs[index] for index in old])
            for index in old:
                self.admin_state.worker_exited(index, self.procs.pop(index).pid)
            self.log(f"pixring: reloaded config; {len(fresh)} workers replaced {len(old)}")
        finally:
            if not switched and not self._shutdown_asked.is_set():  # else the shutdown says STOPPING
                self.notify.ready(self._serving_status())

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        config = self.config
        stop = self._shutdown_asked
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # From the first moment: SIGHUP's default action would kill the balancer, and
        # /readyz can say 200 a moment before start-up has finished here.
        started = False
        reload_asked = False

        def on_sighup() -> None:
            nonlocal reload_asked
            if started:
                self._start_reload()
            else:
                reload_asked = True

        loop.add_signal_handler(signal.SIGHUP, on_sighup)

        # Refuse a port another process listens on: SO_REUSEPORT would let this balancer
        # share it without a word and take part of its connections. Then reserve the port
        # (bound, not listening, so it takes no connections) for the workers.
        if config.tls_cert:
            try:
                server_context(config.tls_cert, config.tls_key)  # a bad file stops the start, with its name
            except TlsError as exc:
                raise StartupError(str(exc)) from None
        try:
            refuse_if_listened_on(config.listen.host, config.listen.port)
            reservation = bind_reuseport(config.listen.host, config.listen.port, listen=False)
        except OSError as exc:
            raise StartupError(f"cannot listen on {config.listen}: {exc.strerror or exc}") from None
        self.listen_port = reservation.getsockname()[1]
        runner = web.AppRunner(make_admin_app(self.admin_state), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, config.admin.host, config.admin.port, reuse_address=True)
        try:
            try:
                await site.start()
            except OSError as exc:
                raise StartupError(f"cannot listen on admin {config.admin}: {exc.strerror or exc}") from None
            warning = config.sharing_warning()
            if warning:
                self.log(warning)
            for _ in range(config.worker_count()):
                await self._spawn(self._new_index())
            self._serving = set(self.procs)
            await asyncio.gather(*(self._wait_listening(i, p) for i, p in list(self.procs.items())))
        except ShutdownBegun:
            self.log("pixring: shutting down during start-up")
            self.notify.stopping("shutting down during start-up")
            await self._stop_workers()
            await runner.cleanup()
            reservation.close()
            return 0
        except BaseException:
            await self._stop_workers()
            await runner.cleanup()
            reservation.close()
            raise
        admin_bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        workers = len(self.procs)
        scheme = "https" if config.tls_cert else "http"
        # The addresses actually bound (0.0.0.0 says every address, as it is).
        self.log(
            f"pixring balancer ready: {scheme}://{_host(reservation.getsockname()[0])}:{self.listen_port} "
            f"(admin http://{_host(admin_bound[0])}:{admin_bound[1]}, {workers} worker{'s' if workers != 1 else ''})"
        )
        self._keep(list(self.procs))
        self.notify.ready(self._serving_status())
        started = True
        if reload_asked:
            self._start_reload()
        await stop.wait()
        self.log("pixring: shutting down, draining in-flight requests")
        self.notify.stopping("shutting down, draining in-flight requests")
        self.stopping = True
        self.admin_state.draining = True
        reload_task = self._reload_task
        if self._generation_starting and reload_task is not None:
            # It gives up at its next step (a poll is 20 ms), and then every worker it
            # started is in self.procs, to be stopped with the rest. A reload that has
            # switched over is only draining the old generation: stopped alongside.
            await asyncio.wait({reload_task})
        await self._stop_workers()
        if reload_task is not None:
            await asyncio.gather(reload_task, return_exceptions=True)
        keepers = list(self._keepers.values())
        for task in keepers:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        await runner.cleanup()
        reservation.close()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return 0

    async def _stop_workers(self) -> None:
        self.stopping = True
        for index in list(self._listeners):
            self._release_listener(index)  # each worker closes the last handle on its own
        await self._terminate(list(self.procs.values()))

    async def _terminate(self, procs: list[asyncio.subprocess.Process]) -> None:
        """SIGTERM (each worker drains), then SIGKILL whatever outlives the drain timeout."""
        procs = [p for p in procs if p.returncode is None]
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        grace = self.config.drain_timeout + 5.0
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), grace)
        except asyncio.TimeoutError:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
            await asyncio.gather(*(p.wait() for p in procs))


def _start_as_worker() -> None:
    """In the new worker, before it runs Python: tie its life to ours, and give it a
    process group of its own, so that a terminal's Ctrl-C (which signals the whole
    foreground group) reaches the supervisor alone, which drains the workers in order.
    A worker signalled directly could die of it while still importing, with a traceback."""
    die_with_parent()
    os.setpgid(0, 0)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run_balancer(
    config: BalancerConfig, reload_config: Callable[[], BalancerConfig] | None = None, *, worker_command: Sequence[str]
) -> int:
    import uvloop

    stale = hot_path.stale()
    if stale:
        # An extension module is imported in place of its source: the workers would run
        # the code as it was when compiled, beside the newer rest of pixring.
        names = ", ".join(stale)
        print(f"pixring: {names} changed after the request path was compiled, so its old compiled code "
              "would run: compile it again (`make compile` in a checkout, `python -m balancer.compile` "
              "where pixring is installed) or remove the compiled modules (`python -m balancer.compile "
              "--clean`)", file=sys.stderr)
        return 1
    supervisor = Supervisor(
        config, log=lambda msg: print(msg, file=sys.stderr, flush=True), reload_config=reload_config,
        worker_command=worker_command,
    )
    try:
        return uvloop.run(supervisor.run())
    except StartupError as exc:
        print(f"pixring: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(supervisor.state_dir, ignore_errors=True)
