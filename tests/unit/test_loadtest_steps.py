"""The phases of a capacity run and the capacity read off them (``loadtest.steps``)."""

from __future__ import annotations

import pytest

from loadtest.steps import Limits, Phase, PhaseFigures, Schedule, Snapshot, breach, capacity_of, figures_of, plan_phases


def test_a_plain_run_is_a_warm_up_then_the_load():
    assert plan_phases(run_time_s=30, users=8, warm_up_s=10) == [
        Phase("warm-up", 8, 10, counted=False), Phase("load", 8, 20)]
    assert plan_phases(run_time_s=30, users=8) == [Phase("load", 8, 30)]
    # The warm-up never takes more than half the run.
    assert plan_phases(run_time_s=4, users=2, warm_up_s=10)[0].seconds == 2


def test_steps_rise_until_the_time_or_the_user_limit_ends_them():
    phases = plan_phases(run_time_s=70, users=1, warm_up_s=10, find_capacity=True, start_users=5, step_users=5,
                         step_s=15)
    assert [(p.name, p.users, p.seconds) for p in phases] == [
        ("warm-up", 5, 10), ("step 1", 5, 15), ("step 2", 10, 15), ("step 3", 15, 15), ("step 4", 20, 15)]
    capped = plan_phases(run_time_s=1000, users=1, find_capacity=True, start_users=10, step_users=10, step_s=10,
                         max_users=30)
    assert [p.users for p in capped] == [10, 20, 30]
    short = plan_phases(run_time_s=8, users=1, find_capacity=True, step_s=15)
    assert [(p.name, p.seconds) for p in short] == [("step 1", 8)]


def test_schedule_finds_the_phase_of_a_moment():
    schedule = Schedule([Phase("warm-up", 1, 5, False), Phase("step 1", 1, 10)])
    assert [schedule.index_at(t) for t in (0, 4.9, 5, 14.9, 15)] == [0, 0, 1, 1, None]
    assert schedule.total_s == 15


def test_a_phase_is_judged_on_its_own_requests():
    start = Snapshot(10.0, 100, 0, {900: 100})  # a cold warm-up: slow
    end = Snapshot(20.0, 1100, 5, {900: 100, 20: 1000})
    figures = figures_of(Phase("step 1", 10, 10), start, end)
    assert (figures.requests, figures.failures, figures.rps) == (1000, 5, 100.0)
    assert (figures.p50_ms, figures.p99_ms) == (20, 20)  # the warm-up's 900 ms are not in it
    assert figures.error_ratio == pytest.approx(0.005)


def fig(name, users, rps, p99, errors=0.0, counted=True) -> PhaseFigures:
    requests = int(rps * 10)
    return PhaseFigures(name, users, counted, 10.0, requests, int(requests * errors), p99 // 2, p99)


def test_breach_names_the_limit_and_the_figure():
    limits = Limits(max_error_ratio=0.01, max_p99_ms=500)
    assert breach(fig("s", 10, 100, 400), limits) is None
    assert breach(fig("s", 10, 100, 600), limits) == ("p99", "p99 600 ms over the limit 500 ms")
    assert breach(fig("s", 10, 100, 600, errors=0.05), limits)[0] == "error_ratio"  # errors first
    assert breach(fig("s", 10, 0, 0), limits) == ("error_ratio", "no request was answered")


def test_capacity_is_the_last_step_that_held_before_the_first_that_broke():
    limits = Limits(max_error_ratio=0.01, max_p99_ms=500)
    run = [fig("warm-up", 10, 20, 3000, counted=False), fig("step 1", 10, 100, 100), fig("step 2", 20, 180, 300),
           fig("step 3", 30, 190, 900), fig("step 4", 40, 250, 100)]
    result = capacity_of(run, limits)
    assert result["capacity_rps"] == 180.0 and result["users_at_capacity"] == 20
    assert result["p99_ms_at_capacity"] == 300 and result["limit_hit"] == "p99"
    assert result["broke_at"]["phase"] == "step 3"  # step 4 held again, but after a break it does not count
    assert (result["peak_rps"], result["phase_at_peak"]) == (190.0, "step 3")  # up to the break
    queued = capacity_of([fig("step 1", 10, 300, 100), fig("step 2", 20, 200, 300)], limits)
    assert queued["phase_at_capacity"] == "step 2" and queued["phase_at_peak"] == "step 1"
    every_step_held = capacity_of(run[:3], limits)
    assert every_step_held["limit_hit"] is None and every_step_held["capacity_rps"] == 180.0
    first_broke = capacity_of([fig("step 1", 10, 100, 100, errors=0.5)], limits)
    assert first_broke["capacity_rps"] == 0.0 and first_broke["phase_at_capacity"] is None


def test_snapshots_survive_json():
    snap = Snapshot(1.5, 10, 1, {20: 9, 1000: 1})
    assert Snapshot.from_json(snap.to_json()) == snap
