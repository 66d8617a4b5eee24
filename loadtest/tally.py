"""What a capacity test's answers showed, per locust process, merged at the end.

``Tally`` is what the locustfile observes per answered request: the serving node (the
balancer's node header), the render cache outcome (the reference renderer's
``X-Render-Cache``) and which node each group of equivalent URLs landed on. It is plain
data that merges (one tally per locust process) and round-trips through JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Tally"]


@dataclass
class Tally:
    """What the answers showed: node spread, cache outcomes, failures, nodes per equivalent group.

    ``groups`` maps a canonical URL to ``(requests by node, non-canonical requests)``. Every
    answer with the node header counts in ``nodes`` and ``groups`` whatever its status (a 404
    still shows where its URL was routed); an answer without it counts as ``untagged``.
    ``failures`` counts by kind (``HTTP 500``, ``ConnectionRefusedError``) the requests that
    locust counts as failed: no answer, or a status of 400 or more, but for the shed ones.
    ``shed`` counts, by the node that sent it, the answers of 503 with ``Retry-After``: load
    shed by a fleet that is full, which the user waited out as told. locust counts them as
    failures; the summary shows them apart.
    """

    nodes: dict[str, int] = field(default_factory=dict)
    untagged: int = 0
    cache: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    shed: dict[str, int] = field(default_factory=dict)
    groups: dict[str, tuple[dict[str, int], int]] = field(default_factory=dict)
    started: float = 0.0  # epoch seconds the load began (locust's test_start), 0 if unknown

    def record(self, canonical_url: str, variant: bool, node: str | None, cache: str | None) -> None:
        """One answer: the node that served it and its cache outcome, if the headers said."""
        if cache:
            self.cache[cache] = self.cache.get(cache, 0) + 1
        if not node:
            self.untagged += 1
            return
        self.nodes[node] = self.nodes.get(node, 0) + 1
        by_node, variants = self.groups.get(canonical_url, ({}, 0))
        by_node[node] = by_node.get(node, 0) + 1
        self.groups[canonical_url] = (by_node, variants + (1 if variant else 0))

    def record_failure(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1

    def record_shed(self, sender: str) -> None:
        self.shed[sender] = self.shed.get(sender, 0) + 1

    def merge(self, other: "Tally") -> None:
        for mine, theirs in ((self.nodes, other.nodes), (self.cache, other.cache), (self.failures, other.failures),
                             (self.shed, other.shed)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        self.untagged += other.untagged
        if other.started and (not self.started or other.started < self.started):
            self.started = other.started
        for url, (by_node, variants) in other.groups.items():
            counts, my_variants = self.groups.get(url, ({}, 0))
            for node, count in by_node.items():
                counts[node] = counts.get(node, 0) + count
            self.groups[url] = (counts, my_variants + variants)

    def to_json(self) -> dict[str, object]:
        return {"nodes": self.nodes, "untagged": self.untagged, "cache": self.cache, "failures": self.failures,
                "shed": self.shed, "started": self.started,
                "groups": {url: {"nodes": by_node, "variants": variants}
                           for url, (by_node, variants) in self.groups.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Tally":
        def counts(value: Any) -> dict[str, int]:
            return {str(key): int(count) for key, count in dict(value or {}).items()}

        return cls(
            nodes=counts(data.get("nodes")),
            untagged=int(data.get("untagged") or 0),
            cache=counts(data.get("cache")),
            failures=counts(data.get("failures")),
            shed=counts(data.get("shed")),
            started=float(data.get("started") or 0.0),
            groups={str(url): (counts(entry["nodes"]), int(entry["variants"]))
                    for url, entry in dict(data.get("groups") or {}).items()},
        )
