"""The phases of a capacity run and the capacity they show: a warm-up, then the load (one
phase), or steps of rising load until one breaks a limit (``--find-capacity``).

Pure: no locust, no clock, no I/O. The locustfile's load shape asks ``Schedule`` which phase
a moment of the run is in and takes a ``Snapshot`` of locust's running totals at every phase
boundary; ``figures_of`` turns two snapshots into a phase's figures, ``breach`` judges them
against the limits, ``capacity_of`` reads the capacity off the list. The same functions stop
the run (in the shape) and write its summary (``loadtest.capacity_summary``), so the two
cannot disagree about which step broke.

Rules of this module
--------------------
* A warm-up is never counted: its first renders are cold misses that say how fast a cold
  cache fills, not what a warm fleet takes. It is reported on its own ("cold").
* A step is judged on its own requests only (the difference of the snapshots at its start
  and its end), so a slow step cannot hide in a run's average. Percentiles are locust's,
  from the difference of its response-time histograms (``percentile``).
* The capacity is the last step that held before the first that broke, with that step's
  figures; a run whose every step held says its capacity is *at least* the last step's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["asdict", "Limits", "Phase", "PhaseFigures", "Schedule", "Snapshot", "breach", "capacity_of", "figures_of",
           "percentile", "plan_phases"]


def percentile(response_times: Mapping[int, int], fraction: float) -> int:
    """locust's percentile of a ``{rounded ms: count}`` histogram (0 when it is empty): the
    largest recorded time such that at most ``1 - fraction`` of the requests took longer
    (``locust.stats.calculate_response_time_percentile``)."""
    total = sum(response_times.values())
    below = int(total * fraction)
    processed = 0
    for time_ms in sorted(response_times, reverse=True):
        processed += response_times[time_ms]
        if total - processed <= below:
            return time_ms
    return 0


@dataclass(frozen=True)
class Limits:
    max_error_ratio: float = 0.01
    max_p99_ms: float = 1000.0


@dataclass(frozen=True)
class Phase:
    name: str
    users: int
    seconds: float
    counted: bool = True


def plan_phases(*, run_time_s: float, users: int, warm_up_s: float = 0.0, find_capacity: bool = False,
                start_users: int = 10, step_users: int = 10, step_s: float = 15.0, max_users: int = 1000,
                warm_up_users: int | None = None) -> list[Phase]:
    """The run's phases, fitted within ``run_time_s``.

    Plain: a warm-up at ``warm_up_users`` (default ``users``), then ``users`` for the rest.
    Finding capacity: a warm-up at ``start_users``, then ``start_users``, ``+step_users``, ...
    up to ``max_users``, ``step_s`` each, as many whole steps as the time leaves (at least one).
    """
    if run_time_s <= 0:
        raise ValueError("the run time must be more than 0 seconds")
    warm_up_s = max(0.0, min(warm_up_s, run_time_s / 2))
    phases: list[Phase] = []
    if warm_up_s > 0:
        warm = warm_up_users if warm_up_users is not None else (start_users if find_capacity else users)
        phases.append(Phase("warm-up", max(1, warm), warm_up_s, counted=False))
    left = run_time_s - warm_up_s
    if not find_capacity:
        phases.append(Phase("load", users, left))
        return phases
    if step_users < 1 or start_users < 1 or step_s <= 0:
        raise ValueError("steps need at least 1 user to start with, 1 user more each step and a duration")
    count = 0
    level = start_users
    while level <= max_users and left >= step_s:
        count += 1
        phases.append(Phase(f"step {count}", level, step_s))
        left -= step_s
        level += step_users
    if count == 0:  # the time fits no whole step: one shorter step still measures something
        phases.append(Phase("step 1", start_users, left))
    return phases


class Schedule:
    """Which phase a moment of the run (seconds since the shape started) falls in."""

    def __init__(self, phases: Sequence[Phase]) -> None:
        self.phases = list(phases)
        self.ends: list[float] = []
        total = 0.0
        for phase in self.phases:
            total += phase.seconds
            self.ends.append(total)

    @property
    def total_s(self) -> float:
        return self.ends[-1] if self.ends else 0.0

    def index_at(self, elapsed: float) -> int | None:
        """The phase running at ``elapsed``, or None once the last has ended."""
        for index, end in enumerate(self.ends):
            if elapsed < end:
                return index
        return None


@dataclass(frozen=True)
class Snapshot:
    """locust's running totals (all request names together) at one moment."""

    time: float
    requests: int
    failures: int
    response_times: Mapping[int, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "requests": self.requests, "failures": self.failures,
                "response_times": {str(k): v for k, v in self.response_times.items()}}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Snapshot":
        return cls(float(doc["time"]), int(doc["requests"]), int(doc["failures"]),
                   {int(k): int(v) for k, v in (doc.get("response_times") or {}).items()})


