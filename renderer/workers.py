"""The render worker pool: CPU-bound Pillow work off the event loop, with a bounded queue.

Rules:

- One ``ProcessPoolExecutor`` created at start-up, sized to the cores by default. Its
  processes come from the ``forkserver`` context (``spawn`` where there is none): forking
  the serving process itself would copy a running event loop, its sockets and threads into
  the child (https://docs.python.org/3/library/multiprocessing.html#contexts-and-start-methods).
  The fork server preloads Pillow and the pipeline, so a worker starts in milliseconds.
- At most ``workers + queue_limit`` jobs are admitted at once; one more is ``Overloaded``
  (503 + Retry-After) at once, rather than a growing queue whose latency nobody can bound.
- A worker that dies (OOM killer, segfault in a decoder) breaks a ``ProcessPoolExecutor``
  for good; the pool replaces the executor and fails the affected jobs with ``WorkerLost``
  (503, retryable) instead of failing every later request.
- ``kind="thread"`` runs jobs in threads of this process instead: same interface, for tests
  and for platforms without a usable process pool. Pillow releases the GIL while it
  decodes, resamples and encodes, so threads still keep the loop responsive.
- A job may have a time budget (``timeout``), counted from its admission, so time spent
  waiting for a worker counts: a job still waiting at its deadline is dropped and answered
  ``RenderTimeout``; in a worker process an interval timer (``SIGALRM``) set to what is left
  of the budget raises ``RenderTimeout`` inside the job at its next Python instruction, so
  the worker survives and is free again. A job stuck inside one C call for much longer
  (``2 * timeout + HARD_GRACE_SECONDS`` after its admission) gets its pool's processes
  killed and the pool rebuilt, the last resort; other jobs in flight then fail with
  ``WorkerLost``. Threads cannot be stopped: a thread job past its budget is answered
  ``RenderTimeout`` and keeps its slot (``pending``) until it really ends.
- A job whose caller stops waiting (the task awaiting ``run`` is cancelled: the client went
  away) is cancelled too, not finished for nobody: dropped if it is still queued, and in a
  worker process interrupted by ``SIGUSR1`` at its next Python instruction. The job and
  the worker meet in two shared arrays indexed by a job slot: the worker writes its pid
  there while it runs the job, the renderer writes the job's number to cancel it, and the
  worker's handler acts only when the number is that of the job it is running, so a
  signal that arrives late never stops the next job.
- ``pending`` counts a job until its future is done, not until its caller stops waiting.
- Shutdown waits for running jobs (graceful stop: in-flight renders finish).
- Workers die with the renderer, even when it is SIGKILLed: a worker's parent is the fork
  server, which itself lives as long as any worker does, so each worker watches the
  renderer's pid through a pidfd (``os.pidfd_open``, Linux >= 5.3) and exits when it ends.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, TypeVar

from pixring.cpus import cpu_budget
from renderer.errors import Overloaded, RenderCancelled, RenderTimeout, WorkerLost

__all__ = ["DEFAULT_QUEUE_PER_WORKER", "RenderPool", "default_workers"]

T = TypeVar("T")

# Waiting jobs admitted per worker beyond the running ones: at ~50 ms a render, 4 waiting
# per worker bounds the queueing delay near 200 ms before the pool says 503.
DEFAULT_QUEUE_PER_WORKER = 4
# Beyond its soft budget, how long a job stuck in C may run before the pool is rebuilt.
HARD_GRACE_SECONDS = 2.0
# How often a job with a budget is looked at while it runs.
_WATCH_SECONDS = 0.05
# Job slots of the shared cancellation arrays; more than a pool ever has in flight.
_SLOTS = 4096
_PRELOAD = ["PIL.Image", "PIL.JpegImagePlugin", "PIL.PngImagePlugin", "PIL.WebPImagePlugin", "renderer.jobs"]


def default_workers() -> int:
    """The CPUs this process can keep busy: its affinity, capped by its cgroup's CPU quota
    (``pixring.cpus``: a render process per CPU of a container's limit, not per core of its host)."""
    return cpu_budget().usable


class RenderPool:
    def __init__(
        self,
        workers: int | None = None,
        queue_limit: int | None = None,
        *,
        kind: str = "process",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        if kind not in ("process", "thread"):
            raise ValueError(f"pool kind must be 'process' or 'thread', not {kind!r}")
        self.workers = workers if workers is not None else default_workers()
        if self.workers < 1:
            raise ValueError("a render pool needs at least 1 worker")
        self.set_queue_limit(queue_limit)
        self.kind = kind
        self.pending = 0  # admitted jobs: running + waiting
        self.rebuilds = 0
        self._initializer = initializer
        self._initargs = initargs
        self._jobs = 0
        self._shared = _SharedSlots(self._context()) if kind == "process" else None
        self._executor: Executor = self._new_executor()

    @property
    def capacity(self) -> int:
        return self.workers + self.queue_limit

    def set_queue_limit(self, queue_limit: int | None) -> None:
        """Renders allowed to wait (None: ``DEFAULT_QUEUE_PER_WORKER`` per worker); also on a
        SIGHUP, when renders already admitted keep their places."""
        limit = queue_limit if queue_limit is not None else DEFAULT_QUEUE_PER_WORKER * self.workers
        if limit < 0:
            raise ValueError("the render queue limit must be >= 0")
        self.queue_limit = limit

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """``fn(*args)`` in a worker; Overloaded if the queue is full, WorkerLost if it died,
        RenderTimeout if it ran past ``timeout`` seconds after its admission. Cancelling
        the caller cancels the job."""
        if self.pending >= self.capacity:
            raise Overloaded(
                f"all {self.workers} render workers are busy and {self.queue_limit} renders are waiting"
            )
        executor = self._executor
        loop = asyncio.get_running_loop()
        self._jobs += 1
        job = self._jobs
        try:
            if self._shared is not None:
                deadline = time.time() + timeout if timeout is not None else None
                future = executor.submit(_run_job, job % _SLOTS, job, deadline, timeout, fn, *args)
            else:
                future = executor.submit(fn, *args)
        except BrokenProcessPool:
            self._replace(executor)
            raise WorkerLost("a render worker process died; retry") from None
        self.pending += 1
        future.add_done_callback(lambda _: _call_soon(loop, self._finished))
        try:
            if timeout is None:
                return await asyncio.wrap_future(future)
            return await self._watch(future, timeout, executor, job)
        except BrokenProcessPool:
            self._replace(executor)
            raise WorkerLost("a render worker process died during this render; retry") from None
        except asyncio.CancelledError:
            self._cancel(future, job)
            raise

    def _cancel(self, future: Future[Any], job: int) -> None:
        """Stop a job nobody waits for: dropped if queued, interrupted if it runs."""
        if future.cancel() or future.done() or self._shared is None:
            return
        self._shared.cancel(job % _SLOTS, job)

    async def _watch(self, future: Future[T], timeout: float, executor: Executor, job: int) -> T:
        waiting = asyncio.wrap_future(future)
        admitted = time.monotonic()
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=_WATCH_SECONDS)
            if done:
                return waiting.result()
            late = time.monotonic() - admitted
            if late <= timeout or future.done():  # done: its result is read on the next turn
                continue
            if not future.running() or self.kind == "thread":
                # Still queued (or a thread, which cannot be stopped): past its budget.
                self._cancel(future, job)
                waiting.cancel()
                raise RenderTimeout(_timeout_message(timeout))
            if late > 2 * timeout + HARD_GRACE_SECONDS:
                waiting.cancel()
                self._kill(executor)
                raise RenderTimeout(_timeout_message(timeout))

    def _finished(self) -> None:
        self.pending -= 1

    async def warm_up(self) -> None:
        """Start every worker now, so the first requests do not pay for process start-up."""
        await asyncio.gather(*(self.run(os.getpid) for _ in range(self.workers)))

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)

    def _kill(self, executor: Executor) -> None:
        """The last resort for a job that ignores its alarm: end the pool's processes."""
        # ProcessPoolExecutor has no public way to stop one worker; its process table is
        # the only handle there is. The rebuild below is the public part.
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        self._replace(executor)

    def _replace(self, broken: Executor) -> None:
        if self._executor is broken:  # the first job to notice rebuilds; the others reuse it
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
            self.rebuilds += 1

    def _new_executor(self) -> Executor:
        if self.kind == "thread":
            if self._initializer is not None:
                self._initializer(*self._initargs)
            return ThreadPoolExecutor(self.workers, thread_name_prefix="render")
        context = self._context()
        return ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), self._shared, self._initializer, self._initargs),
        )

    @staticmethod
    def _context() -> Any:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(_PRELOAD)
        return context


