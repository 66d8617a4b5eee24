"""The Consul double's HTTP API, to the letter of Consul's docs.

Tests on the ``consul`` fixture run against a real agent when CONSUL_HTTP_ADDR is
set: they are the contract that keeps the double honest. Tests on ``consul_double``
exercise what only the double has (fault controls, process mode, timing knobs).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request

import pytest
from consul import Check as PyConsulCheck
from consul.aio import Consul as PyConsul

from tests.conftest_consul import (  # noqa: F401  (fixtures)
    add_passing,
    consul,
    consul_double,
    eventually,
    service_name,
    ttl_service,
)
from tests.consul_double import DoubleConfig, serve
from tests.consul_double.model import BadRequest, parse_go_duration, parse_service_body
from tests.consul_double.state import DEFAULT_WAIT_S, MAX_WAIT_S, effective_wait_s

pytestmark = [
    pytest.mark.timeout(60),
    # py-consul 1.8 builds its connector with aiohttp's deprecated ssl_context argument.
    pytest.mark.filterwarnings("ignore:ssl_context is deprecated:DeprecationWarning"),
]


# -- pure rules -----------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [("10s", 10), ("5m", 300), ("1m30s", 90), ("250ms", 0.25), ("1.5h", 5400),
                                           ("0", 0), ("100us", 1e-4), ("-2s", -2)])
def test_go_durations(text, seconds):
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1s ", "1.2.3s"])
def test_bad_go_durations(text):
    with pytest.raises(ValueError):
        parse_go_duration(text)


def test_wait_default_cap_and_jitter():
    assert effective_wait_s(0, 0.0) == DEFAULT_WAIT_S  # "defaults to 5 minutes"
    assert effective_wait_s(3600, 0.0) == MAX_WAIT_S  # "limited to 10 minutes"
    assert effective_wait_s(16, 0.999) == pytest.approx(16.999)  # "up to wait / 16" more
    assert effective_wait_s(-5, 0.0) == DEFAULT_WAIT_S


def test_camel_snake_and_lower_case_bodies_mean_the_same():
    camel = parse_service_body({"ID": "w1", "Name": "web", "Port": 80, "EnableTagOverride": True,
                                "Check": {"CheckID": "c1", "TTL": "10s", "DeregisterCriticalServiceAfter": "90m"}})
    snake = parse_service_body({"id": "w1", "name": "web", "port": 80, "enable_tag_override": True,
                                "check": {"check_id": "c1", "ttl": "10s", "deregister_critical_service_after": "90m"}})
    assert camel == snake
    assert camel.checks[0].deregister_after_s == 5400


def test_meta_keys_are_user_data_and_keep_their_case():
    body = parse_service_body({"Name": "web", "Meta": {"Build_ID": "7"}})
    assert body.meta == {"Build_ID": "7"}


# -- the documented API (real agent when CONSUL_HTTP_ADDR is set) ----------------------


async def test_every_read_has_an_index_of_at_least_one(consul, service_name):
    status, headers, text = await consul.request("GET", f"/v1/health/service/{service_name}")
    assert status == 200 and json.loads(text) == []
    assert int(headers["X-Consul-Index"]) >= 1
    assert headers["X-Consul-KnownLeader"] == "true"


@pytest.mark.parametrize("params, message", [({"wait": "10", "index": "1"}, "Invalid wait time"),
                                             ({"wait": "soon", "index": "1"}, "Invalid wait time"),
                                             ({"index": "-1"}, "Invalid index"),
                                             ({"index": "abc"}, "Invalid index")])
async def test_bad_wait_or_index_is_a_400(consul, service_name, params, message):
    status, _, text = await consul.request("GET", f"/v1/health/service/{service_name}", params=params)
    assert (status, text.strip()) == (400, message)


async def test_stale_with_consistent_is_a_400(consul, service_name):
    status, _, text = await consul.request("GET", f"/v1/health/service/{service_name}?stale&consistent")
    assert status == 400 and "conflicting semantics" in text


async def test_unknown_datacenter_is_an_error(consul, service_name):
    status, _, text = await consul.request("GET", f"/v1/health/service/{service_name}", params={"dc": "nowhere-dc"})
    assert status == 500 and "No path to datacenter" in text


async def test_blocking_query_answers_when_the_service_changes(consul, service_name):
    await add_passing(consul, service_name, "w1", 8001)
    index, _ = await consul.health(service_name)
    query = asyncio.create_task(consul.health(service_name, index=index, wait="20s"))
    await asyncio.sleep(0.2)
    assert not query.done()  # it blocks
    await add_passing(consul, service_name, "w2", 8002)
    new_index, entries = await asyncio.wait_for(query, 10)
    assert new_index > index
    assert sorted(e["Service"]["ID"] for e in entries) == ["w1", "w2"]


async def test_blocking_query_without_change_answers_at_wait_with_the_same_index(consul, service_name):
    await add_passing(consul, service_name, "w1", 8001)
    index, _ = await consul.health(service_name)
    again, entries = await consul.health(service_name, index=index, wait="300ms")
    assert again == index and len(entries) == 1


async def test_a_query_without_index_does_not_block(consul, service_name):
    await add_passing(consul, service_name, "w1", 8001)
    await asyncio.wait_for(consul.health(service_name, wait="30s"), 5)


async def test_passing_filter_and_tag_filter(consul, service_name):
    await add_passing(consul, service_name, "w1", 8001, tags=["Blue", "v2"])
    await add_passing(consul, service_name, "w2", 8002, tags=["blue"])
    await consul.register(ttl_service(service_name, "w3", 8003, tags=["blue", "v2"]))  # critical
    await add_passing(consul, service_name, "w4", 8004)
    await consul.ttl("service:w4", "warn", "slow")  # warning is not passing

    async def ids(**params):
        _, entries = await consul.health(service_name, **params)
        return sorted(e["Service"]["ID"] for e in entries)

    assert await ids() == ["w1", "w2", "w3", "w4"]
    assert await ids(passing="") == ["w1", "w2"]
    assert await ids(passing="false") == ["w1", "w2", "w3", "w4"]
    assert await ids(tag="blue") == ["w1", "w2", "w3"]
    assert await ids(tag=["blue", "v2"], passing="1") == ["w1"]
    status, _, text = await consul.request("GET", f"/v1/health/service/{service_name}", params={"passing": "maybe"})
    assert status == 400


async def test_health_entry_shape(consul, service_name):
    await consul.register({**ttl_service(service_name, "w1", 8001, weight_meta="2", passing_weight=5, tags=["t"]),
                           "Meta": {"weight": "2", "zone": "z"}})
    _, (entry,) = await consul.health(service_name)
    service = entry["Service"]
    assert (service["ID"], service["Service"], service["Address"], service["Port"]) == ("w1", service_name, "127.0.0.1", 8001)
    assert service["Tags"] == ["t"] and service["Meta"] == {"weight": "2", "zone": "z"}
    assert service["Weights"] == {"Passing": 5, "Warning": 1}
    assert {"Node", "Address", "Datacenter"} <= set(entry["Node"])
    check = next(c for c in entry["Checks"] if c["ServiceID"] == "w1")
    assert (check["CheckID"], check["Status"], check["ServiceName"]) == ("service:w1", "critical", service_name)
    assert any(c["CheckID"] == "serfHealth" for c in entry["Checks"])


async def test_default_weights(consul, service_name):
    await consul.register({"Name": service_name, "ID": "w1", "Port": 1})
    _, (entry,) = await consul.health(service_name)
    assert entry["Service"]["Weights"] == {"Passing": 1, "Warning": 1}


async def test_catalog_services_lists_names_and_tags(consul, service_name):
    await consul.register(ttl_service(service_name, "w1", 8001, tags=["b", "a"]))
    await consul.register(ttl_service(service_name, "w2", 8002, tags=["a", "c"]))
    status, headers, text = await consul.request("GET", "/v1/catalog/services")
    assert status == 200 and int(headers["X-Consul-Index"]) >= 1
    listing = json.loads(text)
    assert sorted(listing[service_name]) == ["a", "b", "c"]
    assert "consul" in listing


async def test_snake_case_registration(consul, service_name):
    await consul.register({"name": service_name, "id": "w1", "port": 8001, "address": "127.0.0.1",
                           "enable_tag_override": True, "tags": ["x"],
                           "check": {"check_id": "w1-ttl", "name": "ttl", "ttl": "30s",
                                     "deregister_critical_service_after": "90m"}})
    status, _, text = await consul.request("GET", "/v1/agent/services")
    service = json.loads(text)["w1"]
    assert service["EnableTagOverride"] is True and service["Service"] == service_name
    assert await consul.check_status("w1-ttl") == "critical"


async def test_several_checks_get_numbered_ids_and_the_name_defaults(consul, service_name):
    await consul.register({"Name": service_name, "ID": "w1", "Port": 8001,
                           "Checks": [{"TTL": "30s"}, {"TTL": "30s", "Status": "passing"}]})
    status, _, text = await consul.request("GET", "/v1/agent/checks")
    checks = json.loads(text)
    assert checks["service:w1:1"]["Status"] == "critical"
    assert checks["service:w1:2"]["Status"] == "passing"
    assert checks["service:w1:1"]["Name"] == f"Service '{service_name}' check"


@pytest.mark.parametrize("body, message", [
    ({"ID": "x", "Port": 1}, "Missing service name"),
    ({"Name": "n", "Check": {"HTTP": "http://127.0.0.1:1/"}}, "Interval must be > 0"),
    ({"Name": "n", "Check": {"TTL": "10s", "Interval": "10s"}}, "Interval and TTL cannot both be specified"),
    ({"Name": "n", "Check": {"Notes": "nothing to run"}}, "TTL must be > 0"),
    ({"Name": "n", "Weights": {"Passing": 0, "Warning": 1}}, "Passing must be greater than 0"),
    ("{not json", "Request decode failed"),
])
async def test_bad_registrations_are_400s(consul, service_name, body, message):
    if isinstance(body, dict):
        body = {**body, "Name": service_name} if "Name" in body else body
    status, _, text = await consul.request("PUT", "/v1/agent/service/register", body=body)
    assert status == 400 and message in text


async def test_deregistering_an_unknown_service_is_harmless(consul, service_name):
    status, _, _ = await consul.request("PUT", f"/v1/agent/service/deregister/{service_name}-nope")
    assert status == 200


async def test_deregistration_removes_the_service_and_its_checks(consul, service_name):
    await add_passing(consul, service_name, "w1", 8001)
    await consul.deregister("w1")
    assert "w1" not in await consul.service_ids()
    assert await consul.check_status("service:w1") is None
    _, entries = await consul.health(service_name)
    assert entries == []


async def test_ttl_updates_set_status_and_output(consul, service_name):
    await consul.register(ttl_service(service_name, "w1", 8001))
    for verb, status in (("pass", "passing"), ("warn", "warning"), ("fail", "critical")):
        await consul.ttl("service:w1", verb, f"note {verb}")
        _, text = (await consul.request("GET", "/v1/agent/checks"))[0::2]
        check = json.loads(text)["service:w1"]
        assert (check["Status"], check["Output"]) == (status, f"note {verb}")


async def test_ttl_update_of_a_non_ttl_check_is_an_error(consul, service_name):
    await consul.register({"Name": service_name, "ID": "w1", "Port": 8001,
                           "Check": {"CheckID": "w1-http", "HTTP": "http://127.0.0.1:9/", "Interval": "10s"}})
    status, _, text = await consul.request("PUT", "/v1/agent/check/pass/w1-http")
    assert status == 500 and 'CheckID "w1-http" does not have associated TTL' in text
    status, _, text = await consul.request("PUT", "/v1/agent/check/pass/no-such-check")
    assert status == 500 and "does not have associated TTL" in text


async def test_ttl_expires_to_critical(consul, service_name):
    await consul.register({"Name": service_name, "ID": "w1", "Port": 8001, "Check": {"CheckID": "w1-ttl", "TTL": "1s"}})
    await consul.ttl("w1-ttl", "pass")
    await eventually(lambda: _status(consul, "w1-ttl", "critical"), 5, "TTL expiry")
    _, text = (await consul.request("GET", "/v1/agent/checks"))[0::2]
    assert json.loads(text)["w1-ttl"]["Output"].startswith("TTL expired")


async def test_service_maintenance_mode(consul, service_name):
    await add_passing(consul, service_name, "w1", 8001)
    status, _, _ = await consul.request("PUT", "/v1/agent/service/maintenance/w1", params={"enable": "true", "reason": "upgrade"})
    assert status == 200
    _, passing = await consul.health(service_name, passing="")
    assert passing == []
    _, text = (await consul.request("GET", "/v1/agent/checks"))[0::2]
    maintenance = json.loads(text)["_service_maintenance:w1"]
    assert maintenance["Status"] == "critical" and maintenance["Notes"] == "upgrade"
    await consul.request("PUT", "/v1/agent/service/maintenance/w1", params={"enable": "false"})
    _, passing = await consul.health(service_name, passing="")
    assert [e["Service"]["ID"] for e in passing] == ["w1"]


@pytest.mark.parametrize("params, code, message", [({}, 400, "Missing value for enable"),
                                                    ({"enable": "sure"}, 400, "Invalid value for enable")])
async def test_maintenance_needs_a_boolean_enable(consul, service_name, params, code, message):
    await add_passing(consul, service_name, "w1", 8001)
    status, _, text = await consul.request("PUT", "/v1/agent/service/maintenance/w1", params=params)
    assert status == code and message in text


async def test_maintenance_of_an_unknown_service_is_a_404(consul, service_name):
    status, _, text = await consul.request("PUT", f"/v1/agent/service/maintenance/{service_name}-nope", params={"enable": "true"})
    assert status == 404 and "Unknown service" in text


async def test_py_consul_lowercase_bodies_register(consul, service_name):
    client = consul_client(consul)
    try:
        ok = await client.agent.service.register(service_name, service_id="w1", port=8001, address="127.0.0.1",
                                                 tags=["t"], meta={"weight": "3"},
                                                 check=PyConsulCheck.ttl("30s"))
        assert ok is True
        consul.registered.append("w1")
        await client.agent.check.ttl_pass("service:w1")
        index, nodes = await client.health.service(service_name, passing=True)
        assert int(index) >= 1 and [n["Service"]["ID"] for n in nodes] == ["w1"]
    finally:
        await client.close()


def consul_client(agent) -> PyConsul:
    host, _, port = agent.addr.rpartition("//")[2].rpartition(":")
    return PyConsul(host=host, port=int(port))


async def _status(consul, check_id, status):
    return await consul.check_status(check_id) == status


# -- what only the double has -------------------------------------------------------------


async def test_fault_controls(consul_double, service_name):
    agent = consul_double
    await add_passing(agent, service_name, "w1", 8001)
    await agent.request("PUT", "/_double/faults", body={"status": 503, "body": "down", "path_prefix": "/v1/health/"})
    assert (await agent.request("GET", f"/v1/health/service/{service_name}"))[0::2] == (503, "down")
    assert (await agent.request("GET", "/v1/catalog/services"))[0] == 200  # outside the prefix
    await agent.request("PUT", "/_double/faults", body={"garbage": True})
    status, _, text = await agent.request("GET", f"/v1/health/service/{service_name}")
    assert status == 200 and not text.startswith("[")
    await agent.request("PUT", "/_double/faults", body={"filter_all": True})
    status, headers, text = await agent.request("GET", f"/v1/health/service/{service_name}")
    assert json.loads(text) == [] and headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
    status, _, text = await agent.request("PUT", "/_double/faults", body={"nonsense": 1})
    assert status == 400
    await agent.request("PUT", "/_double/faults", body={})
    _, entries = await agent.health(service_name)
    assert len(entries) == 1


async def test_slow_fault_delays_answers(consul_double, service_name):
    agent = consul_double
    await agent.request("PUT", "/_double/faults", body={"delay_s": 5})
    query = asyncio.create_task(agent.request("GET", f"/v1/health/service/{service_name}"))
    await asyncio.sleep(0.3)
    assert not query.done()
    query.cancel()


async def test_rollback_lowers_indexes_and_blocked_queries_answer_at_timeout_with_it(consul_double, service_name):
    agent = consul_double
    for n in range(3):
        await add_passing(agent, service_name, f"w{n}", 8000 + n)
    index, _ = await agent.health(service_name)
    assert index > 2
    query = asyncio.create_task(agent.health(service_name, index=index, wait="300ms"))
    await asyncio.sleep(0.05)
    await agent.request("PUT", "/_double/rollback", body={"index": 2})
    rolled, entries = await asyncio.wait_for(query, 5)
    assert rolled == 2 and len(entries) == 3


async def test_writes_that_change_nothing_keep_the_index(consul_double, service_name):
    agent = consul_double
    body = ttl_service(service_name, "w1", 8001)
    await agent.register(body)
    index, _ = await agent.health(service_name)
    await agent.register(body)  # identical re-registration
    await agent.ttl("service:w1", "fail")  # critical already: no status change
    assert (await agent.health(service_name))[0] == index


async def test_request_log_records_tokens(consul_double, service_name):
    agent = consul_double
    async with agent.session.get(f"{agent.url}/v1/health/service/{service_name}", headers={"X-Consul-Token": "abc"}):
        pass
    _, _, text = await agent.request("GET", "/_double/requests")
    assert json.loads(text)[-1]["token"] == "abc"


async def test_deregister_after_has_consuls_one_minute_floor_by_default(service_name):
    double = await serve(DoubleConfig(min_check_interval_s=0.05, reap_interval_s=3600))
    try:
        body = {"Name": service_name, "ID": "w1", "Port": 1,
                "Check": {"TTL": "10s", "DeregisterCriticalServiceAfter": "1ms"}}
        await asyncio.sleep(0)
        double.state.register(parse_service_body(body), replace_existing_checks=False)
        await asyncio.sleep(0.05)
        assert double.state.reap() == []  # 1 ms is raised to the 1 minute floor
    finally:
        await double.close()


def test_the_double_runs_as_a_process():
    process = subprocess.Popen([sys.executable, "-m", "tests.consul_double", "--port", "0", "--reap-interval", "1s"],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("consul double listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        with urllib.request.urlopen(f"{url}/v1/status/leader", timeout=5) as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith("application/json")
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_bad_request_is_a_value_error():
    with pytest.raises(BadRequest, match="Missing service name"):
        parse_service_body({"Port": 1})