@dataclass(frozen=True)
class PhaseFigures:
    name: str
    users: int
    counted: bool
    seconds: float
    requests: int
    failures: int
    p50_ms: int
    p99_ms: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 2), "error_ratio": round(self.error_ratio, 5)}


def figures_of(phase: Phase, start: Snapshot, end: Snapshot) -> PhaseFigures:
    """A phase's own figures: what happened between the snapshots at its start and end."""
    histogram = {t: end.response_times.get(t, 0) - start.response_times.get(t, 0) for t in end.response_times}
    histogram = {t: n for t, n in histogram.items() if n > 0}
    return PhaseFigures(phase.name, phase.users, phase.counted, max(0.0, end.time - start.time),
                        max(0, end.requests - start.requests), max(0, end.failures - start.failures),
                        percentile(histogram, 0.50), percentile(histogram, 0.99))


def breach(figures: PhaseFigures, limits: Limits) -> tuple[str, str] | None:
    """(limit, why) when a phase broke a limit, else None. The error ratio is judged first:
    a step that fails fast can have a fine p99."""
    if figures.requests == 0:
        return "error_ratio", "no request was answered"
    if figures.error_ratio > limits.max_error_ratio:
        return "error_ratio", (f"error ratio {100 * figures.error_ratio:.2f}% over the limit "
                               f"{100 * limits.max_error_ratio:.2f}%")
    if figures.p99_ms > limits.max_p99_ms:
        return "p99", f"p99 {figures.p99_ms} ms over the limit {limits.max_p99_ms:g} ms"
    return None


def capacity_of(figures: Iterable[PhaseFigures], limits: Limits) -> dict[str, Any]:
    """The capacity a run found: the last counted phase that held before the first that broke.

    ``limit_hit`` is ``"p99"`` or ``"error_ratio"`` when a phase broke one, None when every
    phase held (the capacity is then at least the last phase's rate: the run ended first)."""
    held: PhaseFigures | None = None
    broke: PhaseFigures | None = None
    peak: PhaseFigures | None = None
    why = limit = None
    for phase in figures:
        if not phase.counted:
            continue
        if peak is None or phase.rps > peak.rps:
            peak = phase
        verdict = breach(phase, limits)
        if verdict is not None:
            broke, (limit, why) = phase, verdict
            break
        held = phase
    return {
        "capacity_rps": round(held.rps, 2) if held else 0.0,
        "users_at_capacity": held.users if held else 0,
        "p50_ms_at_capacity": held.p50_ms if held else None,
        "p99_ms_at_capacity": held.p99_ms if held else None,
        "error_ratio_at_capacity": round(held.error_ratio, 5) if held else None,
        "phase_at_capacity": held.name if held else None,
        "limit_hit": limit,
        "broke_at": None if broke is None else {"phase": broke.name, "users": broke.users, "why": why,
                                                "rps": round(broke.rps, 2), "p99_ms": broke.p99_ms,
                                                "error_ratio": round(broke.error_ratio, 5)},
        "limits": {"max_error_ratio": limits.max_error_ratio, "max_p99_ms": limits.max_p99_ms},
        # The most req/s any counted phase (the broken one included) served: past it, more
        # users only queue, even while the latency limit still holds.
        "peak_rps": round(peak.rps, 2) if peak else 0.0,
        "phase_at_peak": peak.name if peak else None,
        "users_at_peak": peak.users if peak else 0,
    }