class _SharedSlots:
    """What the renderer and its worker processes share about running jobs, per job slot:
    the pid of the worker running it (0: none) and the number of a job to cancel."""

    def __init__(self, context: Any) -> None:
        self.pids = context.RawArray("q", _SLOTS)
        self.cancelled = context.RawArray("q", _SLOTS)

    def cancel(self, slot: int, job: int) -> None:
        self.cancelled[slot] = job
        pid = self.pids[slot]
        if pid:
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass  # the worker is gone: nothing left to stop


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:
        pass  # the loop is closed: nobody is counting any more


# In a worker process: the shared slots, and the (slot, job) it is running, if any.
_WORKER_SLOTS: list[_SharedSlots] = []
_RUNNING: list[tuple[int, int]] = []


def _run_job(slot: int, job: int, deadline: float | None, budget: float | None, fn: Callable[..., T],
             *args: Any) -> T:
    """Runs in a worker process: ``fn(*args)``, interrupted by RenderTimeout at ``deadline``
    (wall-clock seconds) and by RenderCancelled when the renderer cancels job ``job``."""
    shared = _WORKER_SLOTS[0]
    if shared.cancelled[slot] == job:
        raise RenderCancelled("the render was cancelled before it started: its client went away")
    seconds = None
    if deadline is not None:
        seconds = deadline - time.time()
        if seconds <= 0:
            raise RenderTimeout(_timeout_message(budget))

    def expire(signum: int, frame: object) -> None:
        raise RenderTimeout(_timeout_message(budget))

    previous = signal.signal(signal.SIGALRM, expire)
    _RUNNING.append((slot, job))
    shared.pids[slot] = os.getpid()
    if seconds is not None:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        shared.pids[slot] = 0
        _RUNNING.clear()
        signal.signal(signal.SIGALRM, previous)


