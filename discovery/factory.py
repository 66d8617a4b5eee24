"""Which membership source a balancer configuration asks for."""

from __future__ import annotations

from balancer.config import BalancerConfig
from balancer.membership import Membership
from discovery.source import MembershipSource
from discovery.static import StaticSource

__all__ = ["source_for"]


def source_for(config: BalancerConfig) -> MembershipSource:
    return StaticSource(Membership.of(config.nodes, source="static"))
