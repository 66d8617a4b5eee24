"""The equivalent ways clients spell one image URL, for the capacity test's traffic.

An equivalent spelling differs from the canonical URL in bytes but never in meaning for the
balancer's ``imgix`` profile (``balancer/normalize.py``): parameters reordered, names in
other cases or aliases (``width``), values spelled longer (``400.0``, ``JPEG``, ``32:18``),
``<name>64`` base64 forms, defaults written out (``q=75``), list items reordered or
repeated, a reserved character percent-encoded, tracking junk and cache-busters added
(the profile drops every parameter the schema does not know), dot segments and duplicate
slashes in the path. No spelling percent-encodes an unreserved character: geventhttpclient,
which locust's FastHttpUser uses, decodes those before sending (its ``requote_uri``), and
no spelling starts with ``//``, which it refuses to send.

Pure: no I/O, no locust, no gevent.
"""

from __future__ import annotations

import base64
import random
import re
from dataclasses import dataclass
from typing import Callable, Mapping

from loadtest.traffic import Target
from pixring import schema

__all__ = ["SPELLINGS", "Spelling", "equivalent_spelling"]


@dataclass(slots=True)
class Spelling:
    """A URL being respelled: its path and its query pairs, in sending order."""

    path: str
    pairs: list[tuple[str, str]]

    @property
    def url(self) -> str:
        if not self.pairs:
            return self.path
        return self.path + "?" + "&".join(f"{name}={value}" if name or value else "" for name, value in self.pairs)


def _kind(name: str) -> str:
    return schema.PARAMS[name].kind


def _respell_name(spelling: Spelling, rng: random.Random) -> bool:
    """An alias (``width``) or another case (``W``, ``Fit``) for one parameter's name."""
    index = rng.randrange(len(spelling.pairs)) if spelling.pairs else None
    if index is None:
        return False
    name, value = spelling.pairs[index]
    canonical = schema.canonical_name(name)
    if canonical is None:
        return False
    choices = [alias for alias in schema.PARAMS[canonical].aliases] + [canonical.upper(), canonical.title()]
    choices = [choice for choice in choices if choice != name]
    spelling.pairs[index] = (rng.choice(choices), value)
    return True


_LONGER_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_RATIO_TEXT = re.compile(r"[0-9]+:[0-9]+")
_HEX_TEXT = re.compile(r"[0-9a-f]{6}|[0-9a-f]{8}")


def _longer_value(name: str, value: str, rng: random.Random) -> str | None:
    """Another text for the same value of parameter ``name``, or None if none is known."""
    kind = _kind(name)
    if kind in (schema.INTEGER, schema.NUMBER, schema.UNIT_SCALAR, schema.DIMENSION):
        if not _LONGER_NUMBER.fullmatch(value):
            return None
        if "." in value:
            return value + "0"  # 1.5 -> 1.50; a fraction keeps its point, so w=0.5 stays a fraction
        if kind == schema.INTEGER:
            return "0" + value  # 80 -> 080; "80.0" would do too, but a leading zero is rarer
        return value + rng.choice((".0", ".00"))  # 400 -> 400.0: the same pixels, not a fraction
    if kind == schema.ENUM:
        if name == "fm" and value == "jpg":
            return rng.choice(("jpeg", "JPEG", "JPG"))
        return value.upper()
    if kind == schema.LIST:
        items = value.split(",")
        items.reverse()
        return ",".join(items + [items[0]]).upper() if rng.random() < 0.5 else ",".join(items + [items[-1]])
    if kind == schema.RATIO:
        if not _RATIO_TEXT.fullmatch(value):
            return None
        width, height = value.split(":")
        return f"{int(width) * 2}:{int(height) * 2}"
    if kind == schema.COLOR:
        if not _HEX_TEXT.fullmatch(value):
            return None
        if len(value) == 6 and value[0::2] == value[1::2] and rng.random() < 0.5:
            return value[0::2].upper()  # ffffff -> FFF
        return ("FF" + value.upper()) if len(value) == 6 else value.upper()  # opaque ARGB, or case
    if kind == schema.BOOLEAN:
        return {"1": "true", "0": "false"}.get(value)
    return None


def _respell_value(spelling: Spelling, rng: random.Random) -> bool:
    """A longer spelling of one value: ``400.0``, ``JPEG``, ``32:18``, ``FFF``, ``true``."""
    candidates = []
    for index, (name, value) in enumerate(spelling.pairs):
        canonical = schema.canonical_name(name)
        if canonical is not None and _longer_value(canonical, value, rng) is not None:
            candidates.append((index, canonical))
    if not candidates:
        return False
    index, canonical = rng.choice(candidates)
    name, value = spelling.pairs[index]
    spelling.pairs[index] = (name, _longer_value(canonical, value, rng))  # type: ignore[assignment]
    return True


def _base64_value(spelling: Spelling, rng: random.Random) -> bool:
    """``fm64=d2VicA``: a value in URL-safe base64, padding dropped (both are allowed)."""
    # A value already percent-encoded is left alone: base64 would carry the escape literally.
    candidates = [index for index, (name, value) in enumerate(spelling.pairs)
                  if (canonical := schema.canonical_name(name)) is not None and schema.PARAMS[canonical].base64
                  and "%" not in value]
    if not candidates:
        return False
    index = rng.choice(candidates)
    name, value = spelling.pairs[index]
    encoded = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
    spelling.pairs[index] = (name + "64", encoded)
    return True


