"""Sample images: deterministic bytes, photo-like content, an index, and no needless rewrites."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageStat

from renderer.samples import INDEX_NAME, SAMPLES, Sample, ensure_samples, generate

SMALL = (
    Sample("p/small.jpg", 96, 64, seed=11),
    Sample("g/alpha.png", 48, 40, seed=12, alpha=True),
    Sample("p/turned.jpg", 40, 60, seed=13, orientation=6),
)


def test_same_bytes_every_time_and_in_another_process() -> None:
    sample = SMALL[0]
    first = generate(sample)
    assert generate(sample) == first
    code = (
        "import sys; from renderer.samples import Sample, generate; "
        "sys.stdout.buffer.write(generate(Sample('p/small.jpg', 96, 64, seed=11)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hash must not matter
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, env=env).stdout
    assert other == first


def test_seeds_give_different_pictures() -> None:
    assert generate(Sample("a.jpg", 64, 64, seed=1)) != generate(Sample("a.jpg", 64, 64, seed=2))


def test_ensure_samples_writes_decodable_images_and_an_index(tmp_path: Path) -> None:
    paths = ensure_samples(tmp_path, SMALL)
    assert paths == [tmp_path / s.name for s in SMALL]
    for sample, path in zip(SMALL, paths):
        with Image.open(path) as image:
            assert image.format == sample.format
            stored = (sample.height, sample.width) if sample.orientation == 6 else (sample.width, sample.height)
            assert image.size == stored
            assert (image.mode == "RGBA") == sample.alpha
            if sample.orientation == 6:
                assert image.getexif().get(0x0112) == 6
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert sorted(entry["name"] for entry in index["samples"]) == sorted(s.name for s in SMALL)
    for entry in index["samples"]:
        assert entry["bytes"] == (tmp_path / entry["name"]).stat().st_size


def test_existing_files_are_kept_and_damaged_ones_regenerated(tmp_path: Path) -> None:
    ensure_samples(tmp_path, SMALL)
    kept, damaged = tmp_path / SMALL[0].name, tmp_path / SMALL[1].name
    kept_mtime = kept.stat().st_mtime_ns
    good_bytes = damaged.read_bytes()
    damaged.write_bytes(b"not an image")
    ensure_samples(tmp_path, SMALL)
    assert kept.stat().st_mtime_ns == kept_mtime  # skipped: content matched the index
    assert damaged.read_bytes() == good_bytes  # regenerated, identical to the first time


def test_photo_like_content() -> None:
    # Not flat: real variation, and grain, so JPEG compresses it like a photograph
    # (well above the ~0.1 bits/pixel a flat gradient takes).
    sample = Sample("x.jpg", 320, 240, seed=3)
    data = generate(sample)
    image = Image.open(io.BytesIO(data))
    assert min(ImageStat.Stat(image).stddev) > 10
    assert len(data) * 8 / (320 * 240) > 1.0


def test_the_default_set_has_what_the_tests_and_make_run_need() -> None:
    jpegs = [s for s in SAMPLES if s.format == "JPEG"]
    assert any(s.width >= 3000 and s.height >= 2000 for s in jpegs)
    assert any(s.format == "PNG" and s.alpha for s in SAMPLES)
    assert any(s.orientation != 1 for s in SAMPLES)
    assert len({s.name for s in SAMPLES}) == len(SAMPLES)
    assert len({s.seed for s in SAMPLES}) == len(SAMPLES)
