"""imgix-like traffic for capacity tests: a catalogue of image URLs and a skewed popularity
over it (the equivalent ways clients spell each URL are in ``loadtest.spellings``).

A render fleet's cost is set by what the clients ask for: how many distinct renders, how hot
the hottest are, and whether the balancer sees through the ways one render gets spelled. A
uniform stream of one URL measures none of that, so the capacity test (``loadtest/locustfile.py``)
draws its requests from here. Pure: no I/O, no locust, no gevent, so the unit tests import it.

Rules of this module
--------------------
* The catalogue is a pure function of (sources, URLs per source, seed): every locust process,
  and every rerun, asks for the same URLs. Its parameter sets are drawn from the shapes sites
  actually request (responsive widths, crops to an aspect, a format, sometimes a quality or a
  DPR) and only from values pixring's reference renderer renders
  (``schema.parse_query(..., renderable_only=True)``), so a 400 is never the traffic's fault.
* A target's canonical URL is built by the shared schema (``pixring.schema``: aliases
  resolved, canonical values, defaults dropped, names sorted), so it *is* the key the
  balancer's ``imgix`` profile computes; ``tests/unit/test_loadtest_traffic.py`` checks that
  against ``balancer.normalize`` itself, spelling by spelling.
* Popularity is Zipf-like: the catalogue entry of rank k is drawn with probability
  proportional to ``1 / k**s``. Web and CDN request streams follow this with s around 0.6-0.9
  (Breslau, Cao, Fan, Phillips and Shenker, "Web Caching and Zipf-like Distributions",
  INFOCOM 1999); ``DEFAULT_ZIPF_EXPONENT`` sits in that range. Ranks are assigned by a seeded
  shuffle, so the hot URLs are spread over sources rather than all on the first one.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import Iterable, Sequence
from urllib.parse import quote

from pixring import schema

__all__ = [
    "DEFAULT_SOURCES",
    "DEFAULT_URLS_PER_SOURCE",
    "DEFAULT_ZIPF_EXPONENT",
    "Popularity",
    "Target",
    "build_catalog",
    "canonical_target",
    "source_path",
]


def _sample_sources() -> tuple[str, ...]:
    # The images `pixring up` generates (renderer/samples.py): the one list of their names.
    from renderer.samples import SAMPLES

    return tuple("/" + sample.name for sample in SAMPLES)


DEFAULT_SOURCES: tuple[str, ...] = _sample_sources()
# 8 samples x 40 = 320 distinct renders: enough that a cache must choose, few enough that the
# hot ones are hit many times in a 30 s run.
DEFAULT_URLS_PER_SOURCE = 40
DEFAULT_ZIPF_EXPONENT = 0.8

# Characters a path keeps raw: RFC 3986 pchar minus "%" (escapes are written by quote()).
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


def source_path(text: str) -> str:
    """A source as the canonical absolute path the balancer would key on.

    Accepts ``photos/cat.jpg`` or ``/photos/cat.jpg``; characters a path cannot carry raw are
    percent-encoded (upper-case hex, as the normalizer writes them). A query, a fragment, dot
    segments or empty segments are refused: a source is a plain file path.
    """
    text = text.strip()
    if not text or "?" in text or "#" in text:
        raise ValueError(f"source {text!r}: expected a plain image path such as photos/cat.jpg")
    segments = text.lstrip("/").split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"source {text!r}: empty, '.' or '..' path segments are not allowed")
    return "/" + "/".join(quote(segment, safe=_PATH_SAFE) for segment in segments)


# ---------------------------------------------------------------------------- catalogue


@dataclass(frozen=True, slots=True)
class Target:
    """One distinct render: a source path and its canonical parameters (name, text), sorted."""

    path: str
    params: tuple[tuple[str, str], ...]

    @property
    def url(self) -> str:
        """The canonical URL: what the balancer's ``imgix`` profile keys and forwards."""
        if not self.params:
            return self.path
        return self.path + "?" + "&".join(f"{name}={value}" for name, value in self.params)


def canonical_target(path: str, raw_pairs: Iterable[tuple[str, str]]) -> Target:
    """The target ``path?raw_pairs`` names, through the shared schema; ParamError if invalid
    or not renderable by the reference renderer."""
    parsed = schema.parse_query(list(raw_pairs), renderable_only=True)
    query = schema.canonical_query(schema.without_defaults(parsed))
    pairs = tuple(tuple(part.split("=", 1)) for part in query.split("&")) if query else ()
    return Target(path, pairs)  # type: ignore[arg-type]


