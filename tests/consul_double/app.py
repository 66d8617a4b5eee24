"""The double's HTTP face: Consul's agent API routes, plus ``/_double/`` test controls.

Implemented to the letter of the documented API (each handler cites its page):

- ``GET /v1/health/service/:service`` with ``passing``, ``tag`` (repeatable, all must
  match, case-insensitive), ``dc``, ``node-meta``, ``index``/``wait`` blocking
  (https://developer.hashicorp.com/consul/api-docs/health#list-service-instances-for-service,
  https://developer.hashicorp.com/consul/api-docs/features/blocking);
- ``GET /v1/catalog/services`` (blocking too;
  https://developer.hashicorp.com/consul/api-docs/catalog#list-services);
- ``PUT /v1/agent/service/register`` (CamelCase or snake_case, ``replace-existing-checks``),
  ``PUT /v1/agent/service/deregister/:id``, ``PUT /v1/agent/service/maintenance/:id``
  (https://developer.hashicorp.com/consul/api-docs/agent/service);
- ``PUT /v1/agent/check/pass|warn|fail/:id`` (https://developer.hashicorp.com/consul/api-docs/agent/check);
- read-only helpers a test may use against a real agent too: ``GET /v1/agent/services``,
  ``GET /v1/agent/checks``, ``GET /v1/status/leader``.

Errors are the ones Consul's HTTP layer writes: 400 ``Invalid wait time`` and
``Invalid index`` for ``wait``/``index`` that ``time.ParseDuration`` and
``strconv.ParseUint`` reject; 400 ``Cannot specify ?stale with ?consistent, conflicting
semantics.``; 500 ``No path to datacenter`` for an unknown ``dc``; 500 ``CheckID "x" does
not have associated TTL`` for a TTL update of anything but a TTL check. Every read sets
``X-Consul-Index`` (never 0), ``X-Consul-KnownLeader`` and ``X-Consul-LastContact``.
The double runs without ACLs, like a dev agent: tokens are recorded, not enforced.

Test controls (not Consul; only the double has them), all JSON:

- ``PUT /_double/faults`` ``{"status": 500, "body": "...", "garbage": true,
  "delay_s": 3, "filter_all": true, "path_prefix": "/v1/health/"}``: answer with an
  error, answer 200 with a body that is not JSON, hold every answer ``delay_s`` first
  (a hung agent), or answer reads ``[]`` as an ACL-filtered agent does (with
  ``X-Consul-Results-Filtered-By-ACLs: true``). ``{}`` clears every fault.
- ``PUT /_double/rollback`` ``{"index": n}``: every index drops to ``n`` (a snapshot restore).
- ``PUT /_double/reap``: run the critical-service reaper now.
- ``GET /_double/requests`` (``DELETE`` clears): the ``/v1/`` requests seen, with token.
- ``GET /_double/state``: index, services, checks and faults.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

from aiohttp import web

from tests.consul_double.model import CRITICAL, PASSING, WARNING, BadRequest, parse_go_duration, parse_service_body
from tests.consul_double.state import ConsulState, DoubleConfig, NoTTL, UnknownService, effective_wait_s

__all__ = ["Faults", "make_app", "RunningDouble", "serve", "STATE", "FAULTS"]

_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_REQUEST_LOG_SIZE = 5000


@dataclass(frozen=True)
class Faults:
    status: int | None = None
    body: str = "rpc error making call: No cluster leader"
    garbage: bool = False
    delay_s: float = 0.0
    filter_all: bool = False
    path_prefix: str = "/v1/"

    @classmethod
    def from_json(cls, raw: Any) -> "Faults":
        if not isinstance(raw, dict):
            raise BadRequest("faults: expected a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise BadRequest(f"faults: unknown key(s) {', '.join(unknown)}")
        faults = cls(**raw)
        if faults.status is not None and not (isinstance(faults.status, int) and 400 <= faults.status <= 599):
            raise BadRequest("faults: status must be an HTTP error code 400-599")
        if not (isinstance(faults.delay_s, (int, float)) and faults.delay_s >= 0):
            raise BadRequest("faults: delay_s must be a number >= 0")
        return faults


@dataclass
class FaultSwitch:
    """The faults in force; a holder, because an application's state is frozen once it runs."""

    current: Faults


STATE = web.AppKey("consul_double_state", ConsulState)
FAULTS = web.AppKey("consul_double_faults", FaultSwitch)
REQUESTS = web.AppKey("consul_double_requests", deque)


def _go_bool(value: str) -> bool:
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise ValueError(value)


