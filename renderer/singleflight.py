"""Single-flight: concurrent requests for the same render share one execution.

Rules: the first caller for a key starts the work as its own task; later callers for the
same key await that task instead of starting another. The task is shielded, so a client
that disconnects (its handler cancelled) does not cancel the render for the others, and
the entry is removed when the task finishes, whatever its outcome; every waiter sees the
same result or the same exception. When the *last* waiter goes away, nobody wants the
result any more: the task is cancelled (and with it the render in its worker,
``renderer.workers``), rather than finished for nobody. Lives on one event loop.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[T]] = {}
        self._waiters: dict[str, int] = {}
        self.abandoned = 0  # tasks cancelled because every waiter went away

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """(result, led): ``led`` is True for the caller whose call did the work."""
        task = self._running.get(key)
        led = task is None
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done, key=key: self._forget(key, done))
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            return await asyncio.shield(task), led
        except asyncio.CancelledError:
            if not task.done() and self._waiters.get(key) == 1 and self._running.get(key) is task:
                task.cancel()
                self.abandoned += 1
            raise
        finally:
            left = self._waiters.get(key, 1) - 1
            if left:
                self._waiters[key] = left
            else:
                self._waiters.pop(key, None)

    def _forget(self, key: str, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: a failure nobody awaited is not "never retrieved"