# Responsive-image breakpoints (the widths srcset generators such as imgix's own libraries emit
# are of this order); small ones dominate, as thumbnails and cards outnumber hero images.
_WIDTHS = (100, 160, 200, 240, 320, 400, 480, 640, 800, 960, 1080, 1200)
_WIDTH_WEIGHTS = (4, 6, 6, 5, 8, 8, 6, 6, 4, 3, 2, 2)
_RATIOS = ("16:9", "4:3", "1:1", "3:2", "2:3")
_FITS = ("clip", "crop", "max", "fill", "min", "scale", "fillmax", "clamp")
_FIT_WEIGHTS = (30, 35, 15, 5, 5, 4, 3, 3)
_CROPS = ("top", "bottom", "left", "right", "top,left", "bottom,right", "entropy", "focalpoint")
_FORMATS = (None, "webp", "jpg", "png", "pjpg", "avif")
_FORMAT_WEIGHTS = (30, 30, 15, 5, 5, 5)  # None: the source's own format
_COLOURS = ("fff", "000", "f5f5f5", "336699", "80ffffff")
_MAX_OUTPUT_WIDTH = 2400  # w x dpr: what a 3x phone asks for a full-width image


def _draw_params(rng: random.Random) -> list[tuple[str, str]]:
    """One parameter set, in the canonical names (spellings are another module's concern)."""
    pairs: list[tuple[str, str]] = []
    width = rng.choices(_WIDTHS, _WIDTH_WEIGHTS)[0] if rng.random() < 0.9 else None
    fit = rng.choices(_FITS, _FIT_WEIGHTS)[0]
    if width is not None:
        pairs.append(("w", str(width)))
    if fit in ("crop", "fill", "fillmax") or (width is None) or rng.random() < 0.2:
        if rng.random() < 0.3 and width is not None and fit == "crop":
            pairs.append(("ar", rng.choice(_RATIOS)))
        else:
            base = width or rng.choice(_WIDTHS)
            ratio = rng.choice(_RATIOS).split(":")
            pairs.append(("h", str(max(2, base * int(ratio[1]) // int(ratio[0])))))
    pairs.append(("fit", fit))
    if fit == "crop" and rng.random() < 0.4:
        crop = rng.choice(_CROPS)
        pairs.append(("crop", crop))
        if crop == "focalpoint":
            pairs += [("fp-x", rng.choice(("0.3", "0.5", "0.62"))), ("fp-y", rng.choice(("0.25", "0.4", "0.5")))]
    if fit in ("fill", "fillmax") and rng.random() < 0.6:
        pairs.append(("bg", rng.choice(_COLOURS)))
    fmt = rng.choices(_FORMATS, _FORMAT_WEIGHTS)[0]
    auto = []
    if fmt is None and rng.random() < 0.5:
        auto.append("format")
    elif fmt is not None:
        pairs.append(("fm", fmt))
    if rng.random() < 0.2:
        auto.append("compress")
    if auto:
        pairs.append(("auto", ",".join(auto)))
    if rng.random() < 0.35:
        pairs.append(("q", str(rng.choice((40, 50, 60, 70, 75, 80, 85, 90)))))
    if rng.random() < 0.35:
        dpr = rng.choice((1, 1.5, 2, 3))
        if width is None or width * dpr <= _MAX_OUTPUT_WIDTH:
            pairs.append(("dpr", str(dpr)))
    if rng.random() < 0.05:
        pairs.append(rng.choice((("sharp", "10"), ("blur", "20"), ("sat", "-100"), ("con", "15"))))
    return pairs


def build_catalog(
    sources: Sequence[str] = DEFAULT_SOURCES,
    urls_per_source: int = DEFAULT_URLS_PER_SOURCE,
    seed: int = 1,
) -> tuple[Target, ...]:
    """Distinct targets, in popularity order (rank 1 first): the same for the same arguments."""
    if not sources:
        raise ValueError("at least one source image is needed")
    if urls_per_source < 1:
        raise ValueError(f"urls_per_source must be at least 1, not {urls_per_source}")
    rng = random.Random(f"pixring-capacity-catalog-{seed}")
    catalog: list[Target] = []
    seen: set[str] = set()
    for source in sources:
        path = source_path(source)
        found, attempts = 0, 0
        while found < urls_per_source and attempts < urls_per_source * 50:
            attempts += 1
            target = canonical_target(path, _draw_params(rng))
            if target.url not in seen:
                seen.add(target.url)
                catalog.append(target)
                found += 1
    rng.shuffle(catalog)
    return tuple(catalog)


class Popularity:
    """Zipf-like ranks: rank k (0-based index k-1) drawn with probability ~ 1 / k**exponent."""

    def __init__(self, size: int, exponent: float = DEFAULT_ZIPF_EXPONENT) -> None:
        if size < 1:
            raise ValueError(f"a popularity needs at least one rank, not {size}")
        if not exponent >= 0:
            raise ValueError(f"the Zipf exponent must be >= 0 (0 is uniform), not {exponent}")
        self.exponent = exponent
        total, cumulative = 0.0, []
        for rank in range(1, size + 1):
            total += 1.0 / rank**exponent
            cumulative.append(total)
        self._cumulative = cumulative
        self._total = total

    def __len__(self) -> int:
        return len(self._cumulative)

    def draw(self, rng: random.Random) -> int:
        """A 0-based index into the catalogue."""
        return min(bisect.bisect_right(self._cumulative, rng.random() * self._total), len(self) - 1)

    def share_of_top(self, count: int) -> float:
        """The expected share of requests that go to the ``count`` most popular entries."""
        if count <= 0:
            return 0.0
        return self._cumulative[min(count, len(self)) - 1] / self._total
