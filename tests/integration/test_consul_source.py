"""The Consul source against an agent: the double, or a real one when CONSUL_HTTP_ADDR is set.

Tests on the ``consul`` fixture need no fault control and so run against a real agent
too; tests on ``consul_double`` break the agent on purpose.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from discovery.consul import ConsulSource
from tests.conftest_consul import (  # noqa: F401  (fixtures)
    Running,
    add_passing,
    consul,
    consul_double,
    eventually,
    published,
    service_name,
    ttl_service,
)

pytestmark = [
    pytest.mark.timeout(60),
    # py-consul 1.8 builds its connector with aiohttp's deprecated ssl_context argument.
    pytest.mark.filterwarnings("ignore:ssl_context is deprecated:DeprecationWarning"),
]


def source_for(agent, service, **kw) -> ConsulSource:
    settings = dict(addr=agent.addr, wait_s=0.5, min_interval_s=0.02, backoff_max_s=0.3, backoff_base_s=0.05)
    return ConsulSource(service, **{**settings, **kw})


async def three_members(agent, service):
    await add_passing(agent, service, "r-a", 9001)
    await add_passing(agent, service, "r-b", 9002)
    await add_passing(agent, service, "r-c", 9003)


async def test_publishes_exactly_the_passing_instances_of_the_service(consul, service_name, published):
    await add_passing(consul, service_name, "r-a", 9001, weight_meta="2.5", passing_weight=4)
    await add_passing(consul, service_name, "r-b", 9002, passing_weight=3)
    await add_passing(consul, service_name, "r-c", 9003, address=None)  # the node's address stands in
    await consul.register(ttl_service(service_name, "r-critical", 9004))  # its check never passed
    await add_passing(consul, service_name + "-other", "x-1", 9100)
    source = source_for(consul, service_name)
    async with Running(source, published):
        membership = await published.wait_for_ids(["r-a", "r-b", "r-c"])
    _, entries = await consul.health(service_name)
    node_address = entries[0]["Node"]["Address"]
    by_id = membership.by_id()
    assert {i: m.weight for i, m in by_id.items()} == {"r-a": 2.5, "r-b": 3.0, "r-c": 1.0}
    assert (by_id["r-a"].host, by_id["r-a"].port) == ("127.0.0.1", 9001)
    assert (by_id["r-c"].host, by_id["r-c"].port) == (node_address, 9003)
    assert membership.source == "consul"
    status = source.status()
    assert status.ready and not status.stale and status.last_success_age_s is not None


async def test_follows_a_new_member_and_a_failing_check(consul, service_name, published):
    await three_members(consul, service_name)
    source = source_for(consul, service_name)
    async with Running(source, published):
        await published.wait_for_ids(["r-a", "r-b", "r-c"])
        await add_passing(consul, service_name, "r-d", 9004)
        await published.wait_for_ids(["r-a", "r-b", "r-c", "r-d"])
        await consul.ttl("service:r-b", "fail", "disk full")
        await published.wait_for_ids(["r-a", "r-c", "r-d"])
        await consul.ttl("service:r-b", "pass")
        await published.wait_for_ids(["r-a", "r-b", "r-c", "r-d"])
    assert len(published.memberships) == 4


def guarded(source: ConsulSource) -> bool:
    """The mass-drop guard holds an answer back, as /status tells operators."""
    return "GUARDED" in source.status().detail


async def test_answers_that_change_nothing_cause_no_publish(consul, service_name, published):
    await three_members(consul, service_name)
    source = source_for(consul, service_name)
    async with Running(source, published):
        await published.wait_for_ids(["r-a", "r-b", "r-c"])
        # Blocking queries time out (wait is 0.5 s) and answer the same list again.
        await asyncio.sleep(1.5)
        # A change to meta the ring does not use wakes the watcher with a new index.
        await consul.register({**ttl_service(service_name, "r-a", 9001), "Meta": {"build": "42"}})
        index, _ = await consul.health(service_name)
        await eventually(lambda: source.index >= index, 5, "watcher saw the new index")
        await asyncio.sleep(0.2)
    assert len(published.memberships) == 1


async def test_tag_filter_publishes_only_tagged_instances(consul, service_name, published):
    await add_passing(consul, service_name, "r-a", 9001, tags=["edge", "v2"])
    await add_passing(consul, service_name, "r-b", 9002, tags=["V2"])
    await add_passing(consul, service_name, "r-c", 9003)
    source = source_for(consul, service_name, tag="v2")
    async with Running(source, published):
        await published.wait_for_ids(["r-a", "r-b"])


async def test_an_empty_answer_is_held_loudly_and_released_on_recovery(consul, service_name, published, caplog):
    await three_members(consul, service_name)
    source = source_for(consul, service_name)
    async with Running(source, published):
        await published.wait_for_ids(["r-a", "r-b", "r-c"])
        for sid in ("r-a", "r-b", "r-c"):
            await consul.deregister(sid)
        await eventually(lambda: guarded(source) and "empty" in source.status().detail, 5, "the empty answer held")
        status = source.status()
        assert status.ready and status.stale and "GUARDED" in status.detail
        assert any(r.levelname == "ERROR" and "GUARDED" in r.getMessage() for r in caplog.records)
        # The watcher may have seen r-a leave alone (a small drop it follows); never more.
        assert published.ids() in (["r-a", "r-b", "r-c"], ["r-b", "r-c"])
        await three_members(consul, service_name)
        await published.wait_for_ids(["r-a", "r-b", "r-c"])
        await eventually(lambda: not guarded(source), 5, "guard released")
        assert not source.status().stale


async def test_a_mass_drop_is_held_until_an_operator_confirms(consul, service_name, published):
    await three_members(consul, service_name)
    source = source_for(consul, service_name)
    async with Running(source, published):
        await published.wait_for_ids(["r-a", "r-b", "r-c"])
        await consul.ttl("service:r-a", "fail")
        await consul.ttl("service:r-b", "fail")
        await eventually(lambda: guarded(source), 5, "guard holds the 2-of-3 drop")
        assert "2 of 3" in source.status().detail
        assert published.ids() in (["r-a", "r-b", "r-c"], ["r-b", "r-c"])
        source.confirm()
        assert published.ids() == ["r-c"]
        assert not guarded(source) and not source.status().stale
        # Consul is followed again from the confirmed set.
        await consul.ttl("service:r-a", "pass")
        await published.wait_for_ids(["r-a", "r-c"])


# -- faults: the double only -----------------------------------------------------------


async def test_an_agent_that_stops_answering_leaves_the_membership_stale_then_recovers(consul_double, service_name, published):
    agent = consul_double
    await three_members(agent, service_name)
    source = source_for(agent, service_name)
    async with Running(source, published):
        await published.wait_for_ids(["r-a", "r-b", "r-c"])
        await agent.request("PUT", "/_double/faults", body={"delay_s": 5, "path_prefix": "/v1/health/"})
        await eventually(lambda: source.consecutive_failures >= 3, 20, "three timed-out queries")
        status = source.status()
        assert status.ready and status.stale and "no answer" in status.detail
        assert status.last_success_age_s > 1.0
        assert published.ids() == ["r-a", "r-b", "r-c"] and len(published.memberships) == 1
        await agent.request("PUT", "/_double/faults", body={})
        await eventually(lambda: not source.status().stale, 10, "recovered")
        await add_passing(agent, service_name, "r-d", 9004)
        await published.wait_for_ids(["r-a", "r-b", "r-c", "r-d"])


@pytest.mark.parametrize("fault, words", [({"status": 500}, "HTTP 500"), ({"garbage": True}, "not JSON"),
                                          ({"status": 403, "body": "ACL not found"}, "ACL not found")])
async def test_errors_and_garbage_keep_the_last_membership(consul_double, service_name, published, fault, words):
    agent = consul_double
    await three_members(agent, service_name)
    source = source_for(agent, service_name)
    async with Running(source, published):
        await published.wait_for_ids(["r-a", "r-b", "r-c"])
        await agent.request("PUT", "/_double/faults", body={**fault, "path_prefix": "/v1/health/"})
        await eventually(lambda: source.consecutive_failures >= 1, 10, "a failure")
        await agent.deregister("r-a")  # a change the source cannot see while the agent errs
        await eventually(lambda: source.consecutive_failures >= 3, 10, "failures")
        assert words in source.status().detail and source.status().stale
        assert published.ids() == ["r-a", "r-b", "r-c"]
        await agent.request("PUT", "/_double/faults", body={})
        await published.wait_for_ids(["r-b", "r-c"])
        assert not source.status().stale


async def test_an_index_rollback_resets_the_watch_and_it_converges(consul_double, service_name, published):
    agent = consul_double
    await three_members(agent, service_name)
    source = source_for(agent, service_name)
    async with Running(source, published):
        await published.wait_for_ids(["r-a", "r-b", "r-c"])
        index_before = source.index
        assert index_before > 3
        await agent.request("DELETE", "/_double/requests")
        await agent.request("PUT", "/_double/rollback", body={"index": 2})

        async def restarted() -> bool:
            _, _, text = await agent.request("GET", "/_double/requests")
            return any(r["path"].endswith(service_name) and "index" not in dict(r["query"]) for r in json.loads(text))

        await eventually(restarted, 5, "a query without index after the rollback")
        await add_passing(agent, service_name, "r-d", 9004)
        assert agent.double.state.index < index_before  # without the reset this change would be missed
        await published.wait_for_ids(["r-a", "r-b", "r-c", "r-d"])


async def test_an_acl_filtered_empty_answer_is_held_and_named(consul_double, service_name, published):
    agent = consul_double
    await three_members(agent, service_name)
    source = source_for(agent, service_name)
    async with Running(source, published):
        await published.wait_for_ids(["r-a", "r-b", "r-c"])
        await agent.request("PUT", "/_double/faults", body={"filter_all": True})
        await add_passing(agent, service_name, "r-d", 9004)  # wake the watcher
        await eventually(lambda: guarded(source), 5, "held")
        assert "filtered by ACLs" in source.status().detail
        assert published.ids() == ["r-a", "r-b", "r-c"]
        await agent.request("PUT", "/_double/faults", body={})
        await published.wait_for_ids(["r-a", "r-b", "r-c", "r-d"])


async def test_query_carries_token_datacenter_tag_passing_index_and_wait(consul_double, service_name, published):
    agent = consul_double
    await add_passing(agent, service_name, "r-a", 9001, tags=["blue"])
    source = source_for(agent, service_name, token="t0ken", datacenter="dc1", tag="blue")
    async with Running(source, published):
        await published.wait_for_ids(["r-a"])
        await asyncio.sleep(0.6)  # at least one blocking query
    _, _, text = await agent.request("GET", "/_double/requests")
    queries = [r for r in json.loads(text) if r["path"] == f"/v1/health/service/{service_name}"]
    assert queries and all(r["token"] == "t0ken" for r in queries)
    first, later = dict(queries[0]["query"]), [dict(r["query"]) for r in queries[1:]]
    assert first == {"passing": "1", "tag": "blue", "dc": "dc1"}  # the first query does not block
    assert later and all(q["wait"] == "500ms" and int(q["index"]) >= 1 for q in later)


async def test_an_agent_that_errs_from_the_start_never_publishes_then_recovers(consul_double, service_name, published):
    agent = consul_double
    await three_members(agent, service_name)
    await agent.request("PUT", "/_double/faults", body={"status": 500, "path_prefix": "/v1/health/"})
    source = source_for(agent, service_name)
    async with Running(source, published):
        await eventually(lambda: source.consecutive_failures >= 2, 5, "failures")
        status = source.status()
        assert not status.ready and not status.stale and "HTTP 500" in status.detail
        assert published.memberships == []
        await agent.request("PUT", "/_double/faults", body={})
        await published.wait_for_ids(["r-a", "r-b", "r-c"])


async def test_nothing_listening_is_an_error_not_a_crash(published):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = ConsulSource("renderer", addr=f"127.0.0.1:{port}", wait_s=0.5, backoff_max_s=0.1, backoff_base_s=0.02)
    async with Running(source, published):
        await eventually(lambda: source.consecutive_failures >= 2, 5, "connection failures")
    assert not source.status().ready and source.status().detail
    assert published.memberships == []
