"""The benchmark's URL list: distinct, deterministic, and valid for pixring's imgix profile."""

from __future__ import annotations

import pytest

from balancer.normalize import make_normalizer
from loadtest.targets import image_targets, write_targets


def test_targets_are_distinct_and_counted():
    targets = image_targets(500)
    assert len(targets) == len(set(targets)) == 500


def test_order_is_a_seeded_shuffle():
    assert image_targets(200) == image_targets(200)
    assert image_targets(200) != image_targets(200, seed=7)
    assert image_targets(200) != sorted(image_targets(200), key=lambda t: int(t.split("/")[2].split(".")[0]))


def test_every_target_is_forwarded_by_the_imgix_profile():
    normalize = make_normalizer("imgix", cache_size=0)
    keys = {normalize(t.encode()).key for t in image_targets(300)}
    assert len(keys) == 300  # nothing collapsed, nothing refused
    assert all("w=400" in k and "h=300" in k for k in keys)


def test_bad_counts_and_targets_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        image_targets(0)
    with pytest.raises(ValueError, match="origin-form"):
        write_targets(tmp_path / "t", ["/a", "b"])


def test_written_file_has_one_target_per_line(tmp_path):
    path = write_targets(tmp_path / "t", ["/a", "/b?c=1"])
    assert path.read_text().splitlines() == ["/a", "/b?c=1"]
