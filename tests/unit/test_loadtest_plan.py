"""``loadtest.plan``'s arithmetic, worked by hand, and the command reading its files."""

from __future__ import annotations

import json

import pytest

from loadtest.plan import SERIES_PER_NODE, Inputs, main, plan_for

MEASURED = Inputs(balancer_rps_per_core=40_000, renders_per_core=35.7, cache_hits_per_core=3125, hit_ratio=0.9,
                  headroom=0.3, balancer_host_cores=16, render_host_cores=32)


def test_a_hundred_thousand_images_a_second_worked_by_hand():
    plan = plan_for(100_000, MEASURED)
    assert plan.balancer_cores == 4  # 100,000 / 40,000 / 0.7 = 3.57
    assert plan.renders_per_s == pytest.approx(10_000)  # the 10% that miss
    # 10,000 / 35.7 = 280.1 render-core seconds + 90,000 / 3,125 = 28.8 for hits; / 0.7 = 441.3
    assert plan.render_cores == 442
    assert plan.render_hosts == 14 and plan.balancer_hosts == 2  # 442 / 32 = 13.8; never fewer than 2
    assert plan.watches == 32  # 2 hosts x 16 workers, each with its own blocking query
    assert plan.answer_bytes_per_change == 32 * 14 * 1000
    assert plan.ring_members == 14 and plan.ring_rebuild_ms == pytest.approx(0.98)
    assert plan.metrics_series == 14 * SERIES_PER_NODE
    assert plan.consul_servers == 3
    assert plan.render_share_of_cores == pytest.approx(442 / 446)


def test_ten_times_the_rate_is_ten_times_the_cores_and_the_hit_ratio_matters_most():
    small, large = plan_for(100_000, MEASURED), plan_for(1_000_000, MEASURED)
    assert large.balancer_cores == 36 and large.render_cores == 4414
    colder = plan_for(1_000_000, Inputs(**{**MEASURED.__dict__, "hit_ratio": 0.8}))
    assert colder.render_cores > 1.8 * large.render_cores  # twice the misses: nearly twice the fleet
    assert small.render_cores * 9 < large.render_cores


def test_many_watches_ask_for_five_consul_servers():
    wide = Inputs(**{**MEASURED.__dict__, "balancer_host_cores": 64, "balancer_rps_per_core": 500})
    assert plan_for(1_000_000, wide).watches >= 2000 and plan_for(1_000_000, wide).consul_servers == 5


@pytest.mark.parametrize("change", [{"hit_ratio": 1.5}, {"headroom": 1.0}, {"renders_per_core": 0}])
def test_impossible_inputs_are_refused_by_name(change):
    with pytest.raises(ValueError):
        plan_for(1000, Inputs(**{**MEASURED.__dict__, **change}))


def test_the_command_reads_the_measured_file_and_a_capacity_summary(tmp_path, capsys):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"cache": {"hit_ratio": 0.5}}))
    assert main(["--capacity-summary", str(summary), "--rates", "100000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["inputs"]["hit_ratio"] == 0.5 and doc["plans"][0]["renders_per_s"] == 50_000
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "1,000,000" in out and "render hosts (32 cores)" in out and "Consul servers" in out
    assert main(["--hit-ratio", "2"]) == 2
    assert "hit ratio 2" in capsys.readouterr().err
