"""What an active probe's answer means: the statuses that say a node is alive.

Pure (no I/O): the config validates ``probe_expect`` with it and the prober judges with it.
By default any status below 500 is alive, since the probe asks whether the node answers
HTTP on its serving port, whatever it thinks of the path; an operator whose backends have
a real health path narrows it to the statuses that path answers (HAProxy's
``http-check expect status``, Envoy's ``expected_statuses``).
"""

from __future__ import annotations

__all__ = ["describe_statuses", "is_alive", "parse_expect"]


def parse_expect(text: str) -> frozenset[int]:
    """``"200,204"`` or ``"200-299,301"`` -> the statuses a probe must get; empty = any
    below 500. ValueError names what is wrong."""
    statuses: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ValueError(f"{part!r} is not a status or a range of statuses like 200-299") from None
        if not 100 <= first <= last <= 599:
            raise ValueError(f"{part!r}: statuses run from 100 to 599, low to high")
        statuses.update(range(first, last + 1))
    return frozenset(statuses)


def is_alive(status: int, expect: frozenset[int]) -> bool:
    return status in expect if expect else status < 500


def describe_statuses(statuses: frozenset[int]) -> str:
    """200,201,...,299,301 -> "200-299,301": how the operator wrote it, near enough."""
    spans: list[list[int]] = []
    for status in sorted(statuses):
        if spans and status == spans[-1][1] + 1:
            spans[-1][1] = status
        else:
            spans.append([status, status])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
