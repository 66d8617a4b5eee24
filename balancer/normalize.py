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
  every parameter the schema does not know (tracking junk included) is dropped, and so is
  ``expires`` (checked with the signature before this, never part of the key). Free text
  and URLs (``txt``, ``mark``...) are kept as sent, decoded once and escaped again in one
  canonical way, so ``t=a+b`` and ``txt=a%20b`` share a key. A bad value
  for a known parameter is a 400 naming it, here rather than on the node: the node would
  answer the same 400 after a wasted hop. ``+`` in the query is a space (HTML form encoding),
  as the renderer's aiohttp reads it.
* Profile ``generic`` (opaque backends): the path is normalized the same way; query pairs
  are kept byte-for-byte apart from escape normalization (RFC 3986 §6.2.2.2), denylisted
  names (``utm_*``, ``fbclid``, ... compared case-insensitively) are dropped, and the rest
  sorted by name, stably, so the relative order of repeated names (which an opaque backend
  may care about) survives. The raw target is forwarded unchanged (its origin-form part,
  for an absolute-form target).
* Cost: linear in the target's length with a small constant, whatever it holds. Escapes
  and raw bytes are handled by passes in C over the whole text (regular expressions,
  ``str.translate``, ``map`` over C functions), never a Python step per byte or per escape;
  a query of more than ``MAX_QUERY_PARTS`` (128) ``&``-separated parts is a 400 before any
  other work, since each part costs a Python step; an escaped value longer than 1024
  characters (no number or keyword comes near; free text is held to it) is a 400 before it
  is decoded. ``loadtest/normalize_worst.py``
  measures the worst shapes against a normal URL.
* A bounded LRU dict of raw target -> Route keeps repeated URLs at a dict look-up. Errors
  are not cached (a client repeating a bad URL gains nothing from it).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from operator import itemgetter
from typing import Callable, Sequence

from balancer.headers import VALID_HOST
from pixring import schema
from pixring.wire import MAX_QUERY_PARTS, MAX_TARGET_LENGTH

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
# Bytes refused anywhere in a target: controls, space, DEL and "#".
_REFUSED_BYTE = re.compile(rb"[\x00-\x20\x7f#]")
# The bytes (read as Latin-1) that RFC 3986 does not allow raw -> their escapes: the form
# a browser sends them in.
_ENCODE_OTHERS: dict[int, str] = {code: f"%{code:02X}" for code in range(256) if code not in _ALLOWED}


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


_SLASHES = re.compile(r"//+")
# An escape that is not in canonical form: a lower-case hex digit, or an unreserved
# character (ALPHA, DIGIT, "-", ".", "_", "~") that needs no escape.
_NONCANONICAL_ESCAPE = re.compile(r"%(?:[0-9A-Fa-f][a-f]|[a-f][0-9A-F]|2[DE]|3[0-9]|4[1-9A-F]|5[0-9A]|5F|6[1-9A-F]|7[0-9A]|7E)")
# The escape's two hex digits, and what follows them, of a piece of text split at "%".
_FIRST_TWO = itemgetter(slice(0, 2))
_AFTER_TWO = itemgetter(slice(2, None))
# The two hex digits of every control character's escape, in every spelling.
_CONTROL_ESCAPES = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
# Two hex digits -> the byte they spell as a Latin-1 character, for decoding query names
# and values.
_HEX_CHARS: dict[str, str] = {digits: chr(int(digits, 16)) for digits in _ESCAPES}


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
    if authority.find(b"@") >= 0:  # not ``in``: CPython 3.11 raises and clears a TypeError for it
        raise NormalizeError("userinfo ('user@') in the request target's authority is not allowed")
    if not authority or not VALID_HOST(authority):
        raise NormalizeError("the request target's authority is not a valid host[:port]")
    rest = raw[absolute.end():]
    return rest if rest.startswith(b"/") else b"/" + rest


def _target_text(raw: bytes) -> str:
    """The origin-form target as ASCII text: validated, its escapes well formed and in
    canonical form (RFC 3986 section 6.2.2.2: unreserved ones decoded, hex upper-case),
    oddities percent-encoded the way a browser sends them. Each step is a pass in C over
    the bytes (a regular expression, or ``map`` over C functions), so the cost is linear
    in the length with a small constant, whatever the target holds."""
    clean = _CLEAN_TARGET.fullmatch(raw) is not None
    if not clean:
        refused = _REFUSED_BYTE.search(raw)
        if refused is not None:
            byte = raw[refused.start()]
            if byte == 0x23:
                raise NormalizeError("'#' (a fragment) is not allowed in a request target")
            raise NormalizeError(f"control character or space (0x{byte:02X}) in request target")
    text = raw.decode("latin-1")
    if "%" in text:
        if _BAD_ESCAPE.search(text):
            raise NormalizeError("malformed percent-escape in request target ('%' must be followed by two hex digits)")
        if "%00" in text:
            raise NormalizeError("encoded NUL (%00) in request target")
        # The client's escapes are made canonical before the raw oddities are encoded,
        # since the escapes written below are canonical already.
        if _NONCANONICAL_ESCAPE.search(text) is not None:
            text = _normalize_escapes(text)
    if not clean:
        text = text.translate(_ENCODE_OTHERS)  # one C pass, whatever the bytes
    return text


