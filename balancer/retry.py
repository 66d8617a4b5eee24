"""The retry budget and the backoff between tries.

Pure: counters and arithmetic; the clock and the randomness are the caller's.

Rules of this module:

* A retry is allowed only while the retries in flight stay within
  ``max(min_concurrent, budget_ratio * active_requests)``: Envoy's retry budget, whose
  defaults are 20% of active requests and a minimum of 3 concurrent retries. When the whole
  fleet fails, retries are capped at a fraction of the load instead of multiplying it by
  the number of attempts; when traffic is light, a few retries always go through.
* A refused retry is counted in ``exhausted_total`` (Envoy's ``upstream_rq_retry_overflow``).
* Backoff is "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015;
  Envoy's retry back-off is the same shape): a uniform draw from
  ``[0, min(backoff_max_s, backoff_base_s * 2 ** (attempt - 1)))``. Attempt 0 is the first
  try and waits nothing. Envoy's defaults are 25 ms base and 10x that as the cap; ours are
  shorter because the next member is a different node, not the same one recovering.

Documents relied on:
  https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/circuit_breaker.proto
  (``retry_budget``: ``budget_percent`` 20%, ``min_retry_concurrency`` 3)
  https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter
  (``x-envoy-max-retries``, retry back-off)
  https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Final

from mypy_extensions import mypyc_attr

__all__ = ["RetryPolicy", "RetryBudget", "RetryError", "backoff_s"]


class RetryError(ValueError):
    """A retry policy or a backoff argument that cannot be used."""


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Checked by __post_init__, not by compiled field types: mypyc (balancer/compile.py)
# would raise a bare TypeError, or take True for 1, before the check could name the field.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    budget_ratio: float = 0.2  # Envoy's budget_percent default, 20%
    min_concurrent: int = 3  # Envoy's min_retry_concurrency default
    backoff_base_s: float = 0.005
    backoff_max_s: float = 0.05

    def __post_init__(self) -> None:
        # Read untyped: compiled code would check the declared types on a plain read.
        ratio, n, base, cap = [getattr(self, name)
                               for name in ("budget_ratio", "min_concurrent", "backoff_base_s", "backoff_max_s")]
        if not (_finite(ratio) and 0 <= ratio <= 1):
            raise RetryError(f"budget_ratio must be between 0 and 1, got {ratio!r}")
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 0):
            raise RetryError(f"min_concurrent must be an integer >= 0, got {n!r}")
        if not (_finite(base) and base >= 0):
            raise RetryError(f"backoff_base_s must be a finite number >= 0, got {base!r}")
        if not (_finite(cap) and cap >= base):
            raise RetryError(f"backoff_max_s must be a finite number >= backoff_base_s ({base!r}), got {cap!r}")


class RetryBudget:
    """Counts requests and retries in flight and says whether one more retry may start.

    The caller pairs every ``request_started`` with a ``request_finished`` and every granted
    ``try_retry`` with a ``retry_finished``. An unpaired finish is ignored rather than
    driving a counter negative, which would open the budget wide.
    """

    __slots__ = ("policy", "active_requests", "active_retries", "exhausted_total", "retries_total")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.active_requests = 0
        self.active_retries = 0
        self.exhausted_total = 0
        self.retries_total = 0

    @property
    def limit(self) -> int:
        """Retries that may be in flight now."""
        return max(self.policy.min_concurrent, math.floor(self.policy.budget_ratio * self.active_requests))

    def request_started(self) -> None:
        self.active_requests += 1

    def request_finished(self) -> None:
        if self.active_requests > 0:
            self.active_requests -= 1

    def try_retry(self) -> bool:
        if self.active_retries < self.limit:
            self.active_retries += 1
            self.retries_total += 1
            return True
        self.exhausted_total += 1
        return False

    def retry_finished(self) -> None:
        if self.active_retries > 0:
            self.active_retries -= 1


# 2 ** 1000 would still be a float, but nobody waits that long: past this the cap rules.
_MAX_DOUBLINGS: Final = 62


def backoff_s(attempt: int, policy: RetryPolicy, rand: Callable[[], float]) -> float:
    """Seconds to wait before try number ``attempt`` (0 = the first try, 1 = the first
    retry): full jitter under an exponentially growing, capped ceiling. ``rand`` returns
    a float in [0, 1), like ``random.Random().random``."""
    if not (isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 0):
        raise RetryError(f"attempt must be an integer >= 0, got {attempt!r}")
    if attempt == 0:
        return 0.0
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))
    return ceiling * min(max(rand(), 0.0), 1.0)
