"""One request's decisions, driven with plain events and times, no loop (h11 style).

The front (``balancer.front``) feeds an ``Exchange`` what happened and does what it answers;
the same rules are tested over real sockets in ``tests/integration/test_front_resilience.py``,
``tests/integration/test_front.py`` and ``tests/e2e/test_overload.py``. Here every path of
those rules is walked with real parts (a ring, a health table, a retry budget, the worker's
counters) and a clock that is just a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.exchange import (
    FAIL,
    FAIL_NONE_HEALTHY,
    LAUNCH,
    NEXT_NOW,
    NO_HEALTHY_NODE,
    NO_NODE_AVAILABLE,
    RETRY,
    RETRY_AFTER_BACKOFF,
    TWIN_ANSWERS,
    WAIT_FOR_BUDGET,
    WIN,
    Exchange,
    RetrySettings,
    Routed,
)
from balancer.health import HealthPolicy, HealthTable, Outcome
from balancer.picker import Inflight, PickPolicy
from balancer.retry import RetryBudget, RetryPolicy
from balancer.ring import Ring, build_ring, key_hash
from balancer.stats import WorkerStats
from balancer.upstream import UpstreamError

MEMBERS = ("n1", "n2", "n3", "n4", "n5")
DEFAULT_STATUSES = frozenset({502, 503, 504})
# A budget that grants every retry a test asks for, unless the test says otherwise.
ROOMY = RetryPolicy(budget_ratio=0.0, min_concurrent=100, backoff_base_s=0.001, backoff_max_s=0.05)
SPENT = RetryPolicy(budget_ratio=0.0, min_concurrent=0, backoff_base_s=0.001, backoff_max_s=0.05)


@dataclass
class Fleet:
    """What a worker shares between its requests: the ring, the health table, the in-flight
    counts, the retry budget and the counters; ``exchange`` makes one request's state."""

    ring: Ring
    health: HealthTable
    inflight: Inflight
    pick: PickPolicy
    budget: RetryBudget
    retry_policy: RetryPolicy
    settings: RetrySettings
    stats: WorkerStats = field(default_factory=WorkerStats)

    def exchange(self, key: str) -> Exchange:
        routed = Routed(key.encode(), key, key_hash(key), b"")
        routed.generation = 0  # as FrontContext.route does for the current ring
        routed.owner = self.ring.owner(routed.hash)
        return Exchange(self.ring, self.health, self.inflight, self.pick, self.budget, self.retry_policy,
                        self.settings, self.stats, routed)

    def prefs(self, key: str, n: int = 3) -> tuple[str, ...]:
        return self.ring.preference(key_hash(key), n)

    def key_owned_by(self, member: str, start: int = 0) -> str:
        for i in range(start, start + 10_000):
            key = f"/img/{i}.jpg"
            if self.ring.owner(key_hash(key)) == member:
                return key
        raise AssertionError(f"no key owned by {member}")

    @property
    def n_members(self) -> int:
        return len(self.ring.members)


def fleet(members=MEMBERS, *, retry_policy: RetryPolicy = ROOMY, max_attempts: int = 3,
          balance_factor: float = 0, bound_floor: int = 8, try_timeout: float = 5.0,
          request_timeout: float = 10.0, retry_statuses=DEFAULT_STATUSES, hedge_delay: float = 0.0,
          **health_policy) -> Fleet:
    health_policy.setdefault("slow_start_s", 0)
    health = HealthTable(HealthPolicy(**health_policy), 0.0)
    health.set_members(members, 0.0)
    return Fleet(
        ring=build_ring({m: 1.0 for m in members}),
        health=health,
        inflight=Inflight(),
        pick=PickPolicy(balance_factor=balance_factor, max_attempts=max_attempts, bound_floor=bound_floor),
        budget=RetryBudget(retry_policy),
        retry_policy=retry_policy,
        settings=RetrySettings(try_timeout=try_timeout, request_timeout=request_timeout,
                               retry_statuses=frozenset(retry_statuses), hedge_delay=hedge_delay),
    )


