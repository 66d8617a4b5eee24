"""Every membership source says it is ready by the time it publishes its first membership.

The worker writes its state file while the first table is swapped in, inside
``publish``; a source that marked itself ready only after ``publish`` returned made that
state say "membership not known yet" beside a full ring, and ``/readyz`` answered 503
for a moment (a reload's new worker, caught by CI).
"""

from __future__ import annotations

import json

import pytest

from discovery.consul import ConsulSource
from discovery.file import FileSource
from discovery.static import StaticSource
from pixring.membership import Member, Membership
from tests.conftest_consul import Published, Running, add_passing, consul, service_name  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:ssl_context is deprecated:DeprecationWarning"),
]


class ReadyWhenPublished(Published):
    """Records, for each membership, what the source's status said while it was published."""

    def __init__(self) -> None:
        super().__init__()
        self.source = None
        self.ready_seen: list[bool] = []

    def __call__(self, membership: Membership) -> None:
        self.ready_seen.append(self.source.status().ready)
        super().__call__(membership)


async def first_publish(source) -> list[bool]:
    published = ReadyWhenPublished()
    published.source = source
    assert not source.status().ready
    async with Running(source, published):
        await published.wait_for_ids(["r1"])
    return published.ready_seen


async def test_static_source():
    assert await first_publish(StaticSource(Membership.of([Member("r1", "10.0.0.1", 8080)]))) == [True]


async def test_file_source(tmp_path):
    path = tmp_path / "members.json"
    path.write_text(json.dumps([{"id": "r1", "host": "10.0.0.1", "port": 8080}]))
    assert await first_publish(FileSource(path, poll_interval_s=0.02)) == [True]


async def test_consul_source(consul, service_name):
    await add_passing(consul, service_name, "r1", 9001)
    source = ConsulSource(service_name, addr=consul.addr, wait_s=0.5, min_interval_s=0.02)
    assert await first_publish(source) == [True]
