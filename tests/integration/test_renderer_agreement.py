"""The balancer and the renderer agree: URLs the imgix normalization profile merges render
byte-identical images, and URLs whose recognised parameters differ get different keys.

This is the one place that imports both sides (the production packages never do). URLs are
built from families of spellings: every parameter has *value classes* (absent, the default
spelled out, a few real values), and every value class several spellings (aliases, case,
trailing zeros, base64, keywords, list order, repeats). A seeded generator draws designs
(one value class per parameter) and writes each design several ways, with junk parameters
and shuffled order. Every URL is rendered by the real app from its raw bytes, as a client
would send it, and every group of URLs sharing a normalizer key must have one body.
"""

from __future__ import annotations

import asyncio
import base64
import random
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from balancer.normalize import make_normalizer
from renderer.app import make_app
from renderer.samples import Sample, generate
from renderer.settings import RendererSettings

ACCEPT = "image/avif,image/webp,*/*"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# parameter -> value class -> spellings of that value (each a query fragment; "" is absent)
FAMILIES: dict[str, dict[str, list[str]]] = {
    "w": {"none": [""], "40": ["w=40", "width=40", "w=40.0", "W=40", "w64=" + b64("40")], "half": ["w=0.5", "w=.5", "w=0.50"]},
    "h": {"none": [""], "30": ["h=30", "height=30", "h=30.00"]},
    "fit": {"none": ["", "fit=clip", "f=CLIP"], "crop": ["fit=crop", "f=crop", "FIT=Crop"], "fill": ["fit=fill"],
            "max": ["fit=max", "fit64=" + b64("max")]},
    "crop": {"none": [""], "top-left": ["crop=top,left", "crop=left,top", "crop=left&crop=top", "crop=TOP,left,top"],
             "focal": ["crop=focalpoint&fp-x=0.25", "crop=focalpoint&fp-x=0.250&fp-y=0.5"]},
    "fm": {"none": [""], "jpg": ["fm=jpg", "fm=jpeg", "fm=JPG"], "png": ["fm=png"], "webp": ["fm=webp", "fm=WebP"]},
    "q": {"none": [""], "default": ["q=75", "q=75.0"], "60": ["q=60", "q=60.000"]},
    "dpr": {"none": ["", "dpr=1", "dpr=1.0"], "2": ["dpr=2", "dpr=2.0"]},
    "auto": {"none": [""], "compress": ["auto=compress", "auto=COMPRESS"],
             "format": ["auto=format"], "both": ["auto=compress,format", "auto=format&auto=compress", "auto=format,compress"]},
    "bg": {"none": ["", "bg=0fff", "bg=00ffffff"], "white": ["bg=fff", "bg=white", "bg=FFFFFF", "bg=ffff"],
           "red": ["bg=f00", "bg=red", "bg=ff0000"]},
    "rot": {"none": ["", "rot=0", "rot=0.0"], "90": ["rot=90", "rot=90.0"], "30": ["rot=30"]},
    "flip": {"none": [""], "h": ["flip=h", "flip=H"], "hv": ["flip=hv"]},
    "orient": {"none": [""], "6": ["or=90", "orient=6", "or=6"], "3": ["orient=180", "or=3"]},
    "tone": {"none": ["", "bri=0", "con=0&exp=0"], "bri": ["bri=10", "bri=%2B10", "bri=10.0"], "gam": ["gam=-20", "gam=-20.0"]},
    "sat": {"none": ["", "sat=0"], "-50": ["sat=-50"]},
    "mono": {"none": [""], "red": ["mono=f00", "monochrome=red", "mono=ff0000", "mono=ffff0000", "monochrome64=" + b64("f00")]},
    "blur": {"none": ["", "blur=0"], "20": ["blur=20", "blur=20.0"]},
    "sharp": {"none": ["", "sharp=0", "sharp=0.0"], "5": ["sharp=5", "sharp=5.0"]},
    "lossless": {"none": ["", "lossless=0", "lossless=false"], "on": ["lossless=1", "lossless=true", "lossless=TRUE"]},
    "ar": {"none": [""], "16:9": ["ar=16:9", "ar=32:18", "ar=1.6:0.9"]},
    "rect": {"none": [""], "corner": ["rect=0,0,60,40", "rect=left,top,60,40", "rect=0,0,60.0,40"]},
    # The rest of the catalogue that the renderer draws: defaults, clamps, aliases, base64,
    # escapes and equal radii spelled several ways.
    "hue": {"none": ["", "hue=0", "hue=360"], "90": ["hue=90", "hue=450", "hue=-270"]},
    "invert": {"none": ["", "invert=0", "inv=false"], "on": ["invert=1", "inv=true", "INV=TRUE"]},
    "sepia": {"none": ["", "sepia=0"], "full": ["sepia=100", "sepia=150", "sepia=100.0"]},
    "vib": {"none": ["", "vib=0"], "40": ["vib=40", "vib=40.0"]},
    "usm": {"none": ["", "usm=0", "usmrad=2.5"], "50": ["usm=50", "usm=50&usmrad=2.5", "usm=50.0"]},
    "nr": {"none": ["", "nr=20", "nr=20&nrs=20"], "60": ["nr=60", "nr=60.0&nrs=20"]},
    "px": {"none": ["", "px=0"], "4": ["px=4", "px=4.0"]},
    "duotone": {"none": ["", "duotone-alpha=100"],
                "navy-gold": ["duotone=000080,ffd700", "duotone=navy,gold", "duotone=000080,FFD700&duotone-alpha=100"]},
    "border": {"none": [""], "red": ["border=2,f00", "border=2,red", "border=2.0,ff0000"]},
    "pad": {"none": ["", "pad=0", "pad-left=0"], "4": ["pad=4", "pad=4.0"]},
    "radius": {"none": [""], "6": ["border-radius=6", "border-radius=6,6,6,6"]},
    "mask": {"none": [""], "ellipse": ["mask=ellipse", "mask=ELLIPSE", "mask64=" + b64("ellipse")]},
    "trim": {"none": [""], "auto": ["trim=auto", "trim=AUTO", "trim=auto&trim-tol=0"]},
    "txt": {"none": ["", "txt="], "hi": ["txt=Hi+there", "txt=Hi%20there", "t=Hi%20there", "txt64=" + b64("Hi there")]},
    "txt-color": {"none": [""], "red": ["txt-color=f00", "txtclr=red", "tc=FF0000"]},
    "mark": {"none": [""], "logo": ["mark=/marks/logo.png", "m=%2Fmarks%2Flogo.png", "mark64=" + b64("/marks/logo.png")]},
    "max-w": {"none": [""], "50": ["max-w=50", "max-width=50", "max-w=50.0"]},
    "chromasub": {"none": ["", "chromasub=420"], "444": ["chromasub=444"]},
    "progressive": {"none": ["", "jpg-progressive=1", "jpeg-progressive=true"], "off": ["jpg-progressive=0"]},
    "ignored": {"none": ["", "face-blur=0"], "faces": ["face-blur=50", "face-blur=50.0"]},
}
JUNK = ["utm_source=newsletter", "ixlib=js-3.8.0", "s=0123abcd", "fbclid=xyz", "unknownparam=1", "auto64=" + b64("format"),
        "expires=1700000000"]