def started(f: Fleet, key: str = "/img/1.jpg", now: float = 0.0) -> Exchange:
    x = f.exchange(key)
    assert x.begin(now, f.n_members) is None
    return x


def take_down(f: Fleet, member: str, now: float = 0.0) -> None:
    """Down by its active probes (the fleet is made with fall=1 where a test needs this)."""
    f.health.probe(member, False, now)
    assert member not in f.health.routable


# -- the start: candidates ---------------------------------------------------------------


def test_the_fast_path_tries_the_owner_alone_and_leaves_the_rest_for_a_retry():
    f = fleet()
    key = "/img/1.jpg"
    x = started(f, key)
    assert x.cands == (f.prefs(key)[0],) and not x.cands_full
    assert x.routed.prefs is None, "no preference list walked on the fast path"
    assert not x.overflowed
    assert x.next_member(0.0) == f.prefs(key)[0]
    assert x.attempts == 1
    assert f.budget.active_requests == 1 and f.budget.active_retries == 0


def test_a_retry_completes_the_list_to_the_keys_preference_order_and_stops_at_max_attempts():
    f = fleet(max_attempts=3)  # five members, three tries: the fast 502 of the socket test
    key = "/img/2.jpg"
    x = started(f, key)
    tried = [x.next_member(0.0)]
    verdicts = []
    while True:
        verdicts.append(x.after_failure(0.1))
        if verdicts[-1] != RETRY_AFTER_BACKOFF:
            break
        tried.append(x.next_member(0.1))
    assert tried == list(f.prefs(key, 3)), "the key's own next members, in order"
    assert verdicts == [RETRY_AFTER_BACKOFF, RETRY_AFTER_BACKOFF, FAIL]
    assert x.cands_full and x.cands == f.prefs(key, 3)
    assert x.attempts == 3 and f.stats.retries == 2 and f.stats.retries_refused == 0
    assert f.budget.active_retries == 2 and x.budget_held == 2


def test_an_owner_gone_during_its_try_is_not_tried_again_and_the_list_keeps_max_attempts():
    f = fleet(fall=1)
    key = f.key_owned_by("n3")
    x = started(f, key)
    assert x.next_member(0.0) == "n3"
    take_down(f, "n3", 0.05)  # its probe failed while the request was on it
    tried = ["n3"]
    while x.after_failure(0.1) == RETRY_AFTER_BACKOFF:
        tried.append(x.next_member(0.1))
    others = [m for m in f.prefs(key, 5) if m != "n3"]
    assert tried == ["n3", *others[:2]], "completed without the owner, and no member twice"
    assert len(x.cands) == 3


@pytest.mark.parametrize("members", [("a", "b"), ("a", "b", "c")])
def test_the_failure_that_ejects_the_owner_still_retries_every_other_member(members):
    f = fleet(members, consecutive_errors=1)  # this failure is the one that ejects it
    key = f.key_owned_by("a")
    x = started(f, key)
    assert x.next_member(0.0) == "a"
    tried = ["a"]
    f.health.outcome("a", Outcome.CONNECT_ERROR, 0.05)  # as _attempt_error reports it, first
    assert "a" not in f.health.routable and not f.health.panic
    while x.after_failure(0.1) == RETRY_AFTER_BACKOFF:
        tried.append(x.next_member(0.1))
    assert tried == ["a", *f.prefs(key, 3)[1:]], "every member of a fleet within max_attempts, once"


def test_a_member_already_down_is_left_out_from_the_start():
    f = fleet(fall=1)
    key = f.key_owned_by("n2")
    take_down(f, "n2")
    x = started(f, key)
    assert x.cands_full, "nothing to wait for: the picker's list is computed at once"
    assert x.cands == tuple(m for m in f.prefs(key, 5) if m != "n2")[:3]
    assert x.next_member(0.0) != "n2"
    assert not x.overflowed, "a skipped owner is not bounded load overflowing"


