"""Which membership source a balancer configuration asks for."""

from __future__ import annotations

from balancer.config import BalancerConfig
from discovery.source import MembershipSource
from pixring.membership import Membership

__all__ = ["source_for"]


def source_for(config: BalancerConfig) -> MembershipSource:
    config.check_sources()
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
