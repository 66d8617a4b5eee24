"""Animated sources: which frames a render draws, how long each lasts, and the limits.

Pure: an opened (not decoded) image and a spec in, frame indices and durations out; the
pipeline draws each chosen frame like a still. imgix's animation parameters
(https://docs.imgix.com/apis/rendering/animation/frame-selection, .../animation/reverse,
.../animation (loop), .../animation/frames-per-second, .../animation/interval). Rules:

- An animated GIF or WebP source rendered to ``fm=gif`` or ``fm=webp`` (or to its own format,
  without ``fm``) stays animated: every chosen frame is resized and adjusted alike. Any other
  output (JPEG, PNG, AVIF, ``auto=compress``'s choice) is a still of the first chosen frame.
- ``frame=k`` (1-based) renders frame k alone, a still. ``frame=a-b`` chooses frames a..b
  (an open end is the first or the last frame); a one-frame choice is a still. A frame past
  the source's last is a 400 naming ``frame``.
- ``interval=n`` keeps every n-th chosen frame starting with the first, each lasting its own
  time (imgix's use: a shorter preview). ``fps`` gives every frame 1000/fps ms instead.
  ``skip`` is not drawn: the catalogue says it "skips every Nth frame starting with the
  first", which reads both as ``interval`` and as its complement, and imgix documents no
  example; a guess would be a silently different animation. ``reverse`` plays the choice backwards
  (a still is then the last chosen frame). ``loop`` is the repeat count written into the
  output (0, the default, repeats forever).
- A source frame without a duration lasts ``DEFAULT_DURATION_MS``.
- Limits, every one a 400 naming ``frame`` and the number, checked from the header before a
  pixel is decoded: frames are decoded in order, so no frame past the
  ``MAX_SOURCE_FRAMES``-th is ever read (the count itself stops there, so a file of a million
  tiny frames costs no more than one of a thousand), nor past the source pixels'
  ``decode_pixels`` (``DECODE_FACTOR`` x the source limit: frames x source pixels);
  an animation has at most ``MAX_FRAMES``
  frames; and frames x output pixels is at most ``max_output_pixels`` (the still budget,
  spread over the frames: its slowest encoding, GIF, takes ~0.15 s per megapixel here).
"""

from __future__ import annotations

from PIL import Image

from renderer.errors import BadParam
from renderer.params import RenderSpec

__all__ = [
    "ANIMATED_FORMATS",
    "DECODE_FACTOR",
    "DEFAULT_DURATION_MS",
    "MAX_FRAMES",
    "MAX_SOURCE_FRAMES",
    "choose",
    "count_frames",
    "durations",
]

ANIMATED_FORMATS = frozenset({"gif", "webp"})
MAX_FRAMES = 300
# imgix: "All GIFs processed through imgix must have fewer than 900 frames ... the service
# will return an error" (https://docs.imgix.com/apis/rendering/animation); here it bounds
# the frames read, so an earlier part of a longer file can still be chosen with frame=a-b.
MAX_SOURCE_FRAMES = 900
DEFAULT_DURATION_MS = 100
# Frames x source pixels decoded for one render, in multiples of max_source_pixels. Reading
# and drawing a frame costs ~25-35 ms per source megapixel here (a 1000x1000 GIF of 200
# frames, 200 MP, took 7.5 s to GIF and 5.5 s to WebP at w=200); 2 x 50 MP keeps the worst
# near 4 s, under the 10 s render timeout: 385 frames of 480x270, 208 of 800x600.
DECODE_FACTOR = 2
_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


def count_frames(image: Image.Image, limit: int) -> int:
    """The source's frame count, counting no further than ``limit`` + 1 (which then means
    "more than ``limit``"). Nothing is decoded."""
    if not getattr(image, "is_animated", False):
        return 1
    step = getattr(image, "_seek", None) if image.format == "GIF" else None
    if step is None:  # WebP/AVIF: the container states the count
        return min(int(image.n_frames), limit + 1)  # type: ignore[attr-defined]
    # A GIF states no count: walk its frame headers, without decoding, as Pillow's own
    # n_frames does, but stop at the limit. The walk leaves the file at frame 0.
    count = 1
    try:
        while count <= limit:
            step(count, False)
            count += 1
    except _ERRORS:
        pass
    finally:
        image.seek(0)
    return count


