"""The health table: which members a request may go to, from probes, traffic and the operator.

A pure state machine in the style of h11: no I/O, no clock and no asyncio. Callers feed it
what happened (an active probe's result, a real request attempt's outcome, an operator's
command, membership, the passage of time as ``now`` in monotonic seconds) and it answers
with the events that the change caused; the edges log them, count them and act on them.

Rules of this module:

* Three independent verdicts make a member **routable**: the active prober says it is up,
  passive outlier detection has not ejected it, and the operator has not drained it or put
  it in maintenance. Consul's own checks are applied before a member reaches the table
  (only passing instances are members), so both must pass to route.
* **Active probes** follow HAProxy's ``rise``/``fall``: ``fall`` consecutive failed probes
  take an up member down, ``rise`` consecutive good ones bring a down member up (defaults
  2 and 3 as in HAProxy's ``server`` keyword). With ``await_first_probe`` (set whenever
  active probes run) a member joining the table is **pending** until its first probe
  answers: that one probe decides, up or down, so a node that cannot answer is never
  routed to on discovery's word alone, and one that can is not kept waiting ``rise``
  intervals. While no member is known to be up, the pending ones route (discovery vouched
  for them, which beats answering 503). Without active probes a member starts up.
* **Outlier detection** follows Envoy's: ``consecutive_errors`` connect errors, timeouts or
  5xx in a row (Envoy's ``consecutive_5xx``, default 5; an OK resets the run) eject the
  member for ``base_ejection_s * ejections`` seconds, capped at ``max_ejection_s`` (Envoy's
  ``base_ejection_time`` multiplied by the times ejected, ``max_ejection_time`` 300 s).
  When the ejection expires, or when the active probes see a member that had gone down
  come back up (a restart; Envoy's ``successful_active_health_check_uneject_host``), the
  member is readmitted on **probation**: routable, but its
  next failure ejects it again at once, for longer. Probation ends after
  ``consecutive_errors`` OK outcomes in a row, or after ``base_ejection_s`` without a
  failure; then, as in Envoy, the ejection multiplier decays by one per ``base_ejection_s``
  that passes without an ejection. Outcomes of members that are not routable (requests
  finishing after a drain, panic traffic to a down member) do not eject.
* An ejection that would leave more than ``max_ejected_fraction`` of the members (those not
  removed by the operator) ejected at once is **suppressed**, and an event says so (Envoy's
  ``max_ejection_percent``). The rule is strict: a fleet of one member is never ejected.
* **Panic**: when fewer than ``panic_threshold`` of the members the operator has not removed
  are routable, ``panic`` is set and the picker routes over all of them rather than pile
  the whole load on the few (Envoy's ``healthy_panic_threshold``, default 50%).
* **Slow start** (HAProxy's ``slowstart``, Envoy's slow start mode): a member that comes up
  after being down, returns from the operator, or joins a table that already had members is
  ramped linearly from ``MIN_RAMP`` to 1 over ``slow_start_s``. The members of the very first
  membership (more exactly: members joining a table that had none) do not ramp: nobody is
  colder than anybody else, and ramping everyone would only send keys round in a circle.
  A readmitted outlier does not ramp either: its cache was not lost, only its patience.
* **Operator modes**: ``drain`` (unroutable, still probed, in-flight requests finish) and
  ``maintenance`` (unroutable, not probed). ``None`` brings the member back (up, slow
  start). A mode outlives the member leaving the membership, so a node put in maintenance
  that deregisters while it restarts comes back still in maintenance; a mode set for a
  member the table does not know yet is applied when it joins.

Documents relied on:
  Envoy outlier detection and panic threshold,
  https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier
  https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/panic_threshold
  https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/outlier_detection.proto
  Envoy slow start, https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/slow_start
  HAProxy configuration manual, ``rise``, ``fall``, ``slowstart``,
  https://docs.haproxy.org/2.6/configuration.html#5.2-rise
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Iterable

from mypy_extensions import mypyc_attr

__all__ = [
    "Outcome",
    "HealthPolicy",
    "HealthEvent",
    "HealthError",
    "UnknownMember",
    "HealthTable",
    "OPERATOR_MODES",
    "MIN_RAMP",
    "PROBE_FAILED",
]

# A member starting its slow start takes a sliver of its share rather than none, so the
# first requests warm it (HAProxy starts a slow-starting server at a small nonzero weight).
MIN_RAMP = 0.01

OPERATOR_MODES = ("drain", "maintenance")

# Event kinds. The brief's list, plus "back" (operator returned a member to service) and
# "ejection_suppressed" (the max-ejected-fraction cap held an ejection back).
DOWN, UP, EJECTED, READMITTED = "down", "up", "ejected", "readmitted"
PANIC_ON, PANIC_OFF = "panic_on", "panic_off"
DRAIN, MAINTENANCE, BACK, READY = "drain", "maintenance", "back", "ready"
EJECTION_SUPPRESSED = "ejection_suppressed"
# A failed probe of a member still up (one event per probe until it falls), so the log
# says why a member is about to go down before it does.
PROBE_FAILED = "probe_failed"


class Outcome(enum.Enum):
    """What one real request attempt to a member came to. 4xx and other answers are OK:
    the node answered, and a client's bad request says nothing about the node."""

    OK = "ok"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"


