"""What a render worker runs: a render from bytes, or from a file of the directory origin.

A directory origin's source is read by the worker itself (``LocalOrigin.read``, the same
fence: the resolved path, no symlink followed, the byte limit), so megabytes of source
never travel through the pipe between the serving process and the worker; that copy cost
as much as a fifth of a small render. Sources from elsewhere (HTTP) arrive as bytes.
Everything here pickles by reference, and errors cross back as ``RenderError``s.
"""

from __future__ import annotations

from renderer import pipeline
from renderer.errors import BadParam, UndecodableSource
from renderer.origin import LocalOrigin, Source
from renderer.params import RenderSpec
from renderer.pipeline import Rendered

__all__ = ["plan_local", "render_bytes", "render_local"]

# Enough of a file for every supported format's header (PNG's IHDR is in the first 33
# bytes; JPEG's SOF may follow Exif and ICC segments of tens of kilobytes).
_HEADER_BYTES = 256 * 1024


def render_bytes(data: bytes, spec: RenderSpec, max_pixels: int, max_output_pixels: int,
                 max_output_bytes: int | None = None, mark: bytes | None = None) -> Rendered:
    return pipeline.render(data, spec, max_pixels, max_output_pixels, max_output_bytes, mark)


def render_local(origin: LocalOrigin, source: Source, spec: RenderSpec, max_pixels: int, max_output_pixels: int,
                 max_output_bytes: int | None = None, mark: bytes | None = None) -> Rendered:
    """A directory origin's render; ``mark``, the watermark's bytes (small: the serving
    process reads them, at most ``renderer.watermark.MAX_MARK_BYTES``)."""
    return pipeline.render(origin.read(source), spec, max_pixels, max_output_pixels, max_output_bytes, mark)


def plan_local(origin: LocalOrigin, source: Source, spec: RenderSpec, max_pixels: int,
               max_output_pixels: int, mark: bytes | None = None) -> pipeline.Planned:
    """The plan of a directory origin's render from the head of its file; the whole file
    when the header lies further in (a JPEG with large metadata segments), or when a frame
    the head does not reach was asked for (an animation's frames follow one another)."""
    head = origin.read(source, limit=_HEADER_BYTES)
    try:
        return pipeline.plan(head, spec, max_pixels, max_output_pixels, mark)
    except (UndecodableSource, BadParam) as exc:
        if len(head) < _HEADER_BYTES or (isinstance(exc, BadParam) and exc.param != "frame"):
            raise
        return pipeline.plan(origin.read(source), spec, max_pixels, max_output_pixels, mark)
