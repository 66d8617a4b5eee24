"""The tier benchmark's workload: a seeded open-loop schedule of image requests.

The same schedule (send times and the image each request names) is driven through every
front, so the fronts differ only in where they send each request. Pure: no I/O, no asyncio.

Rules of this module
--------------------
* Open loop: a request's send time is fixed here, before any answer exists. Arrivals are a
  Poisson process at ``rate`` (exponential gaps), the usual model of many independent
  clients, climbing to that rate over the warm-up (``RAMP_FLOOR``); the driver sends each request at its time whatever earlier ones are doing, and
  counts its latency from that time (no coordinated omission).
* Popularity is Zipf over the catalogue of ``loadtest.traffic`` (rank k drawn with
  probability ~ 1/k**1.1), built from the sample images in its mix of sizes, fit modes,
  formats and dpr.
* The burst: from ``Phases.burst_start`` for ``burst_seconds``, a share ``BURST_SHARE`` of the
  requests asks for one new image (a source no earlier request named) in the few renditions a
  page's ``srcset`` asks for; the other requests keep their Zipf draws.
* Two variants share the arrivals and the images. ``canonical`` sends every image as its
  canonical URL. ``pages`` sends it as pages do: every image has ``PAGE_SPELLINGS`` fixed
  spellings (the canonical one and equivalents from ``loadtest.spellings``: other parameter
  orders, aliases, defaults written out, tracking parameters; none with a dot segment,
  which browsers resolve before sending), because a page template
  repeats its own spelling and several pages and apps link the same image; a request picks
  one with ``SPELLING_WEIGHTS``. Spellings come from a random stream of their own, so both
  variants name the same images at the same times.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from loadtest.spellings import equivalent_spelling
from loadtest.traffic import Popularity, Target, build_catalog, canonical_target

__all__ = [
    "BURST_SHARE",
    "BURST_SOURCE",
    "PAGE_SPELLINGS",
    "RAMP_FLOOR",
    "SPELLING_WEIGHTS",
    "VARIANTS",
    "ZIPF_EXPONENT",
    "Phases",
    "Request",
    "arrivals",
    "build_schedule",
    "burst_targets",
    "catalog",
    "page_spellings",
]

VARIANTS = ("canonical", "pages")
ZIPF_EXPONENT = 1.1
# 8 sample sources x 40 renditions = 320 distinct renders (the capacity test's catalogue).
# The closed-loop probe the targets come from used 1,120; on this 2-core machine
# shared with other work, three renderers cannot keep up with the first renders of that
# many at a useful request rate, and a saturated fleet measures its queues, not the fronts.
URLS_PER_SOURCE = 40
BURST_SHARE = 0.30
# The new image of the burst: a source the catalogue never names (the runner writes it to the
# origin), asked in a srcset's widths, as a hero image on a front page is.
BURST_SOURCE = "/photos/breaking-news-2400x1600.jpg"
BURST_WIDTHS = (320, 640, 960, 1280)
# The warm-up climbs from a tenth of the rate: caches start empty (every front gets fresh
# renderers), and a cold fleet hit at full rate answers 503 for its first seconds whoever is
# in front, which says nothing about the fronts. Production fleets warm up the same way
# (a new node or a new deploy takes traffic gradually).
RAMP_FLOOR = 0.1
PAGE_SPELLINGS = 4
SPELLING_WEIGHTS = (0.4, 0.3, 0.2, 0.1)  # the canonical spelling first


@dataclass(frozen=True, slots=True)
class Phases:
    """The timeline of one run, in seconds from its start."""

    duration: float
    warmup: float  # caches fill from empty as the rate climbs; left out of the latency figures
    burst_start: float
    burst_seconds: float
    kill_at: float  # one renderer gets SIGKILL
    down_seconds: float  # ... and is started again this much later

    def __post_init__(self) -> None:
        if not (0 <= self.warmup <= self.burst_start and self.burst_end <= self.kill_at
                and self.restart_at <= self.duration):
            raise ValueError(f"phases out of order: {self}")

    @property
    def burst_end(self) -> float:
        return self.burst_start + self.burst_seconds

    @property
    def restart_at(self) -> float:
        return self.kill_at + self.down_seconds

    def phase(self, t: float) -> str:
        """The phase a send time falls in: warmup, steady, burst or failure (kill to the end)."""
        if t < self.warmup:
            return "warmup"
        if self.burst_start <= t < self.burst_end:
            return "burst"
        if t >= self.kill_at:
            return "failure"
        return "steady"

    @classmethod
    def full(cls) -> "Phases":
        # The burst (20 s) and outage (10 s), with room before and after each.
        return cls(duration=100.0, warmup=15.0, burst_start=35.0, burst_seconds=20.0, kill_at=70.0,
                   down_seconds=10.0)

    @classmethod
    def quick(cls) -> "Phases":
        # The same phases, shortened so that six runs fit in under four minutes.
        return cls(duration=28.0, warmup=8.0, burst_start=10.0, burst_seconds=6.0, kill_at=19.0,
                   down_seconds=5.0)


@dataclass(frozen=True, slots=True)
class Request:
    at: float  # scheduled send time, seconds from the start of the run
    url: str  # what is sent (path and query)
    key: str  # the canonical URL of the image: what the request means
    burst: bool  # asks for the burst's new image


def catalog(seed: int) -> tuple[Target, ...]:
    return build_catalog(urls_per_source=URLS_PER_SOURCE, seed=seed)


def burst_targets() -> tuple[Target, ...]:
    return tuple(canonical_target(BURST_SOURCE, [("w", str(w)), ("fm", "webp"), ("fit", "max")])
                 for w in BURST_WIDTHS)


def arrivals(rate: float, duration: float, rng: random.Random, ramp: float = 0.0) -> list[float]:
    """Poisson arrival times in [0, duration) at ``rate`` per second; over the first ``ramp``
    seconds the rate climbs linearly from ``RAMP_FLOOR`` x ``rate`` (thinning: a candidate at
    time t is kept with probability rate(t) / rate)."""
    if not rate > 0:
        raise ValueError(f"rate must be positive, not {rate!r}")
    times: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        keep = rng.random()
        if t >= ramp or keep < RAMP_FLOOR + (1 - RAMP_FLOOR) * t / ramp:
            times.append(t)
        t += rng.expovariate(rate)
    return times


def _sent_by_browsers(url: str) -> bool:
    """Whether a browser would send ``url`` as written: it resolves dot segments (``/./``,
    ``/../``) before sending (RFC 3986 section 5.2.4; the WHATWG URL standard's path state),
    so no page's request carries one, whatever its HTML says."""
    path = url.partition("?")[0]
    return "/./" not in path and "/../" not in path


def page_spellings(target: Target, rng: random.Random, count: int = PAGE_SPELLINGS) -> list[str]:
    """``count`` spellings of ``target`` as browsers send them: its canonical URL first, then
    distinct equivalents."""
    spellings = [target.url]
    for _ in range(count * 20):
        if len(spellings) == count:
            break
        url = equivalent_spelling(target, rng)
        if url not in spellings and _sent_by_browsers(url):
            spellings.append(url)
    return spellings


def build_schedule(phases: Phases, rate: float, variant: str, seed: int,
                   targets: Sequence[Target], burst: Sequence[Target]) -> list[Request]:
    """Every request of one run, in send order: the same for the same arguments, and the same
    send times and images for both variants."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    if not targets or not burst:
        raise ValueError("the schedule needs catalogue targets and burst targets")
    draws = random.Random(f"pixring-tier-draws-{seed}")
    choosing = random.Random(f"pixring-tier-spelling-choice-{seed}")
    spelling_rng = random.Random(f"pixring-tier-spellings-{seed}")
    popularity = Popularity(len(targets), ZIPF_EXPONENT)
    spellings: dict[str, list[str]] = {}
    schedule: list[Request] = []
    for at in arrivals(rate, phases.duration, draws, ramp=phases.warmup):
        in_burst = phases.burst_start <= at < phases.burst_end and draws.random() < BURST_SHARE
        target = draws.choice(burst) if in_burst else targets[popularity.draw(draws)]
        pick = choosing.choices(range(PAGE_SPELLINGS), SPELLING_WEIGHTS)[0]
        url = target.url
        if variant == "pages":
            if target.url not in spellings:
                spellings[target.url] = page_spellings(target, spelling_rng)
            options = spellings[target.url]
            url = options[min(pick, len(options) - 1)]
        schedule.append(Request(at, url, target.url, in_burst))
    return schedule
