"""Configuration layering and validation (balancer/config.py)."""

import pytest

from balancer.config import ConfigError, load_config
from discovery.settings import parse_node
from pixring.cli.sources import check_sources
from pixring.config import Address, parse_address
from pixring.cpus import CpuBudget


def test_layers_file_then_environment_then_flags(tmp_path):
    path = tmp_path / "pixring.toml"
    path.write_text(
        'listen = "127.0.0.1:9999"\nconnect_timeout = 2.5\nworkers = 3\n'
        'nodes = [{id = "a", url = "http://10.0.0.1:9000", weight = 2}, "b=http://10.0.0.2:9000"]\n'
    )
    config = load_config(
        config_file=str(path),
        environ={"PIXRING_CONNECT_TIMEOUT": "0.75", "PIXRING_WORKERS": "4"},
        flags={"workers": "5"},
    )
    assert config.listen == Address("127.0.0.1", 9999)  # file
    assert config.connect_timeout == 0.75  # environment beats file
    assert config.workers == 5  # flag beats environment
    assert [(m.id, m.host, m.port, m.weight) for m in config.nodes] == [
        ("a", "10.0.0.1", 9000, 2.0),
        ("b", "10.0.0.2", 9000, 1.0),
    ]


def test_unset_flags_do_not_hide_lower_layers():
    config = load_config(environ={"PIXRING_PROFILE": "generic"}, flags={"profile": None})
    assert config.profile == "generic"


@pytest.mark.parametrize(
    "layer, value, message",
    [
        ("env", {"PIXRING_CONNECT_TIMEOUT": "-1"}, "PIXRING_CONNECT_TIMEOUT"),
        ("env", {"PIXRING_PROFILE": "fancy"}, "PIXRING_PROFILE"),
        ("flag", {"listen": "nonsense"}, "--listen"),
        ("flag", {"nodes": ["a=http://h:1", "a=http://h:2"]}, "duplicate node id"),
        ("flag", {"nodes": ["https://h:1"]}, "only http://"),
        ("flag", {"nodes": ["a=http://h:1/path"]}, "without a path"),
        ("flag", {"nodes": ["a=http://h:1;weight=x"]}, "weight"),
        ("flag", {"workers": "0.5"}, "--workers"),
        ("flag", {"hot_key_share": "0"}, "--hot-key-share"),
        ("env", {"PIXRING_HOT_KEY_REPLICA_LOAD": "1.5"}, "PIXRING_HOT_KEY_REPLICA_LOAD"),
        ("flag", {"hot_key_half_life": "8"}, "--hot-key-half-life"),
        ("flag", {"hot_keys": "maybe"}, "--hot-keys"),
    ],
)
def test_bad_values_name_the_field(layer, value, message):
    kwargs = {"environ": value} if layer == "env" else {"environ": {}, "flags": value}
    with pytest.raises(ConfigError, match=message):
        load_config(**kwargs)


