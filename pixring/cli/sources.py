"""Which membership source a balancer opens: chosen here, in the composition root.

The balancer's config carries discovery's fields (``discovery.settings.SOURCE_FIELDS``);
exactly one source may be given, and this module opens it. Discovery knows nothing of the
balancer's config, and the balancer only of the source interface (``discovery.source``).
"""

from __future__ import annotations

from balancer.config import BalancerConfig, ConfigError
from discovery.source import MembershipSource
from pixring.membership import Membership

__all__ = ["check_sources", "source_for"]


def check_sources(config: BalancerConfig) -> None:
    """Exactly one membership source: --node, --nodes-file or --consul-service."""
    given = [name for name, on in (("--node", bool(config.nodes)), ("--nodes-file", bool(config.nodes_file)),
                                   ("--consul-service", bool(config.consul_service))) if on]
    if not given:
        raise ConfigError("nodes: no membership source; give --node [ID=]URL, --nodes-file PATH or --consul-service NAME")
    if len(given) > 1:
        raise ConfigError(f"nodes: choose one membership source, not {' and '.join(given)}")


def source_for(config: BalancerConfig) -> MembershipSource:
    check_sources(config)
    if config.consul_service:
        from discovery.consul import ConsulSource

        return ConsulSource(
            config.consul_service,
            tag=config.consul_tag or None,
            addr=config.consul_addr or None,
            token=config.consul_token or None,
            datacenter=config.consul_datacenter or None,
            wait_s=config.consul_wait,
        )
    if config.nodes_file:
        from discovery.file import FileSource

        return FileSource(config.nodes_file)
    from discovery.static import StaticSource

    return StaticSource(Membership.of(config.nodes, source="static"))
