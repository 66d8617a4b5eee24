"""What a render worker runs: a render from bytes, or from a file of the directory origin.

A directory origin's source is read by the worker itself (``LocalOrigin.read``, the same
fence: the resolved path, no symlink followed, the byte limit), so megabytes of source
never travel through the pipe between the serving process and the worker; that copy cost
as much as a fifth of a small render. Sources from elsewhere (HTTP) arrive as bytes.
Everything here pickles by reference, and errors cross back as ``RenderError``s.
"""

from __future__ import annotations

from renderer import pipeline
from renderer.origin import LocalOrigin, Source
from renderer.params import RenderSpec
from renderer.pipeline import Rendered

__all__ = ["render_bytes", "render_local"]


def render_bytes(data: bytes, spec: RenderSpec, max_pixels: int, max_output_pixels: int) -> Rendered:
    return pipeline.render(data, spec, max_pixels, max_output_pixels)


def render_local(origin: LocalOrigin, source: Source, spec: RenderSpec, max_pixels: int, max_output_pixels: int) -> Rendered:
    return pipeline.render(origin.read(source), spec, max_pixels, max_output_pixels)