def test_bounded_load_overflowing_the_owner_is_marked_and_the_owner_stays_a_retry():
    f = fleet(balance_factor=1.25, bound_floor=1)
    key = f.key_owned_by("n1")
    calm = started(f, key)
    assert not calm.overflowed and calm.cands == ("n1",)
    calm.finish()
    for _ in range(4):
        f.inflight.start("n1")  # the owner is busy, nobody else is
    x = started(f, key)
    assert x.overflowed
    assert x.cands_full and x.cands[0] != "n1" and "n1" in x.cands
    assert x.routed.prefs == f.prefs(key, 3), "the key's list is kept with the route for the next overflow"
    assert x.next_member(0.0) == x.cands[0]


def test_put_first_moves_the_second_member_ahead_and_keeps_the_owner_as_the_retry():
    f = fleet()
    key = "/img/7.jpg"
    owner, second, third = f.prefs(key, 3)
    x = started(f, key)
    assert x.put_first(second, 0.0)
    assert x.cands == (second, owner, third) and x.cands_full
    assert x.next_member(0.0) == second
    assert x.after_failure(0.1) == RETRY_AFTER_BACKOFF
    assert x.next_member(0.1) == owner


def test_put_first_of_a_member_that_may_not_take_traffic_changes_nothing():
    f = fleet(fall=1)
    key = "/img/8.jpg"
    owner, second = f.prefs(key, 2)
    take_down(f, second)
    x = started(f, key)
    before = x.cands
    assert not x.put_first(second, 0.0)
    assert x.cands == before and x.cands[0] == owner


def test_a_fleet_with_no_routable_member_is_refused_at_once():
    f = fleet(fall=1)
    for member in MEMBERS:
        take_down(f, member)
    x = f.exchange("/img/1.jpg")
    assert x.begin(0.0, f.n_members) == NO_HEALTHY_NODE == "no healthy render node"
    assert f.budget.active_requests == 0, "a refused request never entered the budget"


def test_a_fleet_with_no_member_is_refused_with_no_node_available():
    f = fleet(())
    x = f.exchange("/img/1.jpg")
    assert x.begin(0.0, f.n_members) == NO_NODE_AVAILABLE == "no render node is available"
    assert x.cands == () and f.budget.active_requests == 0


def test_no_candidate_on_the_ring_is_refused_with_no_node_available():
    # The health table ahead of the ring: its only routable member is not on the ring yet,
    # and every member of the ring is drained.
    f = fleet()
    f.health.set_members([*MEMBERS, "newcomer"], 0.0)
    for member in MEMBERS:
        f.health.set_operator(member, "drain", 0.0)
    assert f.health.routable == {"newcomer"}
    x = f.exchange("/img/1.jpg")
    assert x.begin(0.0, f.n_members) == NO_NODE_AVAILABLE
    assert f.budget.active_requests == 0


# -- the deadline ------------------------------------------------------------------------


def test_no_next_member_once_the_deadline_has_passed():
    f = fleet(request_timeout=1.0)
    x = started(f, now=100.0)
    assert x.deadline == 101.0
    assert x.next_member(101.0) is None and x.next_member(150.0) is None
    assert x.attempts == 0 and x.next == 0, "no try counted when none is launched"
    assert x.next_member(100.999) is not None
    assert x.deadline_message() == "no answer within the 1s request deadline"


@pytest.mark.parametrize("now, expected", [
    (0.0, 0.3),  # the try timeout, well inside the deadline
    (0.6, 0.3),
    (0.8, 0.2),  # what is left of the deadline
    (0.9995, 0.001),  # never under a millisecond
    (1.0, 0.001),
    (5.0, 0.001),
])
def test_the_first_byte_timeout_is_the_try_timeout_capped_by_the_deadline(now, expected):
    f = fleet(try_timeout=0.3, request_timeout=1.0)
    x = started(f)
    assert x.first_byte_timeout(now) == pytest.approx(expected)


