"""The tier benchmark's chart, drawn with Pillow: per variant, the p99 latency of every second
per front (log scale) with the burst shaded and the renderer kill and restart marked, the
share of each second's requests that failed (ticks along the bottom: a front answering 502
at once has a low p99 and is still failing), and the renders each renderer did per front.

Pillow's ImageDraw reference: https://pillow.readthedocs.io/en/stable/reference/ImageDraw.html
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

from loadtest.tier_workload import Phases

__all__ = ["draw"]

WIDTH = 1400
LATENCY_HEIGHT = 300
RENDERS_HEIGHT = 200
MARGIN_LEFT, MARGIN_RIGHT, GAP = 80, 170, 40
COLOURS = {"pixring": (31, 119, 180), "nginx": (44, 160, 44), "haproxy": (255, 127, 14)}
NODE_SHADES = ((90, 90, 90), (140, 140, 140), (190, 190, 190), (60, 60, 60), (220, 220, 220))
LOW_MS, HIGH_MS = 1.0, 20_000.0  # the latency axis: 1 ms to 20 s, log scale
ERROR_TICK = 40


def _y_log(value_ms: float, top: int, height: int) -> float:
    value = min(max(value_ms, LOW_MS), HIGH_MS)
    share = (math.log10(value) - math.log10(LOW_MS)) / (math.log10(HIGH_MS) - math.log10(LOW_MS))
    return top + height - share * height


def _latency_panel(pen: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, top: int, title: str, phases: Phases,
                   series_by_front: Mapping[str, Sequence[Mapping[str, float]]],
                   events: Mapping[str, Mapping[str, float]]) -> None:
    left, right, height = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, LATENCY_HEIGHT

    def x(t: float) -> float:
        return left + (right - left) * t / phases.duration

    pen.rectangle((x(phases.burst_start), top, x(phases.burst_end), top + height), fill=(255, 245, 200))
    pen.text((x(phases.burst_start) + 4, top + 4), "burst", fill=(150, 120, 0), font=font)
    pen.rectangle((left, top, right, top + height), outline=(0, 0, 0))
    for ms in (1, 10, 100, 1000, 10_000):
        y = _y_log(ms, top, height)
        pen.line((left, y, right, y), fill=(225, 225, 225))
        pen.text((8, y - 6), f"{ms:g} ms" if ms < 1000 else f"{ms // 1000:g} s", fill=(0, 0, 0), font=font)
    for t in range(0, int(phases.duration) + 1, 10 if phases.duration > 40 else 5):
        pen.text((x(t) - 6, top + height + 4), f"{t}s", fill=(0, 0, 0), font=font)
    for front, colour in COLOURS.items():
        mark = events.get(front, {})
        for name, dash in (("kill", False), ("restart", True)):
            if name in mark:
                xx = x(mark[name])
                for y0 in range(top, top + height, 8 if dash else height):
                    pen.line((xx, y0, xx, min(y0 + (4 if dash else height), top + height)), fill=(200, 0, 0))
    pen.text((x(phases.kill_at) + 4, top + 4), "kill -9", fill=(200, 0, 0), font=font)
    pen.text((x(phases.restart_at) + 4, top + 18), "restart", fill=(200, 0, 0), font=font)
    for f, (front, rows) in enumerate(series_by_front.items()):
        colour = COLOURS.get(front, (0, 0, 0))
        points = [(x(row["t"] + 0.5), _y_log(row["p99_ms"], top, height)) for row in rows
                  if not math.isnan(row["p99_ms"])]
        if len(points) > 1:
            pen.line(points, fill=colour, width=2)
        for row in rows:  # failed share of the second: a tick up to ERROR_TICK pixels
            if row["errors"]:
                tick = ERROR_TICK * row["errors"] / max(row["requests"], 1)
                xx = x(row["t"]) + 3 * f
                pen.rectangle((xx, top + height - tick, xx + 2, top + height), fill=colour)
    pen.text((left, top - 18), f"{title}: p99 latency per second (from scheduled send time); ticks at the bottom: "
             f"share of the second's requests that failed (full height {ERROR_TICK}px = all)", fill=(0, 0, 0), font=font)
    for i, front in enumerate(series_by_front):
        pen.line((right + 15, top + 20 + 18 * i, right + 45, top + 20 + 18 * i), fill=COLOURS.get(front, (0, 0, 0)),
                 width=3)
        pen.text((right + 52, top + 13 + 18 * i), front, fill=(0, 0, 0), font=font)


def _renders_panel(pen: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, top: int, title: str,
                   renders: Mapping[str, Mapping[str, float]]) -> None:
    left, right, height = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, RENDERS_HEIGHT
    pen.text((left, top - 18), f"{title}: renders per renderer", fill=(0, 0, 0), font=font)
    pen.rectangle((left, top, right, top + height), outline=(0, 0, 0))
    peak = max((v for nodes in renders.values() for v in nodes.values()), default=0) or 1
    group_width = (right - left) / max(len(renders), 1)
    for g, (front, nodes) in enumerate(renders.items()):
        bar = group_width * 0.7 / max(len(nodes), 1)
        start = left + g * group_width + group_width * 0.15
        for n, (node, value) in enumerate(nodes.items()):
            x0 = start + n * bar
            y0 = top + height - 20 - (height - 40) * value / peak
            pen.rectangle((x0 + 2, y0, x0 + bar - 2, top + height - 20), fill=NODE_SHADES[n % len(NODE_SHADES)],
                          outline=COLOURS.get(front, (0, 0, 0)), width=2)
            pen.text((x0 + 4, y0 - 14), f"{node} {value:.0f}", fill=(0, 0, 0), font=font)
        total = sum(nodes.values())
        pen.text((start, top + height - 16), f"{front}: {total:.0f} renders", fill=COLOURS.get(front, (0, 0, 0)),
                 font=font)


def draw(path: Path, phases: Phases, series_by_variant: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]],
         renders_by_variant: Mapping[str, Mapping[str, Mapping[str, float]]],
         events_by_variant: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    """``series_by_variant[variant][front]``: ``tier_report.time_series`` rows."""
    variants = list(series_by_variant)
    block = LATENCY_HEIGHT + RENDERS_HEIGHT + 3 * GAP
    image = Image.new("RGB", (WIDTH, GAP + block * max(len(variants), 1)), "white")
    pen = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for i, variant in enumerate(variants):
        top = GAP + i * block
        _latency_panel(pen, font, top, variant, phases, series_by_variant[variant], events_by_variant.get(variant, {}))
        _renders_panel(pen, font, top + LATENCY_HEIGHT + 2 * GAP, variant, renders_by_variant.get(variant, {}))
    image.save(path)
