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
    with pytest.raises(RenderTimeout):  # a budget long enough for the job to reach the worker
        await process_pool.run(ignore_alarms_and_sleep, 60, timeout=1.0)
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


def sleep_then_write(seconds: float, path: str) -> str:
    time.sleep(seconds)
    with open(path, "w") as handle:
        handle.write("finished")
    return "finished"


def announce_and_sleep(started: str, seconds: float, path: str) -> str:
    with open(started, "w"):
        pass
    return sleep_then_write(seconds, path)


async def test_a_job_whose_caller_stops_waiting_is_interrupted_in_its_worker(process_pool: RenderPool, tmp_path) -> None:
    first = await process_pool.run(os.getpid)
    started, finished = tmp_path / "started", tmp_path / "finished"
    waiting = asyncio.ensure_future(process_pool.run(announce_and_sleep, str(started), 3.0, str(finished), timeout=30))
    for _ in range(400):  # until the worker runs it
        if started.exists():
            break
        await asyncio.sleep(0.025)
    assert started.exists()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The worker is free at once (a job that ran on would hold it for 3 s) and is the same
    # process: the job was interrupted, not the worker killed.
    assert await process_pool.run(os.getpid, timeout=30) == first
    for _ in range(200):
        if process_pool.pending == 0:
            break
        await asyncio.sleep(0.01)
    assert process_pool.pending == 0 and process_pool.rebuilds == 0
    await asyncio.sleep(3.2)
    assert not finished.exists()  # the interrupted job never wrote its result


async def test_a_queued_job_whose_caller_stops_waiting_never_runs(tmp_path) -> None:
    pool = RenderPool(1, 4, kind="process")
    await pool.warm_up()
    try:
        started, finished = tmp_path / "started", tmp_path / "finished"
        busy = asyncio.ensure_future(pool.run(announce_and_sleep, str(started), 1.0, str(tmp_path / "busy")))
        queued = [asyncio.ensure_future(pool.run(sleep_then_write, 0.0, str(finished) + str(i), timeout=30))
                  for i in range(3)]
        await asyncio.sleep(0.2)
        for job in queued:
            job.cancel()
        assert await busy == "finished"
        assert await pool.run(os.getpid, timeout=30)
        assert not any((tmp_path / f"finished{i}").exists() for i in range(3))
    finally:
        pool.shutdown(wait=False)
