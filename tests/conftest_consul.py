"""Fixtures and helpers for the Consul tests; test modules import what they use.

``consul`` is the agent a test talks to: a real one when ``CONSUL_HTTP_ADDR`` is set
(so the double cannot drift from Consul unnoticed), otherwise a fresh double in the
test's loop with shortened timings. ``consul_double`` is always the double, for tests
that need its fault controls. Every test uses its own service name, and everything a
test registers through these helpers is deregistered afterwards, so a real agent is
left as it was found.

Against a real agent, Consul's own floors apply (1 s check intervals, a 1 minute
DeregisterCriticalServiceAfter reaped every 30 s), and ``Timing`` stretches the
deadlines accordingly.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
import pytest
from aiohttp import web

from pixring.membership import Membership
from tests.consul_double import DoubleConfig, RunningDouble, serve

REAL_AGENT_ADDR = os.environ.get("CONSUL_HTTP_ADDR") or None

FAST_DOUBLE = DoubleConfig(min_check_interval_s=0.05, reap_interval_s=0.1, min_deregister_after_s=0.2)


@dataclass(frozen=True)
class Timing:
    check_interval: str  # a Go duration for HTTP checks
    deregister_after: str  # DeregisterCriticalServiceAfter
    settle_s: float  # a deadline for things that take a check interval or two
    reap_s: float  # a deadline for DeregisterCriticalServiceAfter to act


DOUBLE_TIMING = Timing(check_interval="100ms", deregister_after="500ms", settle_s=5.0, reap_s=8.0)
REAL_TIMING = Timing(check_interval="1s", deregister_after="1m", settle_s=10.0, reap_s=100.0)


async def eventually(predicate: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; a deadline, not a timing assertion."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.02)


@dataclass
class ConsulUnderTest:
    """An agent's HTTP API, reached with plain aiohttp (independent of py-consul)."""

    addr: str
    timing: Timing
    double: RunningDouble | None = None
    session: aiohttp.ClientSession = field(default_factory=aiohttp.ClientSession)
    registered: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.addr}" if "://" not in self.addr else self.addr

    @property
    def is_double(self) -> bool:
        return self.double is not None

    async def request(self, method: str, path: str, *, params: Any = None, body: Any = None) -> tuple[int, dict, str]:
        data = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        async with self.session.request(method, self.url + path, params=params, data=data) as response:
            return response.status, dict(response.headers), await response.text()

    async def register(self, body: dict, *, params: Any = None) -> None:
        status, _, text = await self.request("PUT", "/v1/agent/service/register", params=params, body=body)
        assert status == 200, f"register failed: {status} {text}"
        service_id = body.get("ID") or body.get("id") or body.get("Name") or body.get("name")
        self.registered.append(service_id)

    async def deregister(self, service_id: str) -> None:
        status, _, text = await self.request("PUT", f"/v1/agent/service/deregister/{service_id}")
        assert status == 200, f"deregister failed: {status} {text}"

    async def ttl(self, check_id: str, verb: str, note: str = "") -> None:
        status, _, text = await self.request("PUT", f"/v1/agent/check/{verb}/{check_id}", params={"note": note})
        assert status == 200, f"ttl {verb} failed: {status} {text}"

    async def health(self, service: str, **params: Any) -> tuple[int, list]:
        status, headers, text = await self.request("GET", f"/v1/health/service/{service}", params=params)
        assert status == 200, f"health failed: {status} {text}"
        return int(headers["X-Consul-Index"]), json.loads(text)

    async def check_status(self, check_id: str) -> str | None:
        status, _, text = await self.request("GET", "/v1/agent/checks")
        assert status == 200
        check = json.loads(text).get(check_id)
        return None if check is None else check["Status"]

    async def service_ids(self) -> set[str]:
        status, _, text = await self.request("GET", "/v1/agent/services")
        assert status == 200
        return set(json.loads(text))

    async def close(self) -> None:
        for service_id in self.registered:
            try:
                await self.request("PUT", f"/v1/agent/service/deregister/{service_id}")
            except aiohttp.ClientError:
                pass
        await self.session.close()
        if self.double is not None:
            await self.double.close()


def ttl_service(service: str, service_id: str, port: int, *, weight_meta: str | None = None,
                passing_weight: int | None = None, address: str | None = "127.0.0.1",
                tags: list[str] | None = None) -> dict:
    """A register body with one TTL check (so a test sets its health by hand)."""
    body: dict[str, Any] = {"ID": service_id, "Name": service, "Port": port,
                            "Check": {"CheckID": f"service:{service_id}", "TTL": "30s"}}
    if address is not None:
        body["Address"] = address
    if weight_meta is not None:
        body["Meta"] = {"weight": weight_meta}
    if passing_weight is not None:
        body["Weights"] = {"Passing": passing_weight, "Warning": 1}
    if tags:
        body["Tags"] = tags
    return body


async def add_passing(consul: ConsulUnderTest, service: str, service_id: str, port: int, **kw: Any) -> None:
    await consul.register(ttl_service(service, service_id, port, **kw))
    await consul.ttl(f"service:{service_id}", "pass")


@pytest.fixture
async def consul():
    if REAL_AGENT_ADDR:
        agent = ConsulUnderTest(REAL_AGENT_ADDR, REAL_TIMING)
    else:
        double = await serve(FAST_DOUBLE)
        agent = ConsulUnderTest(double.addr, DOUBLE_TIMING, double)
    try:
        yield agent
    finally:
        await agent.close()


@pytest.fixture
async def consul_double():
    double = await serve(FAST_DOUBLE)
    agent = ConsulUnderTest(double.addr, DOUBLE_TIMING, double)
    try:
        yield agent
    finally:
        await agent.close()


@pytest.fixture
def service_name() -> str:
    return f"pixring-test-{uuid.uuid4().hex[:10]}"


class Published:
    """Collects what a source publishes; ``wait_for`` waits for a matching membership."""

    def __init__(self) -> None:
        self.memberships: list[Membership] = []
        self._event = asyncio.Event()

    def __call__(self, membership: Membership) -> None:
        self.memberships.append(membership)
        self._event.set()

    @property
    def latest(self) -> Membership | None:
        return self.memberships[-1] if self.memberships else None

    def ids(self) -> list[str] | None:
        return None if self.latest is None else [m.id for m in self.latest.members]

    async def wait_for_ids(self, ids: list[str], timeout: float = 5.0) -> Membership:
        await eventually(lambda: self.ids() == sorted(ids), timeout, f"published ids {sorted(ids)} (have {self.ids()})")
        assert self.latest is not None
        return self.latest


@pytest.fixture
def published() -> Published:
    return Published()


class Running:
    """A source's ``run`` as a task for the length of a test."""

    def __init__(self, source: Any, publish: Callable) -> None:
        self.source = source
        self.publish = publish
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> "Running":
        self.task = asyncio.create_task(self.source.run(self.publish))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        if self.task.done():  # a source must never stop by itself
            self.task.result()
            raise AssertionError("the source's run() returned")
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


class HealthzServer:
    """A tiny HTTP server whose ``/healthz`` answers ``status``; ``stop()`` closes the port."""

    def __init__(self) -> None:
        self.status = 200
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> "HealthzServer":
        async def healthz(request: web.Request) -> web.Response:
            return web.Response(status=self.status, text="ok" if self.status < 400 else "bad")

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def healthz_servers():
    servers: list[HealthzServer] = []

    async def make() -> HealthzServer:
        server = await HealthzServer().start()
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            await server.stop()

