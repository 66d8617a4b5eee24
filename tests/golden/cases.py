"""What the goldens show: one source image and one query per golden PNG.

Sources are generated (``renderer.samples``, deterministic) rather than stored; outputs are
PNG (lossless, so the comparison sees the pipeline, not an encoder) and at most 128 px a
side, so the repository stays light. Adding a case means running the regeneration command.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from renderer.samples import GENERATOR_VERSION, Sample, generate

__all__ = ["CASES", "DIRECTORY", "GENERATOR", "SOURCES", "golden_path", "mark_bytes", "source_bytes"]

DIRECTORY = Path(__file__).resolve().parent
GENERATOR = GENERATOR_VERSION  # the samples' drawing version the goldens were made with

SOURCES: dict[str, Sample] = {
    "photo": Sample("golden-photo.jpg", 240, 160, seed=71),
    "alpha": Sample("golden-alpha.png", 120, 80, seed=72, alpha=True),
    "exif6": Sample("golden-exif6.jpg", 90, 120, seed=73, orientation=6),
    # A watermark: cases name it by file name (mark=golden-mark.png); see ``mark_bytes``.
    "mark": Sample("golden-mark.png", 48, 24, seed=74, alpha=True),
}

CROP = "w=96&h=96&fit=crop"
WIDE = "w=128&h=48&fit=crop"
# name -> (source, query); the name says what the golden is for.
CASES: dict[str, tuple[str, str]] = {
    "crop-centre": ("photo", CROP),
    "crop-left": ("photo", CROP + "&crop=left"),
    "crop-right": ("photo", CROP + "&crop=right"),
    "crop-top": ("photo", WIDE + "&crop=top"),
    "crop-bottom": ("photo", WIDE + "&crop=bottom"),
    "crop-focalpoint": ("photo", CROP + "&crop=focalpoint&fp-x=0.45&fp-y=0.5"),
    "crop-entropy": ("photo", CROP + "&crop=entropy"),
    "rect": ("photo", "rect=40,20,120,80&w=96"),
    "min-no-upscale": ("photo", "rect=0,0,100,80&w=200&h=200&fit=min"),
    "ar-crop": ("photo", "ar=1:2&fit=crop&h=112"),
    "fill-bg": ("photo", "w=112&h=112&fit=fill&bg=ff0000"),
    "fill-transparent": ("photo", "w=112&h=112&fit=fill"),
    "clamp": ("photo", "w=112&h=112&fit=clamp"),
    "fillmax-no-upscale": ("photo", "rect=0,0,60,40&w=120&h=120&fit=fillmax&bg=00ff00"),
    "alpha-bg": ("alpha", "w=96&bg=80004080"),
    "bri-up": ("photo", "w=96&bri=30"),
    "bri-down": ("photo", "w=96&bri=-30"),
    "con-up": ("photo", "w=96&con=40"),
    "con-down": ("photo", "w=96&con=-40"),
    "exp": ("photo", "w=96&exp=50"),
    "gam": ("photo", "w=96&gam=-40"),
    "sat-grey": ("photo", "w=96&sat=-100"),
    "sat-up": ("photo", "w=96&sat=60"),
    "mono": ("photo", "w=96&mono=f60"),
    "mono-half": ("photo", "w=96&mono=80006699"),
    "sharp": ("photo", "w=96&sharp=60"),
    "blur": ("photo", "w=96&blur=40"),
    "rot": ("photo", "w=96&rot=25"),
    "rot-90": ("photo", "w=96&rot=90"),
    "flip-h": ("photo", "w=96&flip=h"),
    "flip-v": ("photo", "w=96&flip=v"),
    "orient-90": ("photo", "h=96&or=90"),
    "exif6-upright": ("exif6", "w=64"),
    "exif6-as-stored": ("exif6", "w=64&orient=1"),
    "alpha-rot-blur": ("alpha", "w=96&rot=15&blur=10"),
    # renderer.stylize; nr/nrs at full resolution (rect), where the grain they act on is
    "hue": ("photo", "w=96&hue=120"),
    "vib-down": ("photo", "w=96&vib=-100"),
    "shad": ("photo", "w=96&shad=100"),
    "high": ("photo", "w=96&high=-100"),
    "invert": ("photo", "w=96&invert=true"),
    "nr": ("photo", "rect=60,40,120,80&nr=100"),
    "nrs-soft": ("photo", "rect=100,60,120,80&nrs=-100"),
    "usm": ("photo", "w=96&usm=100&usmrad=6"),
    "sepia": ("photo", "w=96&sepia=80"),
    "duotone": ("photo", "w=96&duotone=000080,ffcc00&duotone-alpha=80"),
    "px": ("photo", "w=96&px=8"),
    "htn": ("photo", "w=96&htn=30"),
    "alpha-px-usm": ("alpha", "w=96&px=6&usm=50"),
    "max-w-crop": ("photo", "h=96&fit=crop&max-w=64"),
    "min-w-crop": ("photo", "h=48&fit=crop&min-w=120"),
    "rect-keywords": ("photo", "rect=center,middle,0.5,0.5&w=96"),
    "rect-fractions": ("photo", "rect=0.1,0.2,0.4,0.6&h=96"),
    "border": ("photo", "w=96&border=4,ff0000"),
    "border-radius": ("photo", "w=96&border=3,0000ff&border-radius=16,16,0,0"),
    "pad": ("photo", "w=96&pad=8&pad-left=16&bg=00ff00"),
    "pad-transparent": ("alpha", "w=80&pad=10"),
    "mask-ellipse": ("photo", "w=96&h=96&fit=crop&mask=ellipse"),
    "mask-corners": ("photo", "w=96&mask=corners&corner-radius=24,0,24,0&mask-bg=ff00ff"),
    "fill-solid": ("photo", "w=112&h=112&fit=fill&fill=solid&fill-color=0000ff"),
    "fill-blur": ("photo", "w=112&h=112&fit=fill&fill=blur"),
    "trim-color": ("framed", "trim=color&trim-color=c81e5a&w=96"),
    "trim-auto": ("framed", "trim=auto&w=120&fit=crop&h=60"),
    # Overlays, each at an output size no other case has (goldens of one size must differ).
    # Text uses the built-in default font (no txt-font), the same on every host.
    "mark": ("photo", "w=120&mark=golden-mark.png&mark-scale=40"),
    "mark-tile": ("photo", "w=110&mark=golden-mark.png&mark-w=20&mark-tile=grid&mark-alpha=60"),
    "txt": ("photo", "w=124&txt=pixring&txt-size=28&txt-color=ffffff&txt-shad=3&txt-align=middle,center"),
    "txt-clip": ("photo", "w=100&txt=The quick brown fox jumps&txt-size=18&txt-color=ffff00&txt-clip=ellipsis,middle"
                          "&txt-line=1&txt-line-color=000000&txt-align=top,left"),
}


def golden_path(name: str) -> Path:
    return DIRECTORY / f"{name}.png"


def source_bytes(key: str) -> bytes:
    if key == "framed":
        return _framed()
    return generate(SOURCES[key])


def mark_bytes(name: str) -> bytes:
    """The watermark a case's ``mark=`` names: the source whose file name it is."""
    for sample in SOURCES.values():
        if sample.name == name:
            return generate(sample)
    raise KeyError(f"no golden source is named {name!r}")


def _framed() -> bytes:
    """The photo inside a uniform 20-px frame, lossless: what ``trim`` cuts away."""
    photo = Image.open(io.BytesIO(generate(SOURCES["photo"]))).convert("RGB")
    framed = Image.new("RGB", (photo.width + 40, photo.height + 40), (200, 30, 90))
    framed.paste(photo, (20, 20))
    out = io.BytesIO()
    framed.save(out, "PNG")
    return out.getvalue()