def _normalize_escapes(text: str) -> str:
    """Every escape in its canonical form (unreserved decoded, hex upper-case).

    The text is split at each ``%`` and every piece's first two characters mapped through
    a table, by ``map`` over C functions: no Python-level step per escape (a ``re.sub``
    callback costs ten times as much, and a target can hold 2,700 escapes).
    """
    pieces = text.split("%")
    rest = pieces[1:]
    escapes = map(_ESCAPES.__getitem__, map(_FIRST_TWO, rest))
    return pieces[0] + "".join(map(str.__add__, escapes, map(_AFTER_TWO, rest)))


# ---------------------------------------------------------------------------- path

def normalize_path(path: str) -> str:
    """The canonical form of an ASCII absolute path with well-formed escapes.

    Raises NormalizeError for an encoded control character or a climb above the root.
    """
    if "%" in path:
        control = _CONTROL_ESCAPES.search(path)
        if control is not None:
            raise NormalizeError(f"encoded control character ({control.group().upper()}) in path")
        if _NONCANONICAL_ESCAPE.search(path) is not None:
            path = _normalize_escapes(path)
    if "//" not in path and "/." not in path:
        return path
    # Single dots and duplicate slashes go in C first (each replace pass at least halves
    # the runs of "/./"); only ".." needs the walk over segments below.
    while "/./" in path:
        path = path.replace("/./", "/")
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if "/." not in path:
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
    """HTML-form decoding of one name or value: ``+`` is a space, escapes are bytes, read
    as UTF-8. Invalid UTF-8 survives as lone surrogates: never a known name, and every
    value parser in the schema rejects non-ASCII, so no error is lost. Escapes are known
    to be well formed here (``_target_text``); they are decoded as in
    ``_normalize_escapes``, each byte a Latin-1 character until the final decode."""
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    pieces = text.split("%")
    rest = pieces[1:]
    decoded = map(str.__add__, map(_HEX_CHARS.__getitem__, map(_FIRST_TWO, rest)), map(_AFTER_TWO, rest))
    return (pieces[0] + "".join(decoded)).encode("latin-1").decode("utf-8", "surrogateescape")


# A name longer than this cannot spell a known parameter (the longest,
# ``bg-remove-transparency-threshold64``, is 34 characters; an escape takes 3): its value
# is not even decoded.
_LONGEST_NAME_TEXT = 3 * max(len(spelling) for name in schema.PARAMS
                             for spelling in (name, *schema.PARAMS[name].aliases)) + 6


# No number, keyword or colour comes near this, escaped (a rect of four 32-digit numbers
# is 131 characters; base64 and escapes add a third and three times); free text and URLs
# (``txt``, ``mark``) are held to it as sent, escapes included, which is at most
# ``schema.MAX_TEXT`` decoded characters. A longer escaped value is refused before it is
# decoded.
_LONGEST_VALUE_TEXT = 1024


def _imgix_query(query: str) -> str:
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            if "%" in part or "+" in part:
                if len(name) > _LONGEST_NAME_TEXT:
                    continue
                name = _form_decode(name)
                if schema.canonical_name(name) is None and schema.canonical_name(name[:-2]) is None:
                    continue  # unknown, so its value would be dropped anyway
                if len(value) > _LONGEST_VALUE_TEXT:
                    raise NormalizeError(f"the value of image parameter {name!r} is longer than pixring accepts "
                                         f"({_LONGEST_VALUE_TEXT} characters)", param=schema.canonical_name(name) or name)
                value = _form_decode(value)
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
                kept.append((name, part))  # escapes are canonical already (_target_text)
    kept.sort(key=lambda pair: pair[0])  # stable: repeated names keep their order
    return "&".join(part for _, part in kept)


# ---------------------------------------------------------------------------- assembly

def make_normalizer(
    profile: str = "imgix",
    *,
    denylist: Sequence[str] = DEFAULT_DENYLIST,
    cache_size: int = 4096,
    max_target_length: int = MAX_TARGET_LENGTH,
    max_query_parts: int = MAX_QUERY_PARTS,
) -> Callable[[bytes], Route]:
    """A function raw request-target bytes -> Route, raising NormalizeError for a bad target.

    ``denylist`` applies to the ``generic`` profile (``imgix`` drops every parameter its
    schema does not know, which covers tracking parameters). ``cache_size`` bounds the LRU
    of recent targets (0 disables it). ``max_target_length`` is the balancer's
    ``max_request_line``, so one setting governs the 414. ``max_query_parts`` bounds the
    pairs a query may hold (a 400 beyond): each costs a Python step, the only step of
    normalization that is not a pass in C over the text.
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
        if raw.count(b"&", raw.find(b"?") + 1 or len(raw)) >= max_query_parts:  # before any other work
            raise NormalizeError(f"more than {max_query_parts} '&'-separated parts in the query")
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
