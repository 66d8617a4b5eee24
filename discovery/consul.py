"""The Consul membership source: a blocking-query watch of one service's passing instances.

It long-polls ``GET /v1/health/service/<name>?passing`` (optionally ``&tag=``, ``&dc=``)
with py-consul's asyncio client, follows the blocking-query rules in
``discovery.blocking`` and publishes a ``Membership`` only when the members, their
addresses or weights change (an answer is no guarantee of a change).
https://developer.hashicorp.com/consul/api-docs/health#list-service-instances-for-service

Mapping of one health entry to a ``Member`` (the sample response on that page):

- identity is ``Service.ID``, never an address: instances keep their place on the
  ring when they move, and two balancers agree on ids whatever order Consul lists
  them in. Service IDs are unique per agent only, so a duplicate across nodes keeps
  the entry of the lowest node name and is reported;
- the address is ``Service.Address``, else ``Node.Address`` ("If not provided, the
  agent's address is used": https://developer.hashicorp.com/consul/api-docs/agent/service);
- the weight is ``Service.Meta["weight"]`` when present (a float, 0 drains a node),
  else ``Service.Weights.Passing`` (Consul's weights are integers >= 1), else 1.

Failure rules (static stability): Consul unreachable, erroring or answering garbage
never changes the published membership; the source keeps the last good set, says
``stale`` in ``status()``, backs off with full jitter and recovers by itself. A
*valid* answer that is empty or drops most members at once is held by
``discovery.guard`` until Consul recovers or an operator calls ``confirm()``.

Where to find the agent, as every Consul tool does (the Go API client's
``DefaultConfig``: https://developer.hashicorp.com/consul/commands#environment-variables):
``CONSUL_HTTP_ADDR`` (``host:port`` or ``http(s)://host:port``), ``CONSUL_HTTP_TOKEN``,
``CONSUL_HTTP_SSL`` (true forces https), ``CONSUL_HTTP_SSL_VERIFY`` and ``CONSUL_CACERT``.
Explicit arguments win over the environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import consul.aio

from discovery import blocking
from discovery.guard import DropGuard, Hold, Publish as PublishDecision, Unchanged
from discovery.settings import DEFAULT_WAIT_S
from discovery.source import Publish, SourceStatus
from pixring.config import redact_userinfo
from pixring.membership import Member, Membership, MembershipError

__all__ = [
    "ConsulSource",
    "ConsulEndpoint",
    "ConsulAnswerError",
    "resolve_endpoint",
    "make_client",
    "members_from_health",
    "META_WEIGHT_KEY",
]

log = logging.getLogger("pixring.discovery.consul")

META_WEIGHT_KEY = "weight"
DEFAULT_ADDR = "127.0.0.1:8500"
_BACKOFF_BASE_S = 0.5
# Go's strconv.ParseBool, which the Consul CLI uses for its boolean variables.
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class ConsulAnswerError(ValueError):
    """Consul answered something that is not a health listing (garbage, not an error code)."""


# ---------------------------------------------------------------------------- endpoint


@dataclass(frozen=True, slots=True)
class ConsulEndpoint:
    """Where and how to reach the agent's HTTP API."""

    host: str
    port: int
    scheme: str  # "http" or "https"
    verify: bool | str = True  # False, True, or a CA bundle path
    token: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _go_bool(name: str, value: str) -> bool:
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (true/false/1/0)")


