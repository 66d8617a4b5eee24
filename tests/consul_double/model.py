"""What the double stores, and how it reads the bodies Consul's agent API accepts.

Register bodies follow https://developer.hashicorp.com/consul/api-docs/agent/service#register-service:
"The /agent/service/register endpoint supports camel case and snake case for service
definition keys." Consul decodes them case-insensitively (``ID``, ``id``) and
translates snake_case aliases (``deregister_critical_service_after``); the double does
both with one rule, comparing keys with case and underscores removed, at the levels
where keys are field names (never inside ``Meta`` or ``Header``, which are user data).
Unknown keys are ignored, as Consul's decoder ignores them.

Durations are Go duration strings (``"10s"``, ``"1m30s"``, ``"250ms"``) or integers of
nanoseconds (Go's ``time.Duration`` in JSON), parsed as ``time.ParseDuration`` does.

Check rules, from https://developer.hashicorp.com/consul/api-docs/agent/check#register-check:
HTTP and TCP checks need an ``Interval``; TTL checks a ``TTL``; not both; a check starts
``critical`` unless ``Status`` says otherwise; ``Timeout`` defaults to 10 s. HTTP
"any 2xx code is passing, 429 Too Many Requests is warning, anything else critical".
Script, gRPC, Docker, H2PING and alias checks are refused with a 400 naming the double's
limit, rather than accepted and silently never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BadRequest",
    "parse_go_duration",
    "normalize_keys",
    "ServiceDef",
    "CheckDef",
    "parse_service_body",
    "PASSING",
    "WARNING",
    "CRITICAL",
]

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
_STATUSES = (PASSING, WARNING, CRITICAL)
DEFAULT_CHECK_TIMEOUT_S = 10.0

_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class BadRequest(ValueError):
    """A request Consul answers with 400; the message is the body Consul would send."""


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError as ``time.ParseDuration`` errs."""
    original = text
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f"time: invalid duration {original!r}")
    total, position = 0.0, 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if not match:
            raise ValueError(f"time: invalid duration {original!r}")
        total += float(match.group(1)) * _UNITS_S[match.group(2)]
        position = match.end()
    return sign * total


def _duration(value: Any, name: str) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        raise BadRequest(f"Request decode failed: {name}: expected a duration")
    if isinstance(value, (int, float)):
        return float(value) / 1e9
    if isinstance(value, str):
        try:
            return parse_go_duration(value)
        except ValueError as exc:
            raise BadRequest(f"Request decode failed: {name}: {exc}") from None
    raise BadRequest(f"Request decode failed: {name}: expected a duration")


def _fold(key: str) -> str:
    return key.replace("_", "").lower()