def _split_list(spelling: Spelling, rng: random.Random) -> bool:
    """``auto=compress,format`` as ``auto=format&auto=compress``: repeated list parameters merge."""
    for index, (name, value) in enumerate(spelling.pairs):
        if schema.canonical_name(name) in ("auto", "crop") and "," in value:
            items = value.split(",")
            rng.shuffle(items)
            spelling.pairs[index:index + 1] = [(name, item) for item in items]
            return True
    return False


def _escape_reserved(spelling: Spelling, rng: random.Random) -> bool:
    """A ``,`` or ``:`` inside a value percent-encoded, in either hex case (``%2C``, ``%3a``)."""
    for index, (name, value) in enumerate(spelling.pairs):
        for char in (",", ":"):
            if char in value:
                escape = "%{:02X}".format(ord(char))
                spelling.pairs[index] = (name, value.replace(char, escape if rng.random() < 0.5 else escape.lower()))
                return True
    return False


# Defaults spelled out (q=75 only without auto=compress, where it is not the default).
_SPELLED_DEFAULTS = (("fit", "clip"), ("dpr", "1"), ("q", "75"), ("rot", "0"), ("lossless", "0"),
                     ("bri", "0"), ("blur", "0"), ("fp-x", "0.5"))


def _spell_default(spelling: Spelling, rng: random.Random) -> bool:
    """A parameter written out at the value imgix uses when it is absent."""
    present = {schema.canonical_name(name.removesuffix("64")) or name for name, _ in spelling.pairs}
    compressing = any(schema.canonical_name(name) == "auto" and "compress" in value.lower()
                      for name, value in spelling.pairs)
    choices = [pair for pair in _SPELLED_DEFAULTS
               if pair[0] not in present and not (pair[0] == "q" and compressing)]
    if not choices:
        return False
    spelling.pairs.insert(rng.randrange(len(spelling.pairs) + 1), rng.choice(choices))
    return True


def _overridden(spelling: Spelling, rng: random.Random) -> bool:
    """``w=100&...&w=400``: for a non-list parameter the last occurrence wins."""
    for index, (name, value) in enumerate(spelling.pairs):
        if schema.canonical_name(name) in ("w", "h", "q"):
            spelling.pairs.insert(rng.randrange(index + 1), (name, "123"))
            return True
    return False


_JUNK = (("utm_source", "newsletter"), ("utm_medium", "email"), ("utm_campaign", "spring-sale"),
         ("fbclid", "IwAR2x7"), ("gclid", "Cj0KCQ"), ("_ga", "2.1234"), ("cb", "1732650000"),
         ("v", "3"), ("ref", "home"))


def _add_junk(spelling: Spelling, rng: random.Random) -> bool:
    """Tracking parameters and cache-busters: unknown to the schema, so the profile drops them."""
    for pair in rng.sample(_JUNK, rng.randint(1, 2)):
        spelling.pairs.insert(rng.randrange(len(spelling.pairs) + 1), pair)
    return True


def _empty_parts(spelling: Spelling, rng: random.Random) -> bool:
    """An empty value (``h=``) and an empty pair (``&&``): both count as absent."""
    position = rng.randrange(len(spelling.pairs) + 1)
    spelling.pairs.insert(position, ("sharp", "") if rng.random() < 0.5 else ("", ""))
    return True


def _respelled_path(path: str) -> bool:
    # One path respelling at a time: a dot segment next to a duplicate slash changes what
    # ".." climbs out of, so the two would no longer be equivalent.
    return "//" in path or "/./" in path or "/../" in path


def _path_dot_segment(spelling: Spelling, rng: random.Random) -> bool:
    """``/photos/./cat.jpg`` or ``/photos/../photos/cat.jpg``: removed by the normalizer."""
    if _respelled_path(spelling.path):
        return False
    head, _, tail = spelling.path.rpartition("/")
    if head and rng.random() < 0.5:
        directory = head.rsplit("/", 1)[-1]
        spelling.path = f"{head}/../{directory}/{tail}"
    else:
        spelling.path = f"{head}/./{tail}"
    return True


def _path_double_slash(spelling: Spelling, rng: random.Random) -> bool:
    """``/photos//cat.jpg``: duplicate slashes collapse (never a leading ``//``, see the rules)."""
    head, _, tail = spelling.path.rpartition("/")
    if not head or _respelled_path(spelling.path):
        return False
    spelling.path = f"{head}//{tail}"
    return True


# name -> how it respells; the unit tests run every one against the real normalizer.
SPELLINGS: Mapping[str, Callable[[Spelling, random.Random], bool]] = {
    "name": _respell_name,
    "value": _respell_value,
    "base64": _base64_value,
    "split-list": _split_list,
    "escape": _escape_reserved,
    "default": _spell_default,
    "override": _overridden,
    "junk": _add_junk,
    "empty": _empty_parts,
    "dot-segment": _path_dot_segment,
    "double-slash": _path_double_slash,
}


def equivalent_spelling(target: Target, rng: random.Random, *, max_changes: int = 3) -> str:
    """A URL the balancer keys exactly as ``target.url``, spelled differently in bytes.

    The parameters are shuffled and one to ``max_changes`` respellings applied; the result
    always differs from the canonical URL (junk parameters can always be added).
    """
    names = list(SPELLINGS)
    while True:
        spelling = Spelling(target.path, list(target.params))
        rng.shuffle(spelling.pairs)
        for name in rng.sample(names, rng.randint(1, max_changes)):
            SPELLINGS[name](spelling, rng)
        if spelling.url != target.url:
            return spelling.url
