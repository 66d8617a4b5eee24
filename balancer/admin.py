"""The admin listener: /healthz, /readyz, /status and /metrics for operators.

Served by the supervisor on aiohttp (not the hot path) from the state files the
workers write once a second, so every answer describes the whole balancer. Keep
this listener private (the default binds 127.0.0.1): ``/status`` shows the fleet.

- ``/``: the status as an HTML page for a browser (``balancer.statuspage``), refreshing itself.
- ``/healthz``: the process is alive (200 while it runs).
- ``/readyz``: 200 when every worker reports, knows its membership and has at
  least one routable member; otherwise 503 with the reason, so an upstream load
  balancer stops sending here. Also 503 while draining.
- ``/status``: JSON (orjson) of members, ring, workers, discovery and config.
- ``/metrics``: Prometheus text, see ``balancer.metrics``.
- ``POST /members/<id>/drain|maintenance|ready``: take a member out of routing (its
  keys go to their next member, in-flight requests finish) or bring it back.
- ``POST /discovery/confirm``: accept a membership drop the Consul source is
  holding back.

Every POST passes ``balancer.adminguard``'s rules first: the bearer token, a Host that
is this listener's own address, no foreign Origin (CSRF and DNS rebinding).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from balancer.adminguard import AdminPolicy, judge_change
from balancer.config import BalancerConfig
from balancer.metrics import BalancerCollector
from balancer.stats import merge_snapshots
from balancer.statuspage import rates_between, render_status_page
from balancer.worker import OPERATOR_FILE

__all__ = ["AdminState", "admin_policy", "judge_readiness", "make_admin_app", "worker_report"]

# A worker that has not written its state for this long is reported as stuck.
_STALE_WORKER_S = 5.0


class AdminState:
    def __init__(
        self,
        config: BalancerConfig,
        state_dir: Path,
        *,
        live_pids: Callable[[], set[int]],
        serving_pids: Callable[[], set[int]],
        signal_workers: Callable[[int], int] = lambda sig: 0,
    ) -> None:
        self.config = config
        self.signal_workers = signal_workers
        self.state_dir = state_dir
        self.live_pids = live_pids
        self.serving_pids = serving_pids
        self.started = time.time()
        self.draining = False
        self._exited: list[dict[str, Any]] = []

    def workers(self) -> list[dict[str, Any]]:
        """The state of every live worker in service (a reload's new generation joins
        once it has taken over, so it cannot make readiness flicker while it warms)."""
        return self._states(self.serving_pids())

    def stats(self) -> dict[str, Any]:
        """Counters over every worker that ever ran: live ones (a generation still
        warming or draining included) and exited ones, so totals never go backwards."""
        return merge_snapshots((w["stats"] for w in self._states(self.live_pids())), self._exited)

    def _states(self, pids: set[int]) -> list[dict[str, Any]]:
        states = []
        for path in sorted(self.state_dir.glob("worker-*.json")):
            try:
                state = orjson.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if state.get("pid") in pids:
                states.append(state)
        return states

    def worker_exited(self, index: int, pid: int) -> None:
        """Keep a dead worker's last counters so totals never go backwards."""
        report = worker_report(self.state_dir, index, pid)
        if report is not None:
            self._exited.append(report["stats"])

    def known_members(self) -> set[str]:
        return {m["id"] for w in self.workers() for m in w["membership"]["members"]}

    def operator_modes(self) -> dict[str, str]:
        try:
            return orjson.loads((self.state_dir / OPERATOR_FILE).read_bytes())
        except (OSError, ValueError):
            return {}

    def set_operator_mode(self, member: str, mode: str | None) -> None:
        """Record the mode where every worker (and every future one) reads it, then tell them."""
        modes = self.operator_modes()
        if mode is None:
            modes.pop(member, None)
        else:
            modes[member] = mode
        path = self.state_dir / OPERATOR_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(modes))
        os.replace(tmp, path)
        self.signal_workers(signal.SIGUSR2)

    def readiness(self, workers: list[dict[str, Any]]) -> tuple[bool, str]:
        return judge_readiness(workers, expected=self.config.worker_count(), draining=self.draining, now=time.time())

    def metrics_view(self) -> dict[str, Any]:
        workers = self.workers()
        ready, _ = self.readiness(workers)
        return {
            "stats": self.stats(),
            "workers": workers,
            "ready": ready,
        }

    def status(self) -> dict[str, Any]:
        from pixring import __version__

        workers = self.workers()
        ready, reason = self.readiness(workers)
        stats = self.stats()
        newest = max(workers, key=lambda w: w["time"], default=None)
        members = []
        ring_members: set[str] = set()
        shares: dict[str, float] = newest["ring"].get("shares", {}) if newest is not None else {}
        ring = {k: v for k, v in newest["ring"].items() if k != "shares"} if newest is not None else {
            "algorithm": None, "version": None, "size": 0, "members": 0}  # shares are per member below
        if newest is not None:
            ring_members = {m["id"] for m in newest["membership"]["members"] if m["weight"] > 0}
            modes = self.operator_modes()
            for member in newest["membership"]["members"]:
                node = member["id"]
                requests = _codes_for(stats["requests"], node)
                by_worker = {str(w["index"]): w.get("health", {}).get(node, {}) for w in workers}
                states = sorted({h.get("state", "up") for h in by_worker.values()})
                state = "no-weight" if node not in ring_members else (states[0] if len(states) == 1 else "mixed")
                members.append(
                    {
                        **member,
                        "state": state,
                        "ring_share": shares.get(node),
                        "operator": modes.get(node),
                        "health_by_worker": by_worker,
                        "inflight": stats["inflight"].get(node, 0),
                        "requests": requests,
                        "requests_total": sum(requests.values()),
                        "attempts": stats["attempts"].get(node, 0),
                        "shed": stats["shed"].get(node, 0),
                        "errors": {kind: n for (n_node, kind), n in stats["upstream_errors"].items() if n_node == node},
                        "bytes_out": stats["bytes_out"].get(node, 0),
                    }
                )
        versions = sorted({w["ring"]["version"] for w in workers})
        return {
            "pixring": __version__,
            "uptime_s": round(time.time() - self.started, 3),
            "ready": ready,
            "reason": reason,
            "draining": self.draining,
            "ring": {
                **ring,
                "workers_agree": len(versions) <= 1,
                "versions": versions,
            },
            "discovery": newest["discovery"] if newest else None,
            "panic": any(w.get("panic") for w in workers),
            "members": members,
            "totals": {
                "requests": sum(stats["requests"].values()),
                "local_responses": sum(n for (node, _, _), n in stats["requests"].items() if node == "-"),
                "inflight": sum(stats["inflight"].values()),
                "connections_open": stats["connections_open"],
                "connections_total": stats["connections_total"],
                "retries": stats["retries"],
                "retries_refused_by_budget": stats["retries_refused"],
                "hedges": stats["hedges"],
                "hot_spread": stats["hot_spread"],
                "bounded_overflow": stats["bounded_overflow"],
                "steered": stats["steered"],
                "coalesced": stats["coalesced"],
            },
            "health_events": {f"{member}:{kind}": n for (member, kind), n in sorted(stats["health_events"].items())},
            "sources": source_counts(stats),
            "workers": [
                {
                    "index": w["index"],
                    "pid": w["pid"],
                    "ring_version": w["ring"]["version"],
                    "members": w["ring"]["members"],
                    "report_age_s": round(time.time() - w["time"], 3),
                    "draining": w["draining"],
                    "pool_idle": w["pool_idle"],
                    "hot_keys": [{"key": key, "share": share, "replicas": replicas}
                                 for key, share, replicas in w.get("hot_keys", [])],
                    "coalescing": {
                        "leaders": w["stats"].get("coalesce_leaders", 0),
                        "followers": w["stats"].get("coalesced", 0),
                        "uncoalesced": w["stats"].get("coalesce_alone", 0),
                    },
                    # Render steering's check: null when steering is off in the config.
                    "steering": w.get("steering"),
                }
                for w in workers
            ],
            "config": self.config.summary(),
        }


