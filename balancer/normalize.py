"""URL normalization: a raw request target -> the hash key and the target sent upstream.

Every URL that renders the same image must map to the same key (so it lands on the node
that already has the render cached), and no two URLs that could render differently may
share one. This module is a pure core: bytes in, a ``Route`` or a ``NormalizeError`` out.

Rules of this module
--------------------
* Origin-form targets (RFC 9112 §3.2.1: ``/path?query``) are what clients send. Absolute
  form (``http://host/path?query``) is accepted too, as RFC 9112 §3.2.2 says a server MUST:
  its authority is checked like a Host field and then ignored, as the Host is, so the
  route and what the node receives are those of ``/path?query``. Authority form
  (``host:443``), asterisk form (``*``), another scheme, userinfo, or anything else is a
  400: no part of a target ever chooses where pixring connects, so it is never an open proxy.
* Bytes: controls (0x00-0x1F, 0x7F), space and ``#`` are a 400, so are malformed escapes
  (``%zz``, ``%4``) and an encoded NUL (``%00``) anywhere, and encoded controls in the path.
  Bytes that RFC 3986 does not allow raw but that clients do send (non-ASCII UTF-8,
  ``" < > \\ ^ ` { | }``) are percent-encoded, exactly as a browser would have sent them,
  so the raw and the encoded request share a key.
* Path (RFC 3986 §6.2.2): escapes of unreserved characters are decoded, other escapes get
  upper-case hex; ``%2F`` stays encoded (it is data, not a separator); dot segments (also
  ``%2E%2E``) are removed and duplicate slashes collapsed; a path that climbs above the
  root is a 400. A trailing slash is kept (``/a/`` and ``/a`` may differ on a backend).
* Profile ``imgix`` (the key IS the upstream target): the query is rebuilt from
  ``pixring.schema``: names lower-cased and alias-resolved, ``<name>64`` decoded, values in
  canonical form, defaults dropped (``schema.without_defaults``), parameters sorted by name;
  every parameter the schema does not know (tracking junk included) is dropped. A bad value
  for a known parameter is a 400 naming it, here rather than on the node: the node would
  answer the same 400 after a wasted hop. ``+`` in the query is a space (HTML form encoding),
  as the renderer's aiohttp reads it.
* Profile ``generic`` (opaque backends): the path is normalized the same way; query pairs
  are kept byte-for-byte apart from escape normalization (RFC 3986 §6.2.2.2), denylisted
  names (``utm_*``, ``fbclid``, ... compared case-insensitively) are dropped, and the rest
  sorted by name, stably, so the relative order of repeated names (which an opaque backend
  may care about) survives. The raw target is forwarded unchanged (its origin-form part,
  for an absolute-form target).
* A bounded LRU dict of raw target -> Route keeps repeated URLs at a dict look-up. Errors
  are not cached (a client repeating a bad URL gains nothing from it).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence
from urllib.parse import unquote

from balancer.headers import VALID_HOST
from pixring import schema
from pixring.wire import MAX_TARGET_LENGTH

__all__ = [
    "DEFAULT_DENYLIST",
    "PROFILES",
    "NormalizeError",
    "Route",
    "make_normalizer",
    "normalize_path",
]

PROFILES = ("imgix", "generic")

# Query parameters that only track the visitor and never change the response: Google
# Analytics/Ads (utm_*, gclid, dclid, gbraid, wbraid, _ga, _gl), Meta (fbclid), Microsoft
# (msclkid), Mailchimp (mc_cid, mc_eid), Yandex (yclid), Instagram (igshid), HubSpot
# (_hsenc, _hsmi), Marketo (mkt_tok). A trailing ``*`` makes an entry a prefix.
DEFAULT_DENYLIST: tuple[str, ...] = (
    "utm_*", "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid",
    "_ga", "_gl", "yclid", "igshid", "_hsenc", "_hsmi", "mkt_tok",
)


class NormalizeError(ValueError):
    """A request target pixring refuses: ``status`` (400, or 414 when too long) and ``reason``.

    ``param`` names the image parameter at fault, when one is.
    """

    def __init__(self, reason: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.param = param


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: ``key`` for the ring and caches, ``upstream_target`` (ASCII
    origin-form bytes) for the request line sent to the node."""

    key: str
    upstream_target: bytes