def test_a_failure_after_the_deadline_fails_even_with_members_and_budget_left():
    f = fleet(request_timeout=0.5)
    x = started(f)
    x.next_member(0.0)
    assert x.after_failure(0.5) == FAIL
    assert f.stats.retries == 0 and f.budget.active_retries == 0


# -- a node's answer ----------------------------------------------------------------------


def test_a_shed_answer_moves_on_at_once_taking_a_budget_slot():
    f = fleet()
    key = "/img/3.jpg"
    x = started(f, key)
    x.next_member(0.0)
    assert x.on_head(503, True, False, 0.01) == NEXT_NOW
    assert f.stats.retries == 1 and f.budget.active_retries == 1 and x.budget_held == 1
    assert x.next_member(0.01) == f.prefs(key)[1], "the key's own next member"


def test_when_every_candidate_sheds_the_last_answer_is_the_clients():
    f = fleet(max_attempts=3)
    x = started(f)
    verdicts = []
    for _ in range(3):
        assert x.next_member(0.0) is not None
        verdicts.append(x.on_head(503, True, False, 0.0))
    assert verdicts == [NEXT_NOW, NEXT_NOW, WIN]
    assert f.stats.retries == 2, "two tries moved on, as the socket test counts"
    assert f.stats.retries_refused == 0, "no member left is not a refusal of the budget"


def test_a_shed_answer_with_the_budget_spent_is_the_clients_and_the_refusal_is_counted():
    f = fleet(retry_policy=SPENT)
    x = started(f)
    x.next_member(0.0)
    assert x.on_head(503, True, False, 0.0) == WIN, "a shed never waits for the budget"
    assert f.stats.retries_refused == 1 and f.stats.retries == 0
    assert x.budget_held == 0 and f.budget.active_retries == 0


def test_a_shed_answer_after_the_deadline_is_the_clients():
    f = fleet(request_timeout=1.0)
    x = started(f)
    x.next_member(0.0)
    assert x.on_head(503, True, False, 1.0) == WIN
    assert f.budget.active_retries == 0 and f.stats.retries == 0


def test_a_shed_answer_with_a_hedged_twin_out_waits_for_the_twin():
    f = fleet()
    x = started(f)
    x.next_member(0.0)
    assert x.hedge(0.1)
    x.next_member(0.1)
    held = f.budget.active_retries
    assert x.on_head(503, True, True, 0.2) == TWIN_ANSWERS
    assert f.budget.active_retries == held and f.stats.retries == 0, "no slot taken for the dropped answer"


@pytest.mark.parametrize("status", [502, 503, 504])  # a 503 without Retry-After is a failure
def test_a_retry_status_moves_on_while_a_member_is_left(status):
    f = fleet(max_attempts=2)
    x = started(f)
    x.next_member(0.0)
    assert x.on_head(status, False, False, 0.0) == RETRY
    assert f.budget.active_retries == 0 and f.stats.retries == 0, "the slot is after_failure's to take"
    assert x.after_failure(0.0) == RETRY_AFTER_BACKOFF
    x.next_member(0.01)
    assert x.on_head(status, False, False, 0.01) == WIN, "the last member's answer is the client's"


def test_a_retry_status_with_a_hedged_twin_out_waits_for_the_twin():
    f = fleet()
    x = started(f)
    x.next_member(0.0)
    assert x.hedge(0.1)
    x.next_member(0.1)
    assert x.on_head(502, False, True, 0.2) == TWIN_ANSWERS


def test_a_retry_status_after_the_deadline_is_the_clients():
    f = fleet(request_timeout=1.0)
    x = started(f)
    x.next_member(0.0)
    assert x.on_head(502, False, False, 1.5) == WIN


