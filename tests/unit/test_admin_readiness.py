"""/readyz's verdict from the workers' state files (``balancer.admin.judge_readiness``)."""

from __future__ import annotations

from balancer.admin import judge_readiness

NOW = 1_000_000.0


def worker(index: int, **changes) -> dict:
    """A state file as a worker writes it, serving and healthy unless told otherwise."""
    state = {
        "index": index,
        "pid": 1000 + index,
        "time": NOW - 0.5,
        "listening": True,
        "draining": False,
        "panic": False,
        "ring": {"members": 3},
        "discovery": {"kind": "consul", "ready": True, "stale": False, "detail": ""},
        "health": {"r1": {"routable": True}, "r2": {"routable": False}},
    }
    for key, value in changes.items():
        state[key] = {**state[key], **value} if isinstance(value, dict) else value
    return state


def judge(workers, expected=2, draining=False):
    return judge_readiness(workers, expected=expected, draining=draining, now=NOW)


def test_every_expected_worker_listening_with_a_routable_member_is_ready():
    assert judge([worker(0), worker(1)]) == (True, "ok")


def test_a_missing_worker_is_not_ready():
    assert judge([worker(0)]) == (False, "1 of 2 workers listening")


def test_a_warming_worker_does_not_count_and_is_named():
    ready, reason = judge([worker(0), worker(1, listening=False, discovery={"ready": False})])
    assert not ready
    assert reason == "1 of 2 workers listening; worker 1 is waiting for its first membership"


def test_a_worker_waiting_for_its_first_probes_says_so():
    ready, reason = judge([worker(0), worker(1, listening=False, warming="health probes")])
    assert not ready
    assert reason == "1 of 2 workers listening; worker 1 is waiting for its first health probes to answer"


def test_a_warming_worker_beside_a_full_serving_set_changes_nothing():
    # The supervisor only reports the generation in service, but a warming worker in
    # the list must not be judged on a membership it is still waiting for.
    assert judge([worker(0), worker(1), worker(2, listening=False, discovery={"ready": False}, ring={"members": 0})])[0]


def test_each_reason_of_a_listening_worker_makes_it_unready():
    cases = {
        "draining": worker(1, draining=True),
        "has not reported for 6.0s": worker(1, time=NOW - 6.0),
        "membership not known yet (consul)": worker(1, discovery={"ready": False}),
        "no member in the ring": worker(1, ring={"members": 0}),
        "no healthy member": worker(1, health={"r1": {"routable": False}}),
    }
    for expected_reason, unwell in cases.items():
        ready, reason = judge([worker(0), unwell])
        assert not ready and expected_reason in reason and "worker 1" in reason, (expected_reason, reason)


def test_shutting_down_is_unready_whatever_the_workers_say():
    assert judge([worker(0), worker(1)], draining=True) == (False, "draining: shutting down")


def test_stale_discovery_and_panic_stay_ready_but_say_so():
    ready, reason = judge([worker(0, discovery={"stale": True, "detail": "consul failing (3 in a row)"}),
                           worker(1, panic=True)])
    assert ready
    assert reason == "ok; discovery stale: consul failing (3 in a row); panic mode: too few healthy members, routing over all of them"