def _on_cancel(signum: int, frame: object) -> None:
    """SIGUSR1 in a worker: stop the running job if it is the one the renderer cancelled."""
    if _RUNNING and _WORKER_SLOTS:
        slot, job = _RUNNING[0]
        if _WORKER_SLOTS[0].cancelled[slot] == job:
            _RUNNING.clear()
            raise RenderCancelled("the render was cancelled: its client went away")


def _timeout_message(seconds: float | None) -> str:
    return f"the render took longer than the renderer's render_timeout of {seconds:g} s"


def _init_worker(owner_pid: int, shared: _SharedSlots | None, initializer: Callable[..., object] | None,
                 initargs: tuple[Any, ...]) -> None:
    """Runs first in every worker process: tie its life to the renderer's, then initialize."""
    # Ctrl-C reaches the whole terminal process group; the renderer shuts its pool down
    # in order, so a worker interrupted mid-wait would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if shared is not None:
        _WORKER_SLOTS[:] = [shared]
        signal.signal(signal.SIGUSR1, _on_cancel)
    _exit_with(owner_pid)
    if initializer is not None:
        initializer(*initargs)


def _exit_with(pid: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(0)  # the renderer is already gone
    except (AttributeError, OSError):
        return  # no pidfd here (old kernel, not Linux): orphans are then the supervisor's job

    def watch() -> None:
        select.select([pidfd], [], [])  # readable once the process has exited
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-renderer", daemon=True).start()
