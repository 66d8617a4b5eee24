"""The renderer's failures, each carrying the HTTP status it answers with.

Rules: every way a request can fail on purpose is one of these classes, so the app maps
errors to responses in one place and never answers a client's mistake with a 500. They
cross the render-worker process boundary, so each keeps ``args == (message, param, expected)`` and
pickles as a plain exception.
"""

from __future__ import annotations

__all__ = [
    "RenderError",
    "BadParam",
    "BadPath",
    "SourceNotFound",
    "SourceTooLarge",
    "UndecodableSource",
    "Overloaded",
    "WorkerLost",
    "RenderTimeout",
    "RenderCancelled",
    "OriginUnavailable",
    "OriginTimeout",
    "OutputTooLarge",
]


class RenderError(Exception):
    """A request that cannot be served; ``status`` is the HTTP answer."""

    status = 500
    # True when the same request may well succeed in a moment: the answer gets Retry-After.
    retryable = False

    def __init__(self, message: str, param: str | None = None, expected: str | None = None) -> None:
        super().__init__(message, param, expected)
        self.message = message
        self.param = param  # the image parameter at fault, if one is
        self.expected = expected  # the form that parameter accepts, in words

    def __str__(self) -> str:
        return self.message


class BadParam(RenderError):
    status = 400


class BadPath(RenderError):
    status = 400


class SourceNotFound(RenderError):
    status = 404


class SourceTooLarge(RenderError):
    status = 413


class UndecodableSource(RenderError):
    status = 422


class Overloaded(RenderError):
    """Every render worker is busy and the wait queue is full; the client should retry."""

    status = 503
    retryable = True


class WorkerLost(RenderError):
    """A render worker process died mid-render (killed, out of memory); the pool was rebuilt."""

    status = 503
    retryable = True


class RenderTimeout(RenderError):
    """The render ran past the renderer's time budget and was stopped.

    503 with Retry-After, like a full queue: a render that outlasts its budget is this
    node being too busy (or the image too costly) for now, which is overload, not a broken
    node, and a balancer must not eject a node for it (the SRE book, "Handling Overload").
    """

    status = 503
    retryable = True


class RenderCancelled(RenderError):
    """The render was stopped because nobody waits for it any more (its client went away).
    Nobody reads this answer; the status only keeps the mapping total."""

    status = 503
    retryable = True


class OriginUnavailable(RenderError):
    """The HTTP origin failed (5xx, refused connection, redirect off the configured host)."""

    status = 502


class OriginTimeout(RenderError):
    """The HTTP origin did not connect or answer in time."""

    status = 504


class OutputTooLarge(BadParam):
    """The requested output has more pixels than this renderer is configured to produce."""
