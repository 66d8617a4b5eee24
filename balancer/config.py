"""The balancer's one typed configuration, loaded once at start-up.

Three layers, later ones winning: a TOML file (``--config``), then ``PIXRING_*``
environment variables, then command-line flags. Every field has one name that is
spelled three ways: ``connect_timeout`` in TOML, ``PIXRING_CONNECT_TIMEOUT`` in the
environment, ``--connect-timeout`` on the command line. The field table below is
the single source of truth for names, types, defaults and help text: ``--help``,
``--print-config`` and the README's reference are all read from it.

Validation happens here, once, and a bad value raises ``ConfigError`` naming the
field and the layer it came from; the CLI turns that into exit code 2. Nothing
outside this module parses configuration text.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from balancer.health import HealthPolicy
from balancer.normalize import DEFAULT_DENYLIST, PROFILES
from balancer.picker import PickPolicy
from balancer.retry import RetryPolicy
from pixring.cpus import CpuBudget, cpu_budget
from pixring.membership import Member, MembershipError
from pixring.wire import MAX_REQUEST_HEAD, MAX_TARGET_LENGTH

__all__ = [
    "Address",
    "BalancerConfig",
    "ConfigError",
    "FIELDS",
    "Field",
    "load_config",
    "parse_address",
    "parse_node",
]


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> Address:
    """``HOST:PORT`` (IPv6 as ``[::1]:8080``); port 0 means "any free port"."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"{text!r}: port must be 0-65535")
    return Address(host, int(port_text))


def parse_node(text: str) -> Member:
    """``[ID=]http://HOST:PORT[;weight=W]`` -> Member.

    Without an explicit ID the member is named after its address: stable as long
    as the address is, which is what a static list can offer. Consul members are
    always named by their service ID instead.
    """
    text = text.strip()
    spec, _, options = text.partition(";")
    node_id, eq, url = spec.partition("=")
    if not eq:
        node_id, url = "", spec
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"node {text!r}: only http:// render nodes are supported")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"node {text!r}: give the node's base URL without a path or query")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"node {text!r}: bad port") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"node {text!r}: missing host")
    weight = 1.0
    for option in filter(None, options.split(";")):
        key, _, value = option.partition("=")
        if key.strip() != "weight":
            raise ValueError(f"node {text!r}: unknown option {key.strip()!r} (only weight=W)")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"node {text!r}: weight {value!r} is not a number") from None
    node_id = node_id.strip() or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    try:
        return Member(id=node_id, host=host, port=port, weight=weight)
    except MembershipError as exc:
        raise ValueError(str(exc)) from None


def _positive(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        number = kind(value)
        if number <= 0:
            raise ValueError(f"{value!r} must be > 0")
        return number

    return parse


def _non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"{value!r} must be >= 0")
    return number


def _non_negative_float(value: Any) -> float:
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"{value!r} must be a finite number >= 0")
    return number


def _balance_factor(value: Any) -> float:
    number = _non_negative_float(value)
    if 0 < number < 1:
        raise ValueError(f"{value!r} must be 0 (off) or at least 1 (a bound under the mean load overflows everyone)")
    return number


def _fraction(value: Any) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(f"{value!r} must be between 0 and 1")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false)")


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return text

    return parse


def _string_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


