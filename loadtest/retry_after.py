"""How long a well-behaved client waits after an answer with ``Retry-After``.

RFC 9110 section 10.2.3: the value is either a number of seconds or an HTTP-date. A 503
with it is a server shedding load; clients that honour it (browsers' fetch retries, CDNs,
the SRE book's "Handling Overload") wait before asking again, and the capacity test's
users do the same, so a run measures a fleet under polite overload, not a retry storm.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

__all__ = ["MAX_WAIT_S", "retry_after_seconds"]

# A user waits at most this long whatever a server says: a capacity run is minutes long.
MAX_WAIT_S = 30.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait for a ``Retry-After`` value, capped at ``MAX_WAIT_S``; None when the
    value is absent or neither form."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_WAIT_S)
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    now = time.time() if now is None else now
    return min(max(0.0, when - now), MAX_WAIT_S)
