"""The health table driven with plain events and times, no loop (h11 style)."""

from __future__ import annotations

import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.health import (
    MIN_RAMP,
    HealthError,
    HealthPolicy,
    HealthTable,
    Outcome,
    UnknownMember,
    _State,
)

FAIL = Outcome.SERVER_ERROR


def table(members=("a", "b", "c", "d"), now=0.0, **policy) -> HealthTable:
    t = HealthTable(HealthPolicy(**policy), now)
    t.set_members(members, now)
    return t


def kinds(events) -> list[tuple[str, str | None]]:
    return [(e.kind, e.member) for e in events]


def fail(t: HealthTable, member: str, times: int, now: float, outcome=FAIL) -> list:
    events = []
    for _ in range(times):
        events += t.outcome(member, outcome, now)
    return events


# -- policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("rise", 0), ("fall", -1), ("rise", 1.5), ("fall", True), ("consecutive_errors", -1),
    ("base_ejection_s", 0), ("base_ejection_s", float("nan")), ("max_ejection_s", 5.0),
    ("max_ejected_fraction", 1.5), ("panic_threshold", -0.1), ("slow_start_s", -1),
    ("slow_start_s", float("inf")),
])
def test_policy_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(HealthError, match=field):
        HealthPolicy(**{field: value})


def test_the_policys_defaults_are_the_balancers():
    """HealthPolicy() is what a balancer runs with when nothing is configured: the defaults of
    its fields (probe_rise, outlier_errors, ...) and those of the policy cannot drift apart."""
    from balancer.config import load_config

    # But one: a balancer probes by default, so its new members await their first probe
    # (await_first_probe follows probe_path); the policy's own default is a table no prober feeds.
    assert load_config(environ={}).health_policy() == HealthPolicy(await_first_probe=True)
    assert load_config(environ={}, flags={"probe_path": ""}).health_policy() == HealthPolicy()


def test_the_edges_of_the_ranges_are_accepted_and_mean_off_or_all():
    t = table(("a", "b"), consecutive_errors=0, slow_start_s=0, panic_threshold=0, max_ejected_fraction=1)
    assert fail(t, "a", 50, 1.0) == [] and t.routable == {"a", "b"}  # 0 errors: passive ejection off
    t.set_members(["a", "b", "c"], 2.0)
    assert t.ramp("c", 2.0) == 1.0 and t.slow_starting == frozenset()  # 0 s: no slow start
    for member in ("a", "b", "c"):
        for _ in range(3):
            t.probe(member, False, 3.0)
    assert t.routable == set() and not t.panic  # threshold 0: never panic, even with nobody up
    ejecting = table(("a", "b"), consecutive_errors=1, max_ejected_fraction=1, panic_threshold=0)
    fail(ejecting, "a", 1, 1.0)
    fail(ejecting, "b", 1, 1.0)
    assert ejecting.routable == set()  # fraction 1: every member may be ejected at once


# -- membership --------------------------------------------------------------------------


def test_first_members_are_up_routable_and_not_ramping():
    t = table()
    assert t.routable == {"a", "b", "c", "d"}
    assert t.slow_starting == frozenset()
    assert not t.panic
    assert t.ramp("a", 0.0) == 1.0


def test_members_joining_later_are_up_but_ramp_from_now():
    t = table(("a", "b"), slow_start_s=30)
    t.set_members(["a", "b", "c"], 100.0)
    assert "c" in t.routable
    assert t.slow_starting == {"c"}
    assert t.ramp("c", 100.0) == MIN_RAMP
    assert t.ramp("c", 115.0) == pytest.approx(0.5)
    assert t.ramp("a", 115.0) == 1.0


def test_members_joining_an_empty_table_do_not_ramp():
    t = table((), slow_start_s=30)
    t.set_members(["a", "b"], 50.0)
    assert t.slow_starting == frozenset()


def test_set_members_keeps_state_of_members_that_stay_and_drops_leavers():
    t = table(fall=1)
    t.probe("a", False, 1.0)
    fail(t, "b", 5, 1.0)
    t.set_operator("c", "drain", 1.0)
    t.set_members(["a", "b", "c", "e"], 2.0)
    snap = t.snapshot(2.0)
    assert snap["a"]["state"] == "down"
    assert snap["b"]["state"] == "ejected"
    assert snap["c"]["state"] == "draining"
    assert "d" not in snap
    assert snap["e"]["state"] == "up"
    assert t.routable == {"e"}


