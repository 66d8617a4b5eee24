"""Renderer self-registration with the local Consul agent, and deregistration on shutdown.

``PUT /v1/agent/service/register`` with the service's ID, name, address, port, tags
and meta, one HTTP check on the node's ``/healthz`` and ``DeregisterCriticalServiceAfter``
so a node that died without saying goodbye leaves the catalog by itself; ``PUT
/v1/agent/service/deregister/:id`` on a graceful shutdown.
https://developer.hashicorp.com/consul/api-docs/agent/service#register-service
https://developer.hashicorp.com/consul/api-docs/agent/check#register-check

The weight travels twice: as ``Weights.Passing`` (Consul requires an integer >= 1 and
uses it for DNS SRV answers) and exactly as ``Meta["weight"]``, which the balancer's
``ConsulSource`` prefers because it can say 0.5 or 0 (drain). Registration passes
``replace-existing-checks`` so a restarted renderer re-registers idempotently.

The check is run by the *agent*, so ``check_host`` must be an address the agent can
reach (by default the advertised address). Durations are sent as Go duration strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import AsyncIterator, Mapping

from discovery.consul import META_WEIGHT_KEY, make_client, resolve_endpoint
from discovery.settings import DEFAULT_CHECK_INTERVAL_S, DEFAULT_DEREGISTER_AFTER_S

__all__ = ["ServiceRegistration", "register", "deregister", "registered", "go_duration"]

log = logging.getLogger("pixring.discovery.register")

DEFAULT_CHECK_TIMEOUT_S = 5.0
_DEREGISTER_TIMEOUT_S = 5.0


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration string (``"1500ms"``), the form Consul's API parses."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {seconds!r}")
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True, slots=True)
class ServiceRegistration:
    """What the renderer tells the agent about itself."""

    name: str
    service_id: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    weight: float = 1.0
    check_path: str = "/healthz"
    check_host: str | None = None
    check_interval_s: float = DEFAULT_CHECK_INTERVAL_S
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
    deregister_critical_after_s: float = DEFAULT_DEREGISTER_AFTER_S

    def __post_init__(self) -> None:
        if not self.name or not self.service_id:
            raise ValueError("registration needs a service name and a service ID")
        if any(c.isspace() for c in self.service_id) or "/" in self.service_id:
            raise ValueError(f"service ID {self.service_id!r} must have no spaces or '/'")
        if not self.address:
            raise ValueError("registration needs an address the balancers can reach")
        if not 0 < self.port < 65536:
            raise ValueError(f"registration port {self.port} is not 1-65535")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"registration weight {self.weight!r} must be a finite number >= 0")
        if not self.check_path.startswith("/"):
            raise ValueError(f"check path {self.check_path!r} must start with '/'")
        for name in ("check_interval_s", "check_timeout_s", "deregister_critical_after_s"):
            go_duration(getattr(self, name))  # raises on a non-positive value

    @property
    def check_url(self) -> str:
        host = self.check_host or self.address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{self.check_path}"

    def body(self) -> dict:
        """The register request body, in the CamelCase of Consul's documentation."""
        meta = dict(self.meta)
        meta[META_WEIGHT_KEY] = f"{self.weight:g}"
        return {
            "ID": self.service_id,
            "Name": self.name,
            "Address": self.address,
            "Port": self.port,
            "Tags": list(self.tags),
            "Meta": meta,
            "Weights": {"Passing": max(1, round(self.weight)), "Warning": 1},
            "Check": {
                "Name": f"{self.name} /healthz",
                "HTTP": self.check_url,
                "Method": "GET",
                "Interval": go_duration(self.check_interval_s),
                "Timeout": go_duration(self.check_timeout_s),
                "DeregisterCriticalServiceAfter": go_duration(self.deregister_critical_after_s),
            },
        }


async def register(
    registration: ServiceRegistration, *, addr: str | None = None, token: str | None = None, scheme: str | None = None
) -> None:
    """Register with the agent (``CONSUL_HTTP_*`` apply); raises on any refusal."""
    endpoint = resolve_endpoint(addr, token=token, scheme=scheme)
    body = registration.body()
    client = make_client(endpoint)
    try:
        await client.agent.service.register(
            body["Name"],
            service_id=body["ID"],
            address=body["Address"],
            port=body["Port"],
            tags=body["Tags"],
            meta=body["Meta"],
            weights=body["Weights"],
            check=body["Check"],
            token=endpoint.token,
            replace_existing_checks=True,
        )
    finally:
        await client.close()
    log.info("registered %s (%s) at %s:%d with Consul at %s", registration.service_id, registration.name,
             registration.address, registration.port, endpoint.url)


async def deregister(
    service_id: str, *, addr: str | None = None, token: str | None = None, scheme: str | None = None
) -> None:
    """Remove the service (and its checks) from the agent; unknown IDs are a no-op."""
    endpoint = resolve_endpoint(addr, token=token, scheme=scheme)
    client = make_client(endpoint)
    try:
        await client.agent.service.deregister(service_id, token=endpoint.token)
    finally:
        await client.close()
    log.info("deregistered %s from Consul at %s", service_id, endpoint.url)


@contextlib.asynccontextmanager
async def registered(
    registration: ServiceRegistration, *, addr: str | None = None, token: str | None = None, scheme: str | None = None
) -> AsyncIterator[ServiceRegistration]:
    """Registered for the body of the ``async with``; deregistered on the way out.

    The deregistration is shielded from cancellation (a shutdown is usually a
    cancellation) and bounded in time; if it fails, DeregisterCriticalServiceAfter
    removes the service later, so the failure is logged rather than raised.
    """
    await register(registration, addr=addr, token=token, scheme=scheme)
    try:
        yield registration
    finally:
        # A task of its own, shielded: a second cancellation aborts only our wait,
        # never the goodbye itself.
        goodbye = asyncio.ensure_future(_deregister_quietly(registration, addr=addr, token=token, scheme=scheme))
        await asyncio.shield(goodbye)


async def _deregister_quietly(
    registration: ServiceRegistration, *, addr: str | None, token: str | None, scheme: str | None
) -> None:
    try:
        await asyncio.wait_for(
            deregister(registration.service_id, addr=addr, token=token, scheme=scheme), _DEREGISTER_TIMEOUT_S
        )
    except Exception as exc:
        log.warning(
            "deregistering %s failed (%s); Consul reaps it %s after its check turns critical",
            registration.service_id,
            exc or type(exc).__name__,
            go_duration(registration.deregister_critical_after_s),
        )
