"""Consul's blocking-query rules, as pure functions a watcher loop obeys.

A blocking query long-polls an endpoint with ``?index=<last X-Consul-Index>&wait=<d>``;
the server answers when the result may have changed or when ``wait`` (plus up to
``wait/16`` of jitter) runs out. An answer is *no guarantee* of a change.
https://developer.hashicorp.com/consul/api-docs/features/blocking lists the rules a
correct client follows, and this module is those rules, nothing else:

- the index is an opaque unsigned integer; compare it as an integer, never as text;
- **reset the index to 0 when it goes backwards** (a snapshot restore, an upgrade),
  which makes the next query answer at once and restarts the loop;
- **never block on an index below 1**: an index of 0 never blocks, and a client
  that keeps sending it spins; 1 is always safe;
- **rate-limit the loop** with a token bucket of burst 2 rather than a fixed sleep, so
  the happy path proceeds at once and only churn is slowed down.

Errors (Consul unreachable, 5xx, garbage) are not part of the protocol: the watcher
backs off exponentially with full jitter ("Exponential Backoff And Jitter", AWS
Architecture Blog, 2015) so a fleet of balancers does not stampede a recovering agent.

No I/O, no clock: callers pass ``now`` and a random number in [0, 1).
"""

from __future__ import annotations

import math

__all__ = [
    "DEFAULT_WAIT_S",
    "MAX_WAIT_S",
    "JITTER_DIVISOR",
    "IndexHeaderError",
    "parse_index",
    "next_index",
    "wait_param",
    "request_timeout_s",
    "backoff_delay_s",
    "TokenBucket",
]

# Both from the blocking-queries page: "If not set, the wait time defaults to 5
# minutes" and "This is limited to 10 minutes".
DEFAULT_WAIT_S = 300.0
MAX_WAIT_S = 600.0
# "This adds up to wait / 16 additional time to the maximum duration."
JITTER_DIVISOR = 16

# A blocking client must wait a little longer than the server may hold the request,
# or it times out answers that are merely late; but not much longer, or a hung agent
# goes unnoticed for a long time.
_TIMEOUT_SLACK_MIN_S = 0.5
_TIMEOUT_SLACK_MAX_S = 5.0


class IndexHeaderError(ValueError):
    """An ``X-Consul-Index`` header that is missing or not an unsigned integer."""


def parse_index(header: str | None) -> int:
    """The ``X-Consul-Index`` value as an integer; garbage raises ``IndexHeaderError``.

    Consul writes the header with Go's ``strconv.FormatUint``: ASCII digits only.
    Anything else (a sign, spaces, a float) did not come from a sane agent.
    """
    if header is None:
        raise IndexHeaderError("answer has no X-Consul-Index header")
    text = header.strip()
    if not (text.isascii() and text.isdigit()):
        raise IndexHeaderError(f"X-Consul-Index {header!r} is not an unsigned integer")
    return int(text)


def next_index(previous: int, returned: int) -> int:
    """The index to send with the next query, given the last one sent and the answer's.

    Backwards -> 0 (start over with a query that answers at once); otherwise the
    returned index, but never below 1 so the next query really blocks.
    """
    if returned < previous:
        return 0
    return max(returned, 1)


def wait_param(wait_s: float) -> str:
    """``wait_s`` as a Go duration string Consul's ``time.ParseDuration`` accepts."""
    if not (math.isfinite(wait_s) and wait_s > 0):
        raise ValueError(f"wait must be a positive number of seconds, got {wait_s!r}")
    return f"{max(1, round(wait_s * 1000))}ms"


def request_timeout_s(wait_s: float) -> float:
    """How long a client waits for one blocking answer before calling the agent hung.

    The server may hold the request for ``wait + wait/16``; the slack on top absorbs
    network and scheduling delay without letting a hung agent go unnoticed for long.
    """
    slack = min(_TIMEOUT_SLACK_MAX_S, max(_TIMEOUT_SLACK_MIN_S, wait_s / 10))
    return wait_s + wait_s / JITTER_DIVISOR + slack


def backoff_delay_s(failures: int, *, base_s: float, cap_s: float, rand: float) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**(failures-1))).

    ``failures`` counts consecutive failures, starting at 1; ``rand`` is in [0, 1).
    """
    if failures < 1:
        return 0.0
    # 2**exponent overflows floats long before it matters; the cap wins far earlier.
    ceiling = min(cap_s, base_s * 2.0 ** min(failures - 1, 60))
    return ceiling * rand


class TokenBucket:
    """A token bucket with reservation: ``reserve(now)`` says how long to wait first.

    Refills ``rate_per_s`` tokens a second up to ``burst``. Each call takes one token,
    going into debt when empty, so callers that honour the returned delay are spaced
    exactly ``1/rate`` apart once the burst is spent. Consul's guidance: burst 2.
    """

    __slots__ = ("_rate", "_burst", "_tokens", "_last")

    def __init__(self, rate_per_s: float, burst: int = 2) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"token bucket rate must be > 0, got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"token bucket burst must be >= 1, got {burst!r}")
        self._rate = float(rate_per_s)
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last: float | None = None

    def reserve(self, now: float) -> float:
        """Take a token; return the seconds to wait before using it (0 when one was ready)."""
        if self._last is not None and now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        if self._last is None or now > self._last:
            self._last = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._rate
