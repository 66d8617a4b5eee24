"""The render pool's time budget: the alarm in a worker process, the last-resort rebuild, threads.

Each job that must time out would otherwise run for many seconds, so a missing timeout
fails the test (by a wrong result or the suite's timeout), never a clock comparison.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from renderer import workers
from renderer.errors import RenderTimeout
from renderer.workers import RenderPool


def ignore_alarms_and_sleep(seconds: float) -> str:
    """A job stuck where the alarm cannot reach it (as a long C call would be)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return "finished"


@pytest.fixture
async def process_pool():  # type: ignore[no-untyped-def]
    pool = RenderPool(1, 1, kind="process")
    await pool.warm_up()
    yield pool
    pool.shutdown(wait=False)


async def test_a_render_past_its_budget_is_stopped_and_the_worker_survives(process_pool: RenderPool) -> None:
    first = await process_pool.run(os.getpid)
    with pytest.raises(RenderTimeout, match="0.2 s"):
        await process_pool.run(time.sleep, 60, timeout=0.2)
    assert await process_pool.run(os.getpid) == first  # the same worker, free again
    assert process_pool.rebuilds == 0 and process_pool.pending == 0
    assert await process_pool.run(sum, [1, 2], timeout=5) == 3  # a job inside its budget is untouched


async def test_a_job_deaf_to_the_alarm_gets_the_pool_rebuilt(process_pool: RenderPool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "HARD_GRACE_SECONDS", 0.2)
    with pytest.raises(RenderTimeout):
        await process_pool.run(ignore_alarms_and_sleep, 60, timeout=0.1)
    assert process_pool.rebuilds == 1
    assert await process_pool.run(sum, [2, 3]) == 5


async def test_a_thread_past_its_budget_is_answered_but_keeps_its_slot() -> None:
    pool = RenderPool(1, 1, kind="thread")
    release = threading.Event()
    try:
        with pytest.raises(RenderTimeout):
            await pool.run(release.wait, 60, timeout=0.1)
        assert pool.pending == 1  # the thread still runs: the slot stays taken
        queued = asyncio.ensure_future(pool.run(sum, [1, 1]))
        await asyncio.sleep(0)
        assert pool.pending == 2 and not queued.done()  # waiting behind the stuck job
        release.set()
        assert await queued == 2
        assert pool.pending == 0
    finally:
        release.set()
        pool.shutdown()