def choose(image: Image.Image, spec: RenderSpec, animated_output: bool, canvas_pixels: int,
           max_output_pixels: int, decode_pixels: int) -> list[int]:
    """The 0-based source frames to draw, in output order (one for a still)."""
    frame, animated = spec.frame, getattr(image, "is_animated", False)
    if frame is None and not animated:
        return [0]
    if frame is None and not animated_output and not spec.reverse:
        return [0]  # a still of an animation: its first frame, as before animation existed
    first, last = (frame, frame) if isinstance(frame, int) else (frame or (1, None))
    first = 1 if first is None else first
    if first < 1 or (last is not None and last < 1):
        _refuse(f"frame={_show(frame)}: frames are numbered from 1", "frame=k or frame=first-last, from 1")
    furthest = last if last is not None else first
    if furthest > MAX_SOURCE_FRAMES:
        _refuse(f"frame {furthest} is past the {MAX_SOURCE_FRAMES} frames this renderer reads from a source")
    # Frames decode in order: drawing frame k decodes the k before it.
    readable = min(MAX_SOURCE_FRAMES, max(1, decode_pixels // max(1, image.width * image.height)))
    if furthest > readable:
        _refuse(f"frame {furthest} of a {image.width}x{image.height} source is past the {readable} frames this "
                f"renderer decodes from it ({decode_pixels / 1e6:.0f} MP of frames in all)")
    count = count_frames(image, readable)
    if count > readable and last is None:
        why = (f"this renderer reads at most {MAX_SOURCE_FRAMES} frames of a source" if readable == MAX_SOURCE_FRAMES
               else f"this renderer decodes at most {readable} frames of a {image.width}x{image.height} source")
        _refuse(f"the source has more than {readable} frames; {why}: choose some with frame=first-last")
    wanted = last if last is not None else count
    end = min(count, wanted)
    if first > count or (last is not None and last > count):
        _refuse(f"frame={_show(frame)} asks for frames the source does not have: it has {count}",
                f"1..{count}")
    if first > end:
        _refuse(f"frame={_show(frame)} chooses no frame", f"first <= last, within 1..{count}")
    chosen = list(range(first - 1, end))[:: spec.interval]
    if spec.reverse:
        chosen.reverse()
    if len(chosen) == 1 or not animated_output:
        return chosen[:1]
    if len(chosen) > MAX_FRAMES:
        _refuse(f"the animation would have {len(chosen)} frames; this renderer makes at most {MAX_FRAMES}")
    if len(chosen) * canvas_pixels > max_output_pixels:
        _refuse(f"the animation would be {len(chosen)} frames of {canvas_pixels} pixels "
                f"({len(chosen) * canvas_pixels / 1e6:.1f} MP); this renderer's max_output_pixels is "
                f"{max_output_pixels} ({max_output_pixels / 1e6:.1f} MP) for all frames together")
    return chosen


def durations(source: dict[int, int], chosen: list[int], spec: RenderSpec) -> list[int]:
    """Milliseconds each chosen frame lasts; ``source`` maps a frame to its own duration."""
    if spec.fps is not None:
        return [max(1, round(1000 / spec.fps))] * len(chosen)
    return [source.get(index) or DEFAULT_DURATION_MS for index in chosen]


def _refuse(message: str, expected: str | None = None) -> None:
    raise BadParam(message, "frame", expected or f"at most {MAX_FRAMES} frames in an animation, "
                   f"frames 1..{MAX_SOURCE_FRAMES} of a source")


def _show(frame: object) -> str:
    if isinstance(frame, tuple):
        return "-".join("" if v is None else str(v) for v in frame)
    return str(frame)