def _bool_param(request: web.Request, key: str) -> bool:
    """Consul's getBoolQueryParam: present and empty is true, else strconv.ParseBool."""
    if key not in request.query:
        return False
    value = request.query.get(key, "")
    if value == "":
        return True
    try:
        return _go_bool(value)
    except ValueError:
        raise BadRequest(f"Invalid value for ?{key}") from None


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def _json(body: Any, *, index: int | None = None, extra: dict[str, str] | None = None) -> web.Response:
    headers = {}
    if index is not None:
        headers.update({"X-Consul-Index": str(max(1, index)), "X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"})
    if extra:
        headers.update(extra)
    return web.Response(text=json.dumps(body), content_type="application/json", headers=headers)


def _query_options(request: web.Request) -> tuple[int, float]:
    """``index`` and ``wait`` as Consul's parseWait reads them; consistency and dc checks."""
    state = request.app[STATE]
    query = request.query
    dc = query.get("dc", "")
    if dc and dc != state.config.datacenter:
        raise _Fail(500, "No path to datacenter")
    if "stale" in query and "consistent" in query:
        raise BadRequest("Cannot specify ?stale with ?consistent, conflicting semantics.")
    wait_s = 0.0
    if wait := query.get("wait", ""):
        try:
            wait_s = parse_go_duration(wait)
        except ValueError:
            raise BadRequest("Invalid wait time") from None
    min_index = 0
    if raw := query.get("index", ""):
        if not (raw.isascii() and raw.isdigit()) or int(raw) >= 2**64:
            raise BadRequest("Invalid index")
        min_index = int(raw)
    if query.get("filter"):
        raise BadRequest("the consul double does not implement ?filter expressions")
    return min_index, wait_s


class _Fail(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@web.middleware
async def _consul_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        request.app[REQUESTS].append(
            {
                "time": time.time(),
                "method": request.method,
                "path": request.path,
                "query": [[k, v] for k, v in request.query.items()],
                "token": request.headers.get("X-Consul-Token") or request.query.get("token") or None,
            }
        )
        faults = request.app[FAULTS].current
        if request.path.startswith(faults.path_prefix):
            if faults.delay_s > 0:
                await asyncio.sleep(faults.delay_s)
                faults = request.app[FAULTS].current  # the test may have healed the agent meanwhile
            if faults.status is not None and request.path.startswith(faults.path_prefix):
                return _text(faults.status, faults.body)
            if faults.garbage and request.path.startswith(faults.path_prefix):
                return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html",
                                    headers={"X-Consul-Index": str(request.app[STATE].index)})
    try:
        return await handler(request)
    except BadRequest as exc:
        return _text(400, str(exc))
    except _Fail as exc:
        return _text(exc.status, exc.text)


# ---------------------------------------------------------------------------- Consul API


async def health_service(request: web.Request) -> web.Response:
    state = request.app[STATE]
    min_index, wait_s = _query_options(request)
    passing = _bool_param(request, "passing")
    tags = request.query.getall("tag", [])
    node_meta = dict(pair.partition(":")[::2] for pair in request.query.getall("node-meta", []))
    name = request.match_info["service"]
    index, entries = await state.block(
        min_index,
        effective_wait_s(wait_s, state.rand()),
        lambda: state.health_service(name, passing=passing, tags=tags, node_meta=node_meta),
    )
    extra = None
    if request.app[FAULTS].current.filter_all:
        entries, extra = [], {"X-Consul-Results-Filtered-By-ACLs": "true"}
    return _json(entries, index=index, extra=extra)


async def catalog_services(request: web.Request) -> web.Response:
    state = request.app[STATE]
    min_index, wait_s = _query_options(request)
    index, listing = await state.block(min_index, effective_wait_s(wait_s, state.rand()), state.catalog_services)
    extra = None
    if request.app[FAULTS].current.filter_all:
        listing, extra = {}, {"X-Consul-Results-Filtered-By-ACLs": "true"}
    return _json(listing, index=index, extra=extra)


async def register_service(request: web.Request) -> web.Response:
    try:
        raw = json.loads(await request.text() or "null")
    except ValueError as exc:
        raise BadRequest(f"Request decode failed: {exc}") from None
    if raw is None:
        raise BadRequest("Request decode failed: EOF")
    definition = parse_service_body(raw)
    replace = _bool_param(request, "replace-existing-checks")
    request.app[STATE].register(definition, replace_existing_checks=replace)
    return web.Response(status=200)


async def deregister_service(request: web.Request) -> web.Response:
    # "If the service does not exist, no action is taken."
    request.app[STATE].deregister(request.match_info["service_id"])
    return web.Response(status=200)


async def service_maintenance(request: web.Request) -> web.Response:
    raw = request.query.get("enable")
    if raw is None or raw == "":
        raise BadRequest("Missing value for enable")
    try:
        enable = _go_bool(raw)
    except ValueError:
        raise BadRequest("Invalid value for enable") from None
    service_id = request.match_info["service_id"]
    try:
        request.app[STATE].maintenance(service_id, enable, request.query.get("reason", ""))
    except UnknownService:
        raise _Fail(404, f"Unknown service ID {json.dumps(service_id)}") from None
    return web.Response(status=200)


