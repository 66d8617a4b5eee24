"""Renderer registration (discovery.register) and the agent's HTTP checks, end to end.

Runs against a real agent when CONSUL_HTTP_ADDR is set; there Consul's own floors
apply (1 s intervals, DeregisterCriticalServiceAfter >= 1 m reaped every 30 s), so
the reaping test takes up to ~100 s instead of ~1 s.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from discovery.consul import ConsulSource
from discovery.register import ServiceRegistration, deregister, register, registered
from tests.conftest_consul import (  # noqa: F401  (fixtures)
    REAL_AGENT_ADDR,
    Running,
    consul,
    eventually,
    healthz_servers,
    published,
    service_name,
)
from tests.consul_double.model import parse_go_duration

pytestmark = [
    pytest.mark.timeout(150 if REAL_AGENT_ADDR else 60),
    # py-consul 1.8 builds its connector with aiohttp's deprecated ssl_context argument.
    pytest.mark.filterwarnings("ignore:ssl_context is deprecated:DeprecationWarning"),
]


def registration_for(consul, service, service_id, port, **kw) -> ServiceRegistration:
    interval = parse_go_duration(consul.timing.check_interval)
    settings = dict(check_interval_s=interval, check_timeout_s=max(interval, 0.5),
                    deregister_critical_after_s=parse_go_duration(consul.timing.deregister_after))
    return ServiceRegistration(name=service, service_id=service_id, address="127.0.0.1", port=port,
                               **{**settings, **kw})


async def test_registered_renderer_is_checked_published_and_deregistered_on_exit(consul, service_name, published, healthz_servers):
    server = await healthz_servers()
    reg = registration_for(consul, service_name, f"{service_name}-1", server.port, tags=("v1",), meta={"zone": "z1"},
                           weight=0.5)
    source = ConsulSource(service_name, addr=consul.addr, wait_s=0.5, min_interval_s=0.02)
    async with Running(source, published):
        async with registered(reg, addr=consul.addr):
            consul.registered.append(reg.service_id)
            membership = await published.wait_for_ids([reg.service_id], timeout=consul.timing.settle_s)
            member = membership.by_id()[reg.service_id]
            assert (member.host, member.port, member.weight) == ("127.0.0.1", server.port, 0.5)
            assert member.meta["zone"] == "z1"
            _, entries = await consul.health(service_name)
            (entry,) = entries
            assert entry["Service"]["Tags"] == ["v1"]
            assert entry["Service"]["Weights"]["Passing"] == 1
            http_checks = [c for c in entry["Checks"] if c["ServiceID"] == reg.service_id]
            assert len(http_checks) == 1 and http_checks[0]["Type"] == "http"
        assert reg.service_id not in await consul.service_ids()


async def test_registration_is_idempotent(consul, service_name, healthz_servers):
    server = await healthz_servers()
    reg = registration_for(consul, service_name, f"{service_name}-1", server.port)
    await register(reg, addr=consul.addr)
    consul.registered.append(reg.service_id)
    await register(reg, addr=consul.addr)
    status, _, text = await consul.request("GET", "/v1/agent/checks")
    mine = [c for c in json.loads(text).values() if c["ServiceID"] == reg.service_id]
    assert len(mine) == 1
    await deregister(reg.service_id, addr=consul.addr)
    await deregister(reg.service_id, addr=consul.addr)  # unknown IDs are a no-op
    assert reg.service_id not in await consul.service_ids()


async def test_deregistration_happens_even_when_the_renderer_is_cancelled(consul, service_name, healthz_servers):
    server = await healthz_servers()
    reg = registration_for(consul, service_name, f"{service_name}-1", server.port)
    up = asyncio.Event()

    async def renderer():
        async with registered(reg, addr=consul.addr):
            up.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(renderer())
    await asyncio.wait_for(up.wait(), 5)
    consul.registered.append(reg.service_id)
    assert reg.service_id in await consul.service_ids()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reg.service_id not in await consul.service_ids()


async def test_http_check_marks_a_stopped_server_critical_and_the_service_is_reaped(consul, service_name, healthz_servers):
    server = await healthz_servers()
    reg = registration_for(consul, service_name, f"{service_name}-1", server.port)
    await register(reg, addr=consul.addr)
    consul.registered.append(reg.service_id)
    check_id = f"service:{reg.service_id}"
    await eventually(lambda: _status_is(consul, check_id, "passing"), consul.timing.settle_s, "check passing")
    await server.stop()
    await eventually(lambda: _status_is(consul, check_id, "critical"), consul.timing.settle_s, "check critical")
    _, passing = await consul.health(service_name, passing="")
    assert passing == []
    await eventually(_gone(consul, reg.service_id), consul.timing.reap_s, "reaped by DeregisterCriticalServiceAfter")


@pytest.mark.parametrize("code, expected", [(429, "warning"), (503, "critical"), (204, "passing")])
async def test_http_check_status_follows_the_answer_code(consul, service_name, healthz_servers, code, expected):
    server = await healthz_servers()
    server.status = code
    reg = registration_for(consul, service_name, f"{service_name}-1", server.port)
    await register(reg, addr=consul.addr)
    consul.registered.append(reg.service_id)
    await eventually(lambda: _status_is(consul, f"service:{reg.service_id}", expected), consul.timing.settle_s,
                     f"check {expected}")


async def _status_is(consul, check_id: str, status: str) -> bool:
    return await consul.check_status(check_id) == status


def _gone(consul, service_id: str):
    async def predicate() -> bool:
        return service_id not in await consul.service_ids()
    return predicate
