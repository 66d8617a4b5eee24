"""Sources: which customer's images a request is for, picked by its Host, and its gate.

A source is a tenant of the tier: the Host names it clients use, the normalization
profile of its backend, its signing token, and a key namespace. Two sources' ``/logo.png``
are two keys (``<namespace>/logo.png``), so they have two entries in the route cache, two
places on the ring and two coalescing flights, and one tenant never gets another's
answer. Without sources configured, every request belongs to the default source (the
top-level ``profile`` and ``sign_token``, no namespace), and the Host chooses nothing,
as before sources existed.

``Gate.admit`` is the one decision the front asks for, before any normalization or
upstream work: the request's source, and its target without ``s`` and ``expires`` (which
never reach the key, and are not forwarded); or a ``Refusal`` (403 for a missing, wrong or
expired signature, 404 for a Host no source claims when ``unknown_host = "refuse"``, 429
for a client past the render limit, ``balancer.renderlimit``). ``Gate.answered`` hears the
node's answer to an admitted request, so a render counts against its client. Pure: the
clock is an argument, the signature scheme is ``pixring.signing``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Mapping

from balancer.normalize import origin_form
from balancer.renderlimit import Network, RenderLimiter, client_address
from pixring import signing
from pixring.config import read_secret_file

__all__ = ["DEFAULT_SOURCE", "Gate", "Refusal", "Source", "host_name", "parse_sources"]

DEFAULT_SOURCE: Final = "default"
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_HOST: Final = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")


@dataclass(frozen=True, slots=True)
class Source:
    """One source as configured. ``sign_token`` is a secret: never printed (``public``)."""

    name: str
    hosts: tuple[str, ...] = ()
    profile: str = "imgix"
    sign_token: str = ""
    sign_mode: str = "md5"
    namespace: str = ""
    upstream_host: str = ""  # the Host sent to the node; empty = the node's address

    def public(self) -> dict[str, Any]:
        """The source as ``/status`` and ``--print-config`` show it: the token masked."""
        return {"name": self.name, "hosts": list(self.hosts), "profile": self.profile,
                "signed": bool(self.sign_token), "sign_mode": self.sign_mode, "namespace": self.namespace,
                "upstream_host": self.upstream_host}

    def as_table(self) -> dict[str, Any]:
        """A form ``parse_sources`` reads back (the token included: for the worker's config)."""
        return {"name": self.name, "hosts": list(self.hosts), "profile": self.profile, "sign_token": self.sign_token,
                "sign_mode": self.sign_mode, "namespace": self.namespace, "upstream_host": self.upstream_host}


_SOURCE_KEYS: Final = frozenset(("name", "hosts", "profile", "sign_token", "sign_token_file", "sign_mode",
                                 "namespace", "upstream_host"))


def host_name(host: bytes) -> str:
    """A Host value as sources name it: lowercase, without port or a trailing dot."""
    text = host.decode("latin-1").lower()
    if text.startswith("["):
        text = text[: text.find("]") + 1]
    else:
        text = text.partition(":")[0]
    return text.rstrip(".")


def parse_sources(value: Any, profiles: tuple[str, ...] = ("imgix", "generic")) -> tuple[Source, ...]:
    """``[[sources]]`` tables of the TOML file (or a JSON list in the environment)."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise ValueError("expected a list of source tables (TOML [[sources]], or JSON)") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError("expected a list of source tables ([[sources]] in TOML)")
    out: list[Source] = []
    seen_names: set[str] = set()
    seen_hosts: dict[str, str] = {}
    for index, item in enumerate(value):
        if isinstance(item, Source):
            item = item.as_table()
        if not isinstance(item, Mapping):
            raise ValueError(f"source {index + 1}: expected a table with name, hosts, ...")
        unknown = sorted(set(item) - _SOURCE_KEYS)
        if unknown:
            raise ValueError(f"source {index + 1}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_SOURCE_KEYS))})")
        name = str(item.get("name", ""))
        where = f"source {name!r}" if name else f"source {index + 1}"
        if not _NAME.fullmatch(name):
            raise ValueError(f"{where}: name must be 1-63 letters, digits, '.', '_' or '-'")
        if name in seen_names or name == DEFAULT_SOURCE:
            raise ValueError(f"{where}: the name is {'reserved' if name == DEFAULT_SOURCE else 'used twice'}")
        seen_names.add(name)
        hosts_value = item.get("hosts", ())
        hosts_list = [hosts_value] if isinstance(hosts_value, str) else list(hosts_value)
        hosts = tuple(str(h).strip().lower().rstrip(".") for h in hosts_list)
        if not hosts:
            raise ValueError(f"{where}: hosts must name at least one Host")
        for host in hosts:
            if not _HOST.fullmatch(host):
                raise ValueError(f"{where}: {host!r} is not a host name (give it without port or scheme)")
            if host in seen_hosts:
                raise ValueError(f"{where}: host {host!r} already belongs to source {seen_hosts[host]!r}")
            seen_hosts[host] = name
        profile = str(item.get("profile", profiles[0]))
        if profile not in profiles:
            raise ValueError(f"{where}: profile {profile!r} is not one of {', '.join(profiles)}")
        token = str(item.get("sign_token", ""))
        if item.get("sign_token_file"):
            if token:
                raise ValueError(f"{where}: give sign_token or sign_token_file, not both")
            token = read_secret_file(str(item["sign_token_file"]))
        mode = str(item.get("sign_mode", "md5"))
        if mode not in signing.MODES:
            raise ValueError(f"{where}: sign_mode {mode!r} is not one of {', '.join(signing.MODES)}")
        namespace = str(item.get("namespace", name))
        if not _NAME.fullmatch(namespace):
            raise ValueError(f"{where}: namespace must be 1-63 letters, digits, '.', '_' or '-'")
        upstream_host = str(item.get("upstream_host", ""))
        if upstream_host and not re.fullmatch(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?", upstream_host):
            raise ValueError(f"{where}: upstream_host {upstream_host!r} is not a host[:port]")
        out.append(Source(name, hosts, profile, token, mode, namespace, upstream_host))
    namespaces = [s.namespace for s in out]
    if len(set(namespaces)) != len(namespaces):
        raise ValueError("two sources share a namespace: their keys would collide")
    return tuple(out)


class Refusal:
    """A request the gate refuses: answered ``status`` with ``reason``, nothing upstream."""

    __slots__ = ("status", "reason", "source", "result", "retry_after")

    def __init__(self, status: int, reason: str, source: str, result: str = "refused", retry_after: int = 0) -> None:
        self.status = status
        self.reason = reason
        self.source = source  # counted under this name (a configured one, or "-")
        self.result = result  # "refused" (signature, Host) or "limited" (the render limit)
        self.retry_after = retry_after  # seconds, for a 429


class Lane:
    """A source as the front uses it: what is prepended to keys and cache entries, and
    the Host line sent upstream (None: the node's own address)."""

    __slots__ = ("source", "name", "profile", "key_prefix", "cache_prefix", "host_line", "token", "mode")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.name = source.name
        self.profile = source.profile
        # The key is "<namespace>/path?query": a namespace has no '/', so none is a
        # prefix of another's keys, and the default source's keys stay as they were.
        self.key_prefix = source.namespace
        self.cache_prefix = source.namespace.encode() + b" " if source.namespace else b""
        self.host_line = (b" HTTP/1.1\r\nHost: " + source.upstream_host.encode() + b"\r\n"
                          if source.upstream_host else None)
        self.token = source.sign_token.encode()
        self.mode = source.sign_mode


class Gate:
    """Host -> source, then the source's signature check."""

    __slots__ = ("default", "by_host", "lanes", "refuse_unknown", "limiter", "trusted")

    def __init__(self, default: Source, sources: tuple[Source, ...] = (), *, refuse_unknown: bool = False,
                 limiter: RenderLimiter | None = None, trusted: tuple[Network, ...] = ()) -> None:
        self.default = Lane(default)
        self.lanes = {default.name: self.default, **{s.name: Lane(s) for s in sources}}
        self.by_host = {host: self.lanes[s.name] for s in sources for host in s.hosts}
        self.refuse_unknown = refuse_unknown and bool(sources)
        self.limiter = limiter
        self.trusted = trusted  # proxies whose X-Forwarded-For names the client

    @classmethod
    def build(cls, default: Source, sources: tuple[Source, ...], *, refuse_unknown: bool,
              limiter: RenderLimiter | None = None, trusted: tuple[Network, ...] = ()) -> "Gate | None":
        """The gate, or None when it has nothing to decide (no sources, nothing signed, no
        render limit): the front then skips it with one attribute check."""
        if not sources and not default.sign_token and limiter is None:
            return None
        return cls(default, sources, refuse_unknown=refuse_unknown, limiter=limiter, trusted=trusted)

    def lane_for(self, host: bytes) -> Lane | None:
        if not self.by_host:
            return self.default
        lane = self.by_host.get(host_name(host))
        if lane is None and not self.refuse_unknown:
            return self.default
        return lane

    def admit(self, target: bytes, host: bytes, now: float, peer: bytes = b"-",
              forwarded_for: bytes = b"") -> tuple[Lane, bytes, bytes | None] | Refusal:
        """The source of a request, the target to route and the client to charge a render
        to (None without a render limit); or why it is refused. NormalizeError (a 400) for
        a target of no form pixring takes."""
        lane = self.lane_for(host)
        if lane is None:
            return Refusal(404, f"no source serves the Host {host_name(host)!r}", "-")
        if lane.token:
            target = origin_form(target)
            path, _, query = target.partition(b"?")
            reason = signing.verify(path, query, lane.token, now, lane.mode)
            if reason is not None:
                return Refusal(403, reason, lane.name)
            target = signing.unsigned(path, query)
        limiter = self.limiter
        if limiter is None:
            return lane, target, None
        client = client_address(peer, forwarded_for, self.trusted)
        wait = limiter.retry_after(client, now)
        if wait:
            return Refusal(429, f"too many renders from {client.decode('latin-1')}: at most {limiter.limit} "
                                f"in {limiter.window:g}s", lane.name, "limited", wait)
        return lane, target, client

    def answered(self, client: bytes, status: int, fields: list[bytes], now: float) -> None:
        """A node's answer to a request admitted for ``client``: a render counts against it."""
        limiter = self.limiter
        if limiter is not None and status != 304 and limiter.rendered(fields):
            limiter.charge(client, now)
