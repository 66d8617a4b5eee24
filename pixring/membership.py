"""The membership snapshot: which render nodes exist, as every source reports them.

Every discovery source (static list, file, Consul) produces the same immutable
``Membership``; the balancer builds a ring from it off the request path and swaps
both in together. A member's identity is a stable ``id`` (a Consul service ID, an
operator-given name), never its address or its position in a list: two balancer
processes that see the same members must build the same ring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

__all__ = ["Member", "Membership", "MembershipError"]


class MembershipError(ValueError):
    """A member list that cannot be used (duplicate id, bad address, bad weight)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One render node: where it is and how much of the keyspace it should own."""

    id: str
    host: str
    port: int
    weight: float = 1.0
    meta: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.id or any(c.isspace() for c in self.id):
            raise MembershipError(f"member id {self.id!r} must be non-empty without spaces")
        if not self.host:
            raise MembershipError(f"member {self.id}: empty host")
        if not 0 < self.port < 65536:
            raise MembershipError(f"member {self.id}: port {self.port} is not 1-65535")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise MembershipError(f"member {self.id}: weight {self.weight!r} must be a finite number >= 0")

    @property
    def address(self) -> str:
        """``host:port``, with IPv6 hosts bracketed."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Membership:
    """An immutable, id-sorted set of members as one source saw them at one moment."""

    members: tuple[Member, ...]
    source: str = "static"

    @classmethod
    def of(cls, members: Iterable[Member], source: str = "static") -> "Membership":
        ordered = tuple(sorted(members, key=lambda m: m.id))
        for earlier, later in zip(ordered, ordered[1:]):
            if earlier.id == later.id:
                raise MembershipError(f"duplicate member id {later.id!r}")
        return cls(ordered, source)

    def by_id(self) -> dict[str, Member]:
        return {m.id: m for m in self.members}

    def weights(self) -> dict[str, float]:
        """The input the ring is built from: id -> weight, zero weights included."""
        return {m.id: m.weight for m in self.members}

    def __len__(self) -> int:
        return len(self.members)
