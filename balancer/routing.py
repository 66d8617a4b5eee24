"""The routing table: one membership and the ring built from it, swapped in whole.

A worker holds exactly one ``RoutingTable`` at a time and replaces it with a new
object when membership changes, so a request reads one consistent pair of
membership and ring (Envoy's immutable-snapshot pattern). Building happens off the
request path; reading is a single attribute load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from balancer.membership import Member, Membership
from balancer.ring import Ring, build_ring, key_hash

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

    def pick(self, key: str) -> Member | None:
        """The member that owns ``key``, or None when the ring is empty."""
        owner = self.ring.owner(key_hash(key))
        return None if owner is None else self.members[owner]

    def preference(self, key: str, n: int) -> tuple[Member, ...]:
        return tuple(self.members[m] for m in self.ring.preference(key_hash(key), n))