@pytest.mark.parametrize("status", [200, 304, 404, 500])
def test_a_status_not_among_the_retry_statuses_is_the_clients(status):
    f = fleet(retry_statuses={502, 503, 504})
    x = started(f)
    x.next_member(0.0)
    assert x.on_head(status, False, False, 0.0) == WIN
    assert x.on_head(status, False, True, 0.0) == WIN, "even with a twin out: the first answer wins"
    assert f.stats.retries == 0 and f.budget.active_retries == 0


def test_a_500_is_retried_when_configured():
    f = fleet(retry_statuses={500, 502, 503, 504})
    x = started(f)
    x.next_member(0.0)
    assert x.on_head(500, False, False, 0.0) == RETRY


# -- after a failed try: the budget --------------------------------------------------------


def test_a_failure_with_the_budget_spent_waits_for_a_slot_then_launches():
    """The socket test's sequence: another request holds the only slot, then frees it."""
    f = fleet(retry_policy=RetryPolicy(budget_ratio=0.0, min_concurrent=1, backoff_base_s=0.001, backoff_max_s=0.01))
    key = "/img/4.jpg"
    assert f.budget.try_retry()  # another request holds the only retry slot
    x = started(f, key)
    x.next_member(0.0)
    assert x.after_failure(0.0) == WAIT_FOR_BUDGET
    assert f.stats.retries_refused == 1
    assert x.budget_wait == 0.01, "checked again every backoff_max_s"
    assert x.budget_freed(0.01) == WAIT_FOR_BUDGET
    assert x.budget_freed(0.02) == WAIT_FOR_BUDGET
    assert f.stats.retries_refused == 1, "a wait that goes on is one refusal, not one per check"
    f.budget.retry_finished()  # ... and the other request lets it go
    assert x.budget_freed(0.3) == LAUNCH
    assert f.stats.retries == 1 and x.budget_held == 1 and f.budget.active_retries == 1
    assert x.next_member(0.3) == f.prefs(key)[1]


def test_a_try_that_never_reached_its_node_moves_on_without_the_budget():
    """A refused connection is a redirection, not a second execution: it takes no slot, so
    a dead node's refusals cannot starve the live nodes' failures and shed answers."""
    f = fleet(retry_policy=SPENT)
    key = "/img/9.jpg"
    x = started(f, key)
    assert x.next_member(0.0) == f.prefs(key)[0]
    assert x.after_failure(0.0, reached=False) == RETRY_AFTER_BACKOFF
    assert f.stats.retries == 1 and f.stats.retries_refused == 0
    assert x.budget_held == 0 and f.budget.active_retries == 0, "no slot taken, none to give back"
    assert x.next_member(0.01) == f.prefs(key)[1]
    # The same try failing after it reached the node (a reset, a timeout) waits for a slot.
    assert x.after_failure(0.01) == WAIT_FOR_BUDGET
    assert f.stats.retries_refused == 1


def test_only_a_failed_connection_counts_as_a_try_that_never_reached_its_node():
    kinds = ("connect", "connect_timeout", "timeout", "reset", "protocol")
    assert [UpstreamError(kind, "x").reached_node for kind in kinds] == [False, False, True, True, True]


def test_tries_that_never_reached_a_node_still_stop_at_the_last_member():
    f = fleet(retry_policy=SPENT, max_attempts=3)
    x = started(f)
    verdicts = []
    for _ in range(3):
        assert x.next_member(0.0) is not None
        verdicts.append(x.after_failure(0.0, reached=False))
    assert verdicts == [RETRY_AFTER_BACKOFF, RETRY_AFTER_BACKOFF, FAIL], "max_attempts bounds them like any try"
    assert x.attempts == 3 and f.stats.retries == 2


