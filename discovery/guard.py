"""The mass-drop guard: a valid answer that empties or guts the membership is held.

A discovery answer can be well-formed and still wrong for routing. An ACL token that
lost its rights makes Consul answer ``[]`` with 200 (results are filtered, not
refused: https://developer.hashicorp.com/consul/docs/security/acl); a bad health-check
rollout fails every instance at once. Following such an answer would empty the ring
and turn a control-plane mistake into a full outage, so the guard *holds* it instead:
the balancer keeps routing over the last accepted set (as Envoy's panic mode routes
over all hosts when too few are healthy), the source reports the hold loudly, and the
guard lets go when either

- a later answer no longer trips it (Consul recovered), or
- an operator calls ``confirm()`` to accept the held answer (a planned scale-down).

The rules. The *reference* is every member accepted within the last ``window_s``
seconds (the current accepted set included): a collapse spread over several answers,
as a bad check rollout causes when checks fail one interval apart, is measured
against the set the fleet had before it started, not against its own last step.

- the same members as accepted          -> ``Unchanged`` (and any hold is released);
- nothing accepted yet, answer non-empty -> ``Publish``;
- an empty answer                        -> ``Hold`` (never empty the ring unasked);
- more than ``max_drop_fraction`` of the reference gone -> ``Hold``;
- anything else (additions, small drops, weight or address changes) -> ``Publish``.

``confirm()`` makes the held answer the accepted set and the whole reference.

Pure: no I/O, no clock (callers pass ``now``), no logging; the edge decides how
loudly to report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pixring.membership import Membership

__all__ = ["Publish", "Unchanged", "Hold", "Decision", "DropGuard"]


@dataclass(frozen=True, slots=True)
class Publish:
    """Follow the answer: hand this membership to the balancer."""

    membership: Membership


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The answer changes nothing the ring depends on; do not rebuild."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Keep routing over the accepted set; ``proposed`` waits for recovery or confirm()."""

    proposed: Membership
    dropped: tuple[str, ...]
    reason: str


Decision = Publish | Unchanged | Hold


class DropGuard:
    """Decides, answer by answer, whether a new membership may replace the accepted one."""

    __slots__ = ("_max_drop_fraction", "_window_s", "_accepted", "_held", "_last_accepted_at")

    def __init__(self, max_drop_fraction: float = 0.5, window_s: float = 60.0) -> None:
        if not (math.isfinite(max_drop_fraction) and 0.0 <= max_drop_fraction <= 1.0):
            raise ValueError(f"drop_guard_fraction must be within 0..1, got {max_drop_fraction!r}")
        if not (math.isfinite(window_s) and window_s >= 0):
            raise ValueError(f"drop_guard_window_s must be >= 0, got {window_s!r}")
        self._max_drop_fraction = max_drop_fraction
        self._window_s = window_s
        self._accepted: Membership | None = None
        self._held: Hold | None = None
        self._last_accepted_at: dict[str, float] = {}  # member id -> when it was last in the accepted set

    @property
    def accepted(self) -> Membership | None:
        return self._accepted

    @property
    def held(self) -> Hold | None:
        return self._held

    def reference(self, now: float) -> set[str]:
        """The ids a new answer is measured against: accepted within the window."""
        current = set(self._accepted.by_id()) if self._accepted is not None else set()
        return current | {i for i, at in self._last_accepted_at.items() if now - at <= self._window_s}

    def offer(self, proposed: Membership, now: float) -> Decision:
        accepted = self._accepted
        if accepted is not None:
            for member_id in accepted.by_id():
                self._last_accepted_at[member_id] = now
        if accepted is not None and proposed == accepted:
            self._held = None
            return Unchanged()
        if accepted is None:
            if len(proposed) == 0:
                return self._hold(proposed, (), "the answer lists no members and none are known yet")
            return self._accept(proposed, now)
        reference = self.reference(now)
        dropped = tuple(sorted(reference - set(proposed.by_id())))
        if len(proposed) == 0:
            return self._hold(
                proposed, dropped, f"the answer is empty; holding the last {len(accepted)} known members"
            )
        if len(dropped) > self._max_drop_fraction * len(reference):
            return self._hold(
                proposed,
                dropped,
                f"{len(dropped)} of {len(reference)} members are gone within {self._window_s:g}s "
                f"(more than {self._max_drop_fraction:.0%}); holding the last known set",
            )
        return self._accept(proposed, now)

    def confirm(self, now: float) -> Membership | None:
        """Accept the held answer (an operator's decision); None when nothing is held."""
        held = self._held
        if held is None:
            return None
        self._accepted = held.proposed
        self._held = None
        self._last_accepted_at = {member_id: now for member_id in held.proposed.by_id()}
        return held.proposed

    def _accept(self, proposed: Membership, now: float) -> Publish:
        self._accepted = proposed
        self._held = None
        for member_id in proposed.by_id():
            self._last_accepted_at[member_id] = now
        horizon = now - self._window_s
        self._last_accepted_at = {i: at for i, at in self._last_accepted_at.items() if at >= horizon}
        return Publish(proposed)

    def _hold(self, proposed: Membership, dropped: tuple[str, ...], reason: str) -> Hold:
        self._held = Hold(proposed, dropped, reason)
        return self._held
