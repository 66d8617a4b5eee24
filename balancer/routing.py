"""The routing table: one membership and the ring built from it, swapped in whole.

A worker holds exactly one ``RoutingTable`` at a time and replaces it with a new
object when membership changes, so a request reads one consistent pair of
membership and ring (Envoy's immutable-snapshot pattern). Building happens off the
request path; reading is a single attribute load. Which member a key goes to is the
picker's decision (``balancer.picker``), which reads the ring with the health table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from balancer.ring import Ring, build_ring
from pixring.membership import Member, Membership

__all__ = ["RoutingTable"]


@dataclass(frozen=True, slots=True)
class RoutingTable:
    membership: Membership
    ring: Ring
    members: dict[str, Member] = field(default_factory=dict)

    @classmethod
    def build(cls, membership: Membership) -> "RoutingTable":
        return cls(membership, build_ring(membership.weights()), membership.by_id())

    @classmethod
    def empty(cls) -> "RoutingTable":
        return cls.build(Membership.of((), source="none"))