class HealthError(ValueError):
    """A health policy or an operator command that cannot be applied."""


class UnknownMember(HealthError):
    """A reading (``state_of``) names a member the table does not know."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise HealthError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Checked by __post_init__, not by compiled field types: mypyc (balancer/compile.py)
# would raise a bare TypeError, or take True for 1, before the check could name the field.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class HealthPolicy:
    rise: int = 2  # HAProxy's default rise
    fall: int = 3  # HAProxy's default fall
    consecutive_errors: int = 5  # Envoy's consecutive_5xx default; 0 turns passive ejection off
    base_ejection_s: float = 10.0  # Envoy's interval; its base_ejection_time is 30 s, ours is a LAN's
    max_ejection_s: float = 300.0  # Envoy's max_ejection_time default
    max_ejected_fraction: float = 0.5
    panic_threshold: float = 0.5  # Envoy's healthy_panic_threshold default, 50%
    slow_start_s: float = 30.0  # 0 disables slow start
    await_first_probe: bool = False  # new members are pending until a probe answers

    def __post_init__(self) -> None:
        # Read untyped: compiled code would check the declared types on a plain read.
        for name in ("rise", "fall"):
            value = getattr(self, name)
            _require(_is_int(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        value = getattr(self, "consecutive_errors")
        _require(_is_int(value) and value >= 0,
                 f"consecutive_errors must be an integer >= 0 (0 = off), got {value!r}")
        base, most = getattr(self, "base_ejection_s"), getattr(self, "max_ejection_s")
        _require(_is_number(base) and base > 0, f"base_ejection_s must be a finite number > 0, got {base!r}")
        _require(_is_number(most) and most >= base,
                 f"max_ejection_s must be a finite number >= base_ejection_s ({base!r}), got {most!r}")
        for name in ("max_ejected_fraction", "panic_threshold"):
            value = getattr(self, name)
            _require(_is_number(value) and 0 <= value <= 1, f"{name} must be between 0 and 1, got {value!r}")
        value = getattr(self, "slow_start_s")
        _require(_is_number(value) and value >= 0,
                 f"slow_start_s must be a finite number >= 0 (0 = off), got {value!r}")
        value = getattr(self, "await_first_probe")
        _require(isinstance(value, bool), f"await_first_probe must be true or false, got {value!r}")


@dataclass(frozen=True, slots=True)
class HealthEvent:
    kind: str
    member: str | None
    detail: str


class _State:
    """One member's mutable record; only HealthTable touches it."""

    __slots__ = (
        "active_up", "good_probes", "bad_probes",
        "consecutive_errors", "ejections", "ejected_until", "ejection_s",
        "probation", "probation_ok", "quiet_since", "suppressed",
        "operator", "slow_start_from", "pending", "joined_cold",
        "last_probe_ok", "last_probe", "last_probe_at",
    )

    def __init__(self, slow_start_from: float | None) -> None:
        self.active_up = True
        self.pending = False  # waiting for its first probe (HealthPolicy.await_first_probe)
        self.joined_cold = False  # joined a table that had no members: no slow start
        self.last_probe_ok: bool | None = None
        self.last_probe = ""  # what the last probe got, in words ("GET /healthz answered 200")
        self.last_probe_at = 0.0
        self.good_probes = 0
        self.bad_probes = 0
        self.consecutive_errors = 0
        self.ejections = 0
        self.ejected_until: float | None = None
        self.ejection_s = 0.0
        self.probation = False
        self.probation_ok = 0
        # Start of the current failure-free stretch: ends probation, decays the multiplier.
        self.quiet_since = 0.0
        self.suppressed = False  # one "ejection_suppressed" event per run of errors, not one per error
        self.operator: str | None = None
        self.slow_start_from = slow_start_from


