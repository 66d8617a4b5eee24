"""A fixed member list from the command line or the config file."""

from __future__ import annotations

import asyncio

from balancer.membership import Membership
from discovery.source import Publish, SourceStatus

__all__ = ["StaticSource"]


class StaticSource:
    kind = "static"

    def __init__(self, membership: Membership) -> None:
        self._membership = membership
        self._published = False

    async def run(self, publish: Publish) -> None:
        publish(self._membership)
        self._published = True
        await asyncio.Event().wait()  # nothing ever changes; live until cancelled

    def status(self) -> SourceStatus:
        return SourceStatus(kind=self.kind, ready=self._published, stale=False)
