"""Single-flight: concurrent requests for the same render share one execution.

Rules: the first caller for a key starts the work as its own task; later callers for the
same key await that task instead of starting another. The task is shielded, so a client
that disconnects (its handler cancelled) neither cancels the render for the others nor
leaves the key stuck: the entry is removed when the task finishes, whatever its outcome,
and every waiter sees the same result or the same exception. Lives on one event loop.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[T]] = {}

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
        return await asyncio.shield(task), led

    def _forget(self, key: str, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: a failure nobody awaited is not "never retrieved"