def test_operator_mode_outlives_a_member_leaving_and_rejoining():
    t = table()
    t.set_operator("c", "maintenance", 1.0)
    t.set_members(["a", "b", "d"], 2.0)
    events = t.set_members(["a", "b", "c", "d"], 3.0)
    assert ("maintenance", "c") in kinds(events)
    assert t.snapshot(3.0)["c"]["state"] == "maintenance"
    assert "c" not in t.routable


def test_a_mode_set_before_the_member_joins_applies_when_it_joins():
    t = table(("a", "b"))
    assert t.set_operator("c", "drain", 1.0) == []
    assert "c" not in t.members
    events = t.set_members(["a", "b", "c"], 2.0)
    assert ("drain", "c") in kinds(events)
    assert t.state_of("c") == "draining"
    assert "c" not in t.routable


def test_forgetting_the_mode_of_a_member_that_left():
    t = table()
    t.set_operator("c", "drain", 1.0)
    t.set_members(["a", "b"], 2.0)
    assert t.set_operator("c", None, 3.0) == []
    t.set_members(["a", "b", "c"], 4.0)
    assert "c" in t.routable


def test_unknown_members_are_ignored_by_probes_and_outcomes():
    t = table()
    assert t.probe("zz", False, 1.0) == []
    assert t.outcome("zz", FAIL, 1.0) == []
    with pytest.raises(UnknownMember, match="zz"):
        t.state_of("zz")
    with pytest.raises(HealthError, match="operator mode"):
        t.set_operator("a", "nap", 1.0)


# -- active probes -----------------------------------------------------------------------


def test_fall_takes_a_member_down_and_rise_brings_it_back_ramping():
    t = table(rise=2, fall=3, slow_start_s=10)
    # Each failure before the fall is said (the log shows why a member is about to go),
    # and changes nothing yet.
    first = t.probe("a", False, 1.0, "GET /healthz answered 500")
    assert kinds(first) == [("probe_failed", "a")]
    assert first[0].detail == "GET /healthz answered 500 (1 of 3)"
    assert kinds(t.probe("a", False, 2.0)) == [("probe_failed", "a")]
    assert "a" in t.routable
    down = t.probe("a", False, 3.0, "GET /healthz: cannot connect: Connection refused")
    assert kinds(down) == [("down", "a")]
    assert down[0].detail == "3 failed probes in a row: GET /healthz: cannot connect: Connection refused"
    assert "a" not in t.routable
    assert t.probe("a", True, 4.0) == []
    assert "a" not in t.routable
    assert kinds(t.probe("a", True, 5.0)) == [("up", "a")]
    assert "a" in t.routable
    assert t.slow_starting == {"a"}
    assert t.ramp("a", 10.0) == pytest.approx(0.5)


def test_a_good_probe_breaks_a_run_of_bad_ones_and_vice_versa():
    t = table(rise=2, fall=2)
    t.probe("a", False, 1.0)
    t.probe("a", True, 2.0)
    t.probe("a", False, 3.0)
    assert "a" in t.routable
    t.probe("a", False, 4.0)
    assert "a" not in t.routable
    t.probe("a", True, 5.0)
    t.probe("a", False, 6.0)
    t.probe("a", True, 7.0)
    assert "a" not in t.routable


# -- the first probe decides (await_first_probe) -----------------------------------------


def test_a_new_member_is_pending_until_its_first_probe_answers():
    t = table(members=("a", "b"), await_first_probe=True, rise=2, slow_start_s=10)
    t.probe("a", True, 0.5, "GET /healthz answered 200")  # a is up: the fleet is no longer all unknown
    assert t.state_of("b") == "pending" and "b" not in t.routable and t.pending == {"b"}
    assert not t.panic, "a member nobody has probed yet is neither healthy nor unhealthy"
    events = t.probe("b", True, 1.0, "GET /healthz answered 404")
    assert kinds(events) == [("up", "b")] and events[0].detail == "first probe: GET /healthz answered 404"
    assert "b" in t.routable and t.pending == frozenset()
    assert t.ramp("b", 1.0) == 1.0, "the first membership takes its full share at once"