def resolve_endpoint(
    addr: str | None = None,
    *,
    token: str | None = None,
    scheme: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ConsulEndpoint:
    """Resolve the agent address the way the Consul CLI does; bad values raise ValueError.

    Precedence: explicit argument, then ``CONSUL_HTTP_*``, then ``127.0.0.1:8500``.
    The scheme comes from ``scheme``, else the address's own ``http(s)://``, and
    ``CONSUL_HTTP_SSL=true`` forces https (the Go client never downgrades on false).
    A host without a port gets the scheme's port, as Go's HTTP client dials it.
    """
    env = os.environ if env is None else env
    source = "addr" if addr else "CONSUL_HTTP_ADDR"
    raw = (addr or env.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDR).strip()
    shown = redact_userinfo(raw)  # what error messages print: never a password
    if raw.startswith("unix://"):
        raise ValueError(f"{source}={shown!r}: unix sockets are not supported; use host:port")
    parts = urlsplit(raw if "://" in raw else f"//{raw}")
    url_scheme = parts.scheme.lower() or None
    if url_scheme not in (None, "http", "https"):
        raise ValueError(f"{source}={shown!r}: scheme must be http or https")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{source}={shown!r}: expected host:port or http(s)://host:port")
    host = parts.hostname
    if not host:
        raise ValueError(f"{source}={shown!r}: no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{source}={shown!r}: bad port ({exc})") from None

    if scheme is not None:
        resolved_scheme = scheme.lower()
        if resolved_scheme not in ("http", "https"):
            raise ValueError(f"scheme={scheme!r} must be http or https")
    else:
        resolved_scheme = url_scheme or "http"
        ssl = env.get("CONSUL_HTTP_SSL")
        if ssl and _go_bool("CONSUL_HTTP_SSL", ssl):
            resolved_scheme = "https"
    if port is None:
        port = 443 if resolved_scheme == "https" else 80

    verify: bool | str = True
    if ca := env.get("CONSUL_CACERT"):
        verify = ca
    if (ssl_verify := env.get("CONSUL_HTTP_SSL_VERIFY")) and not _go_bool("CONSUL_HTTP_SSL_VERIFY", ssl_verify):
        verify = False

    resolved_token = token if token is not None else (env.get("CONSUL_HTTP_TOKEN") or None)
    return ConsulEndpoint(host, port, resolved_scheme, verify, resolved_token)


def make_client(endpoint: ConsulEndpoint) -> consul.aio.Consul:
    """A py-consul asyncio client for the endpoint; create it inside the running loop.

    The token is *not* given to the client: py-consul lets ``CONSUL_HTTP_TOKEN``
    override its ``token`` argument, so callers pass ``endpoint.token`` per request.
    """
    return consul.aio.Consul(
        host=endpoint.host, port=endpoint.port, scheme=endpoint.scheme, verify=endpoint.verify
    )


# ---------------------------------------------------------------------------- parsing


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, (str, int, float))}


def _weight(service: Mapping[str, Any], meta: Mapping[str, str], sid: str, problems: list[str]) -> float:
    if META_WEIGHT_KEY in meta:
        try:
            weight = float(meta[META_WEIGHT_KEY])
        except ValueError:
            weight = math.nan
        if math.isfinite(weight) and weight >= 0:
            return weight
        problems.append(f"{sid}: Meta.{META_WEIGHT_KEY}={meta[META_WEIGHT_KEY]!r} is not a number >= 0; using Weights")
    weights = service.get("Weights")
    if isinstance(weights, dict):
        passing = weights.get("Passing")
        if isinstance(passing, (int, float)) and not isinstance(passing, bool) and passing >= 0:
            return float(passing)
    return 1.0


def members_from_health(entries: Any) -> tuple[list[Member], list[str]]:
    """Members from a ``/v1/health/service`` answer, plus the problems met on the way.

    An answer that is not a list of objects raises ``ConsulAnswerError`` (garbage);
    a single unusable entry is skipped and named in the problems.
    """
    if not isinstance(entries, list):
        raise ConsulAnswerError(f"expected a JSON list of health entries, got {type(entries).__name__}")
    chosen: dict[str, tuple[str, Member]] = {}
    problems: list[str] = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("Service"), dict):
            raise ConsulAnswerError(f"entry {position} is not a health entry with a Service object")
        service = entry["Service"]
        node = entry.get("Node") if isinstance(entry.get("Node"), dict) else {}
        sid = service.get("ID")
        if not isinstance(sid, str) or not sid:
            problems.append(f"entry {position}: Service.ID missing")
            continue
        address = service.get("Address") or node.get("Address")
        port = service.get("Port")
        meta = _str_map(service.get("Meta"))
        try:
            if not isinstance(port, int) or isinstance(port, bool):
                raise MembershipError(f"member {sid}: Service.Port {port!r} is not an integer")
            member = Member(
                id=sid,
                host=str(address or ""),
                port=port,
                weight=_weight(service, meta, sid, problems),
                meta=meta,
            )
        except MembershipError as exc:
            problems.append(str(exc))
            continue
        node_name = str(node.get("Node", ""))
        if sid in chosen:
            kept_node = min(node_name, chosen[sid][0])
            problems.append(f"service ID {sid!r} is registered on nodes {chosen[sid][0]!r} and {node_name!r}; keeping {kept_node!r}")
            if node_name >= chosen[sid][0]:
                continue
        chosen[sid] = (node_name, member)
    return [member for _, member in chosen.values()], problems


