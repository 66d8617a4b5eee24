"""The double's catalog: one node, its services and checks, Raft-like indexes, blocking.

Indexes follow Consul's state store as the blocking-query page describes them
(https://developer.hashicorp.com/consul/api-docs/features/blocking): every write bumps
one global index; a health query reports the index of the last write that touched
*that service* (so writes to other services do not wake its watchers), or, for a
service that no longer exists, the index at which its last instance went away; an
index of 0 is never reported (Consul answers 1 instead, so clients cannot spin). A
write that changes nothing (an identical re-registration, a check that stays passing)
bumps nothing. ``rollback(to)`` models a snapshot restore: every index drops to ``to``
at most, and blocked queries keep waiting for an index above the one they sent, so
they answer at their timeout with the lower index, as a real agent does.

Checks really run. HTTP checks GET (or ``Method``) the URL every ``Interval`` after a
random first pause within one interval; 2xx is passing, 429 warning, anything else or
no answer within ``Timeout`` critical
(https://developer.hashicorp.com/consul/api-docs/agent/check#http). TCP checks connect.
TTL checks turn critical with "TTL expired" unless ``/agent/check/pass|warn|fail``
resets them in time. ``SuccessBeforePassing``/``FailuresBeforeCritical`` are honoured.
A check whose status stays the same only updates its output and bumps no index.

``DeregisterCriticalServiceAfter``: "If a check is in the critical state for more than
this configured value, then its associated service (and all of its associated checks)
will automatically be deregistered. The minimum timeout is 1 minute, and the process
that reaps critical services runs every 30 seconds" (agent/check docs). Both numbers,
and the agent's 1 s floor on check intervals, are settings of ``DoubleConfig`` so a
test suite can shrink them; their defaults are Consul's.

Maintenance mode adds the critical check ``_service_maintenance:<id>``
(https://developer.hashicorp.com/consul/api-docs/agent/service#enable-maintenance-mode).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp

from tests.consul_double.model import CRITICAL, PASSING, WARNING, CheckDef, ServiceDef

__all__ = ["DoubleConfig", "ConsulState", "UnknownService", "NoTTL", "effective_wait_s", "format_go_duration"]

DEFAULT_WAIT_S = 300.0  # "If not set, the wait time defaults to 5 minutes."
MAX_WAIT_S = 600.0  # "This is limited to 10 minutes."
JITTER_DIVISOR = 16  # "This adds up to wait / 16 additional time"
MAINTENANCE_PREFIX = "_service_maintenance:"
DEFAULT_MAINTENANCE_REASON = (
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
)
_OUTPUT_MAX = 4096  # OutputMaxSize's default


@dataclass(frozen=True)
class DoubleConfig:
    node: str = "consul-double"
    node_address: str = "127.0.0.1"
    datacenter: str = "dc1"
    min_check_interval_s: float = 1.0  # the agent raises shorter intervals to 1 s
    reap_interval_s: float = 30.0
    min_deregister_after_s: float = 60.0


class UnknownService(KeyError):
    pass


class NoTTL(KeyError):
    pass


def effective_wait_s(requested_s: float, rand: float) -> float:
    """How long a blocking query may hang: default, cap, plus up to wait/16 of jitter."""
    wait = DEFAULT_WAIT_S if requested_s <= 0 else min(requested_s, MAX_WAIT_S)
    return wait + rand * wait / JITTER_DIVISOR


def format_go_duration(seconds: float) -> str:
    """Roughly Go's ``Duration.String()``: "10s", "1m30s", "250ms"."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:g}s"
    if hours or minutes:
        text = f"{int(minutes)}m" + text
    if hours:
        text = f"{int(hours)}h" + text
    return text


@dataclass
class _Check:
    definition: CheckDef
    service_id: str
    service_name: str
    status: str
    output: str = ""
    notes: str = ""
    kind: str = ""
    critical_since: float | None = None
    create_index: int = 0
    modify_index: int = 0
    successes: int = 0
    failures: int = 0
    task: asyncio.Task | None = None
    ttl_timer: asyncio.TimerHandle | None = None

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.ttl_timer is not None:
            self.ttl_timer.cancel()


@dataclass
class _Service:
    definition: ServiceDef
    create_index: int
    modify_index: int
    check_ids: list[str] = field(default_factory=list)