def _nodes(value: Any) -> tuple[Member, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    members = []
    for item in items:
        if isinstance(item, Mapping):
            unknown = set(item) - {"id", "url", "weight"}
            if unknown:
                raise ValueError(f"node table has unknown keys {sorted(unknown)}")
            text = f"{item.get('id', '')}={item['url']}" if item.get("id") else str(item["url"])
            if "weight" in item:
                text += f";weight={item['weight']}"
            item = text
        if str(item).strip():
            members.append(parse_node(str(item)))
    seen: set[str] = set()
    for member in members:
        if member.id in seen:
            raise ValueError(f"duplicate node id {member.id!r}")
        seen.add(member.id)
    return tuple(members)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = ""
    repeatable: bool = False  # a flag that may be given several times (--node)
    secret: bool = False  # never printed by --print-config or /status
    flag: str = ""  # the command-line spelling when it is not --<name>


# The defaults are chosen for a render fleet behind pixring on a LAN: renders take
# tens to hundreds of milliseconds, so the upstream read timeout is generous, while
# a connect to a healthy node on a LAN takes well under a millisecond.
FIELDS: tuple[Field, ...] = (
    Field("listen", parse_address, Address("0.0.0.0", 8080), "public HTTP listener", "HOST:PORT"),
    Field("admin", parse_address, Address("127.0.0.1", 8081),
          "admin listener (/healthz /readyz /status /metrics); keep it private", "HOST:PORT"),
    Field("workers", _non_negative_int, 0,
          "worker processes sharing the public port with SO_REUSEPORT; 0 = one per CPU the process can use "
          "(its affinity, capped by a cgroup CPU quota: see pixring/cpus.py)", "N"),
    Field("nodes", _nodes, (),
          "a static render node, [ID=]http://HOST:PORT[;weight=W]; repeat the flag for more. "
          "Without ID the node is named by its address", "[ID=]URL", repeatable=True, flag="--node"),
    Field("normalize_cache", _non_negative_int, 16384,
          "request targets whose route, key hash and owner are remembered per worker (an LRU; about 600 bytes "
          "each for a typical image URL, 64 more once its key has overflowed its owner under bounded load), so a "
          "hot URL is normalized and hashed once; 0 = off", "N"),
    Field("nodes_file", str, "",
          "a JSON or TOML member list, re-read when it changes or on SIGHUP (instead of --node)", "PATH"),
    Field("consul_service", str, "",
          "discover render nodes as the passing instances of this Consul service (instead of --node)", "NAME"),
    Field("consul_tag", str, "", "only Consul instances carrying this tag", "TAG"),
    Field("consul_addr", str, "",
          "Consul agent HOST:PORT or URL; empty = CONSUL_HTTP_ADDR, then 127.0.0.1:8500", "ADDR"),
    Field("consul_token", str, "", "Consul ACL token; empty = CONSUL_HTTP_TOKEN", "TOKEN", secret=True),
    Field("consul_datacenter", str, "", "Consul datacenter to query; empty = the agent's own", "DC"),
    Field("consul_wait", _positive(float), 55.0,
          "seconds a Consul blocking query may wait for a change (Consul caps it at 600)", "S"),
    Field("admin_token", str, "",
          "bearer token required by the admin API's POST endpoints; empty = none (keep --admin private)",
          "TOKEN", secret=True),
    Field("profile", _choice(*PROFILES), "imgix",
          "URL normalization profile: imgix (canonical imgix parameters, forwarded as the key) or "
          "generic (opaque backends: sorted query minus the denylist chooses the node, the raw URL "
          "is forwarded)", "NAME"),
    Field("denylist", _string_list, DEFAULT_DENYLIST,
          "generic profile: query parameters left out of the key (a trailing * matches a prefix)",
          "P1,P2"),
    Field("connect_timeout", _positive(float), 1.0, "seconds to open a connection to a node", "S"),
    Field("upstream_timeout", _positive(float), 30.0,
          "seconds a node may pause between two reads of a response body (not counted while a slow client "
          "has pixring holding its reads)", "S"),
    Field("client_header_timeout", _positive(float), 10.0,
          "seconds a client may take to send a request's head", "S"),
    Field("client_idle_timeout", _positive(float), 60.0,
          "seconds an idle client keep-alive connection is kept open; also how long a client may read "
          "nothing of an answer before it is cut (nginx's send_timeout)", "S"),
    Field("drain_timeout", _positive(float), 10.0,
          "on SIGTERM, seconds to let in-flight requests finish before exiting", "S"),
    Field("warmup_timeout", _positive(float), 10.0,
          "seconds a starting worker waits for its first membership before it listens anyway (answering 503 "
          "until one comes); on SIGHUP, a new generation without a membership by then is refused", "S"),
    Field("max_request_line", _positive(int), MAX_TARGET_LENGTH, "longest accepted request line, bytes (414 beyond)", "BYTES"),
    Field("max_header_bytes", _positive(int), MAX_REQUEST_HEAD, "largest accepted request head, bytes (431 beyond)", "BYTES"),
    Field("pool_max_idle", _non_negative_int, 64,
          "idle keep-alive connections kept per node per worker", "N"),
    Field("pool_idle_timeout", _positive(float), 30.0,
          "seconds an idle pooled connection is kept; keep it below the nodes' keep-alive timeout", "S"),
    Field("try_timeout", _positive(float), 15.0,
          "seconds one try waits for a node's response to start before the request moves to the next node", "S"),
    Field("request_timeout", _positive(float), 30.0,
          "overall deadline for a request, all tries included; no try starts after it", "S"),
    Field("max_attempts", _positive(int), 3,
          "tries per request (1 = no retries); retries go to the next members of the key's preference list", "N"),
    Field("retry_budget", _fraction, 0.2,
          "retries in flight may be at most this fraction of requests in flight (Envoy's retry budget)", "RATIO"),
    Field("retry_min_concurrent", _non_negative_int, 3,
          "retries always allowed in flight whatever the budget says", "N"),
    Field("retry_on_500", _bool, False,
          "also retry a node's 500 (502, 503, 504 and connection failures are always retried)", "BOOL"),
    Field("hedge_delay", _non_negative_float, 0.0,
          "send the request to the next member too when the first has not answered after this many "
          "seconds, and take the first answer; 0 = off. Bounded by the retry budget", "S"),
    Field("balance_factor", _balance_factor, 1.25,
          "bounded load: a member with more than this factor times the mean in-flight requests overflows "
          "to the next member of the key's list (as HAProxy's hash-balance-factor); 0 = off", "F"),
    Field("bound_floor", _positive(int), 8,
          "bounded load never overflows a member with fewer requests than this in flight (per worker): at low "
          "load the mean is noise, and an overflow costs a render on another node", "N"),
    Field("probe_path", str, "/healthz", "path of the active health probe (GET); empty = no active probes", "PATH"),
    Field("probe_interval", _positive(float), 2.0, "seconds between active probes of each member (jittered)", "S"),
    Field("probe_timeout", _positive(float), 1.0, "seconds an active probe may take", "S"),
    Field("probe_rise", _positive(int), 2, "consecutive good probes before a down member routes again", "N"),
    Field("probe_fall", _positive(int), 3, "consecutive failed probes before a member stops routing", "N"),
    Field("outlier_errors", _non_negative_int, 5,
          "consecutive connect errors, timeouts or 5xx from real traffic that eject a member; 0 = off", "N"),
    Field("ejection_time", _positive(float), 10.0,
          "seconds of a first ejection; each further ejection adds as much again", "S"),
    Field("max_ejection_time", _positive(float), 300.0, "the longest an ejection lasts", "S"),
    Field("max_ejected_fraction", _fraction, 0.5, "never eject more than this fraction of members at once", "RATIO"),
    Field("panic_threshold", _fraction, 0.5,
          "when fewer than this fraction of members are healthy, route over all of them (panic mode)", "RATIO"),
    Field("slow_start", _non_negative_float, 30.0,
          "seconds over which a member that joins or recovers is ramped up to its full share; 0 = off", "S"),
    Field("drain_delay", _non_negative_float, 0.0,
          "on SIGTERM, seconds to keep accepting (readiness already false) before the listener closes", "S"),
    Field("access_log", str, "-",
          "where JSON access log lines go: - (stdout), a file path, or off", "PATH"),
    Field("node_header", str, "X-Pixring-Node",
          "response header naming the node that served the request; empty to leave it out", "NAME"),
    Field("via", str, "pixring", "pseudonym used in the Via header", "NAME"),
)

_BY_NAME = {field.name: field for field in FIELDS}


@dataclass(frozen=True, slots=True)
class BalancerConfig:
    listen: Address
    admin: Address
    workers: int
    nodes: tuple[Member, ...]
    normalize_cache: int
    nodes_file: str
    consul_service: str
    consul_tag: str
    consul_addr: str
    consul_token: str
    consul_datacenter: str
    consul_wait: float
    admin_token: str
    profile: str
    denylist: tuple[str, ...]
    connect_timeout: float
    upstream_timeout: float
    client_header_timeout: float
    client_idle_timeout: float
    drain_timeout: float
    warmup_timeout: float
    max_request_line: int
    max_header_bytes: int
    pool_max_idle: int
    pool_idle_timeout: float
    try_timeout: float
    request_timeout: float
    max_attempts: int
    retry_budget: float
    retry_min_concurrent: int
    retry_on_500: bool
    hedge_delay: float
    balance_factor: float
    bound_floor: int
    probe_path: str
    probe_interval: float
    probe_timeout: float
    probe_rise: int
    probe_fall: int
    outlier_errors: int
    ejection_time: float
    max_ejection_time: float
    max_ejected_fraction: float
    panic_threshold: float
    slow_start: float
    drain_delay: float
    access_log: str
    node_header: str
    via: str

    def check_sources(self) -> None:
        """Exactly one membership source: --node, --nodes-file or --consul-service."""
        given = [name for name, on in (("--node", bool(self.nodes)), ("--nodes-file", bool(self.nodes_file)),
                                       ("--consul-service", bool(self.consul_service))) if on]
        if not given:
            raise ConfigError(
                "nodes: no membership source; give --node [ID=]URL, --nodes-file PATH or --consul-service NAME"
            )
        if len(given) > 1:
            raise ConfigError(f"nodes: choose one membership source, not {' and '.join(given)}")

    def health_policy(self) -> HealthPolicy:
        return HealthPolicy(
            rise=self.probe_rise,
            fall=self.probe_fall,
            consecutive_errors=self.outlier_errors,
            base_ejection_s=self.ejection_time,
            max_ejection_s=self.max_ejection_time,
            max_ejected_fraction=self.max_ejected_fraction,
            panic_threshold=self.panic_threshold,
            slow_start_s=self.slow_start,
        )

    def pick_policy(self) -> PickPolicy:
        return PickPolicy(
            balance_factor=self.balance_factor, max_attempts=self.max_attempts, bound_floor=self.bound_floor
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(budget_ratio=self.retry_budget, min_concurrent=self.retry_min_concurrent)

    def worker_count(self, cpus: CpuBudget | None = None) -> int:
        """``workers``, or with 0 one per CPU the process can use (``pixring.cpus``)."""
        return self.workers or (cpus or cpu_budget()).usable

    def sharing_warning(self, cpus: CpuBudget | None = None) -> str | None:
        """What to tell the operator when there are more workers than CPUs to run them.

        Workers that share a core take turns on it, and each comes back to caches the other
        has filled: ``make bench`` measured two workers on one core at 0.79-0.94x the
        requests per CPU-second of one, with two to ten times the p99 (``pixring.cpus``).
        """
        cpus = cpus or cpu_budget()
        workers = self.worker_count(cpus)
        usable = cpus.usable
        if workers <= usable:
            return None
        return (f"pixring: warning: {workers} workers on {usable} CPU{'s' if usable != 1 else ''} "
                f"({cpus.describe()}): workers will take turns on a core and spend more CPU per request; "
                f"--workers 0 starts one per CPU")

    def as_flags(self) -> dict[str, Any]:
        """Every field in a form ``load_config(flags=...)`` parses back to this config."""
        out: dict[str, Any] = {}
        for field in FIELDS:
            value = getattr(self, field.name)
            if isinstance(value, Address):
                value = str(value)
            elif field.name == "nodes":
                value = [f"{m.id}=http://{m.address};weight={m.weight:g}" for m in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    def summary(self) -> dict[str, Any]:
        """The effective config for people (/status, --print-config): secrets masked."""
        out = self.as_flags()
        for field in FIELDS:
            if field.secret and out[field.name]:
                out[field.name] = "(set)"
        cpus = cpu_budget()
        out["workers_effective"] = self.worker_count(cpus)
        out["cpus_usable"] = {"count": cpus.usable, "affinity": cpus.affinity, "cgroup_quota": cpus.quota}
        return out


assert [f.name for f in fields(BalancerConfig)] == [f.name for f in FIELDS], "FIELDS and BalancerConfig drifted"


def env_name(field: Field) -> str:
    return "PIXRING_" + field.name.upper()


def flag_name(field: Field) -> str:
    return field.flag or "--" + field.name.replace("_", "-")


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_BY_NAME))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown field {unknown[0]!r} (known: {', '.join(sorted(_BY_NAME))})"
        )
    return data