# ---------------------------------------------------------------------------- source


class ConsulSource:
    """Watches one Consul service with blocking queries; implements ``MembershipSource``."""

    kind = "consul"

    def __init__(
        self,
        service: str,
        *,
        tag: str | None = None,
        addr: str | None = None,
        token: str | None = None,
        datacenter: str | None = None,
        scheme: str | None = None,
        wait_s: float = DEFAULT_WAIT_S,
        min_interval_s: float = 0.1,
        backoff_max_s: float = 30.0,
        drop_guard_fraction: float = 0.5,
        drop_guard_window_s: float = 60.0,
        backoff_base_s: float = _BACKOFF_BASE_S,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not service or "/" in service or any(c.isspace() for c in service):
            raise ValueError(f"consul service name {service!r} must be non-empty, without '/' or spaces")
        if not (math.isfinite(wait_s) and 0 < wait_s <= blocking.MAX_WAIT_S):
            raise ValueError(f"consul wait_s={wait_s!r} must be > 0 and <= {blocking.MAX_WAIT_S:g} (Consul's cap)")
        if not (math.isfinite(min_interval_s) and min_interval_s >= 0):
            raise ValueError(f"consul min_interval_s={min_interval_s!r} must be >= 0")
        if not (math.isfinite(backoff_max_s) and backoff_max_s > 0):
            raise ValueError(f"consul backoff_max_s={backoff_max_s!r} must be > 0")
        if not (math.isfinite(backoff_base_s) and backoff_base_s > 0):
            raise ValueError(f"consul backoff_base_s={backoff_base_s!r} must be > 0")
        self.service = service
        self.tag = tag or None
        self.datacenter = datacenter or None
        self.endpoint = resolve_endpoint(addr, token=token, scheme=scheme)
        self.wait_s = wait_s
        self.min_interval_s = min_interval_s
        self.backoff_max_s = backoff_max_s
        self.backoff_base_s = backoff_base_s
        self._guard = DropGuard(drop_guard_fraction, drop_guard_window_s)
        self._clock = clock
        self._rand = rand
        self._publish: Publish | None = None
        self._index = 0
        self._published = False
        self._failures = 0
        self._error = ""
        self._warning = ""
        self._last_ok: float | None = None

    # -- what operators and the balancer see ------------------------------------

    def status(self) -> SourceStatus:
        held = self._guard.held
        failing = self._failures > 0
        details = []
        if failing:
            details.append(f"consul failing ({self._failures} in a row): {self._error}")
        if held is not None:
            details.append(f"GUARDED: {held.reason}; confirm() to accept")
        if self._warning:
            details.append(self._warning)
        age = None if self._last_ok is None else max(0.0, self._clock() - self._last_ok)
        return SourceStatus(
            kind=self.kind,
            ready=self._published,
            stale=self._published and (failing or held is not None),
            detail="; ".join(details),
            last_success_age_s=age,
        )

    @property
    def index(self) -> int:
        """The index the next blocking query will send (0: answer at once)."""
        return self._index

    @property
    def consecutive_failures(self) -> int:
        """Failed queries since the last good answer (0 while Consul answers)."""
        return self._failures

    def confirm(self) -> None:
        """Operator accepts the held answer: publish it now and follow Consul from there."""
        membership = self._guard.confirm(self._clock())
        if membership is None:
            return
        log.warning(
            "consul %s: operator confirmed the held answer; publishing %d members",
            self.service,
            len(membership),
        )
        self._emit(membership)

    # -- the watch loop -------------------------------------------------------------

    async def run(self, publish: Publish) -> None:
        self._publish = publish
        bucket = blocking.TokenBucket(1.0 / self.min_interval_s) if self.min_interval_s > 0 else None
        timeout_s = blocking.request_timeout_s(self.wait_s)
        client = make_client(self.endpoint)
        try:
            while True:
                if bucket is not None:
                    delay = bucket.reserve(self._clock())
                    if delay > 0:
                        await asyncio.sleep(delay)
                try:
                    async with asyncio.timeout(timeout_s):
                        returned, entries, filtered = await self._query(client)
                    members, problems = members_from_health(entries)
                    membership = Membership.of(members, source=self.kind)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # every failure of the agent is handled alike
                    await self._failed(exc)
                    continue
                self._succeeded(problems, filtered)
                self._index = blocking.next_index(self._index, returned)
                if self._index == 0:
                    log.warning("consul %s: X-Consul-Index went backwards to %d; restarting the watch", self.service, returned)
                self._offer(membership)
        finally:
            await client.close()

    async def _query(self, client: consul.aio.Consul) -> tuple[int, Any, bool]:
        params: list[tuple[str, Any]] = [("passing", "1")]
        if self._index > 0:
            params += [("index", str(self._index)), ("wait", blocking.wait_param(self.wait_s))]
        if self.tag:
            params.append(("tag", self.tag))
        if self.datacenter:
            params.append(("dc", self.datacenter))
        headers = {"X-Consul-Token": self.endpoint.token} if self.endpoint.token else {}

        def answer(response: consul.base.Response) -> tuple[int, Any, bool]:
            if response.code != 200:
                raise ConsulAnswerError(f"HTTP {response.code}: {str(response.body)[:200].strip()}")
            index = blocking.parse_index(response.headers.get("X-Consul-Index"))
            try:
                body = json.loads(response.body)
            except (TypeError, ValueError) as exc:
                raise ConsulAnswerError(f"answer is not JSON ({exc})") from None
            filtered = response.headers.get("X-Consul-Results-Filtered-By-ACLs", "").lower() == "true"
            return index, body, filtered

        return await client.http.get(answer, f"/v1/health/service/{self.service}", params=params, headers=headers)

    async def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        self._error = _describe(exc)
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(level, "consul %s: %s; keeping the last membership", self.service, self._error)
        delay = blocking.backoff_delay_s(
            self._failures, base_s=self.backoff_base_s, cap_s=self.backoff_max_s, rand=self._rand()
        )
        await asyncio.sleep(delay)

    def _succeeded(self, problems: list[str], filtered: bool) -> None:
        if self._failures:
            log.warning("consul %s: answering again after %d failures", self.service, self._failures)
        self._failures = 0
        self._error = ""
        self._last_ok = self._clock()
        warning = "; ".join(problems)
        if filtered:
            warning = "results filtered by ACLs (does the token have service:read?)" + ("; " + warning if warning else "")
        if warning and warning != self._warning:
            log.warning("consul %s: %s", self.service, warning)
        self._warning = warning

    def _offer(self, membership: Membership) -> None:
        previous_hold = self._guard.held
        decision = self._guard.offer(membership, self._clock())
        if isinstance(decision, PublishDecision):
            if previous_hold is not None:
                log.warning("consul %s: the answer recovered; following Consul again", self.service)
            self._emit(decision.membership)
        elif isinstance(decision, Unchanged):
            if previous_hold is not None:
                log.warning("consul %s: the answer is back to the known set; guard released", self.service)
        elif isinstance(decision, Hold):
            if previous_hold is None or previous_hold.proposed != decision.proposed:
                log.error(
                    "consul %s: GUARDED: %s (dropped: %s); still routing over the last known set; "
                    "call confirm() if this is intended",
                    self.service,
                    decision.reason,
                    ", ".join(decision.dropped) or "-",
                )

    def _emit(self, membership: Membership) -> None:
        publish = self._publish
        if publish is None:
            return
        was_published, self._published = self._published, True  # the state written meanwhile says ready
        try:
            publish(membership)
        except Exception:  # the balancer's bug must not kill discovery
            self._published = was_published
            log.exception("consul %s: publishing a membership of %d failed", self.service, len(membership))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the request timeout"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