def test_unknown_file_field_and_bad_toml_are_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("listen_port = 80\n")
    with pytest.raises(ConfigError, match="unknown field 'listen_port'"):
        load_config(config_file=str(path), environ={})
    path.write_text("listen = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(config_file=str(path), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(config_file=str(tmp_path / "missing.toml"), environ={})


def test_addresses_and_nodes():
    assert parse_address("[::1]:8080") == Address("::1", 8080)
    assert parse_address("0.0.0.0:0").port == 0
    with pytest.raises(ValueError):
        parse_address("host:99999")
    node = parse_node("10.0.0.5:9000")
    assert (node.id, node.host, node.port) == ("10.0.0.5:9000", "10.0.0.5", 9000)
    assert parse_node("r1=http://render-1.lan:9000;weight=2.5").weight == 2.5


def test_flags_round_trip_and_summary_masks_secrets():
    config = load_config(
        environ={"PIXRING_CONSUL_TOKEN": "s3cret"},
        flags={"nodes": ["a=http://h:1;weight=2", "h2:2"], "denylist": "x,y*"},
    )
    assert load_config(environ={}, flags=config.as_flags()) == config
    assert config.summary()["consul_token"] == "(set)"
    assert "s3cret" not in repr(config.summary())


@pytest.mark.parametrize(
    "flags, message",
    [
        ({}, "no membership source"),
        ({"nodes": ["h:1"], "consul_service": "render"}, "not --node and --consul-service"),
        ({"nodes_file": "/x.json", "consul_service": "render"}, "not --nodes-file and --consul-service"),
    ],
)
def test_exactly_one_membership_source(flags, message):
    with pytest.raises(ConfigError, match=message):
        check_sources(load_config(environ={}, flags=flags))
    check_sources(load_config(environ={}, flags={"consul_service": "render"}))


def test_more_workers_than_cpus_is_warned_about_and_naming_both_counts():
    two = load_config(environ={}, flags={"workers": 2})
    assert two.sharing_warning(CpuBudget(2, None)) is None
    assert two.sharing_warning(CpuBudget(4, None)) is None
    warning = two.sharing_warning(CpuBudget(1, None))
    assert warning is not None and "2 workers on 1 CPU (this process's affinity allows 1)" in warning
    assert "--workers 0" in warning
    assert "3 CPUs" in load_config(environ={}, flags={"workers": 5}).sharing_warning(CpuBudget(3, None))
    # One per CPU (--workers 0) never shares.
    assert load_config(environ={}, flags={"workers": 0}).sharing_warning() is None


def test_one_worker_per_cpu_counts_the_cgroup_quota():
    auto = load_config(environ={}, flags={"workers": 0})
    assert auto.worker_count(CpuBudget(8, None)) == 8
    assert auto.worker_count(CpuBudget(8, 2.5)) == 2
    assert auto.worker_count(CpuBudget(8, 0.25)) == 1
    assert auto.sharing_warning(CpuBudget(8, 2.5)) is None
    four = load_config(environ={}, flags={"workers": 4})
    assert four.worker_count(CpuBudget(8, 2.5)) == 4  # a number given is kept, with a warning
    assert four.sharing_warning(CpuBudget(8, 2.5)) == (
        "pixring: warning: 4 workers on 2 CPUs (this process's affinity allows 8, its cgroup's CPU quota 2.5): "
        "workers will take turns on a core and spend more CPU per request; --workers 0 starts one per CPU")


def test_probe_expect_takes_statuses_and_ranges_and_names_a_bad_one(tmp_path):
    assert load_config(environ={}).probe_expect == ""  # any status below 500
    assert load_config(environ={}, flags={"probe_expect": "204, 200-299,301"}).probe_expect == "200-299,301"
    path = tmp_path / "c.toml"
    path.write_text("probe_expect = [200, 204]\n")
    assert load_config(config_file=str(path), environ={}).probe_expect == "200,204"
    for bad in ("2xx", "299-200", "600"):
        with pytest.raises(ConfigError, match="--probe-expect"):
            load_config(environ={}, flags={"probe_expect": bad})
    with pytest.raises(ConfigError, match="PIXRING_PROBE_EXPECT"):
        load_config(environ={"PIXRING_PROBE_EXPECT": "ok"})


def test_members_await_their_first_probe_only_when_probes_run():
    assert load_config(environ={}).health_policy().await_first_probe is True
    assert load_config(environ={}, flags={"probe_path": ""}).health_policy().await_first_probe is False


def test_the_hot_key_fields_make_the_counters_policy():
    config = load_config(environ={"PIXRING_HOT_KEY_SHARE": "0.05"}, flags={"hot_key_max_replicas": "3"})
    policy = config.hot_key_policy()
    assert (policy.threshold, policy.max_replicas, policy.replica_load) == (0.05, 3, config.hot_key_replica_load)
    assert (policy.sample, policy.half_life) == (config.hot_key_sample, config.hot_key_half_life)
    assert config.hot_keys is True
    assert load_config(environ={"PIXRING_HOT_KEYS": "false"}).hot_keys is False
