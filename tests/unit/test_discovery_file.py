"""The file membership source (discovery.file): formats, errors, change detection."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from discovery.file import FileSource, MemberFileError, parse_member_file
from tests.conftest_consul import Published, Running, eventually

JSON_DOC = {"members": [{"id": "r2", "host": "10.0.0.2", "port": 8080},
                        {"id": "r1", "host": "10.0.0.1", "port": 8080, "weight": 2.5, "meta": {"zone": "a"}}]}
TOML_DOC = """
[[members]]
id = "r1"
host = "10.0.0.1"
port = 8080
weight = 2.5
meta = { zone = "a" }

[[members]]
id = "r2"
host = "10.0.0.2"
port = 8080
"""


def test_json_and_toml_describe_the_same_membership():
    from_json = parse_member_file(json.dumps(JSON_DOC), toml=False)
    from_toml = parse_member_file(TOML_DOC, toml=True)
    assert from_json == from_toml
    assert [m.id for m in from_json.members] == ["r1", "r2"]
    assert from_json.by_id()["r1"].weight == 2.5 and from_json.by_id()["r2"].weight == 1.0
    assert from_json.source == "file"


def test_a_bare_json_list_is_accepted():
    assert len(parse_member_file(json.dumps(JSON_DOC["members"]), toml=False)) == 2


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ("[]", "no members"),
    ('{"members": []}', "no members"),
    ('{"nodes": []}', "unknown top-level key"),
    ('[{"id": "a", "host": "h"}]', "missing 'port'"),
    ('[{"id": "a", "host": "h", "port": "80"}]', "'port' must be an integer"),
    ('[{"id": "a", "host": "h", "port": 80, "wieght": 2}]', "unknown key"),
    ('[{"id": "a", "host": "h", "port": 80, "weight": -2}]', "weight"),
    ('[{"id": "a", "host": "h", "port": 70000}]', "port 70000"),
    ('[{"id": "a", "host": "h", "port": 80}, {"id": "a", "host": "g", "port": 80}]', "duplicate member id"),
    ('[{"id": "a", "host": "h", "port": 80, "meta": {"k": 1}}]', "'meta'"),
    ("[1]", r"members\[0\]"),
])
def test_bad_files_are_refused_with_the_problem_named(text, message):
    with pytest.raises(MemberFileError, match=message):
        parse_member_file(text, toml=False, name="members.json")


def test_bad_toml_is_named():
    with pytest.raises(MemberFileError, match="not valid TOML"):
        parse_member_file("[[members]\nid=", toml=True)


def write(path, doc):
    path.write_text(json.dumps(doc))
    # Make the change visible even on filesystems with coarse mtimes.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


async def test_file_source_publishes_then_follows_changes(tmp_path):
    path = tmp_path / "members.json"
    write(path, JSON_DOC)
    published = Published()
    source = FileSource(path, poll_interval_s=0.02)
    async with Running(source, published):
        await published.wait_for_ids(["r1", "r2"])
        assert source.status().ready and not source.status().stale
        write(path, {"members": JSON_DOC["members"] + [{"id": "r3", "host": "10.0.0.3", "port": 8080}]})
        await published.wait_for_ids(["r1", "r2", "r3"])
        count = len(published.memberships)
        # Rewriting the same members (a touch) changes nothing the ring depends on.
        write(path, {"members": list(reversed(JSON_DOC["members"])) + [{"id": "r3", "host": "10.0.0.3", "port": 8080}]})
        source.reload()
        await eventually(lambda: source.status().last_success_age_s is not None, 2)
        await asyncio.sleep(0.1)
        assert len(published.memberships) == count


async def test_a_broken_file_keeps_the_last_membership_and_says_stale(tmp_path):
    path = tmp_path / "members.json"
    write(path, JSON_DOC)
    published = Published()
    source = FileSource(path, poll_interval_s=0.02)
    async with Running(source, published):
        await published.wait_for_ids(["r1", "r2"])
        path.write_text('{"members": [')
        source.reload()
        status = await eventually(lambda: source.status().stale and source.status(), 2, "stale")
        assert "not valid JSON" in status.detail and str(path) in status.detail
        assert published.ids() == ["r1", "r2"] and len(published.memberships) == 1
        path.unlink()
        await eventually(lambda: "No such file" in source.status().detail, 2, "missing file reported")
        assert published.ids() == ["r1", "r2"]
        write(path, {"members": [JSON_DOC["members"][0]]})
        await published.wait_for_ids(["r2"])
        assert not source.status().stale and source.status().detail == ""


async def test_a_missing_file_at_start_is_not_ready_and_never_publishes(tmp_path):
    published = Published()
    source = FileSource(tmp_path / "absent.toml", poll_interval_s=0.02)
    async with Running(source, published):
        await eventually(lambda: source.status().detail, 2, "error reported")
        status = source.status()
        assert not status.ready and not status.stale and published.memberships == []


async def test_reload_rereads_at_once_even_when_stat_looks_unchanged(tmp_path):
    path = tmp_path / "members.toml"
    path.write_text(TOML_DOC)
    published = Published()
    source = FileSource(path, poll_interval_s=3600)  # only reload() can notice a change
    async with Running(source, published):
        await published.wait_for_ids(["r1", "r2"])
        stat = path.stat()
        path.write_text(TOML_DOC.replace('id = "r2"', 'id = "r9"'))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        source.reload()
        await published.wait_for_ids(["r1", "r9"])


def test_bad_poll_interval_is_named(tmp_path):
    with pytest.raises(ValueError, match="poll_interval_s"):
        FileSource(tmp_path / "m.json", poll_interval_s=0)