class HealthTable:
    """The health of every member, and the sets the picker reads per request.

    ``routable``, ``panic``, ``removed`` (operator-removed members), ``unroutable``
    (known members that are not routable) and ``slow_starting`` are plain attributes,
    recomputed on every state change, so a request reads them without computing.
    ``version`` grows by one on every recomputation, for callers that cache.

    ``watched`` holds the members for which an OK outcome would change something (a run
    of errors to reset, a probation to count down). For every other member ``outcome(OK)``
    is a no-op, so the request path, which sees an OK on nearly every request, may skip
    the call.
    """

    def __init__(self, policy: HealthPolicy, now: float) -> None:
        self.policy = policy
        self._members: dict[str, _State] = {}
        self._remembered_modes: dict[str, str] = {}  # operator modes of non-members, applied on join
        self.members: frozenset[str] = frozenset()
        self.routable: frozenset[str] = frozenset()
        self.unroutable: frozenset[str] = frozenset()
        self.removed: frozenset[str] = frozenset()
        self.slow_starting: frozenset[str] = frozenset()
        self.pending: frozenset[str] = frozenset()
        self.panic = False
        self.version = 0
        self.watched: set[str] = set()

    # -- inputs ---------------------------------------------------------------------------

    def set_members(self, member_ids: Iterable[str], now: float) -> list[HealthEvent]:
        wanted = list(dict.fromkeys(member_ids))
        cold_start = not self._members
        events: list[HealthEvent] = []
        kept = {}
        for member in wanted:
            state = self._members.get(member)
            if state is None:
                state = _State(None if cold_start else self._ramp_start(now))
                state.quiet_since = now
                state.joined_cold = cold_start
                if self.policy.await_first_probe:
                    state.pending = True
                    state.active_up = False
                    state.slow_start_from = None  # the ramp starts when the probe says up
                mode = self._remembered_modes.pop(member, None)
                if mode is not None:
                    state.operator = mode
                    events.append(HealthEvent(mode, member, "operator mode set while it was not a member"))
            kept[member] = state
        for member, state in self._members.items():
            if member not in kept and state.operator is not None:
                self._remembered_modes[member] = state.operator
        self._members = kept
        self.watched &= kept.keys()
        return self._recompute(events, now)

    def probe(self, member: str, ok: bool, now: float, detail: str = "") -> list[HealthEvent]:
        """An active probe's result, ``detail`` saying what it got in words (the status or
        the error). Unknown members are ignored (a probe can race a membership change),
        as are members in maintenance."""
        state = self._members.get(member)
        if state is None or state.operator == "maintenance":
            return []
        state.last_probe_ok = ok
        state.last_probe = detail
        state.last_probe_at = now
        events: list[HealthEvent] = []
        policy = self.policy
        said = f": {detail}" if detail else ""
        if state.pending:
            state.pending = False
            state.bad_probes = state.good_probes = 0
            if ok:
                state.active_up = True
                # The first membership takes its full share at once; a member that joins
                # a serving fleet ramps from now, when it is known to answer.
                state.slow_start_from = None if state.joined_cold else self._ramp_start(now)
                events.append(HealthEvent(UP, member, f"first probe{said}"))
            else:
                events.append(HealthEvent(DOWN, member, f"first probe failed{said}"))
            return self._recompute(events, now)
        if ok:
            state.bad_probes = 0
            if not state.active_up:
                state.good_probes += 1
                if state.good_probes >= policy.rise:
                    state.active_up = True
                    state.good_probes = 0
                    state.slow_start_from = self._ramp_start(now)
                    events.append(HealthEvent(UP, member, f"{policy.rise} good probes in a row{said}"))
                    if state.ejected_until is not None:
                        # Envoy's successful_active_health_check_uneject_host: a node
                        # the probes saw go down and come back (a restart) need not
                        # wait out an ejection earned while it was down. It returns on
                        # probation, so one more failure ejects it again at once.
                        self._readmit(state, member, now, events, "probes saw it come back up")
        else:
            state.good_probes = 0
            if state.active_up:
                state.bad_probes += 1
                if state.bad_probes >= policy.fall:
                    state.active_up = False
                    state.bad_probes = 0
                    state.slow_start_from = None
                    events.append(HealthEvent(DOWN, member, f"{policy.fall} failed probes in a row{said}"))
                else:
                    # Said, not acted on: the table changes nothing until the member falls.
                    return [HealthEvent(PROBE_FAILED, member, f"{detail or 'failed'} ({state.bad_probes} of {policy.fall})")]
        if not events:
            return events
        return self._recompute(events, now)

    def outcome(self, member: str, outcome: Outcome, now: float) -> list[HealthEvent]:
        """One real request attempt's outcome (passive outlier detection)."""
        state = self._members.get(member)
        if state is None:
            return []
        policy = self.policy
        if outcome is Outcome.OK:
            state.consecutive_errors = 0
            state.suppressed = False
            if state.probation:
                state.probation_ok += 1
                if policy.consecutive_errors and state.probation_ok >= policy.consecutive_errors:
                    self._end_probation(member, state, now)
            self._rewatch(member, state)
            return []
        state.quiet_since = now
        state.probation_ok = 0
        if policy.consecutive_errors == 0 or member not in self.routable:
            return []
        state.consecutive_errors += 1
        self.watched.add(member)
        if state.probation or state.consecutive_errors >= policy.consecutive_errors:
            return self._eject(member, state, outcome, now)
        return []

    def set_operator(self, member: str, mode: str | None, now: float) -> list[HealthEvent]:
        """Drain a member, put it in maintenance, or (``None``) bring it back."""
        if mode is not None and mode not in OPERATOR_MODES:
            raise HealthError(f"operator mode must be one of {', '.join(OPERATOR_MODES)} or none, got {mode!r}")
        state = self._members.get(member)
        if state is None:
            # Modes are kept for members that are not (yet, or any more) in the membership,
            # so an operator file read before discovery answers, or a node that deregisters
            # while in maintenance, keeps its mode. Checking that a member exists is the
            # admin edge's job (``member in table.members``).
            if mode is None:
                self._remembered_modes.pop(member, None)
            else:
                self._remembered_modes[member] = mode
            return []
        if state.operator == mode:
            return []
        previous, state.operator = state.operator, mode
        if mode is None:
            # The operator vouches for it, as for a new member; a restart during
            # maintenance left it cold, so it ramps.
            state.active_up = True
            state.pending = False
            state.good_probes = state.bad_probes = 0
            state.slow_start_from = self._ramp_start(now)
            event = HealthEvent(BACK, member, f"operator ended {previous}")
        else:
            event = HealthEvent(mode, member, "operator")
        return self._recompute([event], now)

    def tick(self, now: float) -> list[HealthEvent]:
        """Let time pass: expire ejections into probation, end probations and slow starts,
        decay ejection multipliers. Cheap when nothing is due."""
        events: list[HealthEvent] = []
        changed = False
        base = self.policy.base_ejection_s
        for member, state in self._members.items():
            if state.ejected_until is not None:
                if now >= state.ejected_until:
                    self._readmit(state, member, now, events, f"on probation after {state.ejection_s:g}s")
                    changed = True
            elif state.probation:
                if now - state.quiet_since >= base:
                    self._end_probation(member, state, now)
            elif state.ejections and now - state.quiet_since >= base:
                steps = int((now - state.quiet_since) // base)
                state.ejections = max(0, state.ejections - steps)
                state.quiet_since += steps * base
            if state.slow_start_from is not None and self._ramp_of(state, now) >= 1.0:
                state.slow_start_from = None
                changed = True
                events.append(HealthEvent(READY, member, "slow start over"))
        if not changed:
            return events
        return self._recompute(events, now)

    # -- readings -------------------------------------------------------------------------

    def ramp(self, member: str, now: float) -> float:
        """The fraction of its share a member takes now: 1.0 unless in slow start."""
        state = self._members.get(member)
        if state is None or state.slow_start_from is None:
            return 1.0
        return self._ramp_of(state, now)

    def probing(self) -> frozenset[str]:
        """Members the active prober should probe: all but those in maintenance."""
        return frozenset(m for m, s in self._members.items() if s.operator != "maintenance")

    def state_of(self, member: str) -> str:
        state = self._members.get(member)
        if state is None:
            raise UnknownMember(f"no member {member!r}")
        return self._state_name(state)

    def snapshot(self, now: float) -> dict[str, dict]:
        out = {}
        for member in sorted(self._members):
            state = self._members[member]
            out[member] = {
                "state": self._state_name(state),
                "routable": member in self.routable,
                "active_up": state.active_up,
                "ejections": state.ejections,
                "ejected_for_s": 0.0 if state.ejected_until is None else max(0.0, state.ejected_until - now),
                "consecutive_errors": state.consecutive_errors,
                "operator": state.operator,
                "ramp": self.ramp(member, now),
                "last_probe": None if state.last_probe_ok is None else {
                    "ok": state.last_probe_ok,
                    "result": state.last_probe,
                    "age_s": round(max(0.0, now - state.last_probe_at), 3),
                },
            }
        return out

    # -- internals ------------------------------------------------------------------------

    def _readmit(self, state: "_State", member: str, now: float, events: list[HealthEvent], why: str) -> None:
        """End an ejection: the member routes again, on probation."""
        state.ejected_until = None
        state.probation = True
        state.probation_ok = 0
        state.consecutive_errors = 0
        state.quiet_since = now
        self.watched.add(member)
        events.append(HealthEvent(READMITTED, member, why))

    def _rewatch(self, member: str, state: _State) -> None:
        if state.consecutive_errors or state.probation or state.suppressed:
            self.watched.add(member)
        else:
            self.watched.discard(member)

    def _ramp_start(self, now: float) -> float | None:
        return now if self.policy.slow_start_s > 0 else None

    def _ramp_of(self, state: _State, now: float) -> float:
        elapsed = now - state.slow_start_from  # type: ignore[operator]
        return min(1.0, max(MIN_RAMP, elapsed / self.policy.slow_start_s))

    @staticmethod
    def _state_name(state: _State) -> str:
        if state.operator == "drain":
            return "draining"
        if state.operator == "maintenance":
            return "maintenance"
        if state.pending:
            return "pending"
        if not state.active_up:
            return "down"
        if state.ejected_until is not None:
            return "ejected"
        if state.probation:
            return "probation"
        return "up"

    def _end_probation(self, member: str, state: _State, now: float) -> None:
        state.probation = False
        state.probation_ok = 0
        state.ejections = max(0, state.ejections - 1)
        state.quiet_since = now
        self._rewatch(member, state)

    def _eject(self, member: str, state: _State, outcome: Outcome, now: float) -> list[HealthEvent]:
        policy = self.policy
        in_service = sum(1 for s in self._members.values() if s.operator is None)
        ejected = sum(1 for s in self._members.values() if s.ejected_until is not None and s.operator is None)
        if ejected + 1 > policy.max_ejected_fraction * in_service:
            if state.suppressed:
                return []
            state.suppressed = True
            return [HealthEvent(EJECTION_SUPPRESSED, member,
                                f"{ejected} of {in_service} members already ejected, "
                                f"max_ejected_fraction is {policy.max_ejected_fraction:g}")]
        state.ejections += 1
        state.ejection_s = min(policy.max_ejection_s, policy.base_ejection_s * state.ejections)
        state.ejected_until = now + state.ejection_s
        why = "failed on probation" if state.probation else f"{state.consecutive_errors} errors in a row"
        state.probation = False
        state.probation_ok = 0
        state.consecutive_errors = 0
        state.suppressed = False
        self.watched.discard(member)
        return self._recompute([HealthEvent(
            EJECTED, member, f"{why} (last: {outcome.value}); ejection {state.ejections} for {state.ejection_s:g}s")],
            now)

    def _recompute(self, events: list[HealthEvent], now: float) -> list[HealthEvent]:
        routable: list[str] = []
        removed: list[str] = []
        cold: list[str] = []
        pending: list[str] = []
        for member, state in self._members.items():
            if state.operator is not None:
                removed.append(member)
            elif state.pending:
                pending.append(member)
            elif state.active_up and state.ejected_until is None:
                routable.append(member)
            if state.slow_start_from is not None:
                cold.append(member)
        in_service = len(self._members) - len(removed)
        if routable or not pending:
            in_service -= len(pending)  # not known yet either way: neither healthy nor not
        else:
            # Nothing is known to be up: the members discovery vouched for route until
            # their probes answer, which beats answering 503 (a whole new membership).
            routable = pending
        self.members = frozenset(self._members)
        self.routable = frozenset(routable)
        self.removed = frozenset(removed)
        self.pending = frozenset(pending)
        self.unroutable = self.members - self.routable
        self.slow_starting = frozenset(cold)
        panic = len(routable) < self.policy.panic_threshold * in_service
        if panic != self.panic:
            self.panic = panic
            events.append(HealthEvent(
                PANIC_ON if panic else PANIC_OFF, None,
                f"{len(routable)} of {in_service} members routable, panic threshold "
                f"{self.policy.panic_threshold:g}"))
        self.version += 1
        return events
