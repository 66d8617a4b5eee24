"""Discovery's settings: where a balancer finds its members, how a render node registers.

Two tables of fields (``pixring.config``): ``SOURCE_FIELDS``, the membership sources a
balancer may read (a static list, a member file or a Consul service), and
``REGISTRATION_FIELDS``, a render node's Consul self-registration. The commands that use
them include them in their own tables, so they are set like every other field of that
command (``pixring balancer --consul-service``, ``consul_service`` in its TOML file,
``PIXRING_CONSUL_SERVICE``); which source a balancer opens is chosen by the composition
root (``pixring.cli.sources``), from these values.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit

from discovery import blocking
from pixring.config import Field, boolean, non_negative_float, positive, string_list
from pixring.membership import Member, MembershipError

__all__ = [
    "DEFAULT_CHECK_INTERVAL_S",
    "DEFAULT_DEREGISTER_AFTER_S",
    "DEFAULT_WAIT_S",
    "REGISTRATION_FIELDS",
    "SOURCE_FIELDS",
    "parse_node",
    "parse_nodes",
]

# Consul's own floor for DeregisterCriticalServiceAfter ("The minimum timeout is 1
# minute"); ten minutes rides out a slow restart without keeping a dead node listed
# for long (the passing filter already keeps it out of every ring meanwhile).
DEFAULT_DEREGISTER_AFTER_S = 600.0
DEFAULT_CHECK_INTERVAL_S = 10.0  # Consul's examples; the agent's floor is 1 s
# How long a Consul blocking query may wait for a change: under Consul's 600 s cap, and
# under the 60 s idle timeouts common in proxies between a balancer and its agent.
DEFAULT_WAIT_S = 55.0


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


def parse_nodes(value: Any) -> tuple[Member, ...]:
    """A static member list: node strings (one comma-separated string in the environment)
    or, in TOML, tables ``{id = "a", url = "http://h:9000", weight = 2}``."""
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


def _consul_wait(value: Any) -> float:
    seconds = positive(float)(value)
    if seconds > blocking.MAX_WAIT_S:
        raise ValueError(f"{value!r} must be at most {blocking.MAX_WAIT_S:g} (Consul's cap)")
    return seconds


# A balancer's membership source: exactly one of nodes, nodes_file, consul_service.
SOURCE_FIELDS: tuple[Field, ...] = (
    Field("nodes", parse_nodes, (),
          "a static render node, [ID=]http://HOST:PORT[;weight=W]; repeat the flag for more. "
          "Without ID the node is named by its address", "[ID=]URL", repeatable=True, flag="--node"),
    Field("nodes_file", str, "",
          "a JSON or TOML member list, re-read when it changes or on SIGHUP (instead of --node)", "PATH"),
    Field("consul_service", str, "",
          "discover render nodes as the passing instances of this Consul service (instead of --node)", "NAME"),
    Field("consul_tag", str, "", "only Consul instances carrying this tag", "TAG"),
    Field("consul_addr", str, "",
          "Consul agent HOST:PORT or URL; empty = CONSUL_HTTP_ADDR, then 127.0.0.1:8500", "ADDR"),
    Field("consul_token", str, "", "Consul ACL token; empty = CONSUL_HTTP_TOKEN", "TOKEN", secret=True),
    Field("consul_datacenter", str, "", "Consul datacenter to query; empty = the agent's own", "DC"),
    Field("consul_wait", _consul_wait, DEFAULT_WAIT_S,
          "seconds a Consul blocking query may wait for a change (Consul caps it at 600)", "S"),
)

# A render node's registration with its local Consul agent.
REGISTRATION_FIELDS: tuple[Field, ...] = (
    Field("consul", boolean, False,
          "register with the local Consul agent once listening, deregister on shutdown", switch=True),
    Field("consul_addr", str, "",
          "Consul agent HOST:PORT or URL; empty = CONSUL_HTTP_ADDR, then 127.0.0.1:8500", "ADDR"),
    Field("consul_service", str, "pixring-renderer", "service name to register under", "NAME"),
    Field("consul_id", str, "",
          "service ID, the node's identity on every ring; empty = <service>-<advertise>-<port>", "ID"),
    Field("consul_tag", string_list, (), "a service tag; repeat the flag for more", "TAG", repeatable=True),
    Field("advertise", str, "",
          "address balancers and the agent reach this node at; empty = the listen host, or this host's "
          "name when listening on all addresses", "HOST"),
    Field("weight", non_negative_float, 1.0,
          "share of the keyspace relative to other nodes; 0 drains", "W"),
    Field("consul_check_interval", positive(float), DEFAULT_CHECK_INTERVAL_S,
          "seconds between the agent's HTTP checks of /healthz", "S"),
    Field("consul_deregister_after", positive(float), DEFAULT_DEREGISTER_AFTER_S,
          "seconds a critical node stays registered before the agent removes it", "S"),
)
