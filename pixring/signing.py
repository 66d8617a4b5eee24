"""Signed URLs: imgix's scheme, checked by the balancer and made by applications.

Anyone who can reach an image tier can have it render any variant of any image, and a
render costs tens of milliseconds of CPU. A signed URL carries ``s``, a digest of a
secret token and the URL, so only whoever holds the token can mint new variants.

The scheme is imgix's (https://docs.imgix.com/setup/securing-images, and imgix's
blueprint for its client libraries, "securing URLs"):

    s = lowercase hex MD5( token + path + ("?" + query, when query is not empty) )

where ``path`` is the path exactly as sent (percent-escapes and all) and ``query`` is the
query exactly as sent with the ``s`` parameter taken out (the other parameters keep their
order and their spelling). Reordering or re-encoding anything breaks the signature: the
signature covers the bytes, not what they mean. ``expires`` (Unix seconds) is an
ordinary parameter, so it is covered by the signature, and a URL past it is refused.
``hmac-sha256`` is the same message authenticated with HMAC-SHA256, the token as key,
for deployments that want a MAC rather than a keyed hash.

Pure functions, no I/O: ``verify`` answers why a target is refused (or None), ``sign``
returns a URL with its ``s``, ``unsigned`` gives the target without ``s`` and
``expires`` (what the balancer routes and forwards). Comparisons are constant-time
(``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MODES", "signature", "sign", "unsigned", "verify"]

MODES: Final = ("md5", "hmac-sha256")
_S: Final = b"s"
_EXPIRES: Final = b"expires"


def signature(token: bytes, path: bytes, query: bytes, mode: str = "md5") -> str:
    """The hex digest for ``path`` and ``query`` (both as sent, ``query`` without ``s``)."""
    message = path + b"?" + query if query else path
    if mode == "md5":
        return hashlib.md5(token + message).hexdigest()
    if mode == "hmac-sha256":
        return hmac.new(token, message, hashlib.sha256).hexdigest()
    raise ValueError(f"unknown signing mode {mode!r}: expected one of {', '.join(MODES)}")


def _name(pair: bytes) -> bytes:
    return pair.partition(b"=")[0]


def verify(raw_path: bytes, raw_query: bytes, token: bytes, now: float, mode: str = "md5") -> str | None:
    """Why the target ``raw_path?raw_query`` is refused under ``token``, or None when its
    signature is good and it has not expired at ``now`` (Unix seconds)."""
    pairs = raw_query.split(b"&") if raw_query else []
    given = [pair for pair in pairs if _name(pair) == _S]
    if not given:
        return "the URL is not signed (no s parameter)"
    if len(given) > 1:
        return "the URL has more than one s parameter"
    sent = given[0][2:]
    rest = b"&".join(pair for pair in pairs if _name(pair) != _S)
    expected = signature(token, raw_path, rest, mode).encode()
    if not hmac.compare_digest(sent.lower(), expected):
        return "the URL's signature (s) does not match it"
    expires = [pair[8:] for pair in pairs if _name(pair) == _EXPIRES]
    if expires:
        if len(expires) > 1 or not expires[0].isdigit():
            return "expires must be one whole number of Unix seconds"
        if int(expires[0]) <= now:
            return "the signed URL has expired"
    return None


def unsigned(raw_path: bytes, raw_query: bytes) -> bytes:
    """The target without its ``s`` and ``expires`` parameters: what it asks to render."""
    if not raw_query:
        return raw_path
    kept = [pair for pair in raw_query.split(b"&") if _name(pair) not in (_S, _EXPIRES)]
    return raw_path + b"?" + b"&".join(kept) if kept else raw_path


def sign(url: str, token: str, *, expires: int | None = None, mode: str = "md5") -> str:
    """``url`` (absolute, or a path with its query) with ``s`` appended, and ``expires``
    first when given. An ``s`` already there is replaced; the rest is kept as written, so
    the URL should already be in the form it will be sent in (escapes included)."""
    parts = urlsplit(url)
    pairs = [pair for pair in parts.query.split("&") if pair and pair.partition("=")[0] != "s"] \
        if parts.query else []
    if expires is not None:
        pairs = [pair for pair in pairs if pair.partition("=")[0] != "expires"]
        pairs.append(f"expires={int(expires)}")
    query = "&".join(pairs)
    path = parts.path or "/"
    digest = signature(token.encode(), path.encode(), query.encode(), mode)
    query = f"{query}&s={digest}" if query else f"s={digest}"
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))
