"""``pixring up``'s terminal lines for member changes (``member_changes``, pure)."""

from __future__ import annotations

from pixring.cli.up import member_changes


def member(node: str, state: str, probe: str | None = None, ok: bool = True) -> dict:
    views = {"0": {"last_probe": {"ok": ok, "result": probe, "age_s": 0.1}}} if probe else {"0": {}}
    return {"id": node, "state": state, "health_by_worker": views}


def test_a_healthy_start_says_nothing_and_a_member_going_down_says_why():
    states, lines = member_changes({}, [member("r1", "up"), member("r2", "up")])
    assert lines == [] and states == {"r1": "up", "r2": "up"}
    states, lines = member_changes(states, [member("r1", "up"),
                                            member("r2", "down", "GET /healthz: cannot connect", ok=False)])
    assert lines == ["member r2 is down (GET /healthz: cannot connect), was up"]
    states, lines = member_changes(states, [member("r1", "up"), member("r2", "down", "GET /healthz: x", ok=False)])
    assert lines == []  # no change, no line
    states, lines = member_changes(states, [member("r1", "up"), member("r2", "up", "GET /healthz answered 200")])
    assert lines == ["member r2 is up, was down"]


def test_a_member_that_joins_unhealthy_or_leaves_is_an_event():
    states, lines = member_changes({"r1": "up"}, [member("r3", "pending")])
    assert lines == ["member r3 is pending", "member r1 left the membership"]
