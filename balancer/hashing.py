"""The stable hashes every balancer process must agree on.

Rules of this module:

* A key's hash is the same in every process, on every host, in every Python version:
  XXH3-64 with a fixed seed over the key's UTF-8 bytes. Python's ``hash()`` is never
  used, because ``PYTHONHASHSEED`` changes it per process
  (https://docs.python.org/3/reference/datamodel.html#object.__hash__).
* The proxy hashes a key once per request and hands the integer to the ring and the
  picker; nothing downstream re-hashes the key string.
* Seeds are fixed constants. Changing one remaps every key on every node (a full cache
  flush), so they are part of the ring's version fingerprint.

The SplitMix64 finaliser (``mix64``, Steele, Lea & Flood, OOPSLA 2014) turns a 64-bit
number into a well-mixed one; the ring derives its probe multipliers from it and the picker
its slow-start fractions, so the step is written here once.

XXH3 is specified in https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md; the
Python binding is https://pypi.org/project/xxhash/.
"""

from __future__ import annotations

import xxhash

__all__ = ["GOLDEN_GAMMA", "KEY_SEED", "MASK64", "POINT_SEED", "POINT_TAG", "key_hash", "mix64", "point_hashes"]

# ASCII "pixring" and "pixpoint"; any fixed values work, as long as every process uses them.
KEY_SEED = 0x70697872696E67
POINT_SEED = 0x706978706F696E74

MASK64 = (1 << 64) - 1
# SplitMix64's increment: the odd integer nearest 2**64 / golden ratio.
GOLDEN_GAMMA = 0x9E3779B97F4A7C15

_xxh3_64 = xxhash.xxh3_64_intdigest
POINT_TAG = b"pixring-point:"


def key_hash(key: str | bytes) -> int:
    """The seeded stable 64-bit hash of a routing key (an unsigned int below 2**64)."""
    if isinstance(key, str):
        # surrogatepass: a key that is not valid Unicode still hashes instead of raising.
        key = key.encode("utf-8", "surrogatepass")
    return _xxh3_64(key, KEY_SEED)


def point_hashes(member_id: str, count: int) -> list[int]:
    """``count`` stable 64-bit hashes for one member's ring points.

    Point ``i`` is XXH3-64 of the member's tagged ID seeded with ``POINT_SEED + i``: a
    member's points depend on nothing but its own ID, and a member with more weight keeps
    the points it had and gains new ones (so a weight change moves keys only to or from
    that member). The tag keeps every input longer than 8 bytes: for inputs of 1 to 3
    bytes XXH3 only adds the seed before its final mix, so short IDs that differ in one
    character (``r-a``, ``r-b``) and consecutive seeds landed on the same points, and one
    member of eight owned seven times its share. From 9 bytes on, the seed goes through a
    multiplication with the input, and neighbours spread.
    """
    data = POINT_TAG + member_id.encode("utf-8", "surrogatepass")
    return list(map(_xxh3_64, [data] * count, range(POINT_SEED, POINT_SEED + count)))


def mix64(z: int) -> int:
    """The SplitMix64 finaliser of ``z`` (taken modulo 2**64): a bijection on 64-bit
    numbers whose every output bit depends on every input bit."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)