def test_one_failed_first_probe_keeps_a_member_down_until_rise_good_ones():
    t = table(members=("a", "b"), await_first_probe=True, rise=2)
    t.probe("a", True, 0.5)
    events = t.probe("b", False, 1.0, "GET /healthz: cannot connect: Connection refused")
    assert kinds(events) == [("down", "b")]
    assert events[0].detail == "first probe failed: GET /healthz: cannot connect: Connection refused"
    assert t.state_of("b") == "down" and "b" not in t.routable
    assert t.probe("b", True, 2.0) == []
    assert kinds(t.probe("b", True, 3.0)) == [("up", "b")]


def test_a_member_joining_a_serving_fleet_ramps_from_its_first_good_probe():
    t = table(members=("a",), await_first_probe=True, slow_start_s=10)
    t.probe("a", True, 0.0)
    t.set_members(("a", "b"), 1.0)
    assert t.state_of("b") == "pending"
    t.probe("b", True, 5.0)
    assert t.ramp("b", 10.0) == pytest.approx(0.5), "ramped from the probe (5.0), not the join (1.0)"


def test_while_nothing_is_known_up_the_pending_members_route():
    t = table(members=("a", "b", "c"), await_first_probe=True)
    assert t.routable == {"a", "b", "c"} and not t.panic
    t.probe("a", False, 1.0)
    assert t.routable == {"b", "c"}, "a is known down; the unknown ones beat none"
    t.probe("b", True, 1.0)
    assert t.routable == {"b"} and not t.panic, "one of the two known members is up: at the threshold, no panic"
    t.set_members(("a", "b", "c", "d"), 2.0)
    t.probe("c", False, 2.0)
    assert t.panic, "one of three known members up is under the threshold; pending d does not count"


def test_without_await_first_probe_a_member_starts_up():
    t = table(members=("a",))
    assert t.state_of("a") == "up" and "a" in t.routable and t.pending == frozenset()


def test_the_last_probe_is_in_the_snapshot():
    t = table(members=("a", "b"), await_first_probe=True)
    t.probe("a", False, 2.0, "GET /healthz answered 503")
    view = t.snapshot(3.5)
    assert view["a"]["last_probe"] == {"ok": False, "result": "GET /healthz answered 503", "age_s": 1.5}
    assert view["b"]["last_probe"] is None and view["b"]["state"] == "pending"


def test_the_operator_bringing_a_pending_member_back_vouches_for_it():
    t = table(members=("a", "b"), await_first_probe=True)
    t.probe("a", True, 0.0)
    t.set_operator("b", "maintenance", 1.0)
    t.set_operator("b", None, 2.0)
    assert t.state_of("b") == "up" and "b" in t.routable


# -- outlier detection -------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [Outcome.CONNECT_ERROR, Outcome.TIMEOUT, Outcome.SERVER_ERROR])
def test_consecutive_errors_eject(outcome):
    t = table(consecutive_errors=3)
    assert fail(t, "a", 2, 1.0, outcome) == []
    assert kinds(t.outcome("a", outcome, 1.0)) == [("ejected", "a")]
    assert "a" not in t.routable
    assert t.snapshot(4.0)["a"]["ejected_for_s"] == pytest.approx(7.0)


def test_an_ok_resets_the_run_of_errors():
    t = table(consecutive_errors=3)
    fail(t, "a", 2, 1.0)
    t.outcome("a", Outcome.OK, 1.0)
    fail(t, "a", 2, 1.0)
    assert "a" in t.routable
    assert t.snapshot(1.0)["a"]["consecutive_errors"] == 2


def test_ejection_expires_into_probation_and_a_failure_there_ejects_at_once_for_longer():
    t = table(consecutive_errors=3, base_ejection_s=10, max_ejection_s=300)
    fail(t, "a", 3, 0.0)
    assert t.tick(9.9) == []
    assert "a" not in t.routable
    assert kinds(t.tick(10.0)) == [("readmitted", "a")]
    assert "a" in t.routable
    assert t.snapshot(10.0)["a"]["state"] == "probation"
    assert kinds(t.outcome("a", Outcome.TIMEOUT, 11.0)) == [("ejected", "a")]
    assert t.snapshot(11.0)["a"]["ejected_for_s"] == pytest.approx(20.0)
    t.tick(31.0)
    fail(t, "a", 1, 31.0)
    assert t.snapshot(31.0)["a"]["ejected_for_s"] == pytest.approx(30.0)


