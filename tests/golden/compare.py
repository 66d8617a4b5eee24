"""Perceptual closeness with Pillow alone (numpy is not a dependency): PSNR.

PSNR = 10 log10(255^2 / MSE) over every band of both images (RGBA, so a wrong alpha
counts). Identical images are infinitely close. The tolerance, ``MIN_PSNR_DB``: a render
that differs from its golden only by a decoder or resampler update scores well above it
(typically > 45 dB); a wrong crop, a wrong anchor or a wrong adjustment scores far below
(15-30 dB). ``tests/unit/test_renderer_regression.py`` checks that it separates the
goldens from one another.
"""

from __future__ import annotations

import math

from PIL import Image, ImageChops, ImageStat

__all__ = ["MIN_PSNR_DB", "psnr"]

MIN_PSNR_DB = 35.0


def psnr(one: Image.Image, other: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of two same-sized images."""
    if one.size != other.size:
        raise ValueError(f"sizes differ: {one.size} and {other.size}")
    a, b = one.convert("RGBA"), other.convert("RGBA")
    squares = ImageStat.Stat(ImageChops.difference(a, b)).sum2
    mse = sum(squares) / (len(squares) * a.width * a.height)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
