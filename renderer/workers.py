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
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, TypeVar

from renderer.errors import Overloaded, WorkerLost

__all__ = ["DEFAULT_QUEUE_PER_WORKER", "RenderPool", "default_workers"]

T = TypeVar("T")

# Waiting jobs admitted per worker beyond the running ones: at ~50 ms a render, 4 waiting
# per worker bounds the queueing delay near 200 ms before the pool says 503.
DEFAULT_QUEUE_PER_WORKER = 4
_PRELOAD = ["PIL.Image", "PIL.JpegImagePlugin", "PIL.PngImagePlugin", "PIL.WebPImagePlugin", "renderer.pipeline"]


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


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
        self.queue_limit = queue_limit if queue_limit is not None else DEFAULT_QUEUE_PER_WORKER * self.workers
        if self.queue_limit < 0:
            raise ValueError("the render queue limit must be >= 0")
        self.kind = kind
        self.pending = 0  # admitted jobs: running + waiting
        self.rebuilds = 0
        self._initializer = initializer
        self._initargs = initargs
        self._executor: Executor = self._new_executor()

    @property
    def capacity(self) -> int:
        return self.workers + self.queue_limit

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker; Overloaded if the queue is full, WorkerLost if it died."""
        if self.pending >= self.capacity:
            raise Overloaded(
                f"all {self.workers} render workers are busy and {self.queue_limit} renders are waiting"
            )
        self.pending += 1
        executor = self._executor
        try:
            future = executor.submit(fn, *args)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._replace(executor)
            raise WorkerLost("a render worker process died during this render; retry") from None
        finally:
            self.pending -= 1

    async def warm_up(self) -> None:
        """Start every worker now, so the first requests do not pay for process start-up."""
        await asyncio.gather(*(self.run(os.getpid) for _ in range(self.workers)))

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)

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
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(_PRELOAD)
        return ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), self._initializer, self._initargs),
        )


def _init_worker(owner_pid: int, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]) -> None:
    """Runs first in every worker process: tie its life to the renderer's, then initialize."""
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