def normalize_keys(raw: Any, fields: dict[str, str], where: str) -> dict[str, Any]:
    """Map a decoded JSON object's keys onto canonical field names; others are dropped."""
    if not isinstance(raw, dict):
        raise BadRequest(f"Request decode failed: {where}: expected an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        canonical = fields.get(_fold(str(key)))
        if canonical is not None:
            out[canonical] = value
    return out


_SERVICE_FIELDS = {
    _fold(name): name
    for name in (
        "ID", "Name", "Tags", "Address", "Port", "Meta", "Weights", "Check", "Checks",
        "EnableTagOverride", "TaggedAddresses", "Kind", "Proxy", "Connect", "Namespace",
        "SocketPath", "Locality",
    )
}
_CHECK_FIELDS = {
    _fold(name): name
    for name in (
        "CheckID", "Name", "Notes", "Status", "Interval", "Timeout", "TTL", "HTTP", "Method",
        "Header", "Body", "TLSSkipVerify", "TLSServerName", "TCP", "DeregisterCriticalServiceAfter",
        "SuccessBeforePassing", "FailuresBeforeCritical", "Args", "ScriptArgs", "GRPC",
        "GRPCUseTLS", "DockerContainerID", "Shell", "H2PING", "AliasNode", "AliasService",
        "OutputMaxSize", "ServiceID",
    )
}
_CHECK_FIELDS["id"] = "CheckID"  # the check endpoint's own spelling of the same field
_WEIGHT_FIELDS = {"passing": "Passing", "warning": "Warning"}


@dataclass
class CheckDef:
    """One check as registered (its definition, not its state)."""

    check_id: str
    name: str
    kind: str  # "http", "tcp", "ttl"
    notes: str = ""
    status: str = CRITICAL
    interval_s: float = 0.0
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
    ttl_s: float = 0.0
    http: str = ""
    method: str = "GET"
    header: dict[str, list[str]] = field(default_factory=dict)
    body: str = ""
    tls_skip_verify: bool = False
    tcp: str = ""
    deregister_after_s: float = 0.0
    success_before_passing: int = 0
    failures_before_critical: int = 0

    def same_definition(self, other: "CheckDef") -> bool:
        mine = {k: v for k, v in vars(self).items() if k != "status"}
        theirs = {k: v for k, v in vars(other).items() if k != "status"}
        return mine == theirs


@dataclass
class ServiceDef:
    """One service instance as registered."""

    service_id: str
    name: str
    tags: list[str]
    address: str
    port: int
    meta: dict[str, str]
    weights: dict[str, int]
    enable_tag_override: bool
    tagged_addresses: dict[str, Any]
    checks: list[CheckDef]

    def catalog_view(self) -> tuple:
        """What the catalog stores; an identical re-registration changes no index."""
        return (
            self.name, tuple(self.tags), self.address, self.port, tuple(sorted(self.meta.items())),
            tuple(sorted(self.weights.items())), self.enable_tag_override, repr(self.tagged_addresses),
        )


def _int(value: Any, name: str, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise BadRequest(f"Request decode failed: {name}: expected an integer, got {value!r}")
    return int(value)


def _str(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"Request decode failed: {name}: expected a string, got {value!r}")
    return value


def _check(raw: Any, service_id: str, service_name: str, position: int, total: int) -> CheckDef | None:
    fields = normalize_keys(raw, _CHECK_FIELDS, "Check")
    if not any(value not in (None, "", 0, False, [], {}) for value in fields.values()):
        return None  # Consul skips an empty check definition
    unsupported = [n for n in ("Args", "ScriptArgs", "GRPC", "DockerContainerID", "H2PING", "AliasNode", "AliasService") if fields.get(n)]
    if unsupported:
        raise BadRequest(f"Invalid check: the consul double does not run {', '.join(unsupported)} checks")
    interval = _duration(fields.get("Interval"), "Interval")
    ttl = _duration(fields.get("TTL"), "TTL")
    http = _str(fields.get("HTTP"), "HTTP")
    tcp = _str(fields.get("TCP"), "TCP")
    if interval > 0 and ttl > 0:
        raise BadRequest("Invalid check: Interval and TTL cannot both be specified")
    if (http or tcp) and interval <= 0:
        raise BadRequest("Invalid check: Interval must be > 0 for Script, HTTP, H2PING, or TCP checks")
    if not (http or tcp) and ttl <= 0:
        raise BadRequest("Invalid check: TTL must be > 0 for TTL checks")
    status = _str(fields.get("Status"), "Status") or CRITICAL
    if status not in _STATUSES:
        raise BadRequest("Status for checks must 'passing', 'warning', 'critical'")
    check_id = _str(fields.get("CheckID"), "CheckID")
    if not check_id:
        # Consul's generated IDs: "service:<id>", or "service:<id>:<n>" among several.
        check_id = f"service:{service_id}" + (f":{position + 1}" if total > 1 else "")
    header = fields.get("Header") or {}
    if not isinstance(header, dict) or not all(isinstance(v, list) for v in header.values()):
        raise BadRequest("Request decode failed: Header: expected map[string][]string")
    timeout = _duration(fields.get("Timeout"), "Timeout")
    return CheckDef(
        check_id=check_id,
        name=_str(fields.get("Name"), "Name") or f"Service '{service_name}' check",
        kind="http" if http else "tcp" if tcp else "ttl",
        notes=_str(fields.get("Notes"), "Notes"),
        status=status,
        interval_s=interval,
        timeout_s=timeout if timeout > 0 else DEFAULT_CHECK_TIMEOUT_S,
        ttl_s=ttl,
        http=http,
        method=_str(fields.get("Method"), "Method") or "GET",
        header={str(k): [str(x) for x in v] for k, v in header.items()},
        body=_str(fields.get("Body"), "Body"),
        tls_skip_verify=bool(fields.get("TLSSkipVerify")),
        tcp=tcp,
        deregister_after_s=_duration(fields.get("DeregisterCriticalServiceAfter"), "DeregisterCriticalServiceAfter"),
        success_before_passing=_int(fields.get("SuccessBeforePassing"), "SuccessBeforePassing"),
        failures_before_critical=_int(fields.get("FailuresBeforeCritical"), "FailuresBeforeCritical"),
    )


def parse_service_body(raw: Any) -> ServiceDef:
    """A register body (CamelCase, snake_case or any case) as a ``ServiceDef``; 400s raise."""
    fields = normalize_keys(raw, _SERVICE_FIELDS, "service definition")
    name = _str(fields.get("Name"), "Name")
    if not name:
        raise BadRequest("Missing service name")
    service_id = _str(fields.get("ID"), "ID") or name
    tags = fields.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BadRequest("Request decode failed: Tags: expected a list of strings")
    meta = fields.get("Meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise BadRequest("Request decode failed: Meta: expected map[string]string")
    weights = {"Passing": 1, "Warning": 1}
    if fields.get("Weights") is not None:
        given = normalize_keys(fields["Weights"], _WEIGHT_FIELDS, "Weights")
        weights = {"Passing": _int(given.get("Passing"), "Weights.Passing"), "Warning": _int(given.get("Warning"), "Weights.Warning")}
        if weights["Passing"] < 1:
            raise BadRequest("Invalid Weights: Passing must be greater than 0")
        if weights["Warning"] < 0:
            raise BadRequest("Invalid Weights: Warning must be greater or equal than 0")
    raw_checks: list[Any] = []
    if fields.get("Check") is not None:
        raw_checks.append(fields["Check"])
    more = fields.get("Checks") or []
    if not isinstance(more, list):
        raise BadRequest("Request decode failed: Checks: expected a list")
    raw_checks.extend(more)
    parsed = [_check(c, service_id, name, i, len(raw_checks)) for i, c in enumerate(raw_checks)]
    port = _int(fields.get("Port"), "Port")
    tagged = fields.get("TaggedAddresses") or {}
    return ServiceDef(
        service_id=service_id,
        name=name,
        tags=list(tags),
        address=_str(fields.get("Address"), "Address"),
        port=port,
        meta=dict(meta),
        weights=weights,
        enable_tag_override=bool(fields.get("EnableTagOverride")),
        tagged_addresses=tagged if isinstance(tagged, dict) else {},
        checks=[c for c in parsed if c is not None],
    )