def test_ejection_time_is_capped():
    t = table(consecutive_errors=1, base_ejection_s=10, max_ejection_s=25, slow_start_s=0)
    now = 0.0
    times = []
    for _ in range(5):
        fail(t, "a", 1, now)
        times.append(t.snapshot(now)["a"]["ejected_for_s"])
        now += times[-1]
        t.tick(now)
    assert times == [10, 20, 25, 25, 25]


def test_probation_ends_after_enough_successes_and_the_multiplier_decays():
    t = table(consecutive_errors=2, base_ejection_s=10)
    fail(t, "a", 2, 0.0)
    t.tick(10.0)
    t.outcome("a", Outcome.OK, 10.5)
    assert t.snapshot(10.5)["a"]["state"] == "probation"
    t.outcome("a", Outcome.OK, 10.6)
    assert t.snapshot(10.6)["a"]["state"] == "up"
    assert t.snapshot(10.6)["a"]["ejections"] == 0
    # Out of probation, one failure is not enough again.
    assert fail(t, "a", 1, 11.0) == []
    assert kinds(fail(t, "a", 1, 11.0)) == [("ejected", "a")]
    assert t.snapshot(11.0)["a"]["ejected_for_s"] == pytest.approx(10.0)


def test_probation_ends_after_a_quiet_period_and_the_multiplier_decays_with_time():
    t = table(consecutive_errors=1, base_ejection_s=10, max_ejection_s=300)
    now = 0.0
    for _ in range(3):  # three ejections back to back: multiplier 3
        fail(t, "a", 1, now)
        now += t.snapshot(now)["a"]["ejected_for_s"]
        t.tick(now)
    assert t.snapshot(now)["a"]["ejections"] == 3
    assert t.snapshot(now)["a"]["state"] == "probation"
    t.tick(now + 10)  # quiet probation over: one step of decay
    assert t.snapshot(now + 10)["a"]["state"] == "up"
    assert t.snapshot(now + 10)["a"]["ejections"] == 2
    t.tick(now + 30)  # two more quiet intervals
    assert t.snapshot(now + 30)["a"]["ejections"] == 0


def test_outcomes_of_unroutable_members_do_not_eject():
    t = table(consecutive_errors=1, fall=1)
    t.probe("a", False, 0.0)
    assert fail(t, "a", 3, 0.0) == []
    t.set_operator("b", "drain", 0.0)
    assert fail(t, "b", 3, 0.0) == []
    assert t.snapshot(0.0)["a"]["ejections"] == 0
    assert t.snapshot(0.0)["b"]["ejections"] == 0


def test_consecutive_errors_zero_turns_ejection_off():
    t = table(consecutive_errors=0)
    assert fail(t, "a", 100, 0.0) == []
    assert "a" in t.routable


def test_max_ejected_fraction_suppresses_ejections_beyond_the_cap_once_per_run():
    t = table(("a", "b", "c", "d"), consecutive_errors=1, max_ejected_fraction=0.5, panic_threshold=0)
    assert kinds(fail(t, "a", 1, 0.0)) == [("ejected", "a")]
    assert kinds(fail(t, "b", 1, 0.0)) == [("ejected", "b")]
    events = fail(t, "c", 1, 0.0)
    assert kinds(events) == [("ejection_suppressed", "c")]
    assert "2 of 4" in events[0].detail
    assert fail(t, "c", 3, 0.0) == []  # no event storm
    assert "c" in t.routable
    # Room again once an ejection expires: the next failure of c ejects it.
    t.tick(10.0)
    assert kinds(fail(t, "c", 1, 10.0)) == [("ejected", "c")]


def test_a_single_member_is_never_ejected():
    t = table(("a",), consecutive_errors=1)
    assert kinds(fail(t, "a", 1, 0.0)) == [("ejection_suppressed", "a")]
    assert t.routable == {"a"}


# -- panic -------------------------------------------------------------------------------


def test_panic_turns_on_below_the_threshold_and_off_again():
    t = table(("a", "b", "c", "d"), fall=1, rise=1, panic_threshold=0.5)
    t.probe("a", False, 0.0)
    assert not t.panic
    assert kinds(t.probe("b", False, 0.0)) == [("down", "b")]  # 2 of 4 routable: not below half
    assert not t.panic
    events = t.probe("c", False, 0.0)
    assert kinds(events) == [("down", "c"), ("panic_on", None)]
    assert t.panic
    assert kinds(t.probe("c", True, 1.0)) == [("up", "c"), ("panic_off", None)]
    assert not t.panic


