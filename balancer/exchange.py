"""One forwarded request's decisions: which member to try, what a node's answer means,
whether another try may go, and when to give up.

A pure state machine in the manner of h11's: no sockets, no timers, no event loop. The
front (``balancer.front``) tells an ``Exchange`` what happened (a response head, an
error, a timer that fired) and does what it answers: launch a try on a member, hand the
answer to the client, wait, or answer an error itself. So every retry, hedge, budget and
deadline rule lives here once, and is tested by feeding it events
(``tests/unit/test_exchange.py``), while the front keeps the HTTP/1.1 protocol, the
bytes and the clock.

The rules:

* Candidates are the picker's (``balancer.picker``): the key's owner alone on the fast
  path, completed to the key's preference list when a retry needs it. A hot key's
  candidates start with its replicas (``balancer.hotkeys``).
* A node's 503 *with* ``Retry-After`` is load shedding, not failure: the next member is
  tried at once, without backoff, only while the retry budget has a slot and only when the
  answer came within ``shed_retry_within`` (a full queue answers at once; a render that hit
  its time limit answers late, and another node would spend as long on it); otherwise the
  client gets the node's answer (its ``Retry-After`` with it).
* An answer with a status of ``retry_statuses`` (502, 503 and 504 by default), a refused
  connection, a reset or a try timeout moves the request to the next member after a
  jittered backoff, while the budget allows and the deadline has not passed; when the
  budget is spent the request waits for a slot (checked every ``backoff_max_s``) rather
  than fail: the budget bounds retries in flight, a burst of failures costs latency.
* A try whose connection failed (refused, or not accepted in time) never reached a node:
  the next member gets the request without a budget slot, as HAProxy's ``redispatch``
  does. It adds no load anywhere (the request was never served, and the next member is
  where the key goes once the dead one is ejected), and budgeting it would let a dead
  node's refusals, cheap and many in the seconds before ejection, take every slot from
  the shed answers and failures of the live nodes, whose clients would then get 503s.
* A hedge (a second try while the first is slow) takes a budget slot like a retry; the
  first answer wins, the other try is dropped.
* The deadline (``request_timeout`` from the start) bounds every wait; each try's
  first-byte timeout is ``try_timeout`` or what is left of the deadline.

One exchange answers one request; with coalescing (``balancer.coalesce``) its answer may
serve several waiting clients, which is why its state is its own object and not the
client connection's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Final

from balancer.health import HealthTable
from balancer.picker import Inflight, PickPolicy, candidates, first_choice
from balancer.retry import RetryBudget, RetryPolicy
from balancer.ring import Ring
from balancer.stats import WorkerStats

__all__ = [
    "Exchange", "RetrySettings", "Routed",
    "WIN", "NEXT_NOW", "RETRY", "TWIN_ANSWERS",
    "FAIL", "RETRY_AFTER_BACKOFF", "WAIT_FOR_BUDGET", "FAIL_NONE_HEALTHY", "LAUNCH",
]

# What a node's response head means for the exchange (``on_head``).
WIN: Final = 0  # the client's answer: forward it
NEXT_NOW: Final = 1  # a shedding node: drop its answer, try the next member at once
RETRY: Final = 2  # a failure worth another member: drop its answer, then ``after_failure``
TWIN_ANSWERS: Final = 3  # a hedged twin is still out: drop this answer, the twin's is awaited

# What to do after a failed try (``after_failure``) or a wait for the budget (``budget_freed``).
FAIL: Final = 10  # answer the failure to the client
RETRY_AFTER_BACKOFF: Final = 11  # launch the next try after ``backoff`` seconds
WAIT_FOR_BUDGET: Final = 12  # check again after ``budget_wait`` seconds
FAIL_NONE_HEALTHY: Final = 13  # the whole fleet is down meanwhile: 503 at once
LAUNCH: Final = 14  # launch the next try now

NO_HEALTHY_NODE: Final = "no healthy render node"
NO_NODE_AVAILABLE: Final = "no render node is available"


@dataclass(frozen=True, slots=True)
class RetrySettings:
    try_timeout: float  # first byte, per try
    request_timeout: float  # overall deadline
    retry_statuses: frozenset[int]  # node answers that move the request to the next member
    hedge_delay: float  # 0 = no hedging
    # A shed answer after a try this long is the client's: the node worked on the request
    # (a render that hit its time limit), and another node would spend as long on it.
    shed_retry_within: float = 1.0


class Routed:
    """What a request needs of its target's route: the target sent to the node, the key's
    hash, and the key's owner on the ring of the routing table ``generation`` (a number,
    not the ring: a cached entry must not keep an old ring alive).

    The ``Route`` itself is not kept: an entry is read on every request for one of
    thousands of targets, so each object it points to is one more cache line to fetch.
    The key is kept for the hot-key counter's report only.
    """

    __slots__ = ("upstream_target", "host_line", "key", "hash", "log_fields", "generation", "owner", "prefs")

    def __init__(self, upstream_target: bytes, key: str, hash_: int, log_fields: bytes) -> None:
        self.upstream_target = upstream_target
        self.host_line: bytes | None = None  # a source's own upstream Host; None = the node's address
        self.key = key
        self.hash = hash_
        self.log_fields = log_fields  # the access log's "path" and "key", rendered once
        self.generation = -1
        self.owner: str | None = None
        # The key's preference list on the same ring, once a request needed more than
        # the owner (bounded load overflowing): a hot key overflows again and again.
        self.prefs: tuple[str, ...] | None = None


class Exchange:
    """The decisions of one forwarded request (see the module rules).

    The caller pairs ``begin`` (when it returns None) with exactly one ``finish``."""

    __slots__ = (
        "ring", "health", "inflight", "pick", "budget", "retry_policy", "settings", "stats", "routed",
        "cands", "cands_full", "next", "attempts", "budget_held", "deadline", "replicas", "overflowed",
    )

    def __init__(self, ring: Ring, health: HealthTable, inflight: Inflight, pick: PickPolicy,
                 budget: RetryBudget, retry_policy: RetryPolicy, settings: RetrySettings,
                 stats: WorkerStats, routed: Routed) -> None:
        self.ring = ring
        self.health = health
        self.inflight = inflight
        self.pick = pick
        self.budget = budget
        self.retry_policy = retry_policy
        self.settings = settings
        self.stats = stats
        self.routed = routed
        self.cands: tuple[str, ...] = ()
        self.cands_full = False
        self.next = 0  # index in cands of the next member to try
        self.attempts = 0  # tries launched, the fresh retry of a stale connection included
        self.budget_held = 0  # retry budget slots this exchange holds
        self.deadline = 0.0
        self.replicas = 1  # the hot-key spread's width for this request (1: the owner's alone)
        self.overflowed = False  # bounded load moved the first choice off the key's first member

    # -- the start -------------------------------------------------------------
    def begin(self, now: float, n_members: int, replicas: int = 1,
              rand: Callable[[], float] = random.random) -> str | None:
        """Choose the candidates. None to go on (call ``next_member``), else why nobody
        can take the request (a 503 with ``Retry-After``). ``n_members`` is the ring's
        size, ``replicas`` the key's hot-key replica count (``balancer.hotkeys``; 1 when
        it is not hot), and ``rand`` draws the two replicas a hot key compares."""
        health = self.health
        if not health.routable and n_members:
            # Every member is down, ejected or taken out: answer at once rather than
            # send a retry storm at a fleet that cannot answer. (With a few healthy
            # members left, panic mode spreads over all of them instead.)
            return NO_HEALTHY_NODE
        routed = self.routed
        pick = self.pick
        self.replicas = replicas
        first = first_choice(routed.owner, health, self.inflight, pick, n_members, replicas)
        if first is not None:
            self.cands = (first,)  # the rest is computed if a retry needs it
        else:
            # Kept with the route: long enough for the tries and a hot key's replicas.
            want = min(max(pick.max_attempts, replicas), n_members)
            prefs = routed.prefs
            if prefs is None or len(prefs) < want:
                prefs = routed.prefs = self.ring.preference(routed.hash, want)
            self.cands = candidates(self.ring, routed.hash, health, self.inflight, now, pick,  # type: ignore[arg-type]
                                    prefs=prefs, replicas=replicas, choice=rand() if replicas > 1 else 0.0)
            self.cands_full = True
            if self.replicas > 1:
                self.stats.hot_spread += 1
            elif self.cands and self.cands[0] != routed.owner and routed.owner in self.cands:
                self.overflowed = True
                self.stats.bounded_overflow += 1
        if not self.cands:
            return NO_NODE_AVAILABLE
        self.deadline = now + self.settings.request_timeout
        self.budget.request_started()
        return None

    def put_first(self, member: str, now: float) -> bool:
        """Try ``member`` first, the others after it in their order, when it is one of the
        request's candidates (render steering, ``balancer.placement``); False when it is not
        (it may not take traffic now) and nothing changed. Before the first try only."""
        if not self.cands_full:
            self._complete_candidates(now)
        cands = self.cands
        if member not in cands:
            return False
        if cands[0] != member:
            self.cands = (member, *[m for m in cands if m != member])
        return True

    def next_member(self, now: float) -> str | None:
        """The member of the next try, or None when the deadline has passed."""
        if self.deadline - now <= 0:
            return None
        member = self.cands[self.next]
        self.next += 1
        self.attempts += 1
        return member

    def first_byte_timeout(self, now: float) -> float:
        remaining = self.deadline - now
        timeout = self.settings.try_timeout
        if remaining < timeout:
            timeout = remaining if remaining > 0.001 else 0.001
        return timeout

    def deadline_message(self) -> str:
        return f"no answer within the {self.settings.request_timeout:g}s request deadline"

    # -- events ------------------------------------------------------------------
    def on_head(self, status: int, retry_after: bool, twin: bool, now: float, took: float = 0.0) -> int:
        """What a try's response head means (WIN, NEXT_NOW, RETRY or TWIN_ANSWERS).
        ``twin``: another try of this exchange is still out (hedging); ``took``: seconds
        the try waited for this head."""
        if status == 503 and retry_after:
            # The node is shedding load: healthy, only full (see the module rules).
            if twin:
                return TWIN_ANSWERS
            if took >= self.settings.shed_retry_within:
                return WIN  # it gave up on a costly request: not one to hand to another node
            if not self.retry_possible(now) or not self.take_retry_budget():
                return WIN
            self.stats.retries += 1
            return NEXT_NOW
        if status in self.settings.retry_statuses:
            if twin:
                return TWIN_ANSWERS
            if self.retry_possible(now):
                return RETRY
        return WIN

    def after_failure(self, now: float, reached: bool = True) -> int:
        """After a failed try with no twin out: FAIL, RETRY_AFTER_BACKOFF or WAIT_FOR_BUDGET.
        ``reached``: False when the connection to the node failed, so the request never
        got to it (see the module rules: such a try moves on without the budget)."""
        if not self.retry_possible(now):
            return FAIL
        if not reached:
            self.stats.retries += 1
            return RETRY_AFTER_BACKOFF
        if self.take_retry_budget():
            self.stats.retries += 1
            return RETRY_AFTER_BACKOFF
        return WAIT_FOR_BUDGET

    def budget_freed(self, now: float) -> int:
        """A wait for the retry budget ended: FAIL_NONE_HEALTHY, FAIL, LAUNCH or WAIT_FOR_BUDGET."""
        if not self.health.routable:
            return FAIL_NONE_HEALTHY
        if not self.retry_possible(now):
            return FAIL
        if self.take_retry_budget(count_refusal=False):
            self.stats.retries += 1
            return LAUNCH
        return WAIT_FOR_BUDGET

    def hedge(self, now: float) -> bool:
        """The hedge timer fired with no answer yet: whether to launch a second try."""
        if not self.retry_possible(now) or not self.take_retry_budget():
            return False
        self.stats.hedges += 1
        return True

    def stale_retry(self) -> None:
        """A pooled connection the node had already closed: the same member again, once,
        on a fresh connection (idempotent methods only; not a failure, not budgeted)."""
        self.attempts += 1

    @property
    def backoff_attempt(self) -> int:
        return self.attempts

    @property
    def budget_wait(self) -> float:
        return self.retry_policy.backoff_max_s

    def finish(self) -> None:
        """The exchange is over: its request and its retries leave the budget."""
        budget = self.budget
        budget.request_finished()
        for _ in range(self.budget_held):
            budget.retry_finished()
        self.budget_held = 0

    # -- rules ---------------------------------------------------------------------
    def take_retry_budget(self, *, count_refusal: bool = True) -> bool:
        if self.budget.try_retry():
            self.budget_held += 1
            return True
        if count_refusal:
            self.stats.retries_refused += 1
        return False

    def retry_possible(self, now: float) -> bool:
        """A member is left to try and the deadline has not passed."""
        if not self.cands_full:
            self._complete_candidates(now)
        return self.next < len(self.cands) and now < self.deadline

    def _complete_candidates(self, now: float) -> None:
        """Extend a fast-path list (its first choice only) with the rest of the key's list."""
        tried = self.cands[: self.next]
        full = candidates(self.ring, self.routed.hash, self.health, self.inflight, now,  # type: ignore[arg-type]
                          self.pick, replicas=self.replicas)
        # Up to max_attempts in all: the failure that asked for this list may have ejected
        # a member already tried, which the picker's list then leaves out.
        self.cands = tried + tuple(m for m in full if m not in tried)[: max(0, self.pick.max_attempts - len(tried))]
        self.cands_full = True