def source_counts(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Requests per source (configured names, "-" for a Host no source names): admitted,
    refused (a bad signature, an unknown Host) and, with a render limit, limited (429)."""
    out: dict[str, dict[str, int]] = {}
    for (source, result), n in sorted(stats.get("sources", {}).items()):
        out.setdefault(source, {"admitted": 0, "refused": 0})[result] = n
    return out


def worker_report(state_dir: Path, index: int, pid: int) -> dict[str, Any] | None:
    """The last state worker ``index`` wrote, if the process ``pid`` wrote it (the file
    outlives its writer, and a restarted worker reuses the index)."""
    try:
        report = orjson.loads((state_dir / f"worker-{index}.json").read_bytes())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and report.get("pid") == pid else None


def judge_readiness(
    workers: list[dict[str, Any]], *, expected: int, draining: bool, now: float
) -> tuple[bool, str]:
    """Ready or not, and why, from the serving workers' state files (pure: no I/O).

    Only listening workers count: one still waiting for its first membership takes
    no connections, so it neither makes the balancer ready nor unready; if it is one
    the balancer needs (a cold start, a dead worker's replacement), the count says so.
    """
    if draining:
        return False, "draining: shutting down"
    listening = [w for w in workers if w["listening"]]
    if len(listening) < expected:
        warming = [w for w in workers if not w["listening"]]
        waits_for = {"health probes": "its first health probes to answer"}.get(
            warming[0].get("warming", ""), "its first membership") if warming else ""
        why = f"; worker {warming[0]['index']} is waiting for {waits_for}" if warming else ""
        return False, f"{len(listening)} of {expected} workers listening{why}"
    for worker in listening:
        if worker["draining"]:
            return False, f"worker {worker['index']} is draining"
        if now - worker["time"] > _STALE_WORKER_S:
            return False, f"worker {worker['index']} has not reported for {now - worker['time']:.1f}s"
        if not worker["discovery"]["ready"]:
            return False, f"worker {worker['index']}: membership not known yet ({worker['discovery']['kind']})"
        if worker["ring"]["members"] == 0:
            return False, f"worker {worker['index']}: no member in the ring"
        health = worker.get("health", {})
        if health and not any(view.get("routable") for view in health.values()):
            return False, f"worker {worker['index']}: no healthy member (every one down, ejected or taken out)"
    notes = []
    stale = [w for w in listening if w["discovery"]["stale"]]
    if stale:
        # Still routable with the last good membership (static stability): ready,
        # but say why an operator should look.
        notes.append(f"discovery stale: {stale[0]['discovery']['detail']}")
    if any(w.get("panic") for w in listening):
        notes.append("panic mode: too few healthy members, routing over all of them")
    return True, "; ".join(["ok", *notes]) if notes else "ok"


def _codes_for(requests: dict[tuple[str, str, str], int], node: str) -> dict[str, int]:
    codes: dict[str, int] = {}
    for (n_node, _, code), n in requests.items():
        if n_node == node:
            codes[code] = codes.get(code, 0) + n
    return codes


def admin_policy(config: BalancerConfig) -> AdminPolicy:
    return AdminPolicy(config.admin.host, config.admin_token, config.admin_open_loopback, config.admin_hosts)


def _guard_change(request: web.Request, config: BalancerConfig) -> None:
    """A POST changes routing: refused (401/403 with the reason) unless it passes the
    admin guard's rules (``balancer.adminguard``)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    refusal = judge_change(
        admin_policy(config),
        host=request.headers.get("Host", ""),
        origin=request.headers.get("Origin"),
        authorization=request.headers.get("Authorization", ""),
        local_address=str(sockname[0]) if sockname else "",
    )
    if refusal is not None:
        raise _refused(*refusal)


def _refused(status: int, reason: str) -> web.HTTPException:
    error_class = web.HTTPUnauthorized if status == 401 else web.HTTPForbidden
    return error_class(
        text=orjson.dumps({"error": reason, "status": status}).decode(),
        content_type="application/json",
        headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"} if status == 401
        else {"Cache-Control": "no-store"},
    )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n",
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def make_admin_app(state: AdminState) -> web.Application:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BalancerCollector(state.metrics_view))

    async def healthz(request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ready, reason = state.readiness(state.workers())
        return _json({"ready": ready, "reason": reason}, 200 if ready else 503)

    async def status(request: web.Request) -> web.Response:
        return _json(state.status())

    previous: list[tuple[float, dict[str, Any]]] = []  # the last sample the page showed, for its rates

    async def page(request: web.Request) -> web.Response:
        now = time.monotonic()
        current = state.status()
        rates = rates_between(previous[0][1], current, now - previous[0][0]) if previous else {}
        previous[:] = [(now, current)]
        return web.Response(text=render_status_page(current, rates), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def member_mode(request: web.Request) -> web.Response:
        _guard_change(request, state.config)
        member = request.match_info["member"]
        action = request.match_info["action"]
        known = state.known_members()
        if member not in known:
            raise web.HTTPNotFound(
                text=orjson.dumps({"error": f"no member {member!r}", "members": sorted(known)}).decode(),
                content_type="application/json",
            )
        mode = None if action == "ready" else action
        state.set_operator_mode(member, mode)
        return _json({"member": member, "mode": mode or "ready"})

    async def confirm_discovery(request: web.Request) -> web.Response:
        _guard_change(request, state.config)
        sent = state.signal_workers(signal.SIGUSR1)
        return _json({"confirmed": True, "workers": sent})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/discovery/confirm", confirm_discovery)
    app.router.add_post(r"/members/{member}/{action:drain|maintenance|ready}", member_mode)
    return app
