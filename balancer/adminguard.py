"""Who may change routing through the admin listener: the rules, as pure functions.

The admin API's POST endpoints take members out of routing; one forged request can
answer every client 503. Two attacks reach a listener that trusts its network:

- CSRF: any web page a browser on the operator's machine opens can POST to
  ``http://127.0.0.1:8081/...`` (a "simple" cross-origin request needs no preflight);
  the browser sends an ``Origin`` naming the page.
- DNS rebinding: a page's own name is made to resolve to 127.0.0.1, so its requests are
  same-origin for the browser, but carry ``Host: evil.example``.

So a state-changing request must carry a Host that is an address the listener is bound
to (or a name the operator lists in ``admin_hosts``), no foreign ``Origin``, and the
bearer token. Only a loopback-only listener may go without a token, and only when the
operator says so (``admin_open_loopback``); a listener other machines can reach without
a token does not start at all. Reads (``/status``, ``/metrics``, ``/healthz``) stay
open to any Host, so scrapers may use a name.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["AdminPolicy", "is_loopback", "judge_change", "start_problem"]

_WILDCARDS = ("", "0.0.0.0", "::")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class AdminPolicy:
    listen_host: str  # as configured ("0.0.0.0" for every address)
    token: str
    open_loopback: bool = False
    names: tuple[str, ...] = ()  # further Host names the operator accepts


def start_problem(policy: AdminPolicy, shown_address: str) -> str | None:
    """Why the admin listener must not start as configured, or None."""
    if policy.token or is_loopback(policy.listen_host):
        return None
    return (f"the admin listener {shown_address} can be reached from other machines and has no token: "
            "set admin_token_file (or PIXRING_ADMIN_TOKEN), or bind --admin to 127.0.0.1")


def _host_of(value: str) -> str:
    """The host of a Host field or an Origin's authority, lowercased, without port."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def judge_change(policy: AdminPolicy, *, host: str, origin: str | None, authorization: str,
                 local_address: str) -> tuple[int, str] | None:
    """The refusal (status, reason) of a state-changing request, or None to let it through.

    ``local_address`` is the address the request's connection arrived on: with a
    wildcard bind, the listener's addresses are whatever the machine has, and that one
    is surely among them."""
    allowed = {local_address.lower().strip("[]"), *(n.lower() for n in policy.names)}
    if policy.listen_host not in _WILDCARDS:
        allowed.add(policy.listen_host.lower().strip("[]"))
    if is_loopback(local_address):
        allowed.add("localhost")
    if _host_of(host) not in allowed:
        return 403, (f"Host {host!r} is not an address this admin listener is bound to; a state-changing request "
                     "must name it (add a name to admin_hosts to allow one)")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or _host_of(parts.netloc) not in allowed:
            return 403, f"Origin {origin!r} is not this admin listener: cross-origin requests may not change routing"
    if policy.token:
        if not hmac.compare_digest(authorization.encode(), f"Bearer {policy.token}".encode()):
            return 401, "admin token required (Authorization: Bearer ...)"
        return None
    if policy.open_loopback and is_loopback(policy.listen_host):
        return None
    return 403, ("no admin token is configured: set admin_token_file to change routing through the admin API "
                 "(or admin_open_loopback = true on a loopback-only listener)")