def test_operator_removed_members_do_not_count_towards_panic():
    t = table(("a", "b", "c", "d"), fall=1, panic_threshold=0.5)
    t.set_operator("a", "maintenance", 0.0)
    t.set_operator("b", "drain", 0.0)
    assert not t.panic  # 2 of 2 in service are routable
    t.probe("c", False, 0.0)
    assert not t.panic  # 1 of 2: not below half
    t.probe("d", False, 0.0)
    assert t.panic
    assert t.removed == {"a", "b"}


def test_panic_threshold_zero_never_panics_and_an_empty_table_does_not_panic():
    t = table(("a", "b"), fall=1, panic_threshold=0)
    t.probe("a", False, 0.0)
    t.probe("b", False, 0.0)
    assert t.routable == frozenset() and not t.panic
    assert not table(()).panic


# -- slow start --------------------------------------------------------------------------


def test_slow_start_ramps_linearly_and_ends_with_a_ready_event():
    t = table(("a", "b"), slow_start_s=20)
    t.set_members(["a", "b", "c"], 100.0)
    ramps = [t.ramp("c", 100.0 + s) for s in (0, 5, 10, 15)]
    assert ramps == [MIN_RAMP, pytest.approx(0.25), pytest.approx(0.5), pytest.approx(0.75)]
    assert t.tick(119.0) == []
    assert kinds(t.tick(120.0)) == [("ready", "c")]
    assert t.slow_starting == frozenset()
    assert t.ramp("c", 120.0) == 1.0


def test_slow_start_zero_never_ramps():
    t = table(("a",), slow_start_s=0, fall=1, rise=1)
    t.set_members(["a", "b"], 1.0)
    t.probe("a", False, 2.0)
    t.probe("a", True, 3.0)
    assert t.slow_starting == frozenset()
    assert t.ramp("a", 3.0) == t.ramp("b", 3.0) == 1.0


def test_a_readmitted_outlier_does_not_ramp():
    t = table(consecutive_errors=1, slow_start_s=30)
    fail(t, "a", 1, 0.0)
    t.tick(10.0)
    assert "a" in t.routable and "a" not in t.slow_starting


# -- operator ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode, state, probed", [("drain", "draining", True), ("maintenance", "maintenance", False)])
def test_operator_modes_remove_and_back_returns_with_slow_start(mode, state, probed):
    t = table(slow_start_s=10)
    assert kinds(t.set_operator("a", mode, 1.0)) == [(mode, "a")]
    assert "a" not in t.routable
    assert t.snapshot(1.0)["a"]["state"] == state
    assert t.snapshot(1.0)["a"]["operator"] == mode
    assert ("a" in t.probing()) is probed
    assert t.set_operator("a", mode, 2.0) == []  # idempotent
    assert kinds(t.set_operator("a", None, 3.0)) == [("back", "a")]
    assert "a" in t.routable and "a" in t.probing()
    assert t.ramp("a", 8.0) == pytest.approx(0.5)


def test_probes_of_a_member_in_maintenance_are_ignored():
    t = table(fall=1)
    t.set_operator("a", "maintenance", 0.0)
    assert t.probe("a", False, 1.0) == []
    t.set_operator("a", None, 2.0)
    assert "a" in t.routable


def test_back_from_maintenance_is_up_even_if_it_went_down_before():
    t = table(fall=1)
    t.probe("a", False, 0.0)
    t.set_operator("a", "maintenance", 1.0)
    t.set_operator("a", None, 2.0)
    assert t.snapshot(2.0)["a"]["active_up"] is True


# -- invariants --------------------------------------------------------------------------

MEMBERS = ("a", "b", "c", "d", "e")
_actions = st.one_of(
    st.tuples(st.just("probe"), st.sampled_from(MEMBERS), st.booleans()),
    st.tuples(st.just("outcome"), st.sampled_from(MEMBERS), st.sampled_from(list(Outcome))),
    st.tuples(st.just("operator"), st.sampled_from(MEMBERS), st.sampled_from([None, "drain", "maintenance"])),
    st.tuples(st.just("members"), st.lists(st.sampled_from(MEMBERS), unique=True), st.none()),
    st.tuples(st.just("tick"), st.none(), st.none()),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_actions, st.floats(0, 20)), max_size=60))