def load_config(
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> BalancerConfig:
    """Merge the three layers and validate every field once.

    ``flags`` holds only the fields given on the command line (argparse defaults of
    ``None`` are left out by the caller), so an unset flag never hides the file or
    the environment.
    """
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file:
        layers.append((f"config file {config_file}", _read_toml(config_file)))
    layers.append(("environment", {f.name: environ[env_name(f)] for f in FIELDS if env_name(f) in environ}))
    layers.append(("command line", {k: v for k, v in (flags or {}).items() if v is not None}))

    values: dict[str, Any] = {f.name: f.default for f in FIELDS}
    for origin, layer in layers:
        for name, raw in layer.items():
            field = _BY_NAME.get(name)
            if field is None:
                raise ConfigError(f"{origin}: unknown field {name!r}")
            values[name] = _parse_field(field, raw, origin)
    config = BalancerConfig(**values)
    if config.ejection_time > config.max_ejection_time:
        raise ConfigError(
            f"ejection_time ({config.ejection_time:g}s) must not exceed max_ejection_time ({config.max_ejection_time:g}s)"
        )
    for build in (config.health_policy, config.pick_policy, config.retry_policy):
        try:
            build()
        except ValueError as exc:  # the policies validate the combinations the fields cannot
            raise ConfigError(str(exc)) from None
    return config


def _parse_field(field: Field, raw: Any, origin: str) -> Any:
    where = {
        "environment": env_name(field),
        "command line": flag_name(field),
    }.get(origin, field.name)
    try:
        return field.parse(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{origin}: {where}: {exc}") from None