# ---------------------------------------------------------------------------- bytes

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Everything RFC 3986 allows raw in a path or query, plus "%" (escapes are checked apart).
_ALLOWED = _UNRESERVED | frozenset(b"!$&'()*+,;=:@/?%")
_CLEAN_TARGET = re.compile(rb"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _escape_table() -> dict[str, str]:
    """Every spelling of every escape's two hex digits -> its canonical form (a look-up
    instead of int() per escape on the hot path)."""
    table = {}
    for code in range(256):
        canonical = chr(code) if code in _UNRESERVED else f"%{code:02X}"
        high, low = f"{code:02x}"
        for high_case in {high, high.upper()}:
            for low_case in {low, low.upper()}:
                table[high_case + low_case] = canonical
    return table


_ESCAPES = _escape_table()


def _is_control_escape(hex_digits: str) -> bool:
    code = int(hex_digits, 16)
    return code < 0x20 or code == 0x7F


# The scheme is case-insensitive (RFC 3986 section 3.1); the authority runs to the first
# "/", "?" or "#" (section 3.2).
_ABSOLUTE_FORM = re.compile(rb"[Hh][Tt][Tt][Pp][Ss]?://([^/?#]*)")


def origin_form(raw: bytes) -> bytes:
    """``raw`` as an origin-form target: itself, or the path and query of an absolute-form one.

    The authority of an absolute-form target must be a well-formed host[:port] (the Host
    field's syntax, RFC 9112 section 3.2) and is otherwise ignored: RFC 9112 section 3.2.2
    has the server use it in place of the Host, and pixring routes by neither.
    """
    if raw.startswith(b"/"):
        return raw
    if not raw:
        raise NormalizeError("empty request target")
    absolute = _ABSOLUTE_FORM.match(raw)
    if absolute is None:
        raise NormalizeError("request target must be a path starting with '/' (origin-form) or an http(s) URL "
                             "(absolute-form); authority and asterisk forms are refused")
    authority = absolute.group(1)
    if b"@" in authority:
        raise NormalizeError("userinfo ('user@') in the request target's authority is not allowed")
    if not authority or not VALID_HOST(authority):
        raise NormalizeError("the request target's authority is not a valid host[:port]")
    rest = raw[absolute.end():]
    return rest if rest.startswith(b"/") else b"/" + rest


def _target_text(raw: bytes) -> str:
    """The origin-form target as ASCII text: validated, oddities percent-encoded, escapes
    well formed."""
    if _CLEAN_TARGET.fullmatch(raw) is None:
        encoded = bytearray()
        for byte in raw:
            if byte in _ALLOWED:
                encoded.append(byte)
            elif byte <= 0x20 or byte == 0x7F:
                raise NormalizeError(f"control character or space (0x{byte:02X}) in request target")
            elif byte == 0x23:
                raise NormalizeError("'#' (a fragment) is not allowed in a request target")
            else:
                encoded += b"%%%02X" % byte
        raw = bytes(encoded)
    text = raw.decode("ascii")
    if "%" in text:
        if _BAD_ESCAPE.search(text):
            raise NormalizeError("malformed percent-escape in request target ('%' must be followed by two hex digits)")
        if "%00" in text:
            raise NormalizeError("encoded NUL (%00) in request target")
    return text


def _normalize_escapes(text: str) -> str:
    return _ESCAPE.sub(lambda match: _ESCAPES[match.group(1)], text)


# ---------------------------------------------------------------------------- path

def normalize_path(path: str) -> str:
    """The canonical form of an ASCII absolute path with well-formed escapes.

    Raises NormalizeError for an encoded control character or a climb above the root.
    """
    if "%" in path:
        for hex_digits in _ESCAPE.findall(path):
            if _is_control_escape(hex_digits):
                raise NormalizeError(f"encoded control character (%{hex_digits.upper()}) in path")
        path = _normalize_escapes(path)
    if "//" not in path and "/." not in path:
        return path
    segments = path.split("/")[1:]
    kept: list[str] = []
    trailing_slash = False
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "..":
            if not kept:
                raise NormalizeError("path climbs above the root ('..' segment)")
            kept.pop()
        elif segment not in (".", ""):
            kept.append(segment)
            continue
        # ".", "..", or an empty segment (a duplicate slash, or the trailing one).
        trailing_slash = index == last
    if not kept:
        return "/"
    return "/" + "/".join(kept) + ("/" if trailing_slash else "")


# ---------------------------------------------------------------------------- query

def _form_decode(text: str) -> str:
    if "+" in text:
        text = text.replace("+", " ")
    if "%" in text:
        # Invalid UTF-8 survives as lone surrogates: never a known name, and every value
        # parser in the schema rejects non-ASCII, so no error is lost.
        text = unquote(text, errors="surrogateescape")
    return text


def _imgix_query(query: str) -> str:
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            if "%" in part or "+" in part:
                name, value = _form_decode(name), _form_decode(value)
            pairs.append((name, value))
    try:
        params = schema.without_defaults(schema.parse_query(pairs))
    except schema.ParamError as error:
        raise NormalizeError(str(error), param=error.name) from None
    return schema.canonical_query(params)


def _denied(denylist: Sequence[str]) -> Callable[[str], bool]:
    exact = set()
    prefixes = []
    for entry in denylist:
        if not isinstance(entry, str) or not entry or "*" in entry[:-1] or entry == "*":
            raise ValueError(f"denylist entry {entry!r}: expected a name or a prefix ending in '*'")
        if entry.endswith("*"):
            prefixes.append(entry[:-1].lower())
        else:
            exact.add(entry.lower())
    prefix_tuple = tuple(prefixes)

    def denied(name: str) -> bool:
        folded = _form_decode(name).lower()
        return folded in exact or folded.startswith(prefix_tuple)

    return denied


def _generic_query(query: str, denied: Callable[[str], bool]) -> str:
    kept = []
    for part in query.split("&"):
        if part:
            name = part.partition("=")[0]
            if not denied(name):
                kept.append((_normalize_escapes(name) if "%" in name else name,
                             _normalize_escapes(part) if "%" in part else part))
    kept.sort(key=lambda pair: pair[0])  # stable: repeated names keep their order
    return "&".join(part for _, part in kept)


# ---------------------------------------------------------------------------- assembly

def make_normalizer(
    profile: str = "imgix",
    *,
    denylist: Sequence[str] = DEFAULT_DENYLIST,
    cache_size: int = 4096,
    max_target_length: int = MAX_TARGET_LENGTH,
) -> Callable[[bytes], Route]:
    """A function raw request-target bytes -> Route, raising NormalizeError for a bad target.

    ``denylist`` applies to the ``generic`` profile (``imgix`` drops every parameter its
    schema does not know, which covers tracking parameters). ``cache_size`` bounds the LRU
    of recent targets (0 disables it). ``max_target_length`` is the balancer's
    ``max_request_line``, so one setting governs the 414.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown normalization profile {profile!r}: expected one of {', '.join(PROFILES)}")
    if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
        raise ValueError(f"cache_size {cache_size!r}: expected an integer >= 0")
    denied = _denied(denylist)
    generic = profile == "generic"

    def route_of(raw: bytes) -> Route:
        if len(raw) > max_target_length:
            raise NormalizeError(f"request target longer than {max_target_length} bytes", status=414)
        raw = origin_form(raw)
        text = _target_text(raw)
        path, question, query = text.partition("?")
        path = normalize_path(path)
        if generic:
            query = _generic_query(query, denied) if question else ""
            return Route(path + "?" + query if query else path, raw)
        query = _imgix_query(query) if question else ""
        key = path + "?" + query if query else path
        return Route(key, key.encode("ascii"))

    if cache_size == 0:
        def normalize_uncached(raw: bytes) -> Route:
            return route_of(raw if type(raw) is bytes else bytes(raw))
        return normalize_uncached

    cache: OrderedDict[bytes, Route] = OrderedDict()
    lookup = cache.get
    refresh = cache.move_to_end

    def normalize(raw: bytes) -> Route:
        if type(raw) is not bytes:
            raw = bytes(raw)  # bytearray/memoryview: hashable copy for the cache
        route = lookup(raw)
        if route is not None:
            refresh(raw)
            return route
        route = route_of(raw)
        cache[raw] = route
        if len(cache) > cache_size:
            cache.popitem(last=False)
        return route

    return normalize
