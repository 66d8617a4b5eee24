"""The origin fence: decoding rules for request paths, and resolution inside the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from renderer.errors import BadPath, SourceNotFound, SourceTooLarge
from renderer.origin import LocalOrigin, decode_path


@pytest.mark.parametrize(
    "raw,name",
    [
        ("/photos/cat.jpg", "photos/cat.jpg"),
        ("/photos//cat.jpg", "photos/cat.jpg"),
        ("/caf%C3%A9.jpg", "café.jpg"),
        ("/a%20b.jpg", "a b.jpg"),
        ("/dir%2Fcat.jpg", "dir/cat.jpg"),  # an encoded slash is still a separator on disk
        ("/%252e%252e/x", "%2e%2e/x"),  # decoded once: a harmless name, not a '..'
        ("/..x/y", "..x/y"),
    ],
)
def test_good_paths(raw: str, name: str) -> None:
    assert decode_path(raw) == name


@pytest.mark.parametrize(
    "raw,reason",
    [
        ("/../etc/passwd", "'..'"),
        ("/a/../../b", "'..'"),
        ("/%2e%2e/b", "'..'"),
        ("/%2E%2E%2Fb", "'..'"),
        ("/./a", "'.'"),
        ("/a%00.jpg", "control"),
        ("/a%0d%0aSet-Cookie:x", "control"),
        ("/a%5c..%5cb", "backslash"),
        ("/%c0%ae%c0%ae/b", "UTF-8"),
        ("/%zz", "percent"),
        ("/abc%4", "percent"),
        ("/", "no file"),
        ("", "no file"),
    ],
)
def test_bad_paths(raw: str, reason: str) -> None:
    with pytest.raises(BadPath, match=reason):
        decode_path(raw)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[LocalOrigin, Path]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.jpg").write_bytes(b"x" * 10)
    (root / "big.jpg").write_bytes(b"x" * 101)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"secret")
    (root / "out.jpg").symlink_to(outside)
    (root / "out-dir").symlink_to(tmp_path)
    (root / "in.jpg").symlink_to(root / "sub" / "a.jpg")
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    return LocalOrigin(root, max_bytes=100), root


def test_locate_and_read(tree: tuple[LocalOrigin, Path]) -> None:
    origin, root = tree
    source = origin.locate("sub/a.jpg")
    assert source.path == (root / "sub" / "a.jpg").resolve()
    assert (source.name, source.size) == ("sub/a.jpg", 10)
    assert origin.read(source) == b"x" * 10
    assert origin.locate("in.jpg").size == 10  # a symlink that stays inside is fine


@pytest.mark.parametrize("name", ["missing.jpg", "sub", "sub/a.jpg/x", "out.jpg", "out-dir/outside.jpg", "loop.jpg"])
def test_not_found(tree: tuple[LocalOrigin, Path], name: str) -> None:
    origin, _ = tree
    with pytest.raises(SourceNotFound):
        origin.locate(name)


def test_too_large_from_stat(tree: tuple[LocalOrigin, Path]) -> None:
    origin, _ = tree
    with pytest.raises(SourceTooLarge):
        origin.locate("big.jpg")


def test_identity_changes_with_the_file(tree: tuple[LocalOrigin, Path]) -> None:
    origin, root = tree
    before = origin.locate("sub/a.jpg").identity
    (root / "sub" / "a.jpg").write_bytes(b"y" * 11)
    assert origin.locate("sub/a.jpg").identity != before