def test_a_budget_that_never_frees_ends_at_the_deadline():
    f = fleet(retry_policy=SPENT, request_timeout=0.5)
    x = started(f)
    x.next_member(0.0)
    assert x.after_failure(0.0) == WAIT_FOR_BUDGET
    assert [x.budget_freed(t) for t in (0.1, 0.2, 0.4)] == [WAIT_FOR_BUDGET] * 3
    assert x.budget_freed(0.5) == FAIL
    assert f.stats.retries == 0 and x.attempts == 1, "the budget held: no retry was launched"


def test_a_fleet_gone_down_during_the_wait_is_answered_none_healthy():
    f = fleet(retry_policy=SPENT, fall=1)
    x = started(f)
    x.next_member(0.0)
    assert x.after_failure(0.0) == WAIT_FOR_BUDGET
    for member in MEMBERS:
        take_down(f, member, 0.01)
    assert x.budget_freed(0.05) == FAIL_NONE_HEALTHY


def test_a_wait_for_the_budget_with_no_member_left_fails():
    f = fleet(("solo",), retry_policy=SPENT)
    x = started(f)
    x.next_member(0.0)
    assert x.after_failure(0.0) == FAIL, "no member left: nothing to wait for"
    assert f.stats.retries_refused == 0
    assert x.budget_freed(0.05) == FAIL


def test_retries_of_several_requests_share_the_budget():
    f = fleet(retry_policy=RetryPolicy(budget_ratio=0.0, min_concurrent=2, backoff_base_s=0.001,
                                       backoff_max_s=0.01))
    xs = [started(f, f"/img/{i}.jpg") for i in range(3)]
    for x in xs:
        x.next_member(0.0)
    assert [x.after_failure(0.0) for x in xs] == [RETRY_AFTER_BACKOFF, RETRY_AFTER_BACKOFF, WAIT_FOR_BUDGET]
    xs[0].finish()  # the first retry's request is answered: its slot is free
    assert xs[2].budget_freed(0.01) == LAUNCH
    assert f.budget.active_retries == 2
    for x in xs[1:]:
        x.finish()
    assert f.budget.active_retries == 0 and f.budget.active_requests == 0


# -- hedging --------------------------------------------------------------------------------


def test_a_hedge_takes_a_budget_slot_and_goes_to_the_next_member():
    f = fleet(hedge_delay=0.1)
    key = "/img/5.jpg"
    x = started(f, key)
    assert x.next_member(0.0) == f.prefs(key)[0]
    assert x.hedge(0.1)
    assert f.stats.hedges == 1 and f.stats.retries == 0
    assert f.budget.active_retries == 1 and x.budget_held == 1
    assert x.next_member(0.1) == f.prefs(key)[1], "the twin goes to the key's next member"
    assert x.on_head(200, False, True, 0.2) == WIN


def test_no_hedge_when_the_budget_is_spent_and_the_refusal_is_counted():
    f = fleet(retry_policy=SPENT, hedge_delay=0.1)
    x = started(f)
    x.next_member(0.0)
    assert not x.hedge(0.1)
    assert f.stats.hedges == 0 and f.stats.retries_refused == 1


def test_no_hedge_without_a_member_left_or_after_the_deadline():
    solo = fleet(("solo",), hedge_delay=0.1)
    x = started(solo)
    x.next_member(0.0)
    assert not x.hedge(0.1)
    assert solo.stats.hedges == 0 and solo.stats.retries_refused == 0 and solo.budget.active_retries == 0

    late = fleet(hedge_delay=0.1, request_timeout=1.0)
    y = started(late)
    y.next_member(0.0)
    assert not y.hedge(1.0)
    assert late.stats.hedges == 0 and late.budget.active_retries == 0


# -- the end and the odd try -----------------------------------------------------------------


