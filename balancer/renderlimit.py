"""A per-client limit on renders, for deployments that do not sign their URLs.

Without signatures anyone can ask for variants nobody asked for before, and each costs a
render (tens of milliseconds of CPU) where a cached answer costs almost nothing. This
limit counts only the requests that made a node render: the node says so in its
cache-status header (the reference renderer's ``X-Render-Cache: miss``; RFC 9211's
``Cache-Status: ...; fwd=miss`` matches too), and an answer without that header counts as
a render. A client past ``limit`` renders in a window of ``window`` seconds is answered
429 with ``Retry-After`` until the window ends; its cached images are refused too, since
whether a URL is cached is not known before the node answers.

Who "a client" is: the peer's address, or, when the peer is one of the configured trusted
proxies (a CDN's edge, an L4 balancer), the address it forwards in ``X-Forwarded-For``,
taken from the right and skipping trusted addresses (the left part is whatever the client
wrote). An address forwarded by anyone else is never believed.

Counts are per worker (workers share nothing): a client's connections spread over the
workers, so the effective limit is up to ``workers`` times the setting. Memory is bounded:
the least recently seen clients are forgotten past ``max_clients``. Pure: the clock is an
argument.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from typing import Sequence

from balancer.headers import answer_rendered

__all__ = ["RenderLimiter", "client_address", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Sequence[str]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks (``10.0.0.0/8``, ``2001:db8::/32``, ``192.0.2.7``)."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR block") from None
    return tuple(out)


def _trusted(address: bytes, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.decode("latin-1").strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: bytes, forwarded_for: bytes, trusted: tuple[Network, ...]) -> bytes:
    """The address a request is counted under (see the module's docstring)."""
    if not trusted or not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(b",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


class RenderLimiter:
    __slots__ = ("limit", "window", "header", "max_clients", "_clients")

    def __init__(self, limit: int, window: float, header: str = "X-Render-Cache", max_clients: int = 65536) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a render limit needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self.header = header.lower().encode("latin-1")
        self.max_clients = max_clients
        self._clients: OrderedDict[bytes, list[float]] = OrderedDict()  # client -> [window start, renders]

    def retry_after(self, client: bytes, now: float) -> int:
        """Seconds until ``client`` may cause a render again; 0 when it may now."""
        entry = self._clients.get(client)
        if entry is None or now >= entry[0] + self.window or entry[1] < self.limit:
            return 0
        return max(1, math.ceil(entry[0] + self.window - now))

    def rendered(self, fields: list[bytes]) -> bool:
        """Whether a node's answer (its end-to-end fields, laid out in fours) was a render;
        one that does not say counts as one."""
        return answer_rendered(fields, self.header) != 0

    def charge(self, client: bytes, now: float) -> None:
        """Count one render against ``client``."""
        clients = self._clients
        entry = clients.get(client)
        if entry is None or now >= entry[0] + self.window:
            clients[client] = [now, 1.0]
            if len(clients) > self.max_clients:
                clients.popitem(last=False)
        else:
            entry[1] += 1
        clients.move_to_end(client)
