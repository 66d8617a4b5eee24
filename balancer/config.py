"""The balancer's one typed configuration, loaded once at start-up.

The balancer's table of fields (``pixring.config``: the same machinery and layering as
every pixring command): a TOML file (``--config``), then ``PIXRING_*`` environment
variables, then command-line flags. ``connect_timeout`` in TOML is
``PIXRING_CONNECT_TIMEOUT`` in the environment and ``--connect-timeout`` on the command
line. The table is the single source of truth for names, types, defaults and help:
``--help``, ``--print-config`` and the manual's reference (docs/configuration.md) are all
read from it. The membership source's fields are discovery's (``discovery.settings``), part
of this table because every worker opens the source its config names.

Validation happens here, once, and a bad value raises ``ConfigError`` naming the
field and the layer it came from; the CLI turns that into exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from balancer.adminguard import AdminPolicy, start_problem
from balancer.health import HealthPolicy
from balancer.coalesce import CoalescePolicy
from balancer.hotkeys import HotKeyPolicy
from balancer.normalize import DEFAULT_DENYLIST, PROFILES
from balancer.picker import PickPolicy
from balancer.renderlimit import RenderLimiter, parse_networks
from balancer.probe_expect import describe_statuses, parse_expect
from balancer.retry import RetryPolicy
from discovery.settings import SOURCE_FIELDS
from pixring.config import (
    Address,
    ConfigError,
    Field,
    Table,
    boolean,
    choice,
    fraction,
    non_negative_float,
    non_negative_int,
    parse_address,
    plain,
    positive,
    read_secret_file,
    redact_userinfo,
    string_list,
)
from balancer.sources import DEFAULT_SOURCE, Gate, Source, parse_sources
from pixring import signing
from pixring.cpus import CpuBudget, cpu_budget
from pixring.membership import Member
from pixring.wire import MAX_REQUEST_HEAD, MAX_TARGET_LENGTH

__all__ = [
    "BalancerConfig",
    "ConfigError",
    "FIELDS",
    "TABLE",
    "load_config",
]


def _balance_factor(value: Any) -> float:
    number = non_negative_float(value)
    if 0 < number < 1:
        raise ValueError(f"{value!r} must be 0 (off) or at least 1 (a bound under the mean load overflows everyone)")
    return number


def _share(value: Any) -> float:
    number = fraction(value)
    if number == 0:
        raise ValueError(f"{value!r} must be above 0 (turn hot keys off with hot_keys = false)")
    return number


def _power_of_two(value: Any) -> int:
    number = positive(int)(value)
    if number & (number - 1):
        raise ValueError(f"{value!r} must be a power of two (the table is indexed by the key hash's low bits)")
    return number


def _half_life(value: Any) -> int:
    number = positive(int)(value)
    if number < 16:
        raise ValueError(f"{value!r} must be at least 16 (fewer counted requests between halvings are noise)")
    return number


def _networks(value: Any) -> tuple[str, ...]:
    """Addresses or CIDR blocks, checked, kept as written."""
    items = string_list(value)
    parse_networks(items)
    return items


def _statuses(value: Any) -> str:
    """``"200-299,301"`` or a TOML list of statuses, kept as normalized text."""
    text = ",".join(str(item) for item in value) if isinstance(value, (list, tuple)) else str(value)
    return describe_statuses(parse_expect(text))


# The defaults are chosen for a render fleet behind pixring on a LAN: renders take
# tens to hundreds of milliseconds, so the upstream read timeout is generous, while
# a connect to a healthy node on a LAN takes well under a millisecond.
FIELDS: tuple[Field, ...] = (
    Field("listen", parse_address, Address("0.0.0.0", 8080), "public HTTP listener", "HOST:PORT"),
    Field("admin", parse_address, Address("127.0.0.1", 8081),
          "admin listener (/healthz /readyz /status /metrics); keep it private", "HOST:PORT"),
    Field("workers", non_negative_int, 0,
          "worker processes sharing the public port with SO_REUSEPORT; 0 = one per CPU the process can use "
          "(its affinity, capped by a cgroup CPU quota: see pixring/cpus.py)", "N"),
    *SOURCE_FIELDS,
    Field("normalize_cache", non_negative_int, 16384,
          "request targets whose route, key hash and owner are remembered per worker (an LRU; about 600 bytes "
          "each for a typical image URL, 64 more once its key has overflowed its owner under bounded load), so a "
          "hot URL is normalized and hashed once; 0 = off", "N"),
    Field("admin_token", str, "",
          "bearer token the admin API's state-changing (POST) endpoints require; prefer admin_token_file, "
          "which keeps it out of the process list", "TOKEN", secret=True),
    Field("admin_token_file", str, "",
          "a file holding the admin token (its first line); a non-loopback admin listener without a token "
          "refuses to start", "PATH"),
    Field("admin_open_loopback", boolean, False,
          "let the admin API's POST endpoints go without a token while the admin listener is loopback-only "
          "(a local process could then take members out)", switch=True),
    Field("admin_hosts", string_list, (),
          "names the admin listener is reached by, accepted as the Host of a POST besides the addresses it "
          "listens on (a POST with another Host, or a foreign Origin, is refused: DNS rebinding, CSRF)",
          "NAME1,NAME2"),
    Field("sign_token", str, "",
          "the default source's signing token: every image URL must carry a valid imgix signature (s=...), "
          "else 403; prefer sign_token_file", "TOKEN", secret=True),
    Field("sign_token_file", str, "", "a file holding the default source's signing token", "PATH"),
    Field("sign_mode", choice(*signing.MODES), "md5",
          "the default source's signature: md5 (imgix's: md5 of token, path and query) or hmac-sha256 "
          "(the token as HMAC key)", "MODE"),
    Field("sources", parse_sources, (),
          "sources by Host, each with its own profile, signing token and key namespace: [[sources]] tables "
          "in the TOML file (docs/security.md#sources); none = the Host chooses nothing", "JSON",
          shown_default="none"),
    Field("unknown_host", choice("default", "refuse"), "default",
          "with sources configured, a request whose Host no source names goes to the default source, or is "
          "answered 404 (refuse)", "WHAT"),
    Field("render_limit", non_negative_int, 0,
          "for unsigned deployments: renders one client may cause per render_limit_window, per worker (counted "
          "from the node's render_limit_header; an answer without it counts); past it 429 with Retry-After; "
          "0 = off", "N"),
    Field("render_limit_window", positive(float), 60.0, "the render limit's window, seconds", "S"),
    Field("render_limit_header", str, "X-Render-Cache",
          "the node's header that says whether it rendered: a value containing 'miss' is a render", "NAME"),
    Field("trusted_proxies", _networks, (),
          "addresses or CIDR blocks of proxies (a CDN, an L4 balancer) whose X-Forwarded-For names the client "
          "the render limit counts; nobody else's is believed", "CIDR1,CIDR2"),
    Field("tls_cert", str, "",
          "PEM certificate chain for TLS on the public listener (with tls_key); re-read on SIGHUP; empty = "
          "plain HTTP", "PATH"),
    Field("tls_key", str, "", "PEM private key of tls_cert", "PATH"),
    Field("profile", choice(*PROFILES), "imgix",
          "URL normalization profile: imgix (canonical imgix parameters, forwarded as the key) or "
          "generic (opaque backends: sorted query minus the denylist chooses the node, the raw URL "
          "is forwarded)", "NAME"),
    Field("denylist", string_list, DEFAULT_DENYLIST,
          "generic profile: query parameters left out of the key (a trailing * matches a prefix)",
          "P1,P2"),
    Field("connect_timeout", positive(float), 1.0, "seconds to open a connection to a node", "S"),
    Field("upstream_timeout", positive(float), 30.0,
          "seconds a node may pause between two reads of a response body (not counted while a slow client "
          "has pixring holding its reads)", "S"),
    Field("client_header_timeout", positive(float), 10.0,
          "seconds a client may take to send a request's head", "S"),
    Field("client_idle_timeout", positive(float), 60.0,
          "seconds an idle client keep-alive connection is kept open; also how long a client may read "
          "nothing of an answer before it is cut (nginx's send_timeout)", "S"),
    Field("drain_timeout", positive(float), 10.0,
          "on SIGTERM, seconds to let in-flight requests finish before exiting", "S"),
    Field("warmup_timeout", positive(float), 10.0,
          "seconds a starting worker waits for its first membership before it listens anyway (answering 503 "
          "until one comes); on SIGHUP, a new generation without a membership by then is refused", "S"),
    Field("max_request_line", positive(int), MAX_TARGET_LENGTH, "longest accepted request line, bytes (414 beyond)", "BYTES"),
    Field("max_header_bytes", positive(int), MAX_REQUEST_HEAD, "largest accepted request head, bytes (431 beyond)", "BYTES"),
    Field("max_connections", positive(int), 4096,
          "client connections per worker; past it the one idle the longest is closed for a new one, and "
          "with none idle the new one gets a 503 at once", "N"),
    Field("client_send_buffer", non_negative_int, 256 * 1024,
          "the kernel's send buffer per client socket, bytes: with the front's own bound, what a client that "
          "reads nothing of its answer can hold; 0 = the kernel's autotuning (up to 4 MiB by default)", "BYTES"),
    Field("pool_max_idle", non_negative_int, 64,
          "idle keep-alive connections kept per node per worker", "N"),
    Field("pool_idle_timeout", positive(float), 30.0,
          "seconds an idle pooled connection is kept; keep it below the nodes' keep-alive timeout", "S"),
    Field("try_timeout", positive(float), 15.0,
          "seconds one try waits for a node's response to start before the request moves to the next node", "S"),
    Field("request_timeout", positive(float), 30.0,
          "overall deadline for a request, all tries included; no try starts after it", "S"),
    Field("max_attempts", positive(int), 3,
          "tries per request (1 = no retries); retries go to the next members of the key's preference list", "N"),
    Field("retry_budget", fraction, 0.2,
          "retries in flight may be at most this fraction of requests in flight (Envoy's retry budget); a try "
          "whose connection failed never reached its node and moves on without it", "RATIO"),
    Field("retry_min_concurrent", non_negative_int, 3,
          "retries always allowed in flight whatever the budget says", "N"),
    Field("shed_retry_within", non_negative_float, 1.0,
          "a node's 503 with Retry-After (it is full) moves the request to the next member only if it came "
          "within this many seconds; a later one (a render that hit the node's time limit) is the client's, "
          "since another node would spend as long on it", "S"),
    Field("retry_on_500", boolean, False,
          "also retry a node's 500 (502, 503, 504 and connection failures are always retried)", "BOOL"),
    Field("hedge_delay", non_negative_float, 0.0,
          "send the request to the next member too when the first has not answered after this many "
          "seconds, and take the first answer; 0 = off. Bounded by the retry budget", "S"),
    Field("balance_factor", _balance_factor, 1.25,
          "bounded load: a member with more than this factor times the mean in-flight requests overflows "
          "to the next member of the key's list (as HAProxy's hash-balance-factor); 0 = off", "F"),
    Field("bound_floor", positive(int), 8,
          "bounded load never overflows a member with fewer requests than this in flight (per worker): at low "
          "load the mean is noise, and an overflow costs a render on another node", "N"),
    Field("coalesce", boolean, True,
          "identical GETs in flight at once (same forwarded target, Accept and Accept-Encoding) share one "
          "request to the node; the others get its answer when it may be shared (a 200 or 404, not private, "
          "no Set-Cookie), else each goes on its own", "BOOL"),
    Field("coalesce_max_body", non_negative_int, 8 * 1024 * 1024,
          "largest answer held for coalesced requests, bytes; a larger one goes to its own client only, "
          "and the others to the node on their own", "BYTES"),
    Field("coalesce_max_worker_bytes", non_negative_int, 64 * 1024 * 1024,
          "answers held for coalesced requests at once, per worker, bytes", "BYTES"),
    # The hot-key defaults are the simulator's (python -m loadtest.simulate; docs/routing.md#hot-keys).
    Field("hot_keys", boolean, True,
          "hot-key spreading: a key with a large share of a worker's recent requests is served by the first few "
          "members of its preference list instead of its owner alone (balancer/hotkeys.py)", "BOOL"),
    Field("hot_key_share", _share, 0.01,
          "share of a worker's recent requests that makes a key hot (listed in /status, counted in the metrics); "
          "the counter keeps 4/share keys. 0.01 lists every key the simulator spreads on fleets of up to 10 members",
          "RATIO"),
    Field("hot_key_replica_load", _share, 0.1,
          "a hot key gets enough replicas that each takes at most this fraction of a member's fair share "
          "(1/members) of its traffic. In the simulator (Zipf 1.1, 10 nodes) 0.5 left the busiest node at 1.48x "
          "the mean and 0.1 at 1.15x, for the same renders", "RATIO"),
    Field("hot_key_max_replicas", positive(int), 16,
          "the most replicas a hot key gets (each renders it once); never more than the routable members", "N"),
    Field("hot_key_sample", positive(int), 8,
          "one request in this many (on average) is counted by the hot-key counter; the others cost a lookup", "N"),
    Field("hot_key_half_life", _half_life, 2048,
          "counted requests after which every hot-key count is halved: how fast a key that cools returns to "
          "its owner alone (about 16,000 requests per worker at the default sample)", "N"),
    Field("steer_renders", boolean, True,
          "render steering: a request whose key the balancer has not seen (it will render) goes to the less busy "
          "of its key's first two members when its owner is rendering, and the key's later requests follow it; "
          "on only while the nodes' render_limit_header confirms that unseen keys render (balancer/placement.py)",
          "BOOL"),
    Field("placement_slots", _power_of_two, 1 << 20,
          "keys the render-steering table remembers, shared by the workers (8 bytes each; a power of two)", "N"),
    Field("probe_path", str, "/healthz",
          "path of the active health probe (GET); any HTTP server will do, the path need not exist; "
          "empty = no active probes", "PATH"),
    Field("probe_expect", _statuses, "",
          "statuses of the probe's answer that mean alive, e.g. 200 or 200-299,301; empty = any status below 500 "
          "(the node answers HTTP). Narrow it for backends with a real health path", "STATUSES"),
    Field("probe_interval", positive(float), 2.0, "seconds between active probes of each member (jittered)", "S"),
    Field("probe_timeout", positive(float), 1.0, "seconds an active probe may take", "S"),
    Field("probe_rise", positive(int), 2, "consecutive good probes before a down member routes again", "N"),
    Field("probe_fall", positive(int), 3, "consecutive failed probes before a member stops routing", "N"),
    Field("outlier_errors", non_negative_int, 5,
          "consecutive connect errors, timeouts or 5xx from real traffic that eject a member; 0 = off", "N"),
    Field("ejection_time", positive(float), 10.0,
          "seconds of a first ejection; each further ejection adds as much again", "S"),
    Field("max_ejection_time", positive(float), 300.0, "the longest an ejection lasts", "S"),
    Field("max_ejected_fraction", fraction, 0.5, "never eject more than this fraction of members at once", "RATIO"),
    Field("panic_threshold", fraction, 0.5,
          "when fewer than this fraction of members are healthy, route over all of them (panic mode)", "RATIO"),
    Field("slow_start", non_negative_float, 30.0,
          "seconds over which a member that joins or recovers is ramped up to its full share; 0 = off", "S"),
    Field("drain_delay", non_negative_float, 0.0,
          "on SIGTERM, seconds to keep accepting (readiness already false) before the listener closes", "S"),
    Field("access_log", str, "-",
          "where JSON access log lines go: - (stdout), a file path, or off", "PATH"),
    Field("node_header", str, "X-Pixring-Node",
          "response header naming the node that served the request; empty to leave it out", "NAME"),
    Field("via", str, "pixring", "pseudonym used in the Via header", "NAME"),
)

TABLE = Table(FIELDS, "PIXRING_")


@dataclass(frozen=True, slots=True)
class BalancerConfig:
    listen: Address
    admin: Address
    workers: int
    nodes: tuple[Member, ...]
    nodes_file: str
    consul_service: str
    consul_tag: str
    consul_addr: str
    consul_token: str
    consul_datacenter: str
    consul_wait: float
    normalize_cache: int
    admin_token: str
    admin_token_file: str
    admin_open_loopback: bool
    admin_hosts: tuple[str, ...]
    sign_token: str
    sign_token_file: str
    sign_mode: str
    sources: tuple[Source, ...]
    unknown_host: str
    render_limit: int
    render_limit_window: float
    render_limit_header: str
    trusted_proxies: tuple[str, ...]
    tls_cert: str
    tls_key: str
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
    max_connections: int
    client_send_buffer: int
    pool_max_idle: int
    pool_idle_timeout: float
    try_timeout: float
    request_timeout: float
    max_attempts: int
    retry_budget: float
    retry_min_concurrent: int
    shed_retry_within: float
    retry_on_500: bool
    hedge_delay: float
    balance_factor: float
    bound_floor: int
    coalesce: bool
    coalesce_max_body: int
    coalesce_max_worker_bytes: int
    hot_keys: bool
    hot_key_share: float
    hot_key_replica_load: float
    hot_key_max_replicas: int
    hot_key_sample: int
    hot_key_half_life: int
    steer_renders: bool
    placement_slots: int
    probe_path: str
    probe_expect: str
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
            await_first_probe=bool(self.probe_path),
        )

    def pick_policy(self) -> PickPolicy:
        return PickPolicy(
            balance_factor=self.balance_factor, max_attempts=self.max_attempts, bound_floor=self.bound_floor
        )

    def coalesce_policy(self) -> CoalescePolicy | None:
        if not self.coalesce:
            return None
        return CoalescePolicy(max_body=self.coalesce_max_body, max_worker_bytes=self.coalesce_max_worker_bytes)

    def hot_key_policy(self) -> HotKeyPolicy:
        return HotKeyPolicy(
            threshold=self.hot_key_share,
            replica_load=self.hot_key_replica_load,
            max_replicas=self.hot_key_max_replicas,
            sample=self.hot_key_sample,
            half_life=self.hot_key_half_life,
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
        out = {field.name: plain(getattr(self, field.name)) for field in FIELDS}
        out["nodes"] = [f"{m.id}=http://{m.address};weight={m.weight:g}" for m in self.nodes]
        out["sources"] = [source.as_table() for source in self.sources]
        # A token read from a file goes on as the file (the worker reads it again), so it
        # is in no environment, and the flags load back to this very config.
        for token, path in (("admin_token", "admin_token_file"), ("sign_token", "sign_token_file")):
            if out[path]:
                out[token] = ""
        return out

    def default_source(self) -> Source:
        return Source(DEFAULT_SOURCE, (), self.profile, self.sign_token, self.sign_mode)

    def gate(self) -> Gate | None:
        """What the front asks about each request's Host and signature; None when nothing is
        configured (no sources, no signing), and the request path skips it."""
        limiter = (RenderLimiter(self.render_limit, self.render_limit_window, self.render_limit_header)
                   if self.render_limit else None)
        return Gate.build(self.default_source(), self.sources, refuse_unknown=self.unknown_host == "refuse",
                          limiter=limiter, trusted=parse_networks(self.trusted_proxies))

    def summary(self) -> dict[str, Any]:
        """The effective config for people (/status, --print-config): secrets masked."""
        out = self.as_flags()
        for field in FIELDS:
            if field.secret and out[field.name]:
                out[field.name] = "(set)"
        out["admin_token_file"], out["sign_token_file"] = self.admin_token_file, self.sign_token_file
        out["sources"] = [source.public() for source in self.sources]
        out["consul_addr"] = redact_userinfo(self.consul_addr)
        cpus = cpu_budget()
        out["workers_effective"] = self.worker_count(cpus)
        out["cpus_usable"] = {"count": cpus.usable, "affinity": cpus.affinity, "cgroup_quota": cpus.quota}
        return out


assert [f.name for f in fields(BalancerConfig)] == [f.name for f in FIELDS], "FIELDS and BalancerConfig drifted"


def load_config(
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> BalancerConfig:
    """Merge the three layers (``Table.load``) and validate every field once, then the
    combinations no single field can check."""
    values = TABLE.load(config_file=config_file, environ=environ, flags=flags)
    for token, path in (("admin_token", "admin_token_file"), ("sign_token", "sign_token_file")):
        if values[path]:
            if values[token]:
                raise ConfigError(f"{token} and {path} are both set: give one")
            try:
                values[token] = read_secret_file(values[path])
            except ValueError as exc:
                raise ConfigError(f"{path}: {exc}") from None
    if bool(values["tls_cert"]) != bool(values["tls_key"]):
        raise ConfigError("tls_cert and tls_key go together: give both, or neither for plain HTTP")
    config = BalancerConfig(**values)
    problem = start_problem(AdminPolicy(config.admin.host, config.admin_token), str(config.admin))
    if problem is not None:
        raise ConfigError(problem)
    if config.ejection_time > config.max_ejection_time:
        raise ConfigError(
            f"ejection_time ({config.ejection_time:g}s) must not exceed max_ejection_time ({config.max_ejection_time:g}s)"
        )
    for build in (config.health_policy, config.pick_policy, config.hot_key_policy, config.retry_policy):
        try:
            build()
        except ValueError as exc:  # the policies validate the combinations the fields cannot
            raise ConfigError(str(exc)) from None
    return config