def _ttl_handler(status: str) -> Callable:
    async def handler(request: web.Request) -> web.Response:
        check_id = request.match_info["check_id"]
        try:
            request.app[STATE].update_ttl(check_id, status, request.query.get("note", ""))
        except NoTTL:
            raise _Fail(500, f"CheckID {json.dumps(check_id)} does not have associated TTL") from None
        return web.Response(status=200)

    return handler


async def agent_services(request: web.Request) -> web.Response:
    return _json(request.app[STATE].agent_services())


async def agent_checks(request: web.Request) -> web.Response:
    return _json(request.app[STATE].agent_checks())


async def status_leader(request: web.Request) -> web.Response:
    return _json(f"{request.app[STATE].config.node_address}:8300")


# ---------------------------------------------------------------------------- controls


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.text() or "{}")
    except ValueError as exc:
        raise BadRequest(f"control body is not JSON: {exc}") from None


async def put_faults(request: web.Request) -> web.Response:
    faults = Faults.from_json(await _json_body(request))
    request.app[FAULTS].current = faults
    return _json(asdict(faults))


async def put_rollback(request: web.Request) -> web.Response:
    body = await _json_body(request)
    index = body.get("index") if isinstance(body, dict) else None
    if not isinstance(index, int) or index < 0:
        raise BadRequest("rollback: expected {\"index\": <integer >= 0>}")
    request.app[STATE].rollback(index)
    return _json({"index": request.app[STATE].index})


async def put_reap(request: web.Request) -> web.Response:
    return _json({"deregistered": request.app[STATE].reap()})


async def get_requests(request: web.Request) -> web.Response:
    return _json(list(request.app[REQUESTS]))


async def delete_requests(request: web.Request) -> web.Response:
    request.app[REQUESTS].clear()
    return _json([])


async def get_state(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return _json({"index": state.index, "services": state.agent_services(), "checks": state.agent_checks(),
                  "faults": asdict(request.app[FAULTS].current)})


# ---------------------------------------------------------------------------- assembly


def make_app(config: DoubleConfig | None = None, *, rand: Callable[[], float] = random.random) -> web.Application:
    """The double as an aiohttp application; its checks run while the app runs."""
    app = web.Application(middlewares=[_consul_middleware])
    state = ConsulState(config or DoubleConfig(), rand=rand)
    app[STATE] = state
    app[FAULTS] = FaultSwitch(Faults())
    app[REQUESTS] = deque(maxlen=_REQUEST_LOG_SIZE)

    async def lifecycle(app: web.Application):
        await state.start()
        yield
        await state.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/v1/health/service/{service}", health_service)
    app.router.add_get("/v1/catalog/services", catalog_services)
    app.router.add_put("/v1/agent/service/register", register_service)
    app.router.add_put("/v1/agent/service/deregister/{service_id:.+}", deregister_service)
    app.router.add_put("/v1/agent/service/maintenance/{service_id:.+}", service_maintenance)
    app.router.add_put("/v1/agent/check/pass/{check_id:.+}", _ttl_handler(PASSING))
    app.router.add_put("/v1/agent/check/warn/{check_id:.+}", _ttl_handler(WARNING))
    app.router.add_put("/v1/agent/check/fail/{check_id:.+}", _ttl_handler(CRITICAL))
    app.router.add_get("/v1/agent/services", agent_services)
    app.router.add_get("/v1/agent/checks", agent_checks)
    app.router.add_get("/v1/status/leader", status_leader)
    app.router.add_put("/_double/faults", put_faults)
    app.router.add_put("/_double/rollback", put_rollback)
    app.router.add_put("/_double/reap", put_reap)
    app.router.add_get("/_double/requests", get_requests)
    app.router.add_delete("/_double/requests", delete_requests)
    app.router.add_get("/_double/state", get_state)
    return app


@dataclass
class RunningDouble:
    """A double serving on a real socket; ``addr`` is what CONSUL_HTTP_ADDR would hold."""

    app: web.Application
    runner: web.AppRunner
    host: str
    port: int

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    @property
    def state(self) -> ConsulState:
        return self.app[STATE]

    def set_faults(self, **faults: Any) -> None:
        self.app[FAULTS].current = Faults.from_json(faults)

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve(config: DoubleConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> RunningDouble:
    """Start the double in the running loop; port 0 picks a free one."""
    app = make_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.create_server((host, port), reuse_port=False)
    site = web.SockSite(runner, sock)
    await site.start()
    return RunningDouble(app, runner, host, sock.getsockname()[1])