PATHS = ["/photos/photo.jpg", "/photos/phot%6F.jpg", "//photos/photo.jpg", "/photos%2Fphoto.jpg"]
ALPHA_PATHS = ["/alpha.png", "/alph%61.png"]


def spell(rng: random.Random, design: dict[str, str], alpha: bool) -> str:
    parts = [rng.choice(FAMILIES[name][cls]) for name, cls in design.items()]
    parts += rng.sample(JUNK, rng.randint(0, 2))
    parts = [p for p in parts if p]
    rng.shuffle(parts)
    return rng.choice(ALPHA_PATHS if alpha else PATHS) + ("?" + "&".join(parts) if parts else "")


def designs(rng: random.Random, count: int) -> list[tuple[dict[str, str], bool]]:
    drawn = []
    for _ in range(count):
        chosen = {name: rng.choice(list(classes)) if rng.random() < 0.35 else "none" for name, classes in FAMILIES.items()}
        drawn.append((chosen, rng.random() < 0.25))
    return drawn


async def raw_get(client: TestClient, target: str) -> tuple[int, bytes]:
    """The request line byte-for-byte as a client wrote it (no client-side re-encoding)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: test\r\nAccept: {ACCEPT}\r\nConnection: close\r\n\r\n".encode("ascii"))
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    root = tmp_path / "origin"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "photo.jpg").write_bytes(generate(Sample("photo.jpg", 96, 64, seed=61)))
    (root / "alpha.png").write_bytes(generate(Sample("alpha.png", 96, 64, seed=62, alpha=True)))
    (root / "marks").mkdir()
    (root / "marks" / "logo.png").write_bytes(generate(Sample("logo.png", 24, 16, seed=63, alpha=True)))
    settings = RendererSettings(origin=root, pool_kind="thread", render_workers=2, access_log=False)
    return await aiohttp_client(make_app(settings))


async def test_urls_the_normalizer_merges_render_identical_bytes(client: TestClient) -> None:
    normalize = make_normalizer("imgix")
    rng = random.Random(20240611)
    groups: dict[str, list[str]] = {}
    for design, alpha in designs(rng, 70):
        for _ in range(3):
            target = spell(rng, design, alpha)
            groups.setdefault(normalize(target.encode("ascii")).key, []).append(target)
    merged = {key: targets for key, targets in groups.items() if len(set(targets)) > 1}
    assert len(merged) >= 50, "the generator should produce many merged spellings"

    checked = 0
    for key, targets in merged.items():
        bodies = {}
        for target in sorted(set(targets)):
            status, body = await raw_get(client, target)
            assert status == 200, (target, body[:300])
            bodies[target] = body
        assert len(set(bodies.values())) == 1, f"{key} merges URLs that render differently: {sorted(bodies)}"
        checked += len(bodies)
    assert checked >= 120


# Pairs that differ in one recognised parameter: the normalizer must keep them apart (and the
# renderer indeed draws them differently, so merging them would serve the wrong image).
DIFFERENT = [
    ("w=40", "w=41"), ("w=40", "w=0.5"), ("w=2", "w=1.0"), ("w=40&h=30", "w=40&h=30&fit=crop"), ("fit=crop&w=40&h=40", "fit=fill&w=40&h=40"),
    # fm=jpg is progressive by default, as imgix's (jpg-progressive=true), so it renders
    # like fm=pjpg; fm=jpg&jpg-progressive=false is the baseline one.
    ("fm=png", "fm=webp"), ("fm=jpg&jpg-progressive=false", "fm=pjpg"), ("fm=jpg&q=60", "fm=jpg&q=61"), ("auto=compress", "auto=compress&q=75"),
    ("auto=compress", ""), ("auto=format", ""), ("rot=90", "rot=270"),
    ("flip=h", "flip=v"), ("or=90", "or=270"), ("bri=10", "bri=11"), ("con=10", "exp=10"), ("sat=-50", "sat=50"),
    ("mono=f00", "mono=80ff0000"), ("blur=20", "blur=21"), ("sharp=5", "sharp=5.5"), ("lossless=1&fm=webp", "fm=webp"),
    ("w=40&h=40&fit=crop&crop=left", "w=40&h=40&fit=crop&crop=right"), ("rect=0,0,60,40", "rect=1,0,60,40"),
    ("w=40&h=40&fit=crop&crop=focalpoint&fp-x=0.2", "w=40&h=40&fit=crop&crop=focalpoint&fp-x=0.8"),
    ("w=40&ar=16:9&fit=crop", "w=40&ar=4:3&fit=crop"), ("dpr=2&w=40", "w=40"),
    ("fm=jpg&chromasub=444", "fm=jpg"), ("fm=jpg&dpi=72", "fm=jpg"), ("fm=png&dpi=72", "fm=png"),
    ("palette=json", "palette=css"), ("palette=json&colors=3", "palette=json"),
    ("palette=css&prefix=a", "palette=css"), ("fm=jpg&cs=srgb", "fm=jpg"),
    # The rest of the catalogue that the renderer draws.
    ("hue=90", "hue=180"), ("invert=1", ""), ("vib=50", "vib=-50"), ("high=-50", "shad=50"),
    ("usm=50", "usm=50&usmrad=5"), ("nr=60", "nr=80"), ("px=4", "px=5"), ("htn=50", "htn=60"), ("sepia=50", "sepia=60"),
    ("duotone=000080,ffd700", "duotone=000080,ffd700&duotone-alpha=50"), ("duotone=000080,ffd700", "duotone=ffd700,000080"),
    ("border=2,f00", "border=3,f00"), ("border=2,f00", "border=2,00f"), ("pad=4", "pad=5"), ("pad=4", "pad=4&pad-left=8"),
    ("mask=ellipse", "mask=corners"), ("w=80&h=60&fit=crop&max-w=50", "w=80&h=60&fit=crop&max-w=40"),
    ("rect=0.1,0.1,0.5,0.5", "rect=0.1,0.1,0.5,0.6"), ("rect=center,middle,40,30", "rect=left,top,40,30"),
    ("fm=png8", "fm=png"), ("fm=jpg", "fm=jpg&jpg-progressive=0"), ("fm=jpg", "fm=jpg&chromasub=444"),
    ("fm=png&dpi=72", "fm=png&dpi=300"), ("palette=json", "palette=json&colors=3"),
    ("txt=Hi", "txt=Ho"), ("txt=Hi", "txt=Hi&txt-color=f00"), ("txt=Hi&txt-size=20", "txt=Hi&txt-size=30"),
    ("txt=Hi", "txt=Hi&txt-align=top,left"), ("mark=/marks/logo.png", ""),
    ("mark=/marks/logo.png", "mark=/marks/logo.png&mark-alpha=50"), ("mark=/marks/logo.png", "mark=/marks/logo.png&mark-align=top,left"),
    # Backgrounds only show through transparency: these on the PNG with an alpha channel.
    ("alpha:bg=fff", "alpha:"), ("alpha:bg=fff", "alpha:bg=fffe"), ("alpha:bg=8f00", "alpha:bg=80f0"),
]


@pytest.mark.parametrize("one,other", DIFFERENT)
async def test_different_recognised_parameters_get_different_keys(client: TestClient, one: str, other: str) -> None:
    normalize = make_normalizer("imgix")
    path = "/alpha.png" if one.startswith("alpha:") else "/photos/photo.jpg"
    first, second = f"{path}?{one.removeprefix('alpha:')}", f"{path}?{other.removeprefix('alpha:')}"
    assert normalize(first.encode()).key != normalize(second.encode()).key
    (status_one, body_one), (status_two, body_two) = await raw_get(client, first), await raw_get(client, second)
    assert status_one == status_two == 200
    assert body_one != body_two
