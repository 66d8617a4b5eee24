"""Routing tables built where they cannot stall the worker's event loop.

Rules of this module:

* A membership of up to ``INLINE_MAX_POINTS`` ring points (200 standard members, ~10 ms
  of build) is built inline on the loop: a child process would cost more than it saves.
  A larger one is built in a child process, because the build is pure Python (sorting and
  hashing) and holds the GIL: in a thread it still stopped the loop for 39 ms of a 60 ms
  build at 1,000 members. The child gets the weights and sends back the ``Ring``, which
  pickles as flat arrays and is restored in slices (``balancer.ring``), so the pool's
  result thread that unpickles it gives the GIL back to the loop every few ms. The parent
  pairs the ring with the membership it already holds.
* The first table is built inline whatever its size: before it there is no member to
  route to, so there is no request handling to protect, and a fleet that never changes
  never starts a child.
* The child is one worker of a ``ProcessPoolExecutor`` created at the first off-loop build
  and kept until ``close()``. It is started with 'spawn', not 'fork': a forked child would
  inherit the running loop, its sockets and threads (the docs warn against forking a
  multi-threaded process), and unlike 'forkserver' it is our own child, so the worker's
  ``initializer`` (``die_with_parent``) ties its life to ours. 'spawn' imports the parent's
  main module again in the child: a script that runs a worker needs the
  ``if __name__ == "__main__"`` guard, or every large build fails over to inline.
* Coalescing: at most one off-loop build runs. Memberships submitted meanwhile replace one
  pending slot, so when the build ends only the newest of them is built next.
* Order: every submitted membership is numbered, and a table is swapped in only if its
  number is higher than the table in use: never an older table after a newer one. A build
  that ends after a newer table was swapped in (a small membership, built inline) is
  dropped. One that ends while a newer membership is only pending is swapped in: it is
  newer than the table in use, and under steady churn (a rolling restart of a large fleet)
  waiting for the newest could starve the swap forever.
* Failure: a membership the ring refuses (``ValueError``: a bad weight, too many points)
  is logged and changes nothing, as an inline build's error would. Any other failure (the
  child died, could not start, could not send its result) builds that table inline, and
  the next large membership starts a fresh child.
* The swap itself is the caller's ``apply(table)``, called on the loop: one attribute
  assignment (``FrontContext.set_table``) plus what follows it.

References: Python's ``concurrent.futures.ProcessPoolExecutor`` and ``multiprocessing``
start methods (https://docs.python.org/3/library/concurrent.futures.html#processpoolexecutor,
https://docs.python.org/3/library/multiprocessing.html#contexts-and-start-methods); Envoy's
thread-aware load balancers build a new table away from the workers and swap it in
(https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Callable

from balancer.ring import MAX_POINTS, POINTS_PER_WEIGHT, build_ring
from balancer.routing import RoutingTable
from pixring.membership import Membership

__all__ = ["INLINE_MAX_POINTS", "RingBuilder", "ring_points"]

log = logging.getLogger("pixring.balancer.ringbuild")

# 200 members of weight 1: measured 9 ms inline on our shared 2-core machine (100 members:
# 4-5 ms; 1,000: ~60 ms). Above this a child process is worth its round trip.
INLINE_MAX_POINTS = 200 * POINTS_PER_WEIGHT
START_METHOD = "spawn"


def ring_points(membership: Membership) -> int:
    """The points the ring will have (the ring's own rule: ``round(weight * 100)``, at least
    one, weight-0 members none), which is what a build costs."""
    return sum(max(1, round(m.weight * POINTS_PER_WEIGHT)) for m in membership.members if m.weight > 0)


class RingBuilder:
    """Builds routing tables for one worker and hands each to ``apply`` on the loop.

    ``submit`` is synchronous (a membership source calls it); a large table is built by a
    task on the running loop. ``close()`` stops it and the child process.
    """

    def __init__(
        self,
        apply: Callable[[RoutingTable], None],
        *,
        inline_max_points: int = INLINE_MAX_POINTS,
        start_method: str = START_METHOD,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self._apply = apply
        self._inline_max_points = inline_max_points
        # Resolved now, so that an unknown start method is an error here and not a failed build.
        self._context = multiprocessing.get_context(start_method)
        self._initializer = initializer
        self._executor: Executor | None = None
        self._task: asyncio.Task | None = None
        self._submitted = 0  # number of the newest membership
        self._applied = 0  # number of the table in use (0: none yet)
        self._pending: tuple[int, Membership] | None = None
        self._building: Membership | None = None
        self._closed = False
        # What happened to the submitted memberships, for tests and benchmarks.
        self.built_inline = 0
        self.built_off_loop = 0
        self.fell_back = 0  # off-loop builds that failed and were built inline
        self.coalesced = 0  # replaced while pending: never built
        self.dropped = 0  # built, but a newer table was in use by then

    @property
    def building(self) -> Membership | None:
        """The membership being built off the loop, if any."""
        return self._building

    def submit(self, membership: Membership) -> None:
        """Take a new membership. A small one (or the first) is built and applied before this
        returns, and its ``ValueError`` reaches the caller; a large one is built off the loop."""
        if self._closed:
            raise RuntimeError("the ring builder is closed")
        self._submitted += 1
        number = self._submitted
        if self._applied == 0 or not self._worth_a_child(membership):
            table = RoutingTable.build(membership)  # a refused membership leaves the pending one
            self.built_inline += 1
            if self._pending is not None:
                self.coalesced += 1
                self._pending = None
            self._install(number, table)
            return
        if self._pending is not None:
            self.coalesced += 1
        self._pending = (number, membership)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._build_pending(), name="ring-build")

    async def wait_idle(self) -> None:
        """Return when nothing is being built or waiting to be."""
        while (task := self._task) is not None:
            await asyncio.wait({task})

    def close(self) -> None:
        """Stop building: a build in flight is abandoned, the child process asked to exit."""
        self._closed = True
        self._pending = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self._drop_executor()

    # -- inside ---------------------------------------------------------------------------

    def _worth_a_child(self, membership: Membership) -> bool:
        points = ring_points(membership)
        # Above MAX_POINTS build_ring refuses before building anything: let it say so inline.
        return self._inline_max_points < points <= MAX_POINTS

    async def _build_pending(self) -> None:
        try:
            while self._pending is not None:
                number, membership = self._pending
                self._pending = None
                self._building = membership
                try:
                    table = await self._build_off_loop(membership)
                finally:
                    self._building = None
                if self._closed:
                    return
                if table is None:
                    continue
                try:
                    self._install(number, table)
                except Exception:  # the caller's bug must not end the builder
                    log.exception("swapping in a routing table of %d members failed", len(membership))
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _build_off_loop(self, membership: Membership) -> RoutingTable | None:
        weights = membership.weights()
        try:
            ring = await asyncio.get_running_loop().run_in_executor(self._executor_for_builds(), build_ring, weights)
            self.built_off_loop += 1
        except ValueError as exc:  # raised by build_ring in the child: the membership's fault
            log.error("the ring refused a membership of %d members: %s", len(membership), exc)
            return None
        except Exception as exc:  # BrokenProcessPool, OSError, a pickling error: ours, not the input's
            log.warning("building a ring of %d members in a child process failed (%s: %s); building it inline",
                        len(membership), type(exc).__name__, exc)
            self._drop_executor()
            try:
                ring = build_ring(weights)
            except ValueError as refused:
                log.error("the ring refused a membership of %d members: %s", len(membership), refused)
                return None
            self.fell_back += 1
        return RoutingTable(membership, ring, membership.by_id())

    def _install(self, number: int, table: RoutingTable) -> None:
        if number <= self._applied:
            self.dropped += 1
            return
        self._applied = number
        self._apply(table)

    def _executor_for_builds(self) -> Executor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=self._context,
                initializer=self._initializer,
            )
        return self._executor

    def _drop_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            # Not waiting: a build in flight ends in the child on its own, and the pool's
            # exit hook joins it when the interpreter exits.
            executor.shutdown(wait=False, cancel_futures=True)
