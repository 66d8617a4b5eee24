"""The Consul source's pure parts: health entries -> members, and finding the agent."""

from __future__ import annotations

import pytest

from discovery.consul import ConsulAnswerError, ConsulSource, members_from_health, resolve_endpoint


def entry(sid="r1", *, service_address="10.0.0.5", node_address="10.0.0.99", port=8080, meta=None,
          weights=None, node="n1"):
    service = {"ID": sid, "Service": "renderer", "Tags": [], "Address": service_address, "Port": port,
               "Meta": meta if meta is not None else {}}
    if weights is not None:
        service["Weights"] = weights
    return {"Node": {"Node": node, "Address": node_address}, "Service": service, "Checks": []}


def test_identity_is_the_service_id_and_address_the_service_address():
    members, problems = members_from_health([entry("r1")])
    assert problems == []
    (member,) = members
    assert (member.id, member.host, member.port) == ("r1", "10.0.0.5", 8080)


def test_address_falls_back_to_the_node_address():
    (member,), _ = members_from_health([entry(service_address="")])
    assert member.host == "10.0.0.99"


def test_two_ids_on_one_address_stay_two_members():
    members, _ = members_from_health([entry("r1", port=8080), entry("r2", port=8080)])
    assert sorted(m.id for m in members) == ["r1", "r2"]


def test_weight_from_weights_passing_and_meta_wins():
    members, problems = members_from_health([
        entry("a", weights={"Passing": 3, "Warning": 1}),
        entry("b", weights={"Passing": 3, "Warning": 1}, meta={"weight": "0.5"}),
        entry("c", meta={"weight": "0"}),
        entry("d"),
    ])
    assert problems == []
    assert {m.id: m.weight for m in members} == {"a": 3.0, "b": 0.5, "c": 0.0, "d": 1.0}


@pytest.mark.parametrize("bad", ["heavy", "-1", "nan", "inf"])
def test_a_bad_meta_weight_is_reported_and_weights_used(bad):
    (member,), problems = members_from_health([entry("a", weights={"Passing": 2}, meta={"weight": bad})])
    assert member.weight == 2.0
    assert len(problems) == 1 and "a:" in problems[0] and "weight" in problems[0]


def test_meta_is_kept_on_the_member():
    (member,), _ = members_from_health([entry(meta={"zone": "eu-1", "weight": "2"})])
    assert member.meta["zone"] == "eu-1"


def test_unusable_entries_are_skipped_and_named():
    members, problems = members_from_health([entry("ok"), entry("", port=1), entry("noport", port=None),
                                             entry("zero", port=0), entry("nohost", service_address="", node_address="")])
    assert [m.id for m in members] == ["ok"]
    assert len(problems) == 4
    assert any("noport" in p for p in problems) and any("zero" in p for p in problems)


def test_a_duplicate_id_across_nodes_keeps_the_lowest_node_deterministically():
    a = entry("dup", node="node-b", service_address="10.0.0.2")
    b = entry("dup", node="node-a", service_address="10.0.0.1")
    for order in ([a, b], [b, a]):
        members, problems = members_from_health(order)
        assert [(m.id, m.host) for m in members] == [("dup", "10.0.0.1")]
        assert "node-a" in problems[0] and "node-b" in problems[0]


@pytest.mark.parametrize("garbage", [None, {}, "[]", [1], [{"Node": {}}], [{"Service": "x"}]])
def test_an_answer_that_is_not_a_health_listing_is_garbage(garbage):
    with pytest.raises(ConsulAnswerError):
        members_from_health(garbage)


def test_an_empty_listing_is_valid_and_empty():
    assert members_from_health([]) == ([], [])


# -- finding the agent ---------------------------------------------------------------


def test_default_agent_address():
    endpoint = resolve_endpoint(env={})
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.token) == ("http", "127.0.0.1", 8500, None)


def test_environment_like_every_consul_tool():
    env = {"CONSUL_HTTP_ADDR": "consul.internal:8501", "CONSUL_HTTP_TOKEN": "s3cret", "CONSUL_HTTP_SSL": "true"}
    endpoint = resolve_endpoint(env=env)
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.token) == ("https", "consul.internal", 8501, "s3cret")
    assert endpoint.url == "https://consul.internal:8501"


def test_scheme_in_the_address_and_ssl_false_does_not_downgrade():
    endpoint = resolve_endpoint(env={"CONSUL_HTTP_ADDR": "https://10.1.2.3:8501", "CONSUL_HTTP_SSL": "false"})
    assert (endpoint.scheme, endpoint.port) == ("https", 8501)


def test_explicit_arguments_win_over_the_environment():
    env = {"CONSUL_HTTP_ADDR": "elsewhere:1", "CONSUL_HTTP_TOKEN": "env-token", "CONSUL_HTTP_SSL": "true"}
    endpoint = resolve_endpoint("127.0.0.1:9500", token="mine", scheme="http", env=env)
    assert (endpoint.host, endpoint.port, endpoint.token, endpoint.scheme) == ("127.0.0.1", 9500, "mine", "http")


def test_ipv6_and_port_defaults():
    endpoint = resolve_endpoint("[::1]:8500", env={})
    assert endpoint.host == "::1" and endpoint.url == "http://[::1]:8500"
    assert resolve_endpoint("https://consul.example", env={}).port == 443


def test_tls_verification_settings():
    assert resolve_endpoint(env={"CONSUL_HTTP_SSL_VERIFY": "false"}).verify is False
    assert resolve_endpoint(env={"CONSUL_CACERT": "/etc/ca.pem"}).verify == "/etc/ca.pem"


@pytest.mark.parametrize("addr, message", [
    ("unix:///var/run/consul.sock", "unix sockets"),
    ("ftp://consul:21", "http or https"),
    ("consul:notaport", "bad port"),
    ("http://consul:8500/v1", "host:port"),
])
def test_bad_addresses_are_named(addr, message):
    with pytest.raises(ValueError, match=message):
        resolve_endpoint(addr, env={})


def test_bad_boolean_variable_is_named():
    with pytest.raises(ValueError, match="CONSUL_HTTP_SSL="):
        resolve_endpoint(env={"CONSUL_HTTP_SSL": "yes please"})


@pytest.mark.parametrize("kwargs, field", [
    ({"service": ""}, "service name"),
    ({"service": "a b"}, "service name"),
    ({"service": "r", "wait_s": 0}, "wait_s"),
    ({"service": "r", "wait_s": 601}, "wait_s"),
    ({"service": "r", "min_interval_s": -1}, "min_interval_s"),
    ({"service": "r", "backoff_max_s": 0}, "backoff_max_s"),
    ({"service": "r", "drop_guard_fraction": 2}, "drop_guard_fraction"),
])
def test_bad_source_settings_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ConsulSource(**{"addr": "127.0.0.1:8500", **kwargs})


def test_a_new_source_is_not_ready_and_not_stale():
    status = ConsulSource("renderer", addr="127.0.0.1:8500").status()
    assert (status.kind, status.ready, status.stale, status.last_success_age_s) == ("consul", False, False, None)