def test_finish_returns_the_request_and_every_slot_it_held_to_the_budget():
    f = fleet()
    other = started(f, "/img/6.jpg")
    other.next_member(0.0)
    assert other.after_failure(0.0) == RETRY_AFTER_BACKOFF  # another request's retry, still out
    x = started(f, "/img/7.jpg")
    x.next_member(0.0)
    assert x.hedge(0.1)
    x.next_member(0.1)
    assert x.on_head(503, True, True, 0.2) == TWIN_ANSWERS
    assert x.after_failure(0.3) == RETRY_AFTER_BACKOFF
    assert x.budget_held == 2
    assert f.budget.active_requests == 2 and f.budget.active_retries == 3
    x.finish()
    assert x.budget_held == 0
    assert f.budget.active_requests == 1 and f.budget.active_retries == 1, "the other request keeps its own"
    other.finish()
    assert f.budget.active_requests == 0 and f.budget.active_retries == 0


def test_a_stale_connection_retry_counts_an_attempt_but_no_retry():
    f = fleet()
    key = "/img/8.jpg"
    x = started(f, key)
    x.next_member(0.0)
    x.stale_retry()
    assert x.attempts == 2 and x.backoff_attempt == 2, "the next backoff grows with it"
    assert x.next == 1, "the same member again, not the next one"
    assert f.stats.retries == 0 and f.budget.active_retries == 0 and x.budget_held == 0
    assert x.after_failure(0.1) == RETRY_AFTER_BACKOFF
    assert x.next_member(0.1) == f.prefs(key)[1]


# -- many requests at once: the e2e overload test's accounting --------------------------------


def test_a_burst_on_a_shedding_fleet_keeps_retries_in_budget_and_counts_every_attempt():
    """Every node sheds: each request moves on while the budget (20% of those in flight,
    at least 3) has a slot, else the client gets the shed answer; no retry storm."""
    policy = RetryPolicy()  # the defaults: 20% of requests in flight, at least 3
    f = fleet(("r1", "r2", "r3"), retry_policy=policy)
    xs = [started(f, f"/img/burst-{i}.jpg") for i in range(45)]
    live = list(xs)
    most_retries = 0
    while live:
        still = []
        for x in live:
            assert x.next_member(0.0) is not None
            verdict = x.on_head(503, True, False, 0.0)
            most_retries = max(most_retries, f.budget.active_retries)
            assert verdict in (NEXT_NOW, WIN)
            if verdict == NEXT_NOW:
                assert f.budget.active_retries <= f.budget.limit, "a slot granted past the budget"
            if verdict == WIN:
                x.finish()
            else:
                still.append(x)
        live = still
    requests = len(xs)
    attempts = sum(x.attempts for x in xs)
    assert attempts == requests + f.stats.retries
    assert 0 < most_retries <= 9, "at most 20% of the 45 in flight"
    assert attempts < 2 * requests
    assert f.stats.retries_refused > 0
    assert f.budget.active_requests == 0 and f.budget.active_retries == 0


# -- any sequence of events ------------------------------------------------------------------

EVENTS = st.lists(st.sampled_from(["fail", "shed", "502", "500", "hedge", "stale", "wait", "tick"]),
                  max_size=14)