def test_invariants_hold_after_any_sequence_of_events(steps):
    t = table(MEMBERS, consecutive_errors=2, fall=2, rise=2, slow_start_s=15)
    now = 0.0
    for (action, member, arg), dt in steps:
        now += dt
        if action == "probe":
            t.probe(member, arg, now)
        elif action == "outcome":
            events = t.outcome(member, arg, now)
            if any(e.kind == "ejected" for e in events):
                snap = t.snapshot(now)
                ejected = sum(1 for s in snap.values() if s["ejected_for_s"] > 0 and s["operator"] is None)
                assert ejected <= 0.5 * (len(t.members) - len(t.removed))
        elif action == "operator":
            t.set_operator(member, arg, now)
        elif action == "members":
            t.set_members(member, now)
        else:
            t.tick(now)
        snap = t.snapshot(now)
        assert set(snap) == t.members
        assert t.routable <= t.members
        assert t.routable == {m for m, s in snap.items() if s["state"] in ("up", "probation")}
        assert t.removed == {m for m, s in snap.items() if s["operator"] is not None}
        in_service = len(t.members) - len(t.removed)
        assert t.panic == (len(t.routable) < 0.5 * in_service)
        assert all(0 < s["ramp"] <= 1 for s in snap.values())
        assert t.probing() == {m for m, s in snap.items() if s["operator"] != "maintenance"}
        assert t.watched <= t.members
        _assert_ok_changes_nothing_for_unwatched(t, now)


def _internal_state(t: HealthTable) -> dict:
    # Every field of every member's record: slots when the module runs as Python, getset
    # descriptors when it is compiled (balancer/compile.py).
    fields = [name for name, value in vars(_State).items()
              if isinstance(value, (types.MemberDescriptorType, types.GetSetDescriptorType))]
    assert "consecutive_errors" in fields and "probation" in fields
    return {m: {name: getattr(s, name) for name in fields} for m, s in t._members.items()}


def _assert_ok_changes_nothing_for_unwatched(t: HealthTable, now: float) -> None:
    """The request path skips reporting an OK for members outside ``watched``: that must be
    exactly a no-op. Reported on the table itself: if it is one, the run goes on unchanged;
    if not, the run fails here."""
    for member in t.members - t.watched:
        before, watched = _internal_state(t), set(t.watched)
        assert t.outcome(member, Outcome.OK, now) == []
        assert _internal_state(t) == before, member
        assert t.watched == watched


def test_a_node_the_probes_see_come_back_is_readmitted_without_waiting_out_its_ejection():
    """Envoy's successful_active_health_check_uneject_host: a restarted node returns on probation."""
    policy = HealthPolicy(rise=2, fall=2, consecutive_errors=2, base_ejection_s=60, slow_start_s=0,
                          max_ejected_fraction=0.5)
    table = HealthTable(policy, 0.0)
    table.set_members(["a", "b", "c"], 0.0)
    table.outcome("a", Outcome.CONNECT_ERROR, 1.0)
    table.outcome("a", Outcome.CONNECT_ERROR, 1.1)
    assert "a" not in table.routable  # ejected for 60 s
    table.probe("a", False, 1.2)
    table.probe("a", False, 1.4)  # down as well
    table.probe("a", True, 5.0)
    events = table.probe("a", True, 5.2)  # back up: rise reached
    assert {e.kind for e in events} >= {"up", "readmitted"}
    assert "a" in table.routable
    table.outcome("a", Outcome.CONNECT_ERROR, 5.3)  # on probation: one failure ejects again
    assert "a" not in table.routable


def test_probes_that_never_failed_do_not_readmit_a_passively_ejected_node():
    """A node that answers /healthz but fails real traffic stays ejected for its time."""
    policy = HealthPolicy(rise=2, fall=2, consecutive_errors=2, base_ejection_s=60, slow_start_s=0,
                          max_ejected_fraction=0.5)
    table = HealthTable(policy, 0.0)
    table.set_members(["a", "b", "c"], 0.0)
    table.outcome("a", Outcome.SERVER_ERROR, 1.0)
    table.outcome("a", Outcome.SERVER_ERROR, 1.1)
    for t in (2.0, 4.0, 6.0, 8.0):
        table.probe("a", True, t)
    assert "a" not in table.routable
