"""What every membership source promises the balancer.

A source runs as one long-lived task per worker. It calls ``publish`` with a new
``Membership`` whenever the set of members it sees changes (never for an answer
that changed nothing, so the balancer rebuilds its ring only when it must), and
reports its own health through ``status()`` for ``/status``, ``/readyz`` and metrics.
A source never publishes an empty membership because *it* failed: on errors it
keeps the last good set (static stability) and says so in ``status()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from pixring.membership import Membership

__all__ = ["Publish", "SourceStatus", "MembershipSource"]

Publish = Callable[[Membership], None]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A source's own view of its health, as operators see it."""

    kind: str  # "static", "file", "consul"
    ready: bool  # has produced at least one membership
    stale: bool  # serving the last good membership because the source is failing
    detail: str = ""  # the last error or warning, in words
    last_success_age_s: float | None = None  # seconds since the source last answered well


class MembershipSource(Protocol):
    kind: str

    async def run(self, publish: Publish) -> None:
        """Publish memberships until cancelled. Must not raise on source errors."""
        ...

    def status(self) -> SourceStatus: ...
