"""Coalescing identical requests: which requests may share one upstream request, and
which answers may be shared.

A fresh image on a busy page is asked for by many clients at once, and a node that does
not coalesce (thumbor does not) renders it once per concurrent request. Within a worker,
pixring sends the first such request upstream (the *leader*) and parks the identical ones
that arrive before its answer does (the *followers*); they get a copy of the leader's
answer when it can be shared, and otherwise each goes upstream on its own, as Varnish and
Fastly do for answers they cannot cache:

* Two requests are identical when they forward the same target (the canonical key under
  the imgix profile, the raw target under the generic one) and carry the same values of
  the fields that select a variant: ``Accept`` (a renderer may choose the format by it:
  kept whether or not the answer turns out to vary on it, so no client ever gets a format
  it did not accept) and ``Accept-Encoding``.
* Only an unconditional GET coalesces: never HEAD, a conditional request (its answer
  depends on what the client holds), one with ``Range``, ``Authorization`` or ``Cookie``
  (its answer may be the client's own).
* An answer is shared when it is a success or a 404, carries no ``Set-Cookie``, is not
  ``Cache-Control: private`` or ``no-store``, does not ``Vary`` on a field outside the
  two above, came whole, and fits ``max_body``. An error answer (a 5xx, a shed 503
  included) is never shared: each follower then tries on its own, with its own deadline.

Documents relied on: RFC 9111 sections 3 (storing responses), 4.1 (Vary) and 5.2.2
(Cache-Control response directives); Varnish's request coalescing and its hit-for-miss
objects (https://varnish-cache.org/docs/trunk/users-guide/vcl-hashing.html).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["CoalescePolicy", "CoalesceError", "variant", "shareable_head", "SHAREABLE_STATUSES"]

SHAREABLE_STATUSES: Final = frozenset({200, 404})
# Request fields whose presence means the answer may be this client's alone.
_PERSONAL: Final = frozenset({
    b"authorization", b"cookie", b"range", b"if-match", b"if-none-match", b"if-modified-since",
    b"if-unmodified-since", b"if-range",
})
_VARIANT_FIELDS: Final = frozenset({b"accept", b"accept-encoding"})


class CoalesceError(ValueError):
    """A coalescing policy that cannot be used."""


@dataclass(frozen=True, slots=True)
class CoalescePolicy:
    # An image answer is rarely over a few MiB; a larger one is passed to the leader
    # alone and the followers go upstream on their own.
    max_body: int = 8 * 1024 * 1024
    # All the answers a worker holds for followers at once.
    max_worker_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_body", "max_worker_bytes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise CoalesceError(f"{name} must be an integer >= 0, got {value!r}")


def variant(method: bytes, fields: list[bytes]) -> bytes | None:
    """What, besides the target, selects the answer of a request: the values of its
    variant fields, or None when the request may not coalesce.

    ``fields`` is the request's end-to-end fields as the front lays them out: name,
    ``": "``, value, CRLF, one field after another."""
    if method != b"GET":
        return None
    accept = b""
    encoding = b""
    for i in range(0, len(fields) - 3, 4):
        name = fields[i].lower()
        if name in _PERSONAL:
            return None
        if name == b"accept":
            accept = accept + b"," + fields[i + 2] if accept else fields[i + 2]
        elif name == b"accept-encoding":
            encoding = encoding + b"," + fields[i + 2] if encoding else fields[i + 2]
    return accept + b"\n" + encoding


def shareable_head(status: int, fields: list[bytes]) -> bool:
    """Whether an answer with this status and these end-to-end fields (laid out as in
    ``variant``) may be given to other clients than the one that asked."""
    if status not in SHAREABLE_STATUSES:
        return False
    for i in range(0, len(fields) - 3, 4):
        name = fields[i].lower()
        if name == b"set-cookie":
            return False
        if name == b"cache-control":
            for directive in fields[i + 2].lower().split(b","):
                token = directive.strip().split(b"=", 1)[0].strip()
                if token == b"private" or token == b"no-store":
                    return False
        elif name == b"vary":
            for varied in fields[i + 2].lower().split(b","):
                token = varied.strip()
                if token and token not in _VARIANT_FIELDS:
                    return False  # "*" or a field the flight does not compare
    return True