@settings(max_examples=60, deadline=None)
@given(events=EVENTS, min_concurrent=st.integers(0, 3))
def test_any_sequence_of_events_tries_distinct_members_and_gives_back_the_budget(events, min_concurrent):
    """The front's part played as in ``ClientConnection``: one hedge at most, a failure with a
    twin out waits for the twin, a wait for the budget ends only by ``budget_freed``."""
    f = fleet(retry_policy=RetryPolicy(budget_ratio=0.0, min_concurrent=min_concurrent, backoff_base_s=0.001,
                                       backoff_max_s=0.01), request_timeout=1.0)
    key = "/img/9.jpg"
    x = started(f, key)
    now = 0.0
    tried = [x.next_member(now)]
    out = 1  # tries in flight
    waiting = hedged = False
    for event in events:
        now += 0.1
        launch = after_failure = False
        if event == "tick":
            continue
        if waiting:
            if event != "wait":
                continue
            verdict = x.budget_freed(now)
            if verdict in (FAIL, FAIL_NONE_HEALTHY):
                break
            waiting = verdict == WAIT_FOR_BUDGET
            launch = verdict == LAUNCH
        elif event == "hedge":
            if hedged or out != 1:
                continue
            hedged = launch = x.hedge(now)
        elif event == "stale":
            x.stale_retry()
        elif event == "fail":
            out -= 1
            after_failure = out == 0  # else the twin is still trying
        elif event != "wait":
            status, shed = (503, True) if event == "shed" else (int(event), False)
            verdict = x.on_head(status, shed, out > 1, now)
            if verdict == WIN:
                break
            out -= 1
            launch = verdict == NEXT_NOW
            after_failure = verdict == RETRY
        if after_failure:
            verdict = x.after_failure(now)
            if verdict == FAIL:
                break
            waiting = verdict == WAIT_FOR_BUDGET
            launch = verdict == RETRY_AFTER_BACKOFF
        if launch:
            member = x.next_member(now)
            if member is None:
                break  # the deadline's 504
            tried.append(member)
            out += 1
        assert f.budget.active_retries == x.budget_held <= min_concurrent
    assert len(tried) == len(set(tried)), f"a member tried twice: {tried}"
    assert set(tried) <= set(f.prefs(key, 3)), "only the key's own members, max_attempts of them"
    assert f.stats.retries + f.stats.hedges == x.budget_held == len(tried) - 1
    x.finish()
    assert f.budget.active_requests == 0 and f.budget.active_retries == 0


def test_a_hot_key_starts_with_the_less_loaded_of_its_replicas_and_is_counted_as_spread():
    from balancer.hotkeys import HotKeyPolicy, HotKeys

    f = fleet()
    key = "/img/hot.jpg"
    hot = HotKeys(HotKeyPolicy(threshold=0.01, replica_load=0.1, max_replicas=3, sample=1))
    for _ in range(50):  # the key is the whole of this worker's recent traffic
        hot.observe(key_hash(key), key, f.n_members)
    replicas = f.prefs(key, 3)
    f.inflight.start(replicas[0])  # the owner is busier than the other two replicas
    firsts = set()
    for draw in (0.0, 0.3, 0.6, 0.9):
        x = f.exchange(key)
        replicas_now = hot.replicas(key_hash(key), f.n_members)
        assert x.begin(0.0, f.n_members, replicas_now, lambda: draw) is None
        assert x.replicas == 3
        assert x.cands[0] in replicas[1:]  # of two replicas drawn, the less loaded
        assert set(x.cands) <= set(f.prefs(key, 5)) and len(x.cands) == 3
        firsts.add(x.cands[0])
        x.finish()
    assert firsts == set(replicas[1:])  # both idle replicas take their turn
    assert f.stats.hot_spread == 4 and f.stats.bounded_overflow == 0


def test_a_key_that_is_not_hot_keeps_its_owner_alone():
    from balancer.hotkeys import HotKeyPolicy, HotKeys

    f = fleet()
    hot = HotKeys(HotKeyPolicy(sample=1))
    for i in range(500):  # many keys, none above the threshold
        hot.observe(key_hash(f"/img/{i}.jpg"), f"/img/{i}.jpg", f.n_members)
    key = f.key_owned_by("n2")
    x = f.exchange(key)
    assert x.begin(0.0, f.n_members, hot.observe(key_hash(key), key, f.n_members)) is None
    assert x.replicas == 1 and x.cands == ("n2",)
    assert f.stats.hot_spread == 0


def test_a_shed_answer_that_came_late_is_the_clients_even_with_budget_left():
    f = fleet()
    x = started(f)
    x.next_member(0.0)
    late = f.settings.shed_retry_within
    assert x.on_head(503, True, False, late, took=late) == WIN  # the node worked on it: no second node
    assert f.stats.retries == 0 and x.budget_held == 0
    y = started(f)
    y.next_member(0.0)
    assert y.on_head(503, True, False, 0.01, took=0.01) == NEXT_NOW  # a full queue answers at once
