"""The registration body the renderer sends to its agent (discovery.register)."""

from __future__ import annotations

import pytest

from discovery.register import ServiceRegistration, go_duration


def registration(**kw):
    base = dict(name="renderer", service_id="renderer-a", address="10.0.0.7", port=9000)
    return ServiceRegistration(**{**base, **kw})


def test_body_has_identity_address_tags_meta_and_an_http_check():
    body = registration(tags=("v1",), meta={"zone": "eu"}, weight=2.5, check_interval_s=5,
                        deregister_critical_after_s=90).body()
    assert (body["ID"], body["Name"], body["Address"], body["Port"]) == ("renderer-a", "renderer", "10.0.0.7", 9000)
    assert body["Tags"] == ["v1"]
    assert body["Meta"] == {"zone": "eu", "weight": "2.5"}
    assert body["Weights"] == {"Passing": 2, "Warning": 1}
    check = body["Check"]
    assert check["HTTP"] == "http://10.0.0.7:9000/healthz"
    assert check["Interval"] == "5000ms"
    assert check["DeregisterCriticalServiceAfter"] == "90000ms"


def test_a_zero_weight_drains_through_meta_while_consul_gets_its_minimum():
    body = registration(weight=0).body()
    assert body["Meta"]["weight"] == "0"
    assert body["Weights"]["Passing"] == 1


def test_check_host_and_ipv6():
    assert registration(check_host="127.0.0.1").check_url == "http://127.0.0.1:9000/healthz"
    assert registration(address="fd00::7").check_url == "http://[fd00::7]:9000/healthz"


@pytest.mark.parametrize("kw, message", [
    ({"service_id": ""}, "service ID"),
    ({"service_id": "a b"}, "spaces"),
    ({"address": ""}, "address"),
    ({"port": 0}, "port"),
    ({"weight": -1}, "weight"),
    ({"check_path": "healthz"}, "start with"),
    ({"check_interval_s": 0}, "positive"),
])
def test_bad_registrations_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        registration(**kw)


def test_go_duration():
    assert go_duration(10) == "10000ms"
    assert go_duration(0.0001) == "1ms"
    with pytest.raises(ValueError):
        go_duration(float("inf"))
