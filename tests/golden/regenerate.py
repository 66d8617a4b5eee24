"""``python -m tests.golden.regenerate``: render every golden case and write its PNG.

The one way goldens change: run it after a deliberate change to the pipeline (and bump
``renderer.app.PIPELINE_VERSION`` if the bytes of existing renders change), then look at
the new PNGs before committing them. The tests only ever read. ``--check`` renders and
reports the PSNR against the current goldens without writing anything.
"""

from __future__ import annotations

import argparse
import io
import json
import sys

from PIL import Image

from renderer.params import spec_from_query
from renderer.pipeline import render
from tests.golden.cases import CASES, DIRECTORY, GENERATOR, golden_path, mark_bytes, source_bytes
from tests.golden.compare import MIN_PSNR_DB, psnr

MANIFEST = DIRECTORY / "manifest.json"
MAX_SIDE = 128


def render_case(name: str) -> Image.Image:
    source, query = CASES[name]
    pairs = [tuple(part.split("=", 1)) for part in (query + "&fm=png").split("&") if part]
    spec = spec_from_query(pairs)  # type: ignore[arg-type]
    mark = mark_bytes(spec.mark.path) if spec.mark is not None else None
    image = Image.open(io.BytesIO(render(source_bytes(source), spec, mark=mark).body))
    image.load()
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden.regenerate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; write nothing")
    args = parser.parse_args(argv)
    worst = 0
    for name in CASES:
        image = render_case(name)
        if max(image.size) > MAX_SIDE:
            print(f"{name}: {image.size} is larger than {MAX_SIDE} px; make the case smaller", file=sys.stderr)
            return 1
        path = golden_path(name)
        if args.check:
            score = psnr(image, Image.open(path)) if path.exists() else float("-inf")
            flag = "" if score >= MIN_PSNR_DB else "   <-- below tolerance"
            worst += bool(flag)
            print(f"{name:20s} {score:6.1f} dB{flag}")
            continue
        image.save(path, "PNG", optimize=True)
        print(f"wrote {path.relative_to(DIRECTORY.parent.parent)} {image.size}")
    if not args.check:
        stale = {p.stem for p in DIRECTORY.glob("*.png")} - set(CASES)
        for name in sorted(stale):
            golden_path(name).unlink()
            print(f"removed {name}.png (no longer a case)")
        manifest = {"generator": GENERATOR, "cases": {name: {"source": s, "query": q} for name, (s, q) in CASES.items()}}
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    return 1 if worst else 0


if __name__ == "__main__":
    raise SystemExit(main())
