"""A fixed member list from the command line or the config file."""

from __future__ import annotations

import asyncio

from discovery.source import Publish, SourceStatus
from pixring.membership import Membership

__all__ = ["StaticSource"]


class StaticSource:
    kind = "static"

    def __init__(self, membership: Membership) -> None:
        self._membership = membership
        self._published = False

    async def run(self, publish: Publish) -> None:
        self._published = True  # first: the state written as the table is swapped in says ready
        publish(self._membership)
        await asyncio.Event().wait()  # nothing ever changes; live until cancelled

    def status(self) -> SourceStatus:
        return SourceStatus(kind=self.kind, ready=self._published, stale=False)
