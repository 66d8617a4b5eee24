"""Photo-like sample sources, generated once and byte-for-byte the same on every run.

``make run`` and the end-to-end tests need real images to render without shipping
binaries in the repository. Rules:

- Deterministic: every random choice comes from a ``random.Random`` seeded per sample,
  and the noise texture is ``Random.randbytes``, never Pillow's ``effect_noise`` (it uses
  the C library's unseeded ``rand()``). Same Pillow, same bytes.
- Photo-like, so JPEG behaves as on photographs: smooth gradients, blurred shapes
  (out-of-focus background), a few sharp edges, and fine grain (sensor noise).
- Cheap: shapes are painted and blurred at a quarter of the size, then upscaled;
  a 3000x2000 sample takes well under a second.
- ``ensure_samples`` writes ``index.json`` beside the images (name, size, format,
  bytes, sha256) and skips a file whose bytes still match its index entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

__all__ = ["GENERATOR_VERSION", "INDEX_NAME", "SAMPLES", "Sample", "ensure_samples", "generate"]

# Bump when the drawing changes, so old files are regenerated rather than trusted.
GENERATOR_VERSION = 1
INDEX_NAME = "index.json"
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample image; ``width`` x ``height`` is the size a viewer sees (after EXIF rotation)."""

    name: str
    width: int
    height: int
    seed: int
    alpha: bool = False
    orientation: int = 1  # EXIF orientation written into the file (1 or 6)
    quality: int = 90

    @property
    def format(self) -> str:
        return {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[self.name.rsplit(".", 1)[-1]]


SAMPLES: tuple[Sample, ...] = (
    Sample("photos/landscape-3000x2000.jpg", 3000, 2000, seed=1),
    Sample("photos/portrait-1200x1800.jpg", 1200, 1800, seed=2),
    Sample("photos/square-1024.jpg", 1024, 1024, seed=3),
    Sample("photos/small-640x427.jpg", 640, 427, seed=4),
    Sample("photos/rotated-exif6-600x900.jpg", 600, 900, seed=5, orientation=6),
    Sample("photos/panorama-2400x800.webp", 2400, 800, seed=6),
    Sample("graphics/badge-alpha-800x600.png", 800, 600, seed=7, alpha=True),
    Sample("graphics/icon-alpha-256.png", 256, 256, seed=8, alpha=True),
)


def ensure_samples(directory: Path, samples: Iterable[Sample] = SAMPLES) -> list[Path]:
    """Generate the samples under ``directory`` unless they are already there; their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index_path = directory / INDEX_NAME
    known = _read_index(index_path)
    entries: dict[str, dict[str, object]] = {}
    paths: list[Path] = []
    for sample in samples:
        path = directory / sample.name
        entry = known.get(sample.name)
        if not (entry and _matches(path, entry, sample)):
            data = generate(sample)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
            entry = _entry(sample, data)
        entries[sample.name] = entry
        paths.append(path)
    merged = {**known, **entries}
    index = {"version": GENERATOR_VERSION, "samples": [merged[name] for name in sorted(merged)]}
    encoded = json.dumps(index, indent=2).encode() + b"\n"
    if not index_path.exists() or index_path.read_bytes() != encoded:
        _write_atomically(index_path, encoded)
    return paths


def generate(sample: Sample) -> bytes:
    """The encoded bytes of one sample."""
    rng = random.Random(f"pixring-sample-{GENERATOR_VERSION}-{sample.seed}")
    image = _picture(rng, sample.width, sample.height, sample.alpha)
    options: dict[str, object] = {}
    if sample.orientation == 6:
        # Stored sideways; a viewer applying EXIF orientation 6 turns it upright again.
        image = image.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[_EXIF_ORIENTATION] = 6
        options["exif"] = exif
    if sample.format in ("JPEG", "WEBP"):
        options["quality"] = sample.quality
    out = io.BytesIO()
    image.save(out, sample.format, **options)
    return out.getvalue()


def _picture(rng: random.Random, width: int, height: int, alpha: bool) -> Image.Image:
    small = (max(8, width // 4), max(8, height // 4))
    sky = ImageOps.colorize(Image.linear_gradient("L").resize(small), _colour(rng), _colour(rng))
    glow = ImageOps.colorize(Image.radial_gradient("L").resize(small), _colour(rng), (0, 0, 0))
    base = Image.blend(sky, glow, 0.35)
    draw = ImageDraw.Draw(base)
    for _ in range(rng.randint(12, 20)):
        _shape(draw, rng, small)
    base = base.filter(ImageFilter.GaussianBlur(radius=max(1, small[0] // 150)))
    image = base.resize((width, height), Image.Resampling.BICUBIC)

    # A few sharp edges on top of the soft background: what JPEG finds hard to encode.
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(4, 8)):
        _shape(draw, rng, (width, height), outline_only=True)
    image = ImageChops.add(image, _grain(rng, width, height), scale=1.0, offset=-128)

    if alpha:
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).rounded_rectangle(
            (width // 10, height // 10, width - width // 10, height - height // 10),
            radius=min(width, height) // 6,
            fill=255,
        )
        image.putalpha(mask.filter(ImageFilter.GaussianBlur(radius=2)))
    return image


def _grain(rng: random.Random, width: int, height: int) -> Image.Image:
    """Sensor-like grain centred on 128, about +-12 levels, the same in every channel."""
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    noise = noise.point(lambda v: 128 + (v - 128) // 10)
    return Image.merge("RGB", (noise, noise, noise))


def _shape(draw: ImageDraw.ImageDraw, rng: random.Random, size: tuple[int, int], outline_only: bool = False) -> None:
    w, h = size
    x0, y0 = rng.randrange(-w // 4, w), rng.randrange(-h // 4, h)
    x1, y1 = x0 + rng.randrange(w // 20 + 1, w // 2 + 2), y0 + rng.randrange(h // 20 + 1, h // 2 + 2)
    colour = _colour(rng)
    kind = rng.choice(("ellipse", "rectangle", "polygon"))
    if outline_only:
        width = max(1, min(w, h) // 400)
        draw.line([(x0, y0), (x1, y1), (x1, y0)], fill=colour, width=width)
    elif kind == "ellipse":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif kind == "rectangle":
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    else:
        points = [(rng.randrange(x0, x1), rng.randrange(y0, y1)) for _ in range(rng.randint(3, 6))]
        draw.polygon(points, fill=colour)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _entry(sample: Sample, data: bytes) -> dict[str, object]:
    return {
        "name": sample.name,
        "width": sample.width,
        "height": sample.height,
        "format": sample.format,
        "alpha": sample.alpha,
        "orientation": sample.orientation,
        "seed": sample.seed,
        "version": GENERATOR_VERSION,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _matches(path: Path, entry: dict[str, object], sample: Sample) -> bool:
    expected = {k: v for k, v in _entry(sample, b"").items() if k not in ("bytes", "sha256")}
    if any(entry.get(k) != v for k, v in expected.items()):
        return False
    try:
        if path.stat().st_size != entry.get("bytes"):
            return False
        return hashlib.sha256(path.read_bytes()).hexdigest() == entry.get("sha256")
    except OSError:
        return False


def _read_index(path: Path) -> dict[str, dict[str, object]]:
    try:
        index = json.loads(path.read_bytes())
        return {entry["name"]: entry for entry in index["samples"] if isinstance(entry, dict)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # no index or a damaged one: every sample is regenerated


def _write_atomically(path: Path, data: bytes) -> None:
    # Two renderers started together may both generate; rename makes each write all-or-nothing.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