class ConsulState:
    """All the double knows; every mutation is synchronous, so the loop serialises them."""

    def __init__(self, config: DoubleConfig, *, rand: Callable[[], float] = random.random) -> None:
        self.config = config
        self.rand = rand
        self.node_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, config.node))
        self.index = 1  # the node's own registration
        self.services: dict[str, _Service] = {}
        self.checks: dict[str, _Check] = {}
        self._service_index: dict[str, int] = {}
        self._services_table_index = 1
        self._extinction_index = 0
        self._changed = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._reaper: asyncio.Task | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": "Consul Health Check", "Accept": "text/plain, text/*, */*"}
        )
        self._reaper = asyncio.create_task(self._reap_forever(), name="consul-double-reaper")
        for check in self.checks.values():
            self._start_runner(check)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for check in self.checks.values():
            check.stop()
        tasks = [c.task for c in self.checks.values() if c.task is not None]
        if self._reaper is not None:
            tasks.append(self._reaper)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # -- indexes and blocking ---------------------------------------------------------------

    def _write(self, service_names: set[str], *, services_table: bool) -> int:
        self.index += 1
        for name in service_names:
            self._service_index[name] = self.index
        if services_table:
            self._services_table_index = self.index
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return self.index

    def service_index(self, name: str) -> int:
        exists = any(s.definition.name == name for s in self.services.values())
        if not exists and self._extinction_index > 0:
            return self._extinction_index
        return max(1, self._service_index.get(name, self.index))

    def services_table_index(self) -> int:
        return max(1, self._services_table_index)

    async def block(self, min_index: int, timeout_s: float, compute: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """Answer when ``compute``'s index exceeds ``min_index`` or the timeout runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            changed = self._changed
            index, result = compute()
            remaining = deadline - loop.time()
            if min_index == 0 or index > min_index or remaining <= 0:
                return index, result
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    def rollback(self, to: int) -> None:
        """A snapshot restore of older data: every index falls to ``to`` at most."""
        to = max(0, to)
        self.index = to
        self._service_index = {k: min(v, to) for k, v in self._service_index.items()}
        self._services_table_index = min(self._services_table_index, to)
        self._extinction_index = min(self._extinction_index, to)
        for service in self.services.values():
            service.create_index = min(service.create_index, to)
            service.modify_index = min(service.modify_index, to)
        for check in self.checks.values():
            check.create_index = min(check.create_index, to)
            check.modify_index = min(check.modify_index, to)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- writes -----------------------------------------------------------------------

    def register(self, definition: ServiceDef, *, replace_existing_checks: bool) -> None:
        existing = self.services.get(definition.service_id)
        touched: set[str] = {definition.name}
        dirty = existing is None or existing.definition.catalog_view() != definition.catalog_view()
        if existing is not None and existing.definition.name != definition.name:
            touched.add(existing.definition.name)
        new_ids = [c.check_id for c in definition.checks]
        if replace_existing_checks and existing is not None:
            for check_id in list(existing.check_ids):
                if check_id not in new_ids:
                    self._remove_check(check_id)
                    dirty = True
        new_checks: list[_Check] = []
        for check_def in definition.checks:
            old = self.checks.get(check_def.check_id)
            if old is not None and old.service_id == definition.service_id and old.definition.same_definition(check_def):
                continue
            if old is not None:
                self._remove_check(check_def.check_id)
            status = old.status if old is not None else check_def.status
            check = _Check(
                definition=check_def,
                service_id=definition.service_id,
                service_name=definition.name,
                status=status,
                output=old.output if old is not None else "",
                notes=check_def.notes,
                kind=check_def.kind,
                critical_since=(old.critical_since if old is not None else self._now()) if status == CRITICAL else None,
            )
            new_checks.append(check)
            dirty = True
        if not dirty:
            return
        index = self._write(touched, services_table=True)
        if existing is None:
            service = _Service(definition, create_index=index, modify_index=index)
            self.services[definition.service_id] = service
        else:
            service = existing
            service.definition = definition
            service.modify_index = index
        for check in new_checks:
            check.create_index = check.modify_index = index
            self.checks[check.definition.check_id] = check
            if check.definition.check_id not in service.check_ids:
                service.check_ids.append(check.definition.check_id)
            self._start_runner(check)
        for other in self.checks.values():  # a renamed service carries its checks along
            if other.service_id == definition.service_id:
                other.service_name = definition.name

    def deregister(self, service_id: str) -> bool:
        service = self.services.pop(service_id, None)
        if service is None:
            return False
        for check_id in list(service.check_ids):
            self._remove_check(check_id)
        name = service.definition.name
        index = self._write({name}, services_table=True)
        if not any(s.definition.name == name for s in self.services.values()):
            self._extinction_index = index
        return True

    def update_ttl(self, check_id: str, status: str, note: str) -> None:
        check = self.checks.get(check_id)
        if check is None or check.kind != "ttl":
            raise NoTTL(check_id)
        self._set_status(check, status, note)
        self._arm_ttl(check)

    def maintenance(self, service_id: str, enable: bool, reason: str) -> None:
        service = self.services.get(service_id)
        if service is None:
            raise UnknownService(service_id)
        check_id = MAINTENANCE_PREFIX + service_id
        if enable:
            if check_id in self.checks:
                return
            definition = CheckDef(check_id=check_id, name="Service Maintenance Mode", kind="maintenance",
                                  notes=reason or DEFAULT_MAINTENANCE_REASON)
            check = _Check(definition, service_id, service.definition.name, CRITICAL, notes=definition.notes,
                           kind="", critical_since=self._now())
            index = self._write({service.definition.name}, services_table=False)
            check.create_index = check.modify_index = index
            self.checks[check_id] = check
            service.check_ids.append(check_id)
        elif check_id in self.checks:
            self._remove_check(check_id)
            self._write({service.definition.name}, services_table=False)

    def _remove_check(self, check_id: str) -> None:
        check = self.checks.pop(check_id, None)
        if check is None:
            return
        check.stop()
        service = self.services.get(check.service_id)
        if service is not None and check_id in service.check_ids:
            service.check_ids.remove(check_id)

    def _set_status(self, check: _Check, status: str, output: str) -> None:
        check.output = output[:_OUTPUT_MAX]
        if status == check.status:
            return  # an output-only change is not synced to the catalog at once
        check.status = status
        check.critical_since = self._now() if status == CRITICAL else None
        check.modify_index = self._write({check.service_name}, services_table=False)

    # -- check runners ------------------------------------------------------------------

    def _now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return 0.0

    def _start_runner(self, check: _Check) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not started yet; start() launches it
        if self._session is None:
            return
        if check.kind in ("http", "tcp") and check.task is None:
            check.task = asyncio.create_task(self._probe_forever(check), name=f"consul-double-check:{check.definition.check_id}")
        elif check.kind == "ttl":
            self._arm_ttl(check)

    def _arm_ttl(self, check: _Check) -> None:
        if check.ttl_timer is not None:
            check.ttl_timer.cancel()
        loop = asyncio.get_running_loop()
        check.ttl_timer = loop.call_later(check.definition.ttl_s, self._ttl_expired, check)

    def _ttl_expired(self, check: _Check) -> None:
        if self.checks.get(check.definition.check_id) is check:
            self._set_status(check, CRITICAL, "TTL expired")

    async def _probe_forever(self, check: _Check) -> None:
        interval = max(check.definition.interval_s, self.config.min_check_interval_s)
        await asyncio.sleep(self.rand() * interval)
        while self.checks.get(check.definition.check_id) is check:
            status, output = await (self._probe_http(check.definition) if check.kind == "http" else self._probe_tcp(check.definition))
            if self.checks.get(check.definition.check_id) is not check:
                return
            self._record(check, status, output)
            await asyncio.sleep(interval)

    def _record(self, check: _Check, status: str, output: str) -> None:
        definition = check.definition
        if status in (PASSING, WARNING):
            check.successes += 1
            check.failures = 0
            if check.successes >= definition.success_before_passing:
                self._set_status(check, status, output)
            return
        check.failures += 1
        check.successes = 0
        if check.failures >= definition.failures_before_critical:
            self._set_status(check, status, output)

    async def _probe_http(self, definition: CheckDef) -> tuple[str, str]:
        assert self._session is not None
        headers = [(k, v) for k, values in definition.header.items() for v in values]
        try:
            async with self._session.request(
                definition.method,
                definition.http,
                headers=headers,
                data=definition.body or None,
                timeout=aiohttp.ClientTimeout(total=definition.timeout_s),
                ssl=False if definition.tls_skip_verify else True,
            ) as response:
                body = (await response.content.read(_OUTPUT_MAX)).decode("utf-8", "replace")
                output = f"HTTP {definition.method} {definition.http}: {response.status} {response.reason} Output: {body}"
                if 200 <= response.status < 300:
                    return PASSING, output
                if response.status == 429:
                    return WARNING, output
                return CRITICAL, output
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return CRITICAL, f"Get {definition.http!r}: {type(exc).__name__}: {exc}"

    async def _probe_tcp(self, definition: CheckDef) -> tuple[str, str]:
        host, _, port = definition.tcp.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), definition.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return CRITICAL, f"dial tcp {definition.tcp}: {type(exc).__name__}: {exc}"
        writer.close()
        return PASSING, f"TCP connect {definition.tcp}: Success"

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.reap_interval_s)
            self.reap()

    def reap(self) -> list[str]:
        """Deregister services critical for longer than their DeregisterCriticalServiceAfter."""
        now = self._now()
        doomed = []
        for check in list(self.checks.values()):
            after = check.definition.deregister_after_s
            if after <= 0 or check.status != CRITICAL or check.critical_since is None:
                continue
            if now - check.critical_since >= max(after, self.config.min_deregister_after_s):
                doomed.append(check.service_id)
        for service_id in dict.fromkeys(doomed):
            self.deregister(service_id)
        return doomed

    # -- reads ----------------------------------------------------------------------------

    def node_json(self) -> dict[str, Any]:
        address = self.config.node_address
        return {
            "ID": self.node_id,
            "Node": self.config.node,
            "Address": address,
            "Datacenter": self.config.datacenter,
            "TaggedAddresses": {"lan": address, "lan_ipv4": address, "wan": address, "wan_ipv4": address},
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": 1,
            "ModifyIndex": 1,
        }

    def _serf_check_json(self) -> dict[str, Any]:
        return {
            "Node": self.config.node, "CheckID": "serfHealth", "Name": "Serf Health Status",
            "Status": PASSING, "Notes": "", "Output": "Agent alive and reachable", "ServiceID": "",
            "ServiceName": "", "ServiceTags": [], "Type": "", "Interval": "", "Timeout": "",
            "ExposedPort": 0, "Definition": {}, "CreateIndex": 1, "ModifyIndex": 1,
        }

    def check_json(self, check: _Check) -> dict[str, Any]:
        service = self.services.get(check.service_id)
        definition = check.definition
        return {
            "Node": self.config.node,
            "CheckID": definition.check_id,
            "Name": definition.name,
            "Status": check.status,
            "Notes": check.notes,
            "Output": check.output,
            "ServiceID": check.service_id,
            "ServiceName": check.service_name,
            "ServiceTags": list(service.definition.tags) if service else [],
            "Type": check.kind,
            "Interval": format_go_duration(definition.interval_s) if definition.interval_s else "",
            "Timeout": format_go_duration(definition.timeout_s) if check.kind in ("http", "tcp") else "",
            "ExposedPort": 0,
            "Definition": {},
            "CreateIndex": check.create_index,
            "ModifyIndex": check.modify_index,
        }

    def service_json(self, service: _Service) -> dict[str, Any]:
        d = service.definition
        out = {
            "ID": d.service_id,
            "Service": d.name,
            "Tags": list(d.tags),
            "Address": d.address,
            "Meta": dict(d.meta),
            "Port": d.port,
            "Weights": dict(d.weights),
            "EnableTagOverride": d.enable_tag_override,
            "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
            "Connect": {},
            "PeerName": "",
            "CreateIndex": service.create_index,
            "ModifyIndex": service.modify_index,
        }
        if d.tagged_addresses:
            out["TaggedAddresses"] = d.tagged_addresses
        return out

    def health_service(self, name: str, *, passing: bool, tags: list[str], node_meta: dict[str, str]) -> tuple[int, list]:
        index = self.service_index(name)
        node_meta_ok = all(self.node_json()["Meta"].get(k) == v for k, v in node_meta.items())
        entries = []
        wanted = [t.lower() for t in tags]
        for service in sorted(self.services.values(), key=lambda s: s.definition.service_id):
            d = service.definition
            if d.name != name or not node_meta_ok:
                continue
            have = {t.lower() for t in d.tags}
            if not all(t in have for t in wanted):  # tags filter case-insensitively, all must match
                continue
            checks = [self._serf_check_json()] + [
                self.check_json(self.checks[c]) for c in sorted(service.check_ids) if c in self.checks
            ]
            if passing and any(c["Status"] != PASSING for c in checks):
                continue
            entries.append({"Node": self.node_json(), "Service": self.service_json(service), "Checks": checks})
        return index, entries

    def catalog_services(self) -> tuple[int, dict[str, list[str]]]:
        listing: dict[str, set[str]] = {"consul": set()}
        for service in self.services.values():
            listing.setdefault(service.definition.name, set()).update(service.definition.tags)
        return self.services_table_index(), {name: sorted(tags) for name, tags in sorted(listing.items())}

    def agent_services(self) -> dict[str, Any]:
        out = {}
        for service_id, service in sorted(self.services.items()):
            view = self.service_json(service)
            view["Datacenter"] = self.config.datacenter
            for key in ("CreateIndex", "ModifyIndex", "PeerName"):
                view.pop(key)
            out[service_id] = view
        return out

    def agent_checks(self) -> dict[str, Any]:
        return {check_id: self.check_json(check) for check_id, check in sorted(self.checks.items())}
